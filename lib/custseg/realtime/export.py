"""The hourly activation export of real-time offers: gold.realtime_offers -> CSV files per hour.

For each UTC hour H, the ``offered`` rows of ``gold.realtime_offers`` whose ``decided_at`` lies
in [H, H + 1h) go to ``<paths.exports>/realtime/<YYYY-MM-DD>/<HH>/``:

- ``offers-part-00001.csv[.gz]``, ...: the columns a CRM or messaging tool needs (``EXPORT_COLUMNS``:
  ``offer_id``, the consumer's dedup key, the keyed ``customer_key``, no raw PII; the offer JSON
  parsed into ``offer_*`` columns), sorted by ``offer_id``, at most
  ``realtime.export.max_rows_per_file`` rows per part, formulas escaped
  (``stages.export_files.write_csv_parts``). An hour without offers gets one header-only part;
- ``manifest.json``: the hour, rows (in total, by channel, by trigger), and per file its rows,
  bytes and SHA-256;
- ``_SUCCESS``, written last.

Control, capped, no-consent, ineligible and unknown-customer rows are never exported. Published
like the batch exports (``export_files.publish_folder``): written to ``<paths.exports>/_staging/``
and swapped in whole, so a loader never sees half an hour and a re-export (same rows, same bytes)
replaces the earlier one atomically.

When: ``custseg stream`` exports each hour once it is closed (``export_due``, at the end of an
``ingest`` micro-batch), and ``custseg stream-export`` (custseg.realtime.export_job) exports or
re-exports given hours for schedulers and backfills.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg import faults, fileio
from custseg.config import Config, validator
from custseg.realtime.decide import OFFERED
from custseg.stages.context import absolute
from custseg.stages.export_files import file_digests, publish_folder, write_csv_parts

log = logging.getLogger(__name__)

OFFERS = "gold.realtime_offers"
FOLDER = "realtime"  # under paths.exports
STEM = "offers"
HOUR = timedelta(hours=1)
# The fields of the ``offer`` JSON (custseg.realtime.decide: type, discount, item, name).
OFFER_JSON = T.StructType(
    [
        T.StructField("type", T.StringType()),
        T.StructField("discount", T.DoubleType()),
        T.StructField("item", T.StringType()),
        T.StructField("name", T.StringType()),
    ]
)
EXPORT_SCHEMA = T.StructType(
    [
        T.StructField("offer_id", T.StringType()),
        T.StructField("customer_key", T.StringType()),
        T.StructField("trigger", T.StringType()),
        T.StructField("channel", T.StringType()),
        T.StructField("offer_type", T.StringType()),
        T.StructField("offer_discount", T.DoubleType()),
        T.StructField("offer_item", T.StringType()),
        T.StructField("offer_name", T.StringType()),
        T.StructField("expires_at", T.StringType()),
        T.StructField("decided_at", T.StringType()),
        T.StructField("segment", T.StringType()),
        T.StructField("value_class", T.StringType()),
    ]
)
EXPORT_COLUMNS = [f.name for f in EXPORT_SCHEMA.fields]
# Hex digests: a leading "-" cannot occur, and a quote would break the join key downstream.
UNESCAPED = ("offer_id", "customer_key")
# ISO 8601 with the offset (``Z`` in UTC): unambiguous whatever the loader's time zone.
TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ssXXX"
# Hours one micro-batch exports at most (oldest first): a stream back after a long stop catches
# up over a few micro-batches instead of holding one for minutes.
MAX_HOURS_PER_BATCH = 3


@dataclass(frozen=True)
class ExportSettings:
    """``realtime.export.*`` (base.yaml)."""

    enabled: bool = True
    grace_minutes: int = 2
    max_rows_per_file: int = 100000
    compress: bool = False
    lookback_hours: int = 24

    @classmethod
    def from_config(cls, conf: Config) -> ExportSettings:
        d, p = cls(), "realtime.export."
        g = lambda key: conf.get_path(p + key, getattr(d, key))  # noqa: E731

        def whole(key: str, low: int, high: int) -> int:
            v = g(key)
            if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
                raise conf.error(p + key, f"must be a whole number from {low} to {high}; got {v!r}")
            return v

        def flag(key: str) -> bool:
            v = g(key)
            if not isinstance(v, bool):
                raise conf.error(p + key, f"must be true or false; got {v!r}")
            return v

        return cls(
            enabled=flag("enabled"),
            grace_minutes=whole("grace_minutes", 0, 24 * 60),
            max_rows_per_file=whole("max_rows_per_file", 1, 10_000_000),
            compress=flag("compress"),
            lookback_hours=whole("lookback_hours", 1, 24 * 7),
        )


@validator
def check_export(conf: Config) -> None:
    """``realtime.export.*``, checked whenever a config is loaded after this module is imported."""
    if conf.get_path("realtime.export", None) is not None:
        ExportSettings.from_config(conf)


# --- hours and folders ------------------------------------------------------------------------


def hour_of(ts: datetime) -> datetime:
    """The UTC hour ``ts`` lies in, naive (the stream's clocks are naive UTC)."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.replace(minute=0, second=0, microsecond=0)


def export_root(conf: Config) -> str:
    return f"{absolute(conf.paths.exports).rstrip('/')}/{FOLDER}"


def hour_folder(root: str, hour: datetime) -> str:
    return f"{root}/{hour:%Y-%m-%d}/{hour:%H}"


def label(hour: datetime) -> str:
    """``2026-12-07T14``: how logs and the command name an hour."""
    return f"{hour:%Y-%m-%dT%H}"


def _iso(ts: datetime) -> str:
    return f"{ts:%Y-%m-%dT%H:%M:%S}Z"


# --- what one hour exports -------------------------------------------------------------------


def hour_offers(hour: datetime):
    """gold.realtime_offers -> the hour's offered rows as the export columns (unsorted)."""
    start = hour_of(hour).replace(tzinfo=UTC)  # an instant, as decide writes decided_at
    end = start + HOUR

    def transform(offers: DataFrame) -> DataFrame:
        # decision_date is the partition column: the day either side covers any session time
        # zone (it is the UTC day where get_session sets UTC) and still prunes to three days.
        day = start.date()
        in_hour = (F.col("decided_at") >= F.lit(start)) & (F.col("decided_at") < F.lit(end))
        offer = F.from_json(F.col("offer"), OFFER_JSON)
        return (
            offers.where(F.col("decision_date").between(F.lit(day - timedelta(days=1)), F.lit(day + timedelta(days=1))))
            .where(in_hour & (F.col("decision") == F.lit(OFFERED)))
            .withColumn("_offer", offer)
            .select(
                F.col("offer_id").cast("string"),
                F.col("customer_key").cast("string"),
                F.col("trigger").cast("string"),
                F.col("channel").cast("string"),
                F.col("_offer.type").alias("offer_type"),
                F.col("_offer.discount").alias("offer_discount"),
                F.col("_offer.item").alias("offer_item"),
                F.col("_offer.name").alias("offer_name"),
                F.date_format("expires_at", TS_FORMAT).alias("expires_at"),
                F.date_format("decided_at", TS_FORMAT).alias("decided_at"),
                F.col("segment").cast("string"),
                F.col("value_class").cast("string"),
            )
        )

    return transform


def hour_manifest(hour: datetime, files: list[dict], by_channel_trigger: dict, settings: ExportSettings) -> dict:
    """The manifest of one hour: no timestamp of its own, so a re-export of the same rows is identical."""
    by_channel: dict[str, int] = {}
    by_trigger: dict[str, int] = {}
    for (channel, trigger), n in by_channel_trigger.items():
        by_channel[channel] = by_channel.get(channel, 0) + n
        by_trigger[trigger] = by_trigger.get(trigger, 0) + n
    return {
        "export": "realtime_offers",
        "table": OFFERS,
        "decision": OFFERED,
        "hour": _iso(hour),
        "until": _iso(hour + HOUR),
        "columns": EXPORT_COLUMNS,
        "gzip": settings.compress,
        "rows": sum(by_channel_trigger.values()),
        "rows_by_channel": by_channel,
        "rows_by_trigger": by_trigger,
        "files": sorted(files, key=lambda f: f["part"]),
    }


def export_hour(
    spark: SparkSession, tables, conf: Config, hour: datetime, settings: ExportSettings | None = None
) -> dict:
    """Exports (or re-exports) one hour's offered rows; returns its manifest plus ``path`` (the folder).

    The hour's rows are read once and pinned (``localCheckpoint``: bounded by one hour of offers),
    so the counts, the files and the manifest describe the same read even while the stream appends.
    """
    settings = settings or ExportSettings.from_config(conf)
    hour = hour_of(hour)
    root = export_root(conf)
    target = hour_folder(root, hour)
    staging = f"{absolute(conf.paths.exports).rstrip('/')}/_staging/{FOLDER}-{hour:%Y-%m-%d-%H}-{uuid.uuid4().hex[:12]}"
    if tables.exists(OFFERS):
        rows_of_hour = tables.read(OFFERS).transform(hour_offers(hour))
    else:
        rows_of_hour = spark.createDataFrame([], EXPORT_SCHEMA)
    pinned = rows_of_hour.localCheckpoint(eager=True)
    counts = {
        (r["channel"] or "none", r["trigger"] or "none"): int(r["n"])
        for r in pinned.groupBy("channel", "trigger").agg(F.count("*").alias("n")).collect()  # channels x triggers
    }
    rows = sum(counts.values())
    try:
        parts = write_csv_parts(
            spark,
            pinned.orderBy("offer_id", "decided_at", "trigger"),
            staging,
            STEM,
            rows,
            settings.max_rows_per_file,
            compress=settings.compress,
            unescaped=UNESCAPED,
        )
        digests = file_digests(spark, [f["path"] for f in parts])
        files = [
            {
                "file": f["path"].rsplit("/", 1)[-1],
                "format": "csv.gz" if settings.compress else "csv",
                "part": f["part"],
                "parts": f["parts"],
                "rows": f["rows"],
                "bytes": digests[f["path"]][0],
                "sha256": digests[f["path"]][1],
            }
            for f in parts
        ]
        doc = hour_manifest(hour, files, counts, settings)
        fileio.write_text(f"{staging}/manifest.json", json.dumps(doc, indent=1, sort_keys=True) + "\n")
        fileio.write_text(f"{staging}/_SUCCESS", "")  # last: a loader that waits for it sees a complete hour
        publish_folder(staging, target)
    finally:
        fileio.delete_tree(staging)
    log.info("realtime export %s: %d offers in %d file(s) -> %s", label(hour), rows, len(files), target)
    return {**doc, "path": target}


# --- the in-stream check -----------------------------------------------------------------------


def closed_hours(clock: datetime, settings: ExportSettings) -> list[datetime]:
    """The hours of the lookback window that are closed at ``clock``, oldest first. An hour H is
    closed once ``clock >= H + 1h + grace``: the ``sessions`` query may still commit offers
    decided at the end of H for a while after the hour ends."""
    newest = hour_of(clock - HOUR - timedelta(minutes=settings.grace_minutes))
    return [newest - HOUR * i for i in range(settings.lookback_hours - 1, -1, -1)]


def exported_hours(root: str, days: set[date]) -> set[datetime]:
    """Hours of ``days`` whose export folder holds ``_SUCCESS`` (one listing per day, no Spark)."""
    out = set()
    for day in sorted(days):
        for rel in fileio.walk(f"{root}/{day:%Y-%m-%d}"):
            parts = rel.split("/")
            if len(parts) == 2 and parts[1] == "_SUCCESS" and parts[0].isdigit() and int(parts[0]) < 24:
                out.add(datetime(day.year, day.month, day.day, int(parts[0])))
    return out


def due_hours(window: list[datetime], exported: set[datetime]) -> list[datetime]:
    """The hours of ``window`` to export now, oldest first.

    With an export in the window: every hour after the earliest one that has none (a failed or
    missed hour is retried). With none (a first start, or a stop longer than the window): only the
    newest closed hour; earlier ones are for ``custseg stream-export`` (the caller warns).
    """
    done = [h for h in window if h in exported]
    if not done:
        return window[-1:]
    return [h for h in window if h > done[0] and h not in exported]


def export_due(spark: SparkSession, tables, conf: Config, clock: datetime, state: dict) -> list[datetime]:
    """At the end of an ``ingest`` micro-batch: export the closed hours not exported yet.

    Never raises: a failure logs an error naming the hour and the number of failures so far, and
    the next micro-batch retries. ``state`` (the micro-batch function's cache) remembers settled
    hours, so a micro-batch in an hour already settled does no I/O at all, and one in a new hour
    one listing of at most two day folders before it finds what is due.
    """
    what = "(settings)"
    try:
        settings = state.get("export_settings")
        if settings is None:
            settings = state["export_settings"] = ExportSettings.from_config(conf)
        if not settings.enabled:
            return []
        window = closed_hours(clock, settings)
        settled: set[datetime] = state.setdefault("export_settled", set())
        settled.intersection_update(window)  # bounded by the window
        if all(h in settled for h in window):
            return []
        what = "(listing)"
        root = export_root(conf)
        exported = exported_hours(root, {h.date() for h in window})
        due = due_hours(window, exported)
        if not exported and window[0] not in settled:
            log.warning(
                "realtime export: no hour exported in the %d hours before %s: exporting from %s on; "
                "earlier hours: custseg stream-export --from %s --to %s",
                settings.lookback_hours,
                label(window[-1]),
                label(window[-1]),
                label(window[0]),
                label(window[-1] - HOUR),
            )
        settled.update(h for h in window if h not in due)
        done = []
        with faults.side_task("stream-export"):  # its file writes are not the stream's fault points
            for hour in due[:MAX_HOURS_PER_BATCH]:
                what = label(hour)
                export_hour(spark, tables, conf, hour, settings)
                settled.add(hour)
                done.append(hour)
        if len(due) > MAX_HOURS_PER_BATCH:
            log.info("realtime export: %d more closed hours due, next micro-batch", len(due) - MAX_HOURS_PER_BATCH)
        return done
    except Exception as exc:  # the stream goes on; the hour stays due and is retried
        state["export_failures"] = failures = state.get("export_failures", 0) + 1
        log.error(
            "realtime export of hour %s failed (export failures since start: %d); retried at the next micro-batch: %s",
            what,
            failures,
            exc,
            exc_info=True,
        )
        return []
