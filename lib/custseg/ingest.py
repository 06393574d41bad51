"""Landing files -> bronze, with every unusable record sent to quarantine with its reasons.

Reading keeps the raw text of each record: JSON Lines are read as text and parsed with
``from_json`` (a malformed line becomes a quarantine row, not a silently dropped one);
CSV is read with an explicit schema in PERMISSIVE mode with a corrupt-record column.
Files that fail a whole-file check (custseg.file_checks) are quarantined line by line
with the file's reason. Each batch reconciles: records read = accepted + quarantined.
Fields a record carries that its source does not declare (JSON keys, CSV columns: an
upstream rename or addition) are listed in ``_unknown_fields``; the source's conf says
whether they quarantine the record, fail the batch, or are kept in raw_record only.
docs/ingest.md lists every reason code.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import reduce
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.sql.window import Window

from custseg.file_checks import SINGLE_ROW_REASONS, FileCheck
from custseg.sources.base import WHITESPACE, SourceSpec, parse_ts

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
UNKNOWN = "_unknown_fields"
DRIFT_POLICIES = ("quarantine", "fail", "accept")
QUARANTINE_COLUMNS = [
    "source",
    "reasons",
    "reason",
    "raw_record",
    "_source_file",
    "_batch_id",
    "_ingested_at",
    "_batch_date",
]


@dataclass(frozen=True)
class BatchCounts:
    source: str
    batch_date: str
    batch_id: str
    read: int
    accepted: int
    quarantined: int

    @property
    def reject_rate(self) -> float:
        return self.quarantined / self.read if self.read else 0.0

    @property
    def reconciles(self) -> bool:
        return self.read == self.accepted + self.quarantined


def batch_id_for(source: str, batch_date: str, files: list[tuple[str, int]]) -> str:
    """Deterministic id from the batch's files, so a rerun of the same landing gives the same id."""
    h = hashlib.sha256(f"{source}|{batch_date}".encode())
    for path, size in sorted(files):
        h.update(f"|{path}:{size}".encode())
    return h.hexdigest()[:16]


def read_raw(spark: SparkSession, spec: SourceSpec, checks: list[FileCheck]) -> DataFrame:
    """Raw records of one batch: the spec's columns, ``_parse_error``, ``raw_record``, ``_source_file``.

    Usable files are read as records; each line of a file that failed a whole-file check
    (custseg.file_checks) becomes a record with the file's reason as ``_parse_error``, and a
    file without lines (empty, unreadable) becomes one such record, so that records read =
    accepted + quarantined holds for every batch.
    """
    good = [c for c in checks if c.ok]
    parts: list[DataFrame] = []
    if good and spec.fmt == "jsonl":
        parts.append(_read_jsonl(spark, spec, [c.path for c in good]))
    elif good and spec.fmt == "csv":
        by_header: dict[tuple[str, ...], list[str]] = {}
        for c in good:
            by_header.setdefault(c.header, []).append(c.path)
        parts.extend(_read_csv(spark, spec, paths, header) for header, paths in sorted(by_header.items()))
    elif good:
        raise ValueError(f"source {spec.name}: unsupported format {spec.fmt!r}")
    for c in checks:
        if not c.ok:
            parts.append(_read_rejected_file(spark, spec, c))
    return reduce(DataFrame.unionByName, parts)


def _read_jsonl(spark: SparkSession, spec: SourceSpec, paths: list[str]) -> DataFrame:
    # The text source keeps bytes as they are: invalid UTF-8 is made valid (U+FFFD) here,
    # which flags the record (with_reasons) and keeps the Parquet files valid.
    text = spark.read.text(paths).select(
        F.make_valid_utf8("value").alias("value"), F.col("_metadata.file_path").alias("_source_file")
    )
    return jsonl_records(text, spec)


def jsonl_records(text: DataFrame, spec: SourceSpec) -> DataFrame:
    """JSON Lines text (``value``, ``_source_file``) -> raw records of ``spec`` (as ``read_raw``).

    Also the parser of records that come one by one (a Kafka message's value, in ``custseg stream``).
    """
    text = text.where(F.trim("value") != "")
    parsed = F.from_json(F.col("value"), spec.schema, {"mode": "PERMISSIVE"})
    # from_json is lenient with truncated objects in PERMISSIVE mode; a value that
    # is not a complete JSON object is malformed whatever from_json made of it.
    malformed = F.try_parse_json(F.col("value")).isNull() | ~F.trim("value").startswith("{")
    declared = F.array(*[F.lit(c) for c in spec.columns])
    keys = F.when(~malformed, F.json_object_keys("value"))
    return text.select(
        *[parsed[c].alias(c) for c in spec.columns],
        F.when(malformed, F.lit("malformed_json")).alias("_parse_error"),
        F.col("value").alias("raw_record"),
        "_source_file",
        _as_names(F.array_except(F.coalesce(keys, F.array().cast("array<string>")), declared)).alias(UNKNOWN),
    )


def _read_whitespace(spark: SparkSession, spec: SourceSpec, paths: list[str], header: tuple[str, ...]) -> DataFrame:
    """Whitespace-separated text (columns aligned with runs of blanks, e.g. CDNOW_master.txt):
    each line trimmed and split on runs of white space; the header line is dropped; a line
    with another number of fields than the header is ``malformed_csv_row``."""
    text = spark.read.text(paths).select(
        F.make_valid_utf8("value").alias("value"), F.col("_metadata.file_path").alias("_source_file")
    )
    stripped = F.regexp_replace(F.regexp_replace("value", "^\ufeff", ""), r"^\s+|\s+$", "")
    lines = text.select(stripped.alias("line"), "_source_file").where(F.col("line") != "")
    lines = lines.withColumn("_f", F.split("line", r"\s+")).where(F.array_join("_f", " ") != F.lit(" ".join(header)))
    index = {name: i for i, name in reversed(list(enumerate(header)))}

    def column(c: str) -> Column:
        i = index.get(spec.header_name(c))
        return (F.col("_f")[i] if i is not None else F.lit(None).cast("string")).alias(c)

    as_landed = F.map_from_arrays(F.array(*[F.lit(h) for h in header]), F.col("_f"))
    well_formed = F.size("_f") == F.lit(len(header))
    return lines.select(
        *[F.when(well_formed, column(c)).alias(c) for c in spec.columns],
        F.when(~well_formed, F.lit("malformed_csv_row")).alias("_parse_error"),
        F.when(well_formed, F.to_json(as_landed)).otherwise(F.col("line")).alias("raw_record"),
        "_source_file",
        _as_names(F.array(*[F.lit(h) for h in _undeclared(spec, header)])).alias(UNKNOWN),
    )


def _undeclared(spec: SourceSpec, header: tuple[str, ...]) -> list[str]:
    """Header fields the source does not declare, in header order."""
    declared = set(spec.required_headers)
    return [h for h in dict.fromkeys(header) if h and h not in declared]


def _as_names(col: Column) -> Column:
    return F.coalesce(col, F.array()).cast("array<string>")


def _read_csv(spark: SparkSession, spec: SourceSpec, paths: list[str], header: tuple[str, ...]) -> DataFrame:
    """Files sharing one (checked) header: read by position, columns picked by header name.

    The header was validated by file_checks, so Spark's own header check is not needed
    (``enforceSchema``); columns the source does not declare stay in ``raw_record``.
    """
    if spec.delimiter == WHITESPACE:
        return _read_whitespace(spark, spec, paths, header)
    slots = [f"_h{i}" for i in range(len(header))]
    schema = StructType(
        [*(StructField(s, StringType(), True) for s in slots), StructField(CORRUPT, StringType(), True)]
    )
    df = (
        spark.read.option("header", "true")
        .option("sep", spec.delimiter)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("multiLine", "false")
        .option("enforceSchema", "true")
        .schema(schema)
        .csv(paths)
        .withColumn("_source_file", F.col("_metadata.file_path"))
    )
    slot_of = {name: slot for slot, name in reversed(list(zip(slots, header, strict=True)))}

    def column(c: str) -> Column:
        slot = slot_of.get(spec.header_name(c))
        return (F.col(slot) if slot else F.lit(None).cast("string")).alias(c)

    as_landed = F.struct(*[F.col(slot).alias(name) for slot, name in zip(slots, header, strict=True)])
    extra = _undeclared(spec, header)
    return df.select(
        *[column(c) for c in spec.columns],
        F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed_csv_row")).alias("_parse_error"),
        F.coalesce(F.col(CORRUPT), F.to_json(as_landed)).alias("raw_record"),
        "_source_file",
        _as_names(F.array(*[F.lit(h) for h in extra])).alias(UNKNOWN),
    )


def _read_rejected_file(spark: SparkSession, spec: SourceSpec, check: FileCheck) -> DataFrame:
    """Records of a file that failed a whole-file check: one per non-blank line (CSV header
    excluded), or a single one for a file without readable lines."""
    nulls = [F.lit(None).cast(f.dataType).alias(f.name) for f in spec.schema.fields]
    if check.reason in SINGLE_ROW_REASONS:
        row = spark.range(1).select(
            F.lit(None).cast("string").alias("raw_record"), F.lit(file_uri(check.path)).alias("_source_file")
        )
    else:
        lines = spark.read.text(check.path).select(
            F.make_valid_utf8("value").alias("raw_record"), F.col("_metadata.file_path").alias("_source_file")
        )
        lines = lines.where(F.trim("raw_record") != "")
        if spec.fmt == "csv":
            lines = lines.where(F.regexp_replace("raw_record", "^\ufeff", "") != F.lit(check.header_line))
            if spec.delimiter == WHITESPACE:  # the header may come with a CR and surrounding blanks
                fields = F.split(F.regexp_replace("raw_record", r"^\s+|\s+$", ""), r"\s+")
                lines = lines.where(F.array_join(fields, " ") != F.lit(" ".join(check.header)))
        row = lines
    return row.select(
        *nulls,
        F.lit(check.reason).alias("_parse_error"),
        "raw_record",
        "_source_file",
        _as_names(F.array()).alias(UNKNOWN),
    )


def file_uri(path: str) -> str:
    """A landing path as Spark's ``_metadata.file_path`` spells it."""
    return (
        Path(path).absolute().as_uri()
        if urlparse(path).scheme in ("", "file") and not path.startswith("file:")
        else path
    )


@dataclass(frozen=True)
class Bounds:
    """ingest.bounds: the largest money value and quantity a record may carry (absolute values)."""

    max_price: float
    max_qty: int

    @classmethod
    def from_config(cls, conf) -> Bounds:
        return cls(float(conf.get_path("ingest.bounds.max_price")), int(conf.get_path("ingest.bounds.max_qty")))


def _out_of_bounds(name: str, limit: float) -> tuple[str, Column]:
    """(reason code, condition) of one money / quantity column; ``items.x``: any element's ``x``.

    Non-numbers are left to the source's own rules; Infinity and NaN count as out of bounds."""
    if "." in name:
        array, fld = name.split(".", 1)
        value = lambda i: F.abs(i[fld].try_cast("double"))  # noqa: E731
        code = f"item_{fld}_out_of_bounds"
        return code, F.coalesce(
            F.exists(array, lambda i: F.coalesce(value(i) > F.lit(limit), F.lit(False))), F.lit(False)
        )
    return f"{name}_out_of_bounds", F.coalesce(F.abs(F.col(name).try_cast("double")) > F.lit(limit), F.lit(False))


def with_reasons(
    spec: SourceSpec,
    batch_date: str,
    future_tolerance_hours: int,
    on_unknown_fields: str = "accept",
    bounds: Bounds | None = None,
) -> callable:
    """Adds ``reasons`` (array of reason codes, empty when the record is usable).

    ``on_unknown_fields`` quarantine: a record with a field the source does not declare gets
    ``unknown_field:<first such field>`` (a renamed ``customer_id`` must not make guest orders).
    """
    if on_unknown_fields not in DRIFT_POLICIES:
        raise ValueError(f"on_unknown_fields must be one of {', '.join(DRIFT_POLICIES)}; got {on_unknown_fields!r}")
    limit = datetime.fromisoformat(batch_date) + timedelta(days=1, hours=future_tolerance_hours)

    def transform(df: DataFrame) -> DataFrame:
        checks: list[Column] = [F.col("_parse_error")]
        if bounds is not None:
            limits = [(c, bounds.max_price) for c in spec.money_cols] + [(c, bounds.max_qty) for c in spec.qty_cols]
            for col, largest in limits:
                code, broken = _out_of_bounds(col, largest)
                checks.append(F.when(F.col("_parse_error").isNull() & broken, F.lit(code)))
        if on_unknown_fields == "quarantine":
            drifted = F.col("_parse_error").isNull() & (F.size(UNKNOWN) > 0)
            checks.append(F.when(drifted, F.concat(F.lit("unknown_field:"), F.element_at(UNKNOWN, 1))))
        for code, rule in spec.rules:
            checks.append(F.when(F.col("_parse_error").isNull() & F.coalesce(rule(), F.lit(False)), F.lit(code)))
        for ts in spec.ts_cols:
            checks.append(F.when(parse_ts(ts, spec.ts_formats) > F.lit(limit), F.lit(f"future_{ts}")))
        # Spark decodes bytes that are not UTF-8 as U+FFFD: a record with one was garbled on the way.
        checks.append(
            F.when(F.col("_parse_error").isNull() & F.col("raw_record").contains("\ufffd"), F.lit("invalid_utf8"))
        )
        reasons = F.array_compact(F.array(*checks))
        out = df.withColumn("reasons", reasons)
        if spec.key:
            # Keep the first copy of a repeated id (and version) in the batch; later copies are
            # duplicates. Records rejected for another reason rank last: a defective copy of a
            # record (a malformed line still parses its id) must not turn the original into a duplicate.
            same = [spec.key] + ([F.trim(spec.version)] if spec.version else [])
            order = Window.partitionBy(*same).orderBy(F.size("reasons") > 0, "_source_file", "raw_record")
            is_dup = (F.size("reasons") == 0) & F.col(spec.key).isNotNull() & (F.row_number().over(order) > 1)
            out = out.withColumn("reasons", F.when(is_dup, F.array(F.lit("duplicate_id"))).otherwise(F.col("reasons")))
        return out

    return transform


def split_batch(
    validated: DataFrame, spec: SourceSpec, batch_date: str, batch_id: str, ingested_at: datetime
) -> tuple[DataFrame, DataFrame]:
    """(accepted bronze rows, quarantine rows) of a validated batch."""
    meta = [
        F.col("_source_file"),
        F.lit(batch_id).alias("_batch_id"),
        F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
        F.lit(date.fromisoformat(batch_date)).alias("_batch_date"),
    ]
    accepted = validated.where(F.size("reasons") == 0).select(*spec.columns, *meta)
    quarantined = validated.where(F.size("reasons") > 0).select(
        F.lit(spec.name).alias("source"),
        "reasons",
        F.col("reasons")[0].alias("reason"),
        "raw_record",
        *meta,
    )
    return accepted, quarantined
