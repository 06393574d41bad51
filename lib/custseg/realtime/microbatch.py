"""Per-micro-batch work of ``custseg stream`` (``foreachBatch``): validate, quarantine, bronze, silver.

Every micro-batch is a static DataFrame here, so the batch code runs unchanged and a stream
quarantines with the same rules and reasons as ``custseg run ingest``:
``custseg.file_checks`` + ``custseg.ingest.read_raw`` (files) or ``jsonl_records`` (Kafka
messages), ``with_reasons``, ``split_batch``; silver through ``custseg.conform`` with
``silver.identity_map`` (a stream-static join; read again every ``stream.reference_refresh_minutes``).

Tables (append only; the batch jobs' own tables are never touched):
- ``bronze.<source>_rt`` (``_batch_date`` partitions; ``_batch_id`` = ``stream/<query>/<batch id>``);
- ``bronze.quarantine`` rows with ``source`` = ``<source>_rt`` (the batch ingest replaces only
  its own sources' partitions, so the two never overwrite each other);
- ``silver.events_rt``, ``silver.orders_rt`` + ``silver.order_items_rt``,
  ``silver.campaign_responses_rt``: the columns of the batch silver tables;
- ``meta.stream_progress``: one row per query, micro-batch and source (counts, seconds, lag).

Exactly once. Each write carries ``WriteId("custseg/stream/<query>/<table>", batch_id)``: Delta
keeps the highest version per app id in the table, so when a killed micro-batch is replayed
from the checkpoint the writes that had committed are skipped and the rest are made. A replay
must therefore compute the same rows: the clock is the batch time from the offset log
(``_batch_us``), the files are the ones the offset log lists, and the duplicate check against
earlier batches leaves out the rows of this very batch (``_batch_id``).

Duplicates. Within a micro-batch ``with_reasons`` marks repeated ids ``duplicate_id``; an id
already in ``bronze.<source>_rt`` from an earlier micro-batch within ``stream.dedup_horizon_days``
is quarantined as ``duplicate_id`` too (a producer that re-sends, a file re-delivered).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from custseg.config import Config
from custseg.file_checks import check_files, local_form
from custseg.ingest import DRIFT_POLICIES, UNKNOWN, Bounds, jsonl_records, read_raw, split_batch, with_reasons
from custseg.realtime.source import BATCH_CLOCK, FILES, SOURCE_KINDS
from custseg.runtime import pin
from custseg.sources.catalog import SOURCES
from custseg.storage import WriteId

log = logging.getLogger(__name__)

RT_SOURCES = ("events", "orders", "campaign_responses")
QUARANTINE = "bronze.quarantine"
PROGRESS = "meta.stream_progress"
INGEST = "ingest"
SILVER = {
    "events": ("silver.events_rt",),
    "orders": ("silver.order_items_rt", "silver.orders_rt"),
    "campaign_responses": ("silver.campaign_responses_rt",),
}
# Silver tables keyed with the PII key (checked against meta.pii_key_fingerprints at start).
KEYED_TABLES = [t for tables in SILVER.values() for t in tables]
SILVER_PARTITIONS = {
    "silver.events_rt": ["event_date"],
    "silver.order_items_rt": ["order_date"],
    "silver.orders_rt": ["order_date"],
    "silver.campaign_responses_rt": [],
}
PROGRESS_SCHEMA = StructType(
    [
        StructField("query", StringType(), False),
        StructField("batch_id", LongType(), False),
        StructField("batch_ts", TimestampType(), False),
        StructField("source", StringType(), False),
        StructField("files", LongType(), True),
        StructField("records_read", LongType(), False),
        StructField("records_accepted", LongType(), False),
        StructField("records_quarantined", LongType(), False),
        StructField("unknown_field_records", LongType(), False),
        StructField("seconds", DoubleType(), False),
        StructField("lag_s", DoubleType(), True),
        StructField("finished_at", TimestampType(), False),
    ]
)
_TRIGGER = re.compile(r"^processing:(\d+)\s*(ms|s|m|min)?$")
_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "min": "minutes", None: "seconds"}


class SchemaDriftError(RuntimeError):
    """Records carry fields their source does not declare and the policy is ``fail``."""


def bronze_table(source: str) -> str:
    return f"bronze.{source}_rt"


def parse_trigger(text: str) -> dict:
    """``processing:10s`` | ``available-now`` | ``once`` -> keyword arguments of ``DataStreamWriter.trigger``."""
    value = str(text).strip().lower()
    if value in ("available-now", "availablenow", "available_now"):
        return {"availableNow": True}
    if value == "once":
        return {"once": True}
    m = _TRIGGER.match(value)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"trigger must be processing:<n>s|ms|m, available-now or once; got {text!r}")
    return {"processingTime": f"{int(m.group(1))} {_UNITS[m.group(2)]}"}


@dataclass(frozen=True)
class StreamSettings:
    """``stream.*`` of the config (docs/realtime.md)."""

    source: str = FILES
    trigger: str = "processing:10s"
    sources: tuple[str, ...] = RT_SOURCES
    max_files_per_trigger: int = 10
    checkpoint_location: str = ""
    on_unknown_fields: str = ""
    dedup_horizon_days: int = 2
    reference_refresh_minutes: float = 10.0
    sessions_trigger: str = "processing:60s"

    @classmethod
    def from_config(cls, conf: Config) -> StreamSettings:
        get = lambda key, default: conf.get_path(f"stream.{key}", default)  # noqa: E731
        s = cls(
            source=str(get("source", cls.source)),
            trigger=str(get("trigger", cls.trigger)),
            sources=tuple(get("sources", list(cls.sources)) or ()),
            max_files_per_trigger=get("max_files_per_trigger", cls.max_files_per_trigger),
            checkpoint_location=str(get("checkpoint_location", "") or ""),
            on_unknown_fields=str(get("on_unknown_fields", "") or ""),
            dedup_horizon_days=get("dedup_horizon_days", cls.dedup_horizon_days),
            reference_refresh_minutes=get("reference_refresh_minutes", cls.reference_refresh_minutes),
            sessions_trigger=str(get("sessions_trigger", cls.sessions_trigger) or ""),
        )
        if s.source not in SOURCE_KINDS:
            raise conf.error("stream.source", f"must be one of {', '.join(SOURCE_KINDS)}; got {s.source!r}")
        try:
            parse_trigger(s.trigger)
        except ValueError as exc:
            raise conf.error("stream.trigger", str(exc)) from None
        if s.sessions_trigger and not _TRIGGER.match(s.sessions_trigger.strip().lower()):
            raise conf.error(
                "stream.sessions_trigger",
                f"must be empty (as stream.trigger) or processing:<n>s|ms|m; got {s.sessions_trigger!r}",
            )
        unknown = [x for x in s.sources if x not in RT_SOURCES]
        if not s.sources or unknown:
            raise conf.error("stream.sources", f"must list some of {', '.join(RT_SOURCES)}; got {list(s.sources)}")
        n = s.max_files_per_trigger
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise conf.error("stream.max_files_per_trigger", f"must be a whole number >= 1; got {n!r}")
        if s.on_unknown_fields and s.on_unknown_fields not in DRIFT_POLICIES:
            raise conf.error(
                "stream.on_unknown_fields",
                f"must be empty or one of {', '.join(DRIFT_POLICIES)}; got {s.on_unknown_fields!r}",
            )
        d = s.dedup_horizon_days
        if not isinstance(d, int) or isinstance(d, bool) or d < 0:
            raise conf.error("stream.dedup_horizon_days", f"must be a whole number of days >= 0; got {d!r}")
        r = s.reference_refresh_minutes
        if isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0:
            raise conf.error("stream.reference_refresh_minutes", f"must be a number of minutes >= 0; got {r!r}")
        return s

    def session_trigger(self) -> str:
        """The ``sessions`` query's trigger: ``sessions_trigger`` while the stream runs on a
        processing-time trigger, else the stream's own (available-now / once end both queries).

        Its own, slower clock because a session offer waits for the session timeout plus the
        watermark (40 minutes of event time by default) anyway, while each of its micro-batches
        takes the cores from the ``ingest`` query, whose offers are due within a minute."""
        if "processingTime" not in parse_trigger(self.trigger):
            return self.trigger
        return self.sessions_trigger or self.trigger

    def checkpoint(self, tables_root: str, query: str) -> str:
        """Where ``query`` keeps its checkpoint: ``stream.checkpoint_location`` or ``<tables>/meta/_checkpoints``."""
        root = self.checkpoint_location or f"{tables_root.rstrip('/')}/meta/_checkpoints"
        return f"{root.rstrip('/')}/{query}"


@dataclass(frozen=True)
class BatchInfo:
    """What one micro-batch is: its query, id and clock (replayed alike)."""

    query: str
    batch_id: int
    clock: datetime  # UTC, naive: the batch time from the offset log

    @property
    def tag(self) -> str:
        return f"stream/{self.query}/{self.batch_id}"

    @property
    def day(self) -> date:
        return self.clock.date()

    def txn(self, table: str) -> WriteId:
        return WriteId(f"custseg/stream/{self.query}/{table}", self.batch_id)


@dataclass
class SourceReport:
    source: str
    files: int | None
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    unknown: int = 0
    lag_s: float | None = None
    written: dict[str, int] = field(default_factory=dict)


def clock_of(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1e6, timezone.utc).replace(tzinfo=None)


class IngestBatch:
    """The ``foreachBatch`` function of the ``ingest`` query.

    Holds the config only (Spark Connect pickles the function to run it on the server):
    the session comes with each batch's DataFrame, the PII key from the environment or
    secret store where the function runs.
    """

    query = INGEST

    def __init__(self, conf: Config, settings: StreamSettings, tables_root: str):
        self.conf = conf
        self.settings = settings
        self.tables_root = tables_root
        self._cache: dict = {}
        self._batch_frames: list[DataFrame] = []  # persisted for this micro-batch only
        self._silver: dict[str, DataFrame] = {}  # this micro-batch's silver rows, for the triggers
        self._steps: dict[str, float] = {}  # seconds of the batch's steps after ingest, for its log line
        self._writes: list[tuple[str, object]] = []  # (source, write) queued until the offers are committed
        self._quarantined: list[DataFrame] = []  # every source's rejected records: one append

    def __getstate__(self):  # Config reads attributes through __getattr__: pickle its parts
        c = self.conf
        return {"conf": (c._data, c.file, c.origin), "settings": self.settings, "tables_root": self.tables_root}

    def __setstate__(self, state):
        data, file, origin = state["conf"]
        self.conf = Config(data, file, origin)
        self.settings, self.tables_root, self._cache = state["settings"], state["tables_root"], {}
        self._batch_frames, self._silver, self._steps, self._writes, self._quarantined = [], {}, {}, [], []

    # --- per session -------------------------------------------------------------------

    def tables(self, spark: SparkSession):
        from custseg.storage import StorageSettings, Tables

        key = ("tables", id(spark))
        if key not in self._cache:
            settings = StorageSettings.from_config(self.conf)
            self._cache[key] = Tables(spark, StorageSettings(**{**settings.__dict__, "root": self.tables_root}))
        return self._cache[key]

    def salt(self):
        from custseg.pii import resolve_pii_key

        if "salt" not in self._cache:
            self._cache["salt"] = resolve_pii_key(self.conf)
        return self._cache["salt"]

    # --- the batch -----------------------------------------------------------------------

    def __call__(self, df: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        spark = df.sparkSession
        tables = self.tables(spark)
        work: dict[str, tuple] = {}
        if self.settings.source == FILES:
            # One row per file of the batch: at most maxFilesPerTrigger per source.
            rows = df.select("source", "path", "length", "modified_us", BATCH_CLOCK).collect()
            if not rows:
                return
            clock = clock_of(rows[0][BATCH_CLOCK])
            files: dict[str, list] = defaultdict(list)
            for r in rows:
                files[r["source"]].append((local_form(r["path"]) if r["path"].startswith("file:") else r["path"], r))
            for name, items in files.items():
                work[name] = ("files", sorted(items, key=lambda x: x[0]))
        else:
            head = df.select(BATCH_CLOCK).limit(1).collect()
            if not head:
                return
            clock = clock_of(head[0][BATCH_CLOCK])
            present = [r["source"] for r in df.select("source").distinct().collect()]  # a handful of names
            for name in present:
                work[name] = ("records", df.where(F.col("source") == name))
        batch = BatchInfo(self.query, int(batch_id), clock)
        reports = []
        self._batch_frames, self._silver, self._steps, self._writes, self._quarantined = [], {}, {}, [], []
        decided = None
        try:
            # Validate every source first (a drift failure stops the batch before any write), then
            # decide and commit the offers, then the bronze / quarantine / silver writes: an offer
            # is due within a minute, the bookkeeping is not. Each write has its own write id, so
            # a batch killed anywhere in between replays to the same tables.
            for name in sorted(work):
                t0 = time.monotonic()
                report = self.ingest_source(spark, tables, batch, name, *work[name])
                report.written["seconds"] = time.monotonic() - t0
                reports.append(report)
            offers = self.offers(spark, tables, batch)
            by_source = {r.source: r for r in reports}
            for name, write in self._writes:
                t0 = time.monotonic()
                write()
                by_source[name].written["seconds"] += time.monotonic() - t0
            t0 = time.monotonic()
            self.write_quarantine(tables, batch)
            # the shared append's time, split between the sources that quarantined
            share = (time.monotonic() - t0) / max(1, sum(1 for r in reports if r.quarantined))
            for r in reports:
                r.written["seconds"] = round(r.written["seconds"] + (share if r.quarantined else 0.0), 2)
            decided = self.pulse(tables, batch, offers)
        finally:
            for frame in self._batch_frames:
                frame.unpersist()
            self._batch_frames, self._silver, self._writes, self._quarantined = [], {}, [], []
        seconds = time.monotonic() - started
        self.record(spark, tables, batch, reports, seconds)
        log.info(
            "stream %s batch %d (%s): %s; %.1fs",
            self.query,
            batch.batch_id,
            clock.isoformat(sep=" ", timespec="seconds"),
            "; ".join(
                f"{r.source} files={r.files if r.files is not None else '-'} read={r.read} accepted={r.accepted} "
                f"quarantined={r.quarantined}"
                + (f" unknown_fields={r.unknown}" if r.unknown else "")
                + (f" lag={r.lag_s:.1f}s" if r.lag_s is not None else "")
                for r in reports
            )
            + (f"; offers {decided}" if decided else "")
            + "".join(f"; {k} {v:.1f}s" for k, v in self._steps.items()),
            seconds,
        )
        from custseg.realtime.export import export_due

        export_due(spark, tables, self.conf, batch.clock, self._cache)  # closed hours -> files; never raises

    def raw_records(
        self, spark: SparkSession, name: str, kind: str, payload
    ) -> tuple[DataFrame, int | None, float | None]:
        """(raw records as ``read_raw`` gives them, number of files, seconds since the oldest file landed)."""
        spec = SOURCES[name]
        if kind == "files":
            final_newline = bool(
                self.conf.get_path(
                    f"sources.{name}.csv_require_final_newline",
                    self.conf.get_path("ingest.csv_require_final_newline", True),
                )
            )
            checks = check_files(spark, spec, [(p, int(r["length"])) for p, r in payload], final_newline)
            oldest = min(r["modified_us"] for _, r in payload)
            lag = max(0.0, time.time() - oldest / 1e6)
            return read_raw(spark, spec, checks), len(payload), lag
        text = payload.select(F.make_valid_utf8("raw_record").alias("value"), "_source_file")
        return jsonl_records(text, spec), None, None

    def policy(self, name: str) -> str:
        from custseg.stages.ingest import unknown_fields_policy

        return self.settings.on_unknown_fields or unknown_fields_policy(self.conf, name)

    def ingest_source(
        self, spark: SparkSession, tables, batch: BatchInfo, name: str, kind: str, payload
    ) -> SourceReport:
        spec = SOURCES[name]
        raw, n_files, lag = self.raw_records(spark, name, kind, payload)
        policy = self.policy(name)
        tolerance = int(self.conf.get_path("ingest.future_tolerance_hours"))
        checked = raw.transform(
            with_reasons(
                spec,
                batch.day.isoformat(),
                tolerance,
                "accept" if policy == "fail" else policy,
                Bounds.from_config(self.conf),
            )
        )
        # Pinned, not cached: it reads bronze.<source>_rt (earlier duplicates), which this batch
        # appends to, and Spark recomputes a cached plan after each write to a table it reads
        # (the validated records and the offers were computed again after every append).
        validated = pin(self.earlier_duplicates(tables, batch, name, checked))
        stats = validated.agg(
            F.count("*").alias("read"),
            F.count_if(F.size("reasons") == 0).alias("ok"),
            F.count_if(F.size(UNKNOWN) > 0).alias("unknown"),
        ).first()
        report = SourceReport(name, n_files, int(stats["read"]), int(stats["ok"] or 0), lag_s=lag)
        report.quarantined, report.unknown = report.read - report.accepted, int(stats["unknown"] or 0)
        if report.unknown:
            fields = validated.where(F.size(UNKNOWN) > 0).select(F.explode(UNKNOWN).alias("f")).distinct().limit(20)
            names = ", ".join(sorted(r["f"] for r in fields.collect()))
            if policy == "fail":
                raise SchemaDriftError(
                    f"{name}: {report.unknown} records of micro-batch {batch.batch_id} carry fields the source does "
                    f"not declare ({names}); on_unknown_fields is fail: the query stops, nothing of the batch was "
                    "written, and it is replayed when the stream restarts"
                )
            log.warning(
                "%s: %d records carry undeclared fields (%s); on_unknown_fields=%s",
                name,
                report.unknown,
                names,
                policy,
            )
        accepted, quarantined = split_batch(validated, spec, batch.day.isoformat(), batch.tag, batch.clock)
        quarantined = quarantined.withColumn("source", F.lit(f"{name}_rt"))
        if report.accepted:
            table = bronze_table(name)
            self._queue(name, tables.append, accepted, table, partition_by=["_batch_date"], txn=batch.txn(table))
        if report.quarantined:
            self._quarantined.append(quarantined)  # every source's in one append (write_quarantine)
        if report.accepted:
            self._silver.update(self.write_silver(spark, tables, batch, name, accepted))
        return report

    def write_quarantine(self, tables, batch: BatchInfo) -> None:
        """The rejected records of every source of the micro-batch in one append to
        bronze.quarantine, with one write id (one commit where there were one per source)."""
        if not self._quarantined:
            return
        rows = functools.reduce(DataFrame.unionByName, self._quarantined)
        tables.append(rows, QUARANTINE, partition_by=["_batch_date", "source"], txn=batch.txn(QUARANTINE))

    def _queue(self, source: str, fn, *args, **kwargs) -> None:
        """A write of ``source`` for after the offers (``__call__`` runs them in this order)."""
        self._writes.append((source, functools.partial(fn, *args, **kwargs)))

    def earlier_duplicates(self, tables, batch: BatchInfo, name: str, checked: DataFrame) -> DataFrame:
        """Usable records whose id an earlier micro-batch (within the horizon) accepted become ``duplicate_id``."""
        spec, table = SOURCES[name], bronze_table(name)
        if not spec.key or not tables.exists(table):
            return checked
        since = batch.day - timedelta(days=self.settings.dedup_horizon_days)
        seen = (
            tables.read(table)
            .where((F.col("_batch_date") >= F.lit(since)) & (F.col("_batch_id") != F.lit(batch.tag)))
            .select(F.trim(spec.key).alias("_seen"))
            .distinct()
            .withColumn("_earlier", F.lit(True))
        )
        dup = (F.size("reasons") == 0) & F.coalesce(F.col("_earlier"), F.lit(False))
        return (
            checked.join(seen, F.trim(F.col(spec.key)) == F.col("_seen"), "left")
            .withColumn("reasons", F.when(dup, F.array(F.lit("duplicate_id"))).otherwise(F.col("reasons")))
            .drop("_seen", "_earlier")
        )

    # --- the batch tables a micro-batch reads (identity map, gold): cached between refreshes -----

    def reference(self, name: str, day: date, load):
        """``load()``'s result, kept (its DataFrames persisted) across micro-batches of one day until
        ``stream.reference_refresh_minutes`` have passed: the batch jobs change these tables once a
        day, and reading and joining them again in every micro-batch was most of its fixed cost.
        0 re-reads them in every micro-batch."""
        refresh_s = 60.0 * float(self.settings.reference_refresh_minutes)
        held = self._cache.get(("reference", name))
        now = time.monotonic()
        if held is not None and held[0] == day and now - held[1] < refresh_s:
            return held[2]
        value = load()
        if held is not None:
            _unpersist(held[2])
        if refresh_s > 0:
            value = _persist(value)
            self._cache[("reference", name)] = (day, now, value)
        return value

    def identity_map(self, spark: SparkSession, tables, day: date | None = None) -> DataFrame:
        from custseg.conform.identity import ID_MAP_COLUMNS

        if tables.exists("silver.identity_map"):
            if day is None:
                return tables.read("silver.identity_map").select(*ID_MAP_COLUMNS)
            return self.reference(
                "identity_map", day, lambda: tables.read("silver.identity_map").select(*ID_MAP_COLUMNS)
            )
        if not self._cache.get("warned_id_map"):
            self._cache["warned_id_map"] = True
            log.warning(
                "silver.identity_map does not exist yet (no batch conform ran): nobody is resolved to a customer"
            )
        schema = StructType([StructField(c, StringType(), True) for c in ID_MAP_COLUMNS])
        return spark.createDataFrame([], schema)

    def write_silver(
        self, spark: SparkSession, tables, batch: BatchInfo, name: str, accepted: DataFrame
    ) -> dict[str, DataFrame]:
        """Writes the source's silver tables; returns them by name (persisted until the batch ends)."""
        from custseg.conform.activity import conform_events, conform_responses
        from custseg.conform.orders import ITEM_COLUMNS, latest_orders, order_items, orders_from_items, resolve_customer
        from custseg.sources.base import MONEY

        salt, id_map = self.salt(), self.identity_map(spark, tables, batch.day)

        def put(df: DataFrame, table: str) -> DataFrame:
            # kept for the triggers of this micro-batch and its write (the PII hashing runs once)
            df = df.persist(StorageLevel.MEMORY_AND_DISK)
            self._batch_frames.append(df)
            self._queue(name, tables.append, df, table, partition_by=SILVER_PARTITIONS[table], txn=batch.txn(table))
            return df

        if name == "events":
            return {"events": put(accepted.transform(conform_events(salt, id_map)), "silver.events_rt")}
        if name == "campaign_responses":
            return {
                "responses": put(accepted.transform(conform_responses(salt, id_map)), "silver.campaign_responses_rt")
            }
        if name == "orders":
            cc = self.conf.pii.default_country_code
            orders = (
                accepted.withColumn("order_id", F.trim("order_id"))
                .transform(latest_orders)
                .transform(resolve_customer(id_map, salt, cc))
            )
            items = order_items(orders, str(self.conf.get_path("conform.zero_price_lines", "not_purchases")))
            if tables.exists("silver.products"):  # the catalogue is small: broadcast it
                catalogue = tables.read("silver.products").select("sku", "category", "subcategory", "list_price")
                items = items.join(F.broadcast(catalogue), on="sku", how="left")
            else:
                items = items.select(
                    "*",
                    *[
                        F.lit(None).cast(t).alias(c)
                        for c, t in (("category", "string"), ("subcategory", "string"), ("list_price", MONEY))
                    ],
                )
            items = items.select(*ITEM_COLUMNS)
            items = put(items, "silver.order_items_rt")
            return {"items": items, "orders": put(orders_from_items(orders, items), "silver.orders_rt")}
        return {}

    # --- triggers and decisions --------------------------------------------------------

    def triggers(self) -> list:
        from custseg.realtime.triggers import load_triggers

        if "triggers" not in self._cache:
            self._cache["triggers"] = load_triggers(self.conf)
        return self._cache["triggers"]

    def gold(self, tables, batch: BatchInfo):
        """The batch gold of the micro-batch's day, or None (logged once) when the batch jobs have not made it."""
        from custseg.realtime.decide import load_gold

        try:
            return self.reference("gold", batch.day, lambda: load_gold(tables, self.conf, batch.day))
        except RuntimeError as exc:
            if self._cache.get("warned_gold") != str(exc):
                self._cache["warned_gold"] = str(exc)
                log.warning("stream %s: no real-time decisions until the batch gold exists: %s", self.query, exc)
            return None

    def offers(self, spark: SparkSession, tables, batch: BatchInfo) -> DataFrame | None:
        """The stateless triggers on this micro-batch's silver rows -> decide -> gold.realtime_offers
        (committed, and sent to Kafka where configured). Returns the batch's offers (pinned), or None."""
        from custseg.realtime.detect import stateless_candidates

        stateless = [t for t in self.triggers() if not t.is_session]
        events, items = self._silver.get("events"), self._silver.get("items")
        if not stateless or (events is None and items is None):
            return None
        gold = self.batch_gold(tables, batch)
        if gold is None:
            return None
        t0 = time.monotonic()
        candidates = stateless_candidates(events, items, gold, stateless)
        offers = write_offers(spark, tables, self.conf, batch, candidates, gold, self.triggers())
        self._steps["offers"] = time.monotonic() - t0
        return offers

    def pulse(self, tables, batch: BatchInfo, offers: DataFrame | None) -> dict | None:
        """gold.campaign_pulse with this batch's responses and offers; returns the offers by decision."""
        counts = offer_counts(offers) if offers is not None else {}
        responses = self._silver.get("responses")
        stateless = any(not t.is_session for t in self.triggers())
        if not stateless or (responses is None and not counts):
            return counts or None
        gold = self.batch_gold(tables, batch)
        if gold is None:
            return counts or None
        t0 = time.monotonic()
        update_pulse(tables, self.conf, batch, responses, offers if counts else None, gold, self.triggers())
        self._steps["pulse"] = time.monotonic() - t0
        return counts or None

    def batch_gold(self, tables, batch: BatchInfo):
        """``gold()``, timed once per micro-batch in its log line."""
        t0 = time.monotonic()
        gold = self.gold(tables, batch)
        self._steps.setdefault("gold", time.monotonic() - t0)
        return gold

    def record(
        self, spark: SparkSession, tables, batch: BatchInfo, reports: list[SourceReport], seconds: float
    ) -> None:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        rows = [
            (
                batch.query,
                batch.batch_id,
                batch.clock,
                r.source,
                r.files,
                r.read,
                r.accepted,
                r.quarantined,
                r.unknown,
                float(r.written.get("seconds", seconds)),
                r.lag_s,
                now,
            )
            for r in reports
        ]
        tables.append(spark.createDataFrame(rows, PROGRESS_SCHEMA), PROGRESS, txn=batch.txn(PROGRESS))


def _persist(value):
    """A DataFrame, or a dataclass of DataFrames (decide.Gold), with its DataFrames persisted."""
    import dataclasses

    if isinstance(value, DataFrame):
        return value.persist(StorageLevel.MEMORY_AND_DISK)
    if dataclasses.is_dataclass(value):
        frames = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **{k: _persist(v) for k, v in frames.items() if isinstance(v, DataFrame)})
    return value


def _unpersist(value) -> None:
    import dataclasses

    if isinstance(value, DataFrame):
        value.unpersist()
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _unpersist(getattr(value, f.name))


# --- offers (both queries) -----------------------------------------------------------------

OFFERS = "gold.realtime_offers"
PULSE = "gold.campaign_pulse"
# Both queries of one application decide and append offers; their decide-and-write steps take
# turns, so each sees the other's offers of today (the shared daily cap) and the delta-rs engine
# (no concurrent commits) never races itself. Over Spark Connect each query's function runs in
# its own process: Delta's blind appends still commit both, the cap is then per query.
_OFFERS_LOCK = threading.Lock()


def earlier_offers(tables, batch: BatchInfo, horizon_days: int = 2) -> DataFrame | None:
    """gold.realtime_offers as it was before this micro-batch (its own rows, if a replay finds them, left out)."""
    if not tables.exists(OFFERS):
        return None
    since = batch.day - timedelta(days=max(horizon_days, 1))
    mine = (F.col("query") == F.lit(batch.query)) & (F.col("batch_id") == F.lit(batch.batch_id))
    return tables.read(OFFERS).where((F.col("decision_date") >= F.lit(since)) & ~mine)


def write_offers(spark: SparkSession, tables, conf: Config, batch: BatchInfo, candidates: DataFrame, gold, triggers):
    """CANDIDATE rows -> OFFER rows appended to gold.realtime_offers exactly once; the offered ones
    to Kafka when brokers are configured. Returns the batch's offers (pinned)."""
    from custseg.realtime.decide import decide

    with _OFFERS_LOCK:
        earlier = earlier_offers(tables, batch)
        offers = decide(candidates, gold, earlier, triggers, conf, batch.clock, batch.query, batch.batch_id)
        offers = pin(offers)  # reads gold.realtime_offers (earlier offers), appended to below
        if not offers.isEmpty():
            tables.append(offers, OFFERS, partition_by=["decision_date"], txn=batch.txn(OFFERS))
            activate(offers, conf)
    return offers


def activate(offers: DataFrame, conf: Config) -> None:
    """Offered rows to the Kafka activation topic when brokers are configured (at least once:
    a replayed micro-batch may send an offer again with the same offer_id, the consumer's key)."""
    import os

    from custseg.realtime import kafka

    if not (os.environ.get(kafka.BOOTSTRAP_ENV, "").strip() or conf.get_path("stream.kafka.bootstrap_servers", "")):
        return  # no brokers configured: gold.realtime_offers is the activation record
    kafka.write_offers_kafka(offers, conf)


def offer_counts(offers: DataFrame) -> dict[str, int]:
    """decision -> rows of the batch's offers (six decisions at most reach the driver)."""
    return {r["decision"]: int(r["n"]) for r in offers.groupBy("decision").agg(F.count("*").alias("n")).collect()}


def update_pulse(tables, conf: Config, batch: BatchInfo, responses, offers, gold, triggers) -> None:
    """gold.campaign_pulse: the previous state plus this micro-batch (replaced in one commit, exactly once)."""
    from custseg.realtime.pulse import pulse

    previous = tables.read(PULSE) if tables.exists(PULSE) else None
    segments = gold.customers.select("customer_key", F.col("segment_name").alias("segment"))
    state = pulse(
        responses, offers, previous, conf, segments, updated_at=batch.clock, trigger_ids=[t.id for t in triggers]
    )
    state = state.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        state.count()  # materialised before the table it was computed from is replaced
        tables.overwrite(state, PULSE, txn=batch.txn(PULSE))
    finally:
        state.unpersist()


# --- the sessions query ----------------------------------------------------------------------

SESSIONS = "sessions"


class SessionBatch(IngestBatch):
    """The ``foreachBatch`` function of the ``sessions`` query: closed sessions -> abandonment offers.

    Sessions arrive with the raw customer and device ids they were grouped by; here, on the few
    closed sessions of the batch, they are resolved to keys through ``silver.identity_map``
    (customer_id first, then the device's owner, as ``conform_events``), and the session key is
    re-made from the hashed ids, so nothing raw reaches gold.
    """

    query = SESSIONS

    def resolve(self, spark: SparkSession, tables, closed: DataFrame, day: date | None = None) -> DataFrame:
        from custseg.conform.identity import CUSTOMER_ID, DEVICE, customer_id_key, device_key, with_customer_key

        salt = self.salt()
        device = F.when(F.col("session_key").startswith("d:"), F.col("device_raw"))
        keyed = (
            closed.withColumn("customer_raw", F.col("customer_key"))
            .withColumn("device_raw", F.substring(F.col("session_key"), 3, 1 << 20))
            .withColumn("_customer_id_key", customer_id_key("customer_raw", salt))
            .withColumn("_device_key", device_key(device, salt))
            .transform(
                with_customer_key(
                    self.identity_map(spark, tables, day),
                    (CUSTOMER_ID, F.col("_customer_id_key")),
                    (DEVICE, F.col("_device_key")),
                )
            )
        )
        session_key = F.coalesce(
            F.concat(F.lit("d:"), F.col("_device_key")),
            F.concat(F.lit("c:"), F.col("_customer_id_key")),
            F.when(F.col("session_key").startswith("s:"), F.col("session_key")),
        )
        return keyed.withColumn("session_key", session_key).drop(
            "customer_raw", "device_raw", "_customer_id_key", "_device_key", BATCH_CLOCK
        )

    def __call__(self, df: DataFrame, batch_id: int) -> None:
        from custseg.realtime.detect import session_candidates

        started = time.monotonic()
        spark = df.sparkSession
        tables = self.tables(spark)
        head = df.select(BATCH_CLOCK).limit(1).collect()
        if not head:
            return
        batch = BatchInfo(self.query, int(batch_id), clock_of(head[0][BATCH_CLOCK]))
        closed = self.resolve(spark, tables, df, batch.day).persist(StorageLevel.MEMORY_AND_DISK)
        counts = None
        try:
            n_closed = closed.count()
            triggers = [t for t in self.triggers() if t.is_session]
            gold = self.gold(tables, batch) if triggers else None
            n_candidates = 0
            if gold is not None:
                orders = None
                if tables.exists("silver.orders_rt"):
                    since = batch.day - timedelta(days=1)
                    orders = tables.read("silver.orders_rt").where(F.col("order_date") >= F.lit(since))
                # pinned: silver.orders_rt is appended to by the ingest query meanwhile
                candidates = pin(session_candidates(closed, triggers, orders))
                n_candidates = candidates.count()
                if n_candidates:
                    offers = write_offers(spark, tables, self.conf, batch, candidates, gold, self.triggers())
                    counts = offer_counts(offers)
        finally:
            closed.unpersist()
        seconds = time.monotonic() - started
        report = SourceReport(SESSIONS, None, n_closed, n_candidates, 0)
        report.written["seconds"] = round(seconds, 2)
        self.record(spark, tables, batch, [report], seconds)
        log.info(
            "stream %s batch %d: %d sessions closed, %d candidates%s; %.1fs",
            self.query,
            batch.batch_id,
            n_closed,
            n_candidates,
            f", offers {counts}" if counts else "",
            seconds,
        )
