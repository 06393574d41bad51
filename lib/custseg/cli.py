"""Command line: ``custseg generate | run <stage> | forget | stream | stream-export | demo``; also the entry of every jobs/*.py.

``run`` is what spark-submit, Databricks wheel tasks and EMR steps call: it parses
arguments, loads the config (failing fast on a bad one), gets the session, runs one
stage (or the whole pipeline), records the run in gold.job_runs and exits non-zero
with the error logged when anything fails.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date

log = logging.getLogger("custseg")


def setup_logging(level: str = "INFO") -> None:
    """Log through the ``custseg`` logger, not the root logger: an embedding application (a
    notebook, Airflow, Databricks) keeps its own logging set-up and receives our records through
    its root handlers; on its own (no root handler) a job logs to stderr with one handler."""
    logger = logging.getLogger("custseg")
    logger.setLevel(getattr(logging, level.upper(), logging.INFO))
    if not logging.getLogger().handlers and not any(getattr(h, "_custseg", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._custseg = True  # type: ignore[attr-defined] - marks ours, so a second call adds none
        logger.addHandler(handler)
    for noisy in ("py4j", "deltalake"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"--date must be YYYY-MM-DD, got {text!r}") from None


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set takes key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value


def add_job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--conf", default=None, help="config file (default: $CUSTSEG_CONF or conf/local.yaml)")
    p.add_argument("--date", required=True, type=_iso_date, help="batch / snapshot date YYYY-MM-DD")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_kv,
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (YAML value), repeatable",
    )
    p.add_argument("--log-level", default=os.environ.get("CUSTSEG_LOG_LEVEL", "INFO"))
    p.add_argument(
        "--run-id",
        dest="external_run_id",
        default=None,
        help="the scheduler's run id (Databricks {{job.run_id}}, Airflow run_id), recorded in gold.job_runs",
    )
    p.add_argument(
        "--secret",
        dest="secrets",
        action="append",
        default=[],
        metavar="ENV=SCOPE/KEY",
        help="read ENV from a Databricks secret scope at start unless it is set (serverless has no cluster env)",
    )
    p.add_argument(
        "--remote",
        default=None,
        metavar="sc://HOST:PORT",
        help="run over Spark Connect at this URL (default: $SPARK_REMOTE; none: a classic session)",
    )
    p.add_argument(
        "--stages",
        default=None,
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        help="pipeline only: run these stages (comma-separated, in pipeline order) instead of all",
    )


def parse_job_args(stage: str | None, argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments of one job (``stage`` fixed) or of ``custseg run`` (stage positional)."""
    p = argparse.ArgumentParser(prog=f"custseg-{stage}" if stage else "custseg run")
    if stage is None:
        p.add_argument("stage", help="ingest | conform | features | ... | pipeline")
    add_job_args(p)
    args = p.parse_args(argv)
    if stage is not None:
        args.stage = stage
    return args


def run_job(args: argparse.Namespace, demo: bool = False, spark=None) -> int:
    """Run a stage or the pipeline for ``args.date``; 0 on success, 1 on failure (recorded)."""
    import yaml

    from custseg import faults
    from custseg.config import ConfigError, load_config
    from custseg.pii import MissingSaltError, resolve_pii_key
    from custseg.runs import RunRecorder, record_run, record_start
    from custseg.runtime import connect_gc_guard
    from custseg.secrets import SecretError, load_secrets
    from custseg.session import get_session
    from custseg.stages import StageContext, StageImportError, get_stage, pipeline_stages, stage_tables
    from custseg.stages.context import absolute
    from custseg.storage import StorageSettings, Tables
    from custseg.tracking import TrackingError
    from custseg.tracking import check as check_tracking
    from custseg.tracking import start as start_tracking

    setup_logging(args.log_level)
    try:
        load_secrets(getattr(args, "secrets", []) or [])
        conf = load_config(args.conf)
        if args.overrides:
            conf = conf.with_overrides({k: yaml.safe_load(v) for k, v in args.overrides})
        names = pipeline_stages() if args.stage == "pipeline" else [args.stage]
        if getattr(args, "stages", None):
            if args.stage != "pipeline":
                raise KeyError(f"--stages is for the pipeline job, not {args.stage!r}")
            unknown = [n for n in args.stages if n not in names]
            if unknown:
                raise KeyError(f"--stages: unknown stages {unknown}; pipeline stages: {', '.join(names)}")
            names = [n for n in names if n in args.stages]
        stages = [(n, get_stage(n)) for n in names]
        if "conform" in names or "forget" in names:  # stages that make identity keys: no salt, no run
            resolve_pii_key(conf, demo=demo)
        check_tracking(conf)  # tracking on without mlflow installed: fail before any stage runs
        faults.parse(os.environ.get(faults.ENV, ""))  # the test hook's setting, when set, must be readable
    except (
        ConfigError,
        KeyError,
        MissingSaltError,
        SecretError,
        StageImportError,
        TrackingError,
        faults.FaultSpecError,
    ) as exc:
        log.error("%s", exc)
        return 2
    conf.log_effective(log)
    spark = spark or get_session(conf, f"custseg-{args.stage}", remote=getattr(args, "remote", None))
    settings = StorageSettings.from_config(conf)
    tables = Tables(spark, StorageSettings(**{**settings.__dict__, "root": absolute(settings.root)}))
    log.info("tables: %s (engine %s)", absolute(settings.root), tables.engine_name)
    for name, fn in stages:
        recorder = RunRecorder(job=name, run_date=args.date, spark=spark)
        if getattr(args, "external_run_id", None):
            recorder.details["external_run_id"] = args.external_run_id
        tags = {
            "custseg.run_id": recorder.run_id,
            "custseg.job": name,
            "custseg.run_date": args.date,
            "custseg.external_run_id": getattr(args, "external_run_id", None),
            "custseg.storage_engine": tables.engine_name,
        }
        tracker = start_tracking(conf, tags, run_name=f"{name} {args.date}")  # a no-op when tracking is off
        # Stages after conform read silver as of args.date, never the current silver.
        view = stage_tables(name, tables, args.date)
        ctx = StageContext(spark, conf, args.date, view, recorder, demo=demo, tracker=tracker)
        record_start(spark, tables, recorder)  # a run that dies without an end stays visible
        try:
            with connect_gc_guard(spark), recorder.stage(name), faults.stage(name):
                fn(ctx)
        except Exception as exc:
            log.exception("stage %s failed for %s", name, args.date)
            tracker.close(failed=True)
            if tracker.run_id:
                recorder.details["mlflow_run_id"] = tracker.run_id
            record_run(spark, tables, recorder, "failed", exc)
            return 1
        tracker.close()
        if tracker.run_id:
            recorder.details["mlflow_run_id"] = tracker.run_id
        record_run(spark, tables, recorder, "succeeded")
        log.info(
            "stage %s %s: rows_in=%d rows_out=%d quarantined=%d in %.1fs",
            name,
            args.date,
            recorder.rows_in,
            recorder.rows_out,
            recorder.quarantined,
            recorder.stage_seconds.get(name, 0.0),
        )
    return 0


def parse_forget_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``custseg forget --requests FILE|TABLE --date D``: the ``forget`` stage with its request source."""
    p = argparse.ArgumentParser(prog="custseg forget", description="erase people on request (docs/security.md)")
    p.add_argument(
        "--requests",
        required=True,
        help="CSV file with a header (or a layer.table) with customer_id and optionally requested_at",
    )
    add_job_args(p)
    args = p.parse_args(argv)
    args.stage = "forget"
    args.overrides = [*args.overrides, ("erasure.requests", args.requests)]
    return args


def job_main(stage: str, argv: list[str] | None = None) -> int:
    """Entry point of jobs/<stage>.py and of the wheel's ``custseg-<stage>`` scripts."""
    return run_job(parse_job_args(stage, argv))


def job_entry(stage: str):
    """(parse_args, main) for a jobs/<stage>.py file: both take an argv list, so tests can call them."""

    def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
        return parse_job_args(stage, argv)

    def main(argv: list[str] | None = None) -> int:
        return job_main(stage, argv)

    return parse_args, main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0])
        print(
            "usage: custseg generate [...] | custseg run <stage> --date D [--conf F] | "
            "custseg forget --requests FILE|TABLE --date D [--conf F] | custseg stream [--trigger T] [--conf F] | "
            "custseg stream-export --hour YYYY-MM-DDTHH|--date D|--from H --to H|--latest [--conf F] | custseg demo [...]"
        )
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "generate":
        from custseg.datagen import main as generate_main

        setup_logging()
        return generate_main(rest) or 0
    if cmd == "run":
        return run_job(parse_job_args(None, rest))
    if cmd == "forget":
        return run_job(parse_forget_args(rest))
    if cmd == "stream":
        from custseg.realtime.job import main as stream_main

        return stream_main(rest)
    if cmd == "stream-export":
        from custseg.realtime.export_job import main as export_main

        return export_main(rest)
    if cmd == "demo":
        from custseg.demo import main as demo_main

        return demo_main(rest)
    print(f"unknown command {cmd!r}; try: generate, run, forget, stream, stream-export, demo", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
