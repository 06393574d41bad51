"""Kafka for ``custseg stream``: the source of raw records and the sink of activated offers.

Both go through Spark's own Kafka connector (``spark-sql-kafka-0-10``: ``make venv`` puts it on
local sessions' class path from ``deploy/kafka-jars.txt``; on a cluster add the same coordinate
with ``--packages``), so they run alike on classic Spark and over Spark Connect.

Where the broker is: ``$CUSTSEG_KAFKA_BOOTSTRAP`` (wins) or ``stream.kafka.bootstrap_servers``.
Security settings come only from the environment, never from a config file: every variable
``CUSTSEG_KAFKA_OPT_<NAME>`` becomes the Kafka client setting ``<name>`` (lower case, ``_`` -> ``.``),
e.g. ``CUSTSEG_KAFKA_OPT_SECURITY_PROTOCOL=SASL_SSL``, ``CUSTSEG_KAFKA_OPT_SASL_MECHANISM=PLAIN``,
``CUSTSEG_KAFKA_OPT_SASL_JAAS_CONFIG=...``. Their values are never logged (only the names), and
the sessions custseg starts mask them in Spark's UI and plans (``spark.redaction.regex``).
"""

from __future__ import annotations

import logging
import os

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

BOOTSTRAP_ENV = "CUSTSEG_KAFKA_BOOTSTRAP"
OPTION_ENV_PREFIX = "CUSTSEG_KAFKA_OPT_"
OFFERED = "offered"


def bootstrap_servers(conf, environ: dict[str, str] | None = None) -> str:
    """``host:port[,host:port...]`` of the brokers; a missing setting fails naming both places."""
    env = os.environ if environ is None else environ
    servers = env.get(BOOTSTRAP_ENV, "").strip() or str(conf.get_path("stream.kafka.bootstrap_servers", "")).strip()
    if not servers:
        raise conf.error(
            "stream.kafka.bootstrap_servers", f"is empty and ${BOOTSTRAP_ENV} is not set: no Kafka brokers to use"
        )
    return servers


def client_options(conf, environ: dict[str, str] | None = None) -> dict[str, str]:
    """``kafka.*`` options of the connector: the brokers, and the client settings from the environment."""
    env = os.environ if environ is None else environ
    options = {"kafka.bootstrap.servers": bootstrap_servers(conf, env)}
    for name, value in sorted(env.items()):
        if name.startswith(OPTION_ENV_PREFIX) and len(name) > len(OPTION_ENV_PREFIX):
            options["kafka." + name[len(OPTION_ENV_PREFIX) :].lower().replace("_", ".")] = value
    return options


def topic(conf, source: str) -> str:
    """The topic a landing source's records arrive on (``stream.kafka.topics.<source>``)."""
    topics = conf.get_path("stream.kafka.topics", {}) or {}
    name = topics.get(source)
    if not name:
        raise conf.error(f"stream.kafka.topics.{source}", f"no Kafka topic for source {source!r}")
    return str(name)


def _log_options(what: str, options: dict[str, str]) -> None:
    extra = sorted(k for k in options if k != "kafka.bootstrap.servers")
    log.info(
        "%s: brokers %s%s",
        what,
        options["kafka.bootstrap.servers"],
        f"; client settings from the environment: {', '.join(extra)}" if extra else "",
    )


def read_kafka(spark: SparkSession, conf, source: str) -> DataFrame:
    """Streaming records of ``source`` from its topic.

    Columns: ``raw_record`` (the message value as UTF-8 text, invalid bytes replaced; null for a
    message without a value), ``_source_file`` (``kafka:<topic>/<partition>/<offset>``: where the
    record came from, as a file path is for the file source; quarantine rows name it), and
    ``_kafka_ts`` (the broker's timestamp of the message: when it arrived, for latency).
    """
    kc = conf.get_path("stream.kafka")
    name = topic(conf, source)
    starting = str(kc["starting_offsets"]).strip()
    if starting not in ("earliest", "latest") and not starting.startswith("{"):
        raise conf.error(
            "stream.kafka.starting_offsets", f"must be earliest, latest or Spark's JSON offsets; got {starting!r}"
        )
    options = client_options(conf)
    _log_options(f"Kafka source {source} <- topic {name}", options)
    reader = (
        spark.readStream.format("kafka")
        .options(**options)
        .option("subscribe", name)
        .option("startingOffsets", starting)
        .option("failOnDataLoss", str(bool(kc["fail_on_data_loss"])).lower())
    )
    if int(kc["max_offsets_per_trigger"]) > 0:
        reader = reader.option("maxOffsetsPerTrigger", int(kc["max_offsets_per_trigger"]))
    return reader.load().select(
        F.make_valid_utf8(F.col("value").cast("string")).alias("raw_record"),
        F.format_string("kafka:%s/%d/%d", F.col("topic"), F.col("partition"), F.col("offset")).alias("_source_file"),
        F.col("timestamp").alias("_kafka_ts"),
    )


def write_offers_kafka(offers: DataFrame, conf) -> None:
    """Send the ``offered`` rows of a batch of OFFER rows to ``stream.kafka.activation_topic``.

    One message per offer: key ``customer_key`` (one customer's offers stay in order on one
    partition), value the row as JSON, header ``offer_id``. Kafka's sink delivers at least once:
    a micro-batch replayed after a crash may send an offer again, with the same ``offer_id``
    (deterministic), which is the consumer's idempotency key. Called inside ``foreachBatch``
    with a static DataFrame.
    """
    name = str(conf.get_path("stream.kafka.activation_topic", ""))
    if not name:
        raise conf.error("stream.kafka.activation_topic", "no Kafka topic for activated offers")
    options = client_options(conf)
    _log_options(f"Kafka sink offers -> topic {name}", options)
    (
        offers.where(F.col("decision") == F.lit(OFFERED))
        .select(
            F.col("customer_key").cast("string").alias("key"),
            F.to_json(F.struct(*[F.col(c) for c in offers.columns])).alias("value"),
            F.array(F.struct(F.lit("offer_id").alias("key"), F.col("offer_id").cast("binary").alias("value"))).alias(
                "headers"
            ),
        )
        .write.format("kafka")
        .options(**options)
        .option("topic", name)
        .option("includeHeaders", "true")
        .save()
    )


def write_records_kafka(records: DataFrame, conf, topic_name: str) -> None:
    """Batch write of ``key``, ``value`` (strings) to ``topic_name`` (the replay producer)."""
    options = client_options(conf)
    records.select("key", "value").write.format("kafka").options(**options).option("topic", topic_name).save()
