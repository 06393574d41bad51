"""Stage ``ingest``: landing/<source>/<date>/ -> bronze.<source> (+ bronze.quarantine).

Gates decide before anything of a source's batch is written: a batch whose records do not
add up to the non-blank lines of its files, whose reject rate is above
``ingest.max_reject_rate``, or that carries undeclared fields under
``on_unknown_fields: fail`` writes nothing (bronze, quarantine, reconciliation); the other
sources carry on and the job fails at the end naming each gated source. After the commit,
the rows in the committed bronze and quarantine partitions are counted again and must equal
the accepted and quarantined counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote, urlparse

from pyspark import StorageLevel
from pyspark.sql import Column
from pyspark.sql import functions as F

from custseg.config import Config
from custseg.file_checks import SINGLE_ROW_REASONS, FileCheck, check_files, file_checksums, local_form
from custseg.ingest import UNKNOWN, BatchCounts, Bounds, batch_id_for, read_raw, split_batch, with_reasons
from custseg.landing import SUCCESS_MARKER, batch_path, has_success_marker, list_files
from custseg.sources import SOURCES, SourceSpec
from custseg.sources.base import WHITESPACE
from custseg.sources.consent_file import TABLE as CONSENT_TABLE
from custseg.sources.consent_file import ConsentFileSettings, consent_spec, from_file
from custseg.sources.flat import TABLE as FLAT_TABLE
from custseg.sources.flat import FlatSettings, flat_spec
from custseg.stages.context import StageContext

log = logging.getLogger(__name__)

QUARANTINE = "bronze.quarantine"
RECONCILIATION = "meta.reconciliation"
LANDED = "meta.landed_files"  # every file ingested: source, batch date, path, size, SHA-256
CHECKSUM_MAX_BYTES = 2**31 - 1 - 1024  # Spark's binaryFile reads a file into one binary value


class RejectRateExceeded(RuntimeError):
    pass


class MissingSourceError(RuntimeError):
    pass


class ReconciliationError(RuntimeError):
    """Counts that must agree do not: records lost or made up between the files and the tables."""


class BatchGated(RuntimeError):
    """One or more sources' batches were stopped by a gate before anything was written."""


@dataclass(frozen=True)
class SourceOutcome:
    counts: BatchCounts
    lines: int  # non-blank lines in the batch's files (CSV headers excluded), counted apart from the parsers
    unknown_field_records: int  # records carrying fields the source does not declare
    gate: str | None = None  # why nothing of the batch was written; None = committed
    committed: tuple[int, int] | None = None  # rows in the committed bronze / quarantine partitions

    def reconciliation(self) -> dict:
        c = self.counts
        out = {"lines": self.lines, "read": c.read, "accepted": c.accepted, "quarantined": c.quarantined}
        if self.committed is not None:
            out["committed_accepted"], out["committed_quarantined"] = self.committed
        if self.gate:
            out["gate"] = self.gate
        return out


def sources(conf: Config) -> dict[str, tuple[SourceSpec, str]]:
    """Source name -> (spec, bronze table): the built-in sources, plus flat_transactions when enabled
    and the consent export under ``marketing.consent.policy: from_file``."""
    out = {name: (spec, f"bronze.{name}") for name, spec in SOURCES.items()}
    flat = FlatSettings.from_config(conf)
    if flat.enabled:
        out[flat.source_name] = (flat_spec(flat), FLAT_TABLE)
    if from_file(conf):
        consent = ConsentFileSettings.from_config(conf)
        out[consent.source_name] = (consent_spec(consent), CONSENT_TABLE)
    return out


def _source_setting(conf: Config, source: str, key: str, default):
    """``sources.<source>.<key>``, else ``ingest.<key>``, else ``default``."""
    return conf.get_path(f"sources.{source}.{key}", conf.get_path(f"ingest.{key}", default))


def unknown_fields_policy(conf: Config, source: str) -> str:
    return _source_setting(conf, source, "on_unknown_fields", "quarantine")


def count_lines(spark, spec: SourceSpec, checks: list[FileCheck]) -> int:
    """Records the batch's files should give, from their lines alone (not from the CSV / JSON readers).

    A non-blank line is a record (blank as the file's reader decides: ``_blank_line``), less
    each CSV file's header; a file quarantined as a whole without readable lines is one record.
    """
    single = sum(1 for c in checks if c.reason in SINGLE_ROW_REASONS)
    readable = [c for c in checks if c.reason not in SINGLE_ROW_REASONS]
    if not readable:
        return single
    usable = {_path_key(c.path) for c in readable if c.ok}
    blank_to_reader, only_spaces = _blank_line(spec)
    lines = (
        spark.read.text([c.path for c in readable])
        .groupBy(F.col("_metadata.file_path").alias("file"))
        .agg(F.count_if(~blank_to_reader).alias("usable"), F.count_if(~only_spaces).alias("rejected"))
    )
    # one row per file: bounded; a usable file's lines are counted as its reader skips blanks
    total = sum(int(r["usable" if _path_key(r["file"]) in usable else "rejected"]) for r in lines.collect())
    if spec.fmt == "csv":
        total -= sum(1 for c in readable if c.ok)  # each usable CSV file's first line is its header
        total -= _header_repeats(spark, readable)
    return total + single


def _blank_line(spec: SourceSpec) -> tuple[Column, Column]:
    """(blank to the reader of a usable file, blank to the readers of the rest) of a line.

    Spark's CSV reader skips lines that trim (Java's ``String.trim``: every character up to
    U+0020) to nothing, so a line of tabs is no record to it; the whitespace reader strips
    ``\\s``; the JSON Lines reader and the lines of files quarantined as a whole drop only lines
    of spaces (a line of tabs there is a record, quarantined)."""
    value = F.make_valid_utf8("value")
    spaces = F.trim(value) == ""
    if spec.fmt != "csv":
        return spaces, spaces
    if spec.delimiter == WHITESPACE:
        return F.regexp_replace(F.regexp_replace(value, "^\ufeff", ""), r"^\s+|\s+$", "") == "", spaces
    return F.regexp_like(value, F.lit(r"^[\x00-\x20]*$")), spaces


def _path_key(path: str) -> str:
    """One spelling of a file's path: Spark's ``_metadata.file_path`` is a percent-encoded URI
    (``file:///a%20b``), a local listing a plain path (``/a b``)."""
    return unquote(local_form(path)) if urlparse(path).scheme else path


def _header_repeats(spark, checks: list[FileCheck]) -> int:
    """Lines equal to the header in CSV files quarantined as a whole (they are not records there)."""
    n = 0
    for c in checks:
        if c.ok or not c.header_line:
            continue
        text = spark.read.text(c.path).select(F.regexp_replace(F.make_valid_utf8("value"), "^\ufeff", "").alias("v"))
        n += text.where(F.col("v") == F.lit(c.header_line)).count()
    return n


def ingest_source(ctx: StageContext, name: str) -> SourceOutcome | None:
    """One source's batch of ``ctx.run_date``: gated, then into bronze and quarantine; None when it has no files."""
    spec, table = sources(ctx.conf)[name]
    path = batch_path(ctx.landing, name, ctx.run_date)
    files = list_files(ctx.spark, path)
    if not files:
        return None
    if _source_setting(ctx.conf, name, "require_success_marker", False) and not has_success_marker(ctx.spark, path):
        gate = f"incomplete delivery: no {SUCCESS_MARKER} in {path} (require_success_marker)"
        return SourceOutcome(BatchCounts(name, ctx.run_date, "", 0, 0, 0), 0, 0, gate=gate)
    final_newline = bool(_source_setting(ctx.conf, name, "csv_require_final_newline", True))
    checks, landed = _without_redeliveries(ctx, name, check_files(ctx.spark, spec, files, final_newline))
    batch_id = batch_id_for(name, ctx.run_date, [(f.rsplit("/", 1)[-1], s) for f, s in files])
    ingested_at = datetime.now(timezone.utc).replace(tzinfo=None)
    policy = unknown_fields_policy(ctx.conf, name)
    validated = (
        read_raw(ctx.spark, spec, checks)
        .transform(
            with_reasons(
                spec, ctx.run_date, ctx.conf.ingest.future_tolerance_hours, policy, Bounds.from_config(ctx.conf)
            )
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    rejected = [c for c in checks if not c.ok]
    if rejected:
        ctx.recorder.details.setdefault("files_quarantined", {})[name] = {c.path: c.reason for c in rejected}
    try:
        stats = validated.agg(
            F.count("*").alias("read"),
            F.count_if(F.size("reasons") == 0).alias("ok"),
            F.count_if(F.size(UNKNOWN) > 0).alias("unknown"),
        ).first()
        read, ok, unknown = int(stats["read"]), int(stats["ok"] or 0), int(stats["unknown"] or 0)
        counts = BatchCounts(name, ctx.run_date, batch_id, read, ok, read - ok)
        lines = count_lines(ctx.spark, spec, checks)
        gate = _gate(ctx, name, counts, lines, unknown, policy)
        if gate:
            _log_top_reasons(ctx, name, validated)
            return SourceOutcome(counts, lines, unknown, gate=gate)
        if unknown:
            fields = validated.where(F.size(UNKNOWN) > 0).select(F.explode(UNKNOWN).alias("f")).distinct().limit(20)
            log.warning(
                "%s: %d records carry undeclared fields (%s); on_unknown_fields=%s",
                name,
                unknown,
                ", ".join(sorted(r["f"] for r in fields.collect())),
                policy,
            )
        accepted, quarantined = split_batch(validated, spec, ctx.run_date, batch_id, ingested_at)
        where = {"_batch_date": ctx.run_date}
        ctx.tables.overwrite(accepted, table, partition_by=["_batch_date"], where=where)
        ctx.tables.overwrite(
            quarantined, QUARANTINE, partition_by=["_batch_date", "source"], where={**where, "source": name}
        )
        _record_landed(ctx, name, landed)
    finally:
        validated.unpersist()
    return SourceOutcome(counts, lines, unknown, committed=_committed(ctx, table, name))


def _without_redeliveries(ctx: StageContext, name: str, checks: list[FileCheck]) -> tuple[list[FileCheck], list]:
    """Files whose content (SHA-256) was delivered before, in this batch or an earlier one, become
    ``duplicate_file``; returns the checks and the (path, size, sha256) of the files to record."""
    too_big = [c.path for c in checks if c.ok and c.size > CHECKSUM_MAX_BYTES]
    if too_big:
        log.warning("%s: no duplicate check for files over 2 GiB (Spark's binaryFile limit): %s", name, too_big)
    sums = file_checksums(ctx.spark, [c.path for c in checks if c.ok and c.size <= CHECKSUM_MAX_BYTES])
    seen: dict[str, str] = {}
    if sums and ctx.tables.exists(LANDED):
        earlier = (
            ctx.tables.read(LANDED)
            .where((F.col("source") == name) & (F.col("batch_date") != F.lit(ctx.as_of)))
            .where(F.col("sha256").isin(sorted(set(sums.values()))))
            .select("sha256", "batch_date", "file")
            .collect()  # at most one row per file of this batch (checksums are unique in the table)
        )
        seen = {r["sha256"]: f"{r['file']} ({r['batch_date']})" for r in earlier}
    out, landed = [], []
    for c in checks:
        digest = sums.get(c.path)
        if not c.ok or digest is None:
            out.append(c)
            continue
        if digest in seen:
            log.warning("%s: %s has the same content as %s: quarantined as duplicate_file", name, c.path, seen[digest])
            out.append(FileCheck(c.path, c.size, "duplicate_file", c.header, c.header_line))
            continue
        seen[digest] = c.path
        landed.append((c.path, c.size, digest))
        out.append(c)
    return out, landed


def _record_landed(ctx: StageContext, name: str, landed: list) -> None:
    from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType

    schema = StructType(
        [
            StructField("source", StringType(), False),
            StructField("batch_date", DateType(), False),
            StructField("file", StringType(), False),
            StructField("size", LongType(), False),
            StructField("sha256", StringType(), False),
        ]
    )
    rows = [(name, ctx.as_of, path, int(size), digest) for path, size, digest in landed]
    ctx.tables.overwrite(
        ctx.spark.createDataFrame(rows, schema),
        LANDED,
        partition_by=["batch_date", "source"],
        where={"batch_date": ctx.run_date, "source": name},
    )


def _gate(ctx: StageContext, name: str, counts: BatchCounts, lines: int, unknown: int, policy: str) -> str | None:
    """Why the batch must not be written, or None."""
    limit = ctx.conf.ingest.max_reject_rate
    if lines != counts.read:
        return f"reconciliation: the files hold {lines} records (non-blank lines) but {counts.read} were read"
    if unknown and policy == "fail":
        return f"schema drift: {unknown} records carry fields the source does not declare (on_unknown_fields: fail)"
    if counts.reject_rate > limit:
        return f"reject rate {counts.reject_rate:.1%} above ingest.max_reject_rate={limit:.1%}"
    return None


def _log_top_reasons(ctx: StageContext, name: str, validated) -> None:
    top = (
        validated.where(F.size("reasons") > 0)
        .groupBy(F.col("reasons")[0].alias("reason"))
        .count()
        .orderBy(F.col("count").desc())
        .limit(10)  # reason codes: bounded
    )
    reasons = {r["reason"]: int(r["count"]) for r in top.collect()}
    ctx.recorder.details.setdefault("gated_reasons", {})[name] = reasons
    log.error("%s %s: batch gated, nothing written; top reasons %s", name, ctx.run_date, reasons)


def _committed(ctx: StageContext, table: str, name: str) -> tuple[int, int]:
    """Rows now in the batch's bronze and quarantine partitions, read back from the committed tables."""
    t, day = ctx.tables, F.col("_batch_date") == F.lit(ctx.as_of)
    bronze = t.read(table).where(day).count() if t.exists(table) else 0
    quarantine = t.read(QUARANTINE).where(day & (F.col("source") == name)).count() if t.exists(QUARANTINE) else 0
    return bronze, quarantine


def run(ctx: StageContext) -> None:
    required = set(ctx.conf.ingest.required_sources)
    outcomes: list[SourceOutcome] = []
    for name in sources(ctx.conf):
        with ctx.recorder.stage(f"ingest {name}"):
            outcome = ingest_source(ctx, name)
        if outcome is None:
            msg = f"no files for source {name} at {batch_path(ctx.landing, name, ctx.run_date)}"
            if name in required:
                raise MissingSourceError(msg + " (the source is required: ingest.required_sources)")
            log.warning(msg)
            continue
        counts = outcome.counts
        log.info(
            "%s %s: lines=%d read=%d accepted=%d quarantined=%d (%.2f%%)%s",
            name,
            ctx.run_date,
            outcome.lines,
            counts.read,
            counts.accepted,
            counts.quarantined,
            100 * counts.reject_rate,
            f"; GATED, nothing written: {outcome.gate}" if outcome.gate else "",
        )
        outcomes.append(outcome)
    ctx.recorder.details["reconciliation"] = {o.counts.source: o.reconciliation() for o in outcomes}
    committed = [o for o in outcomes if o.gate is None]
    _record(ctx, [o.counts for o in committed])
    broken = [
        f"{o.counts.source}: committed {o.committed[0]} bronze / {o.committed[1]} quarantine rows, "
        f"expected {o.counts.accepted} / {o.counts.quarantined}"
        for o in committed
        if o.committed != (o.counts.accepted, o.counts.quarantined)
    ]
    if broken:
        raise ReconciliationError("rows committed differ from rows read: " + "; ".join(broken))
    gated = [o for o in outcomes if o.gate]
    if gated:
        detail = "; ".join(f"{o.counts.source}: {o.gate}" for o in gated)
        if all(o.gate.startswith("reject rate") for o in gated):
            raise RejectRateExceeded(f"{detail}; nothing of these batches was written; see the job's log")
        raise BatchGated(f"{detail}; nothing of these batches was written")


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
