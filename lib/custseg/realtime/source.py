"""Streaming sources of ``custseg stream``: the landing/ file layout, or Kafka.

Files. One file stream per source over ``<landing>/<source>/`` (every date folder below it),
``maxFilesPerTrigger`` files at a time. The stream only *discovers* files: it reads Spark's
``binaryFile`` source with the path, size and modification time selected (the content is not
read), and the checkpoint's offset log fixes which files make up each micro-batch. The
micro-batch then reads those files with the batch reader (``custseg.ingest.read_raw`` after
``custseg.file_checks``), so a stream and a batch run give a file the same whole-file checks
(truncated last line, empty file, corrupt gzip, wrong delimiter, CSV header mapping) and every
record the same reasons. A corrupt file is quarantined instead of failing the query forever,
which a text stream over the same folder would do.

Files starting with ``_`` or ``.``, and folders starting so (``_temporary/``, ``.staging/``),
are never picked up: senders write there and rename into place, so a half-written file is
never seen.

Kafka. ``custseg.realtime.kafka.read_kafka`` gives ``raw_record`` (the message value, a JSON
object with the source's fields) and ``_source_file`` (``kafka:topic/partition/offset``).

Both sources carry ``_batch_us``: the micro-batch's timestamp (``current_timestamp()`` in a
streaming plan is the batch time recorded in the offset log), the same when a batch is
replayed after a crash, so everything a batch derives from its clock is replayed alike.
"""

from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from custseg.landing import ensure_dir

log = logging.getLogger(__name__)

FILES = "files"
KAFKA = "kafka"
SOURCE_KINDS = (FILES, KAFKA)
BATCH_CLOCK = "_batch_us"
# binaryFile's fixed schema (a file stream must be given one); `content` is never selected.
BINARY_SCHEMA = "path string, modificationTime timestamp, length long, content binary"


def file_stream(spark: SparkSession, landing: str, source: str, max_files: int) -> DataFrame:
    """New files under ``<landing>/<source>/``: ``source, path, length, modified_us``."""
    path = f"{landing.rstrip('/')}/{source}"
    ensure_dir(path)  # a local folder must exist before the stream starts (no-op on object stores)
    return (
        spark.readStream.format("binaryFile")
        .schema(BINARY_SCHEMA)
        .option("recursiveFileLookup", "true")
        .option("maxFilesPerTrigger", int(max_files))
        .load(path)
        .select(
            F.lit(source).alias("source"),
            F.col("path"),
            F.col("length"),
            F.unix_micros(F.col("modificationTime")).alias("modified_us"),
        )
    )


def kafka_stream(spark: SparkSession, conf, source: str) -> DataFrame:
    """Records of one source from Kafka: ``source, raw_record, _source_file``."""
    try:
        from custseg.realtime.kafka import read_kafka
    except ImportError as exc:  # the Kafka reader is not in this installation
        raise RuntimeError(f"stream.source is kafka but custseg.realtime.kafka cannot be imported: {exc}") from exc
    return read_kafka(spark, conf, source).select(F.lit(source).alias("source"), "raw_record", "_source_file")


def ingest_stream(spark: SparkSession, conf, kind: str, landing: str, sources: list[str], max_files: int) -> DataFrame:
    """The union of the sources' streams, with the micro-batch clock ``_batch_us``."""
    if kind == FILES:
        parts = [file_stream(spark, landing, s, max_files) for s in sources]
    elif kind == KAFKA:
        parts = [kafka_stream(spark, conf, s) for s in sources]
    else:
        raise ValueError(f"stream source must be one of {', '.join(SOURCE_KINDS)}; got {kind!r}")
    return reduce(DataFrame.unionByName, parts).withColumn(BATCH_CLOCK, F.unix_micros(F.current_timestamp()))


def session_stream(spark: SparkSession, conf, kind: str, landing: str, max_files: int) -> DataFrame:
    """Events for the ``sessions`` query: usable event records, parsed in Spark columns (no Python).

    The lines of ``<landing>/events/`` (or the events topic) through ``from_json`` with the events
    source's schema; a record that is not a JSON object, or that a rule of the source rejects
    (``custseg.sources.catalog.EVENTS``: no id, no device, bad time, unknown type), is left out
    here: the ``ingest`` query quarantines it with its reason. ``customer_key`` / ``device_key``
    hold the raw ids until a closed session is resolved in its micro-batch (they live in the
    checkpoint's state only while the session is open).
    """
    from custseg.sources.base import parse_ts
    from custseg.sources.catalog import EVENTS

    if kind == FILES:
        path = f"{landing.rstrip('/')}/{EVENTS.name}"
        ensure_dir(path)
        text = (
            spark.readStream.format("text")
            .option("recursiveFileLookup", "true")
            .option("maxFilesPerTrigger", int(max_files))
            .load(path)
            .select(F.col("value").alias("raw_record"))
        )
    elif kind == KAFKA:
        text = kafka_stream(spark, conf, EVENTS.name).select("raw_record")
    else:
        raise ValueError(f"stream source must be one of {', '.join(SOURCE_KINDS)}; got {kind!r}")
    value = F.col("raw_record")
    is_object = F.try_parse_json(value).isNotNull() & F.trim(value).startswith("{")
    parsed = text.where(is_object).select(F.from_json(value, EVENTS.schema).alias("e")).select("e.*")
    for _code, rule in EVENTS.rules:
        parsed = parsed.where(~F.coalesce(rule(), F.lit(False)))
    return parsed.select(
        F.trim("event_id").alias("event_id"),
        F.nullif(F.trim("customer_id"), F.lit("")).alias("customer_key"),  # raw: resolved per batch
        F.nullif(F.trim("device_id"), F.lit("")).alias("device_key"),  # raw: resolved per batch
        F.nullif(F.trim("session_id"), F.lit("")).alias("session_id"),
        parse_ts("ts").alias("ts"),
        F.lower(F.trim("event_type")).alias("event_type"),
        F.nullif(F.trim("sku"), F.lit("")).alias("sku"),
        F.lower(F.nullif(F.trim("category"), F.lit(""))).alias("category"),
    )
