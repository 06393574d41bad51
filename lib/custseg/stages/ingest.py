"""Stage ``ingest``: landing/<source>/<date>/ -> bronze.<source> (+ bronze.quarantine)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from pyspark import StorageLevel
from pyspark.sql import functions as F

from custseg.config import Config
from custseg.file_checks import check_files
from custseg.ingest import BatchCounts, batch_id_for, read_raw, split_batch, with_reasons
from custseg.landing import batch_path, list_files
from custseg.sources import SOURCES, SourceSpec
from custseg.sources.flat import TABLE as FLAT_TABLE
from custseg.sources.flat import FlatSettings, flat_spec
from custseg.stages.context import StageContext

log = logging.getLogger(__name__)

QUARANTINE = "bronze.quarantine"
RECONCILIATION = "meta.reconciliation"


class RejectRateExceeded(RuntimeError):
    pass


class MissingSourceError(RuntimeError):
    pass


def sources(conf: Config) -> dict[str, tuple[SourceSpec, str]]:
    """Source name -> (spec, bronze table): the built-in sources, plus flat_transactions when enabled."""
    out = {name: (spec, f"bronze.{name}") for name, spec in SOURCES.items()}
    flat = FlatSettings.from_config(conf)
    if flat.enabled:
        out[flat.source_name] = (flat_spec(flat), FLAT_TABLE)
    return out


def ingest_source(ctx: StageContext, name: str) -> BatchCounts | None:
    """One source's batch of ``ctx.run_date`` into bronze and quarantine; None when it has no files."""
    spec, table = sources(ctx.conf)[name]
    path = batch_path(ctx.landing, name, ctx.run_date)
    files = list_files(ctx.spark, path)
    if not files:
        return None
    checks = check_files(ctx.spark, spec, files)
    batch_id = batch_id_for(name, ctx.run_date, [(f.rsplit("/", 1)[-1], s) for f, s in files])
    ingested_at = datetime.now(timezone.utc).replace(tzinfo=None)
    validated = (
        read_raw(ctx.spark, spec, checks)
        .transform(with_reasons(spec, ctx.run_date, ctx.conf.ingest.future_tolerance_hours))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        accepted, quarantined = split_batch(validated, spec, ctx.run_date, batch_id, ingested_at)
        where = {"_batch_date": ctx.run_date}
        ctx.tables.overwrite(accepted, table, partition_by=["_batch_date"], where=where)
        ctx.tables.overwrite(
            quarantined, QUARANTINE, partition_by=["_batch_date", "source"], where={**where, "source": name}
        )
        counts = validated.agg(
            F.count("*").alias("read"), F.sum(F.when(F.size("reasons") == 0, 1).otherwise(0)).alias("ok")
        ).first()
    finally:
        validated.unpersist()
    read, ok = int(counts["read"]), int(counts["ok"] or 0)
    rejected = [c for c in checks if not c.ok]
    if rejected:
        ctx.recorder.details.setdefault("files_quarantined", {})[name] = {c.path: c.reason for c in rejected}
    return BatchCounts(name, ctx.run_date, batch_id, read, ok, read - ok)


def run(ctx: StageContext) -> None:
    required = set(ctx.conf.ingest.required_sources)
    results: list[BatchCounts] = []
    for name in sources(ctx.conf):
        with ctx.recorder.stage(f"ingest {name}"):
            counts = ingest_source(ctx, name)
        if counts is None:
            msg = f"no files for source {name} at {batch_path(ctx.landing, name, ctx.run_date)}"
            if name in required:
                raise MissingSourceError(msg + " (the source is required: ingest.required_sources)")
            log.warning(msg)
            continue
        log.info(
            "%s %s: read=%d accepted=%d quarantined=%d (%.2f%%)",
            name,
            ctx.run_date,
            counts.read,
            counts.accepted,
            counts.quarantined,
            100 * counts.reject_rate,
        )
        results.append(counts)
    _record(ctx, results)
    limit = ctx.conf.ingest.max_reject_rate
    over = [c for c in results if c.reject_rate > limit]
    if over:
        worst = ", ".join(f"{c.source} {c.reject_rate:.1%}" for c in over)
        raise RejectRateExceeded(f"reject rate above ingest.max_reject_rate={limit:.1%}: {worst}; see {QUARANTINE}")


def _record(ctx: StageContext, results: list[BatchCounts]) -> None:
    from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType

    rec = ctx.recorder
    rec.rows_in += sum(c.read for c in results)
    rec.rows_out += sum(c.accepted for c in results)
    rec.quarantined += sum(c.quarantined for c in results)
    rec.details["sources"] = {
        c.source: {"read": c.read, "accepted": c.accepted, "quarantined": c.quarantined} for c in results
    }
    if not results:
        return
    schema = StructType(
        [
            StructField("source", StringType(), False),
            StructField("batch_date", DateType(), False),
            StructField("batch_id", StringType(), False),
            StructField("records_read", LongType(), False),
            StructField("records_accepted", LongType(), False),
            StructField("records_quarantined", LongType(), False),
        ]
    )
    rows = [(c.source, ctx.as_of, c.batch_id, c.read, c.accepted, c.quarantined) for c in results]
    ctx.tables.overwrite(
        ctx.spark.createDataFrame(rows, schema),
        RECONCILIATION,
        partition_by=["batch_date"],
        where={"batch_date": ctx.run_date},
    )
