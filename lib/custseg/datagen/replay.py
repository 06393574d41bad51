"""Replay: emit a generated landing zone's events, orders and campaign responses as they happened.

``custseg generate replay --from data/landing --to DIR|kafka [--rate N | --speed X] [--now]``

Reads ``<from>/<source>/<date>/*.{jsonl,csv}[.gz]`` of the replayed sources, orders every record
by its event time (events ``ts``, orders ``order_ts``, a campaign response the latest of its
``sent_ts`` / ``opened_ts`` / ``clicked_ts`` / ``converted_ts``: a response row is known only once
its last step happened), and sends them in ticks of ``--tick`` seconds:

- to a landing folder (``--to DIR``): per tick, one small file per source and event date,
  ``DIR/<source>/<date>/replay-<run>-<tick>.<jsonl|csv>``, written under a dot name and renamed
  into place, so a file stream never sees half a file;
- to Kafka (``--to kafka``): per tick one batch write through Spark's Kafka sink to the
  source's topic (``stream.kafka.topics``), value the record as one JSON object (a CSV row
  becomes an object of its columns, empty cells null), key the record's ``customer_id``.

Pacing: ``--rate N`` records per second (0: as fast as possible), or ``--speed X``: event time
runs X times faster than the wall clock (1 = as it happened). ``--now`` shifts every event time
so the first record happens at the start of the replay and the gaps between records are kept
(divided by X with ``--speed``, so each record's event time is when it is sent).

Records are sent as they are: a malformed line from the generator's planted bad records is
replayed verbatim (at the time of the record before it in its file), so the stream's
quarantine sees it. The records of the replayed dates are held in memory (text and time only);
``--dates`` picks some date folders of a large landing zone.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import logging
import math
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger("custseg.datagen.replay")

SOURCES = ("events", "orders", "campaign_responses")
# Event-time fields per source; a record's time is the latest of those that parse.
TS_FIELDS = {
    "events": ("ts",),
    "orders": ("order_ts",),
    "campaign_responses": ("sent_ts", "opened_ts", "clicked_ts", "converted_ts"),
}
KEY_FIELD = "customer_id"
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
KAFKA = "kafka"


@dataclass(order=True)
class Record:
    at: datetime
    source_rank: int
    seq: int
    source: str = field(compare=False)
    fmt: str = field(compare=False)  # "jsonl": text is the JSON line; "csv": text is the row, header in `header`
    text: str = field(compare=False)
    header: tuple[str, ...] | None = field(compare=False, default=None)


# What a sink gets per record: the record, its text as sent (times moved), its event time as sent.
Sent = tuple[Record, str, datetime]


@dataclass
class ReplaySummary:
    records: dict[str, int]
    ticks: int
    seconds: float
    sink: str
    first_event: str | None
    last_event: str | None

    @property
    def rate(self) -> float:
        return sum(self.records.values()) / self.seconds if self.seconds > 0 else 0.0


def parse_ts(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo is None else ts.astimezone(UTC).replace(tzinfo=None)


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def _fields(rec: Record) -> dict:
    if rec.fmt == "csv":
        row = next(csv.reader([rec.text]), [])
        return dict(zip(rec.header or (), row, strict=False))
    try:
        obj = json.loads(rec.text)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _record_time(source: str, fields: dict) -> datetime | None:
    times = [t for t in (parse_ts(fields.get(f)) for f in TS_FIELDS[source]) if t is not None]
    return max(times) if times else None


def landing_files(landing: Path, source: str, dates: Iterable[str] | None = None) -> list[Path]:
    """The source's data files under ``landing/<source>/<date>/``, dot and underscore names skipped."""
    root = landing / source
    if not root.is_dir():
        return []
    wanted = set(dates) if dates else None
    out = []
    for day in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        if wanted is not None and day.name not in wanted:
            continue
        for f in sorted(day.iterdir()):
            if f.is_file() and not f.name.startswith(("_", ".")) and re.search(r"\.(jsonl|json|csv)(\.gz)?$", f.name):
                out.append(f)
    return out


def _latest_plausible(folder: str) -> datetime | None:
    """Latest event time a record in a batch folder named by date may carry (the batch ingest's
    future tolerance, 48 h after that day); None when the folder is not named by a date."""
    try:
        day = datetime.strptime(folder, "%Y-%m-%d")
    except ValueError:
        return None
    return day + timedelta(days=3)


def load_records(
    landing: str | Path, sources: Iterable[str] = SOURCES, dates: Iterable[str] | None = None
) -> list[Record]:
    """Every record of ``sources`` in the landing zone, in event-time order."""
    landing = Path(landing)
    records: list[Record] = []
    seq = 0
    for rank, source in enumerate(sources):
        if source not in TS_FIELDS:
            raise ValueError(f"cannot replay source {source!r}: one of {', '.join(TS_FIELDS)}")
        for path in landing_files(landing, source, dates):
            fmt = "csv" if ".csv" in path.name else "jsonl"
            latest = _latest_plausible(path.parent.name)
            previous: datetime | None = None
            undated: list[Record] = []  # records before the file's first dated one
            with _open_text(path) as fh:
                lines: Iterator[str] = iter(fh)
                header = None
                if fmt == "csv":
                    first = next(lines, "")
                    header = tuple(next(csv.reader([first]), []))
                for line in lines:
                    text = line.rstrip("\r\n")
                    if not text.strip():
                        continue
                    rec = Record(datetime.min, rank, seq, source, fmt, text, header)
                    seq += 1
                    at = _record_time(source, _fields(rec))
                    if at is not None and latest is not None and at > latest:
                        at = None  # a planted future timestamp: sent with its neighbours, kept as it is
                    if at is None and previous is None:
                        undated.append(rec)
                        continue
                    rec.at = at or previous
                    previous = rec.at
                    records.append(rec)
            for rec in undated:  # a file with no dated record before them: at its first time
                rec.at = previous or datetime(1970, 1, 1)
                records.append(rec)
    records.sort()
    return records


_JSON_TS = {
    source: re.compile(r'("(?:' + "|".join(fields) + r')"\s*:\s*")([^"]*)(")') for source, fields in TS_FIELDS.items()
}


def shifted(rec: Record, shift: timedelta, scale: float = 1.0, origin: datetime | None = None) -> str:
    """The record's text with its event times moved: ``origin + (t - origin) / scale + shift``.

    JSON lines are edited in place (a regular expression on the timestamp fields only), so every
    other byte, the planted bad values included, stays as generated."""

    def move(value: str) -> str:
        ts = parse_ts(value)
        if ts is None:
            return value
        if origin is not None and scale != 1.0:
            ts = origin + (ts - origin) / scale
        return (ts + shift).strftime(TS_FORMAT)

    if rec.fmt == "jsonl":
        return _JSON_TS[rec.source].sub(lambda m: m.group(1) + move(m.group(2)) + m.group(3), rec.text)
    row = next(csv.reader([rec.text]), [])
    fields = set(TS_FIELDS[rec.source])
    row = [move(v) if i < len(rec.header or ()) and rec.header[i] in fields else v for i, v in enumerate(row)]
    return _csv_line(row)


def _csv_line(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


def as_json(rec: Record, text: str) -> str:
    """The Kafka value: a JSON line as is, a CSV row as an object of its columns (empty -> null)."""
    if rec.fmt == "jsonl":
        return text
    row = next(csv.reader([text]), [])
    header = rec.header or ()
    obj = {h: (row[i] if i < len(row) and row[i] != "" else None) for i, h in enumerate(header)}
    for i, extra in enumerate(row[len(header) :]):  # a row with more cells than the header keeps them
        obj[f"_extra_{i}"] = extra
    return json.dumps(obj, separators=(",", ":"))


def kafka_key(rec: Record, text: str) -> str | None:
    fields = _fields(Record(rec.at, 0, 0, rec.source, rec.fmt, text, rec.header))
    key = fields.get(KEY_FIELD)
    return str(key) if key not in (None, "") else None


class LandingSink:
    """Each tick's records as small files in a landing folder (dot name, then rename)."""

    def __init__(self, root: str | Path, run: str):
        self.root = Path(root)
        self.run = run

    def send(self, tick: int, batch: list[Sent]) -> None:
        groups: dict[tuple[str, str], list[Sent]] = defaultdict(list)
        for rec, text, at in batch:  # the folder of the day it happens (after --now)
            groups[(rec.source, at.strftime("%Y-%m-%d"))].append((rec, text, at))
        for (source, day), items in sorted(groups.items()):
            fmt = items[0][0].fmt
            folder = self.root / source / day
            folder.mkdir(parents=True, exist_ok=True)
            name = f"replay-{self.run}-{tick:06d}.{fmt}"
            lines = [_csv_line(list(items[0][0].header or ()))] if fmt == "csv" else []
            lines += [text for _, text, _ in items]
            tmp = folder / f".{name}.tmp"
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, folder / name)

    def close(self) -> None:
        pass


class KafkaSink:
    """Each tick's records as one batch write through Spark's Kafka sink (a ``topic`` column)."""

    def __init__(self, spark, conf):
        from custseg.realtime.kafka import client_options, topic

        self.spark = spark
        self.options = client_options(conf)
        self.topics = {s: topic(conf, s) for s in SOURCES if s in (conf.get_path("stream.kafka.topics", {}) or {})}

    def send(self, tick: int, batch: list[Sent]) -> None:
        rows = [(self.topics[rec.source], kafka_key(rec, text), as_json(rec, text)) for rec, text, _ in batch]
        # One writer per tick: Kafka keeps the order a producer sends in, so a customer's records
        # stay in event-time order on their partition (several Spark tasks would interleave).
        df = self.spark.createDataFrame(rows, "topic string, key string, value string").coalesce(1)
        df.write.format("kafka").options(**self.options).save()

    def close(self) -> None:
        pass


def replay(
    records: list[Record],
    send: Callable[[int, list[Sent]], None],
    *,
    rate: float = 1000.0,
    speed: float | None = None,
    tick: float = 1.0,
    now: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], datetime] = datetime.now,
) -> tuple[int, float]:
    """Send ``records`` (in event-time order) in ticks; returns (ticks, seconds)."""
    if not records:
        return 0, 0.0
    if speed is not None and speed <= 0:
        raise ValueError(f"--speed must be > 0, got {speed}")
    if tick <= 0:
        raise ValueError(f"--tick must be > 0, got {tick}")
    first = records[0].at
    scale = speed or 1.0
    shift = (wall().replace(microsecond=0) - first) if now else timedelta(0)
    start = clock()
    i, n, ticks = 0, len(records), 0
    per_tick = math.inf if not speed and rate <= 0 else rate * tick
    carry = 0.0
    while i < n:
        ticks += 1
        due = start + ticks * tick
        if speed:  # every record whose (scaled) event time is before the tick's end
            limit = first + timedelta(seconds=ticks * tick * speed)
            j = i
            while j < n and records[j].at < limit:
                j += 1
        else:
            carry += per_tick if per_tick != math.inf else n
            take = max(0, int(carry))
            carry -= take
            j = min(n, i + take)
        if j > i:
            batch = [
                (r, shifted(r, shift, scale, first), first + (r.at - first) / scale + shift)
                if now
                else (r, r.text, r.at)
                for r in records[i:j]
            ]
            send(ticks, batch)
            i = j
        if ticks % 10 == 0 or i >= n:
            log.info("replay: tick %d, %d/%d records sent", ticks, i, n)
        wait = due - clock()
        if wait > 0 and i < n and (speed or rate > 0):
            sleep(wait)
    return ticks, clock() - start


def run_replay(
    landing: str | Path,
    to: str,
    *,
    sources: Iterable[str] = SOURCES,
    dates: Iterable[str] | None = None,
    limit: int | None = None,
    rate: float = 1000.0,
    speed: float | None = None,
    tick: float = 1.0,
    now: bool = False,
    conf=None,
    spark=None,
) -> ReplaySummary:
    """Load, order and replay a landing zone into a landing folder or Kafka (``to="kafka"``)."""
    sources = list(sources)
    records = load_records(landing, sources, dates)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise ValueError(f"nothing to replay: no records of {', '.join(sources)} under {landing}")
    if to == KAFKA:
        if conf is None:
            from custseg.config import load_config

            conf = load_config()
        if spark is None:
            from custseg.session import get_session

            spark = get_session(conf, "custseg-replay")
        sink = KafkaSink(spark, conf)
        missing = sorted({r.source for r in records} - set(sink.topics))
        if missing:
            raise conf.error(f"stream.kafka.topics.{missing[0]}", "is not set: no topic to replay that source to")
    else:
        sink = LandingSink(to, datetime.now().strftime("%Y%m%dT%H%M%S"))
    counts = Counter(r.source for r in records)
    log.info(
        "replaying %d records (%s) from %s to %s, %s, ticks of %ss%s",
        len(records),
        ", ".join(f"{s} {counts[s]}" for s in sources if counts.get(s)),
        landing,
        to,
        f"{speed}x event time" if speed else (f"{rate:g} records/s" if rate > 0 else "as fast as possible"),
        tick,
        ", event times shifted to now" if now else "",
    )
    ticks, seconds = replay(records, sink.send, rate=rate, speed=speed, tick=tick, now=now)
    sink.close()
    summary = ReplaySummary(
        records={s: counts[s] for s in sources if counts.get(s)},
        ticks=ticks,
        seconds=seconds,
        sink=str(to),
        first_event=records[0].at.strftime(TS_FORMAT),
        last_event=records[-1].at.strftime(TS_FORMAT),
    )
    log.info("replayed %s in %d ticks, %.1f s (%.0f records/s)", summary.records, ticks, seconds, summary.rate)
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="custseg generate replay",
        description="Emit a generated landing zone's events, orders and responses in event-time order, at a rate.",
    )
    p.add_argument(
        "--from", dest="landing", default="data/landing", help="landing folder to read (default data/landing)"
    )
    p.add_argument("--to", required=True, help="a landing folder to write small files into, or 'kafka'")
    p.add_argument("--sources", default=",".join(SOURCES), help=f"comma list of {', '.join(SOURCES)}")
    p.add_argument("--dates", default=None, help="comma list of date folders (default: all)")
    p.add_argument("--limit", type=int, default=None, help="replay only the first N records (event-time order)")
    p.add_argument("--rate", type=float, default=1000.0, help="records per second (0: as fast as possible)")
    p.add_argument("--speed", type=float, default=None, help="event time runs this many times the wall clock")
    p.add_argument("--tick", type=float, default=1.0, help="seconds per tick (one file / one Kafka write each)")
    p.add_argument("--now", action="store_true", help="shift event times so the first record happens now")
    p.add_argument("--conf", default=None, help="config file (stream.kafka.*) for --to kafka")
    p.add_argument("--set", dest="overrides", action="append", type=_kv, default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def _kv(text: str) -> tuple[str, str]:
    from custseg.cli import _kv as kv

    return kv(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from custseg.cli import setup_logging

    setup_logging()
    conf = None
    if args.to == KAFKA:
        from custseg.config import load_config

        conf = load_config(args.conf)
        if args.overrides:
            import yaml

            conf = conf.with_overrides({k: yaml.safe_load(v) for k, v in args.overrides})
    run_replay(
        args.landing,
        args.to,
        sources=[s.strip() for s in args.sources.split(",") if s.strip()],
        dates=[d.strip() for d in args.dates.split(",")] if args.dates else None,
        limit=args.limit,
        rate=args.rate,
        speed=args.speed,
        tick=args.tick,
        now=args.now,
        conf=conf,
    )
    return 0
