"""``custseg stream-export``: export or re-export hours of real-time offers (docs/realtime.md).

    custseg stream-export --hour 2026-12-07T14 [--conf F] [--set k=v ...]
    custseg stream-export --date 2026-12-07          # the day's 24 hours
    custseg stream-export --from 2026-12-07T10 --to 2026-12-07T14   # both included
    custseg stream-export --latest                   # the newest closed hour (an hourly cron)

For schedulers (an hourly run a few minutes past the hour) and backfills; ``custseg stream``
exports closed hours by itself (custseg.realtime.export.export_due). Hours are UTC. An hour that
is not closed yet (now < hour end + ``realtime.export.grace_minutes``) is refused unless
``--force``: its file would miss the offers still to come, and the stream would not export it
again. Exit 0 when every hour is exported, 1 when one fails (the ones before it stay exported),
2 on bad arguments or config.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, date, datetime, timedelta

from custseg.cli import _kv, setup_logging

log = logging.getLogger("custseg.stream_export")


def _hour(text: str) -> datetime:
    """``2026-12-07T14`` (also ``T14:00``, a space for ``T``, an offset) -> the naive UTC hour."""
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"an hour is YYYY-MM-DDTHH (UTC), e.g. 2026-12-07T14; got {text!r}") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    if (ts.minute, ts.second, ts.microsecond) != (0, 0, 0):
        raise argparse.ArgumentTypeError(f"an hour starts at minute 0: YYYY-MM-DDTHH; got {text!r}")
    return ts


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--date must be YYYY-MM-DD, got {text!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="custseg stream-export", description="export hours of real-time offers as activation files"
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--hour", type=_hour, help="one UTC hour: YYYY-MM-DDTHH")
    which.add_argument("--date", type=_day, help="the 24 UTC hours of a day: YYYY-MM-DD")
    which.add_argument("--from", dest="start", type=_hour, help="first hour of a range (with --to)")
    which.add_argument("--latest", action="store_true", help="the newest closed hour (for an hourly schedule)")
    p.add_argument("--to", dest="end", type=_hour, help="last hour of the range, included")
    p.add_argument("--force", action="store_true", help="also hours not closed yet (their files may miss offers)")
    p.add_argument("--conf", default=None, help="config file (default: $CUSTSEG_CONF or conf/local.yaml)")
    p.add_argument("--set", dest="overrides", action="append", type=_kv, default=[], metavar="KEY=VALUE")
    p.add_argument("--log-level", default=os.environ.get("CUSTSEG_LOG_LEVEL", "INFO"))
    p.add_argument("--remote", default=None, metavar="sc://HOST:PORT", help="Spark Connect URL (default $SPARK_REMOTE)")
    p.add_argument(
        "--secret", dest="secrets", action="append", default=[], metavar="ENV=SCOPE/KEY", help="as custseg run"
    )
    args = p.parse_args(argv)
    if (args.start is None) != (args.end is None):
        p.error("--from and --to go together")
    if args.start is not None and args.end < args.start:
        p.error(f"--to {args.end:%Y-%m-%dT%H} is before --from {args.start:%Y-%m-%dT%H}")
    return args


def hours(args: argparse.Namespace, latest: datetime | None = None) -> list[datetime]:
    """The hours the arguments name, oldest first (``latest``: the newest closed hour, for ``--latest``)."""
    if args.latest:
        return [latest]
    if args.hour is not None:
        return [args.hour]
    if args.date is not None:
        first = datetime(args.date.year, args.date.month, args.date.day)
        return [first + timedelta(hours=i) for i in range(24)]
    n = int((args.end - args.start) / timedelta(hours=1)) + 1
    return [args.start + timedelta(hours=i) for i in range(n)]


def main(argv: list[str] | None = None, spark=None) -> int:
    import yaml

    from custseg.config import ConfigError, load_config
    from custseg.realtime.export import HOUR, ExportSettings, closed_hours, export_hour, label
    from custseg.secrets import SecretError, load_secrets
    from custseg.session import get_session
    from custseg.stages.context import absolute
    from custseg.storage import StorageSettings, Tables

    args = parse_args(argv)
    setup_logging(args.log_level)
    try:
        load_secrets(args.secrets)
        conf = load_config(args.conf)
        if args.overrides:
            conf = conf.with_overrides({k: yaml.safe_load(v) for k, v in args.overrides})
        settings = ExportSettings.from_config(conf)
    except (ConfigError, SecretError) as exc:
        log.error("%s", exc)
        return 2
    now = datetime.now(UTC).replace(tzinfo=None)
    todo = hours(args, latest=closed_hours(now, settings)[-1])
    open_hours = [h for h in todo if now < h + HOUR + timedelta(minutes=settings.grace_minutes)]
    if open_hours and not args.force:
        log.error(
            "hour %s is not closed yet (closes %s UTC with realtime.export.grace_minutes=%d): its file would miss "
            "offers still to come; export it later, or pass --force",
            label(open_hours[0]),
            (open_hours[0] + HOUR + timedelta(minutes=settings.grace_minutes)).isoformat(sep=" "),
            settings.grace_minutes,
        )
        return 2
    spark = spark or get_session(conf, "custseg-stream-export", remote=args.remote)
    storage = StorageSettings.from_config(conf)
    tables = Tables(spark, StorageSettings(**{**storage.__dict__, "root": absolute(storage.root)}))
    total = 0
    for h in todo:
        try:
            doc = export_hour(spark, tables, conf, h, settings)
        except Exception:
            log.exception("stream-export: hour %s failed; hours before it are exported", label(h))
            return 1
        total += doc["rows"]
    log.info("stream-export: %d hour(s) from %s, %d offers", len(todo), label(todo[0]), total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
