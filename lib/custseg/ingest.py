"""Landing files -> bronze, with every unusable record sent to quarantine with its reasons.

Reading keeps the raw text of each record: JSON Lines are read as text and parsed with
``from_json`` (a malformed line becomes a quarantine row, not a silently dropped one);
CSV is read with an explicit schema in PERMISSIVE mode with a corrupt-record column.
Each batch reconciles: records read = accepted + quarantined.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.sql.window import Window

from custseg.sources.base import SourceSpec, parse_ts

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
QUARANTINE_COLUMNS = ["source", "reasons", "reason", "raw_record", "_source_file", "_batch_id", "_ingested_at", "_batch_date"]


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


def read_raw(spark: SparkSession, spec: SourceSpec, path: str) -> DataFrame:
    """Raw records of one batch folder: the spec's columns, ``_parse_error`` and ``raw_record``."""
    if spec.fmt == "jsonl":
        text = spark.read.text(path).withColumn("_source_file", F.col("_metadata.file_path"))
        text = text.where(F.trim("value") != "")
        parsed = F.from_json(F.col("value"), spec.schema, {"mode": "PERMISSIVE"})
        # from_json is lenient with truncated objects in PERMISSIVE mode; a value that
        # is not a complete JSON object is malformed whatever from_json made of it.
        malformed = F.try_parse_json(F.col("value")).isNull() | ~F.trim("value").startswith("{")
        return text.select(
            *[parsed[c].alias(c) for c in spec.columns],
            F.when(malformed, F.lit("malformed_json")).alias("_parse_error"),
            F.col("value").alias("raw_record"),
            "_source_file",
        )
    if spec.fmt == "csv":
        schema = StructType([*spec.schema.fields, StructField(CORRUPT, StringType(), True)])
        df = (
            spark.read.option("header", "true")
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .option("multiLine", "false")
            .option("enforceSchema", "false")
            .schema(schema)
            .csv(path)
            .withColumn("_source_file", F.col("_metadata.file_path"))
        )
        raw = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*spec.columns)))
        return df.select(
            *spec.columns,
            F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed_csv_row")).alias("_parse_error"),
            raw.alias("raw_record"),
            "_source_file",
        )
    raise ValueError(f"source {spec.name}: unsupported format {spec.fmt!r}")


def with_reasons(spec: SourceSpec, batch_date: str, future_tolerance_hours: int) -> callable:
    """Adds ``reasons`` (array of reason codes, empty when the record is usable)."""
    limit = datetime.fromisoformat(batch_date) + timedelta(days=1, hours=future_tolerance_hours)

    def transform(df: DataFrame) -> DataFrame:
        checks: list[Column] = [F.col("_parse_error")]
        for code, rule in spec.rules:
            checks.append(F.when(F.col("_parse_error").isNull() & F.coalesce(rule(), F.lit(False)), F.lit(code)))
        for ts in spec.ts_cols:
            checks.append(F.when(parse_ts(ts) > F.lit(limit), F.lit(f"future_{ts}")))
        reasons = F.array_compact(F.array(*checks))
        out = df.withColumn("reasons", reasons)
        if spec.key:
            # Keep the first copy of a repeated id in the batch; later copies are duplicates.
            order = Window.partitionBy(spec.key).orderBy("_source_file", "raw_record")
            is_dup = (F.size("reasons") == 0) & F.col(spec.key).isNotNull() & (F.row_number().over(order) > 1)
            out = out.withColumn("reasons", F.when(is_dup, F.array(F.lit("duplicate_id"))).otherwise(F.col("reasons")))
        return out

    return transform


def split_batch(validated: DataFrame, spec: SourceSpec, batch_date: str, batch_id: str, ingested_at: datetime) -> tuple[DataFrame, DataFrame]:
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
