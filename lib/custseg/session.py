"""SparkSession for local runs and clusters.

Under spark-submit, Databricks or EMR the cluster's settings win: we only name the app
and never touch master, memory or partitions. Locally we tune for a small machine.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from custseg.config import Config
from custseg.redaction import SPARK_REDACTION_REGEX
from custseg.runtime import conf_get

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
# A path no table lives at: asking Delta to describe it fails with Delta's own error class.
_PROBE_PATH = "file:/custseg-delta-probe/no-such-table"


def launched_by_cluster() -> bool:
    """True when a cluster manager or spark-submit already configured Spark."""
    return bool(
        os.environ.get("PYSPARK_GATEWAY_PORT")  # python started by spark-submit's JVM
        or os.environ.get("DATABRICKS_RUNTIME_VERSION")
        or os.environ.get("SPARK_SUBMIT_OPTS_CUSTSEG")
    )


def default_shuffle_partitions(cores: int | None = None) -> int:
    cores = cores or os.cpu_count() or 2
    return max(4, 2 * cores)


def remote_url(remote: str | None = None) -> str | None:
    """The Spark Connect URL to use: ``--remote`` first, else ``$SPARK_REMOTE``; None for a classic session."""
    return remote or os.environ.get("SPARK_REMOTE") or None


def get_session(conf: Config, app_name: str | None = None, remote: str | None = None) -> SparkSession:
    """The job's session: reuse an active one, else build one for this environment.

    With a Spark Connect URL (``--remote sc://host:port`` or ``$SPARK_REMOTE``) the job runs as
    a Connect client: the server owns master, memory and partitions, as on Databricks serverless.
    """
    name = app_name or conf.get_path("app_name", "custseg")
    url = remote_url(remote)
    if url:
        spark = SparkSession.builder.remote(url).appName(name).getOrCreate()
        log.info("Spark Connect session: %s", _redact_url(url))
        return spark
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if launched_by_cluster():
        spark = SparkSession.builder.appName(name).getOrCreate()
        log.info("session from the cluster: master=%s", conf_get(spark, "spark.master"))
        return spark
    return local_session(conf, name)


def _redact_url(url: str) -> str:
    """``sc://host:port/;token=...`` -> the host and port only: a token never reaches a log."""
    return url.split(";", 1)[0]


def local_session(conf: Config, app_name: str = "custseg") -> SparkSession:
    sconf = conf.spark
    partitions = sconf.shuffle_partitions or default_shuffle_partitions()
    # Python workers (the PII HMAC is a pandas UDF) run this interpreter, which has pandas
    # and pyarrow, unless PYSPARK_PYTHON says otherwise (PySpark's default is `python3`).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(sconf.master)
        .appName(app_name)
        .config("spark.driver.memory", sconf.driver_memory)
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.default.parallelism", str(partitions))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.adaptive.coalescePartitions.enabled", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", str(bool(sconf.ui)).lower())
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        # Masks secrets (the PII salt in executor env vars, storage keys) in the UI and event log.
        .config("spark.redaction.regex", SPARK_REDACTION_REGEX)
        .config("spark.log.level", "WARN")  # as sparkContext.setLogLevel, without the JVM
    )
    extra = {k: str(v) for k, v in sconf.conf.items()}
    for key, value in {**delta_conf(extra, partitions), **extra}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    log.info(
        "local session: master=%s shuffle_partitions=%s delta_jvm=%s", sconf.master, partitions, has_jvm_delta(spark)
    )
    return spark


def delta_jars_dir() -> Path | None:
    """Where the set-up put the JVM Delta jars (``deploy/delta-jars.sh``), or None to run without.

    ``CUSTSEG_DELTA_JARS`` names the folder, or ``none``; by default ``<venv>/delta-jars``
    of the Python running this (``make venv`` resolves them there).
    """
    setting = os.environ.get("CUSTSEG_DELTA_JARS", "")
    if setting.lower() == "none":
        return None
    folder = Path(setting) if setting else Path(sys.prefix) / "delta-jars"
    return folder if any(folder.glob("*.jar")) else None


def kafka_connector_jars() -> list[str]:
    """Spark's Kafka connector jars (``deploy/kafka-jars.sh``), or [] where they were not resolved.

    ``CUSTSEG_KAFKA_JARS`` names the folder, or ``none``; by default ``<venv>/spark-kafka-jars``.
    Four small jars: they always go on a local session's class path, so ``stream.source: kafka``
    needs no second session.
    """
    setting = os.environ.get("CUSTSEG_KAFKA_JARS", "")
    if setting.lower() == "none":
        return []
    folder = Path(setting) if setting else Path(sys.prefix) / "spark-kafka-jars"
    return [str(j) for j in sorted(folder.glob("*.jar"))]


def delta_conf(user_conf: dict[str, str] | None = None, snapshot_partitions: int = 4) -> dict[str, str]:
    """Spark settings that put JVM Delta Lake into a local session, or {} where it cannot be.

    Nothing when the user's own settings already bring Delta (``spark.jars.packages`` or
    ``spark.sql.extensions``), or when no jars were resolved: then tables use delta-rs,
    said in one line. ``snapshot_partitions``: Delta rebuilds a table's log state, and VACUUM
    lists files, with this many tasks (defaults 50 and 10,000: seconds per commit and a
    minute per vacuum on a small machine).
    """
    user_conf = user_conf or {}
    if "spark.jars.packages" in user_conf or "spark.sql.extensions" in user_conf:
        return {}
    folder = delta_jars_dir()
    kafka = kafka_connector_jars()
    if folder is None:
        log.warning(
            "no JVM Delta jars (run `make venv`, or set CUSTSEG_DELTA_JARS to their folder): "
            "tables use the delta-rs engine"
        )
        return {"spark.jars": ",".join(filter(None, [user_conf.get("spark.jars"), *kafka]))} if kafka else {}
    jars = [str(j) for j in sorted(folder.glob("*.jar"))] + kafka
    if user_conf.get("spark.jars"):
        jars.insert(0, user_conf["spark.jars"])
    return {
        "spark.jars": ",".join(jars),
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.databricks.delta.snapshotPartitions": str(snapshot_partitions),
        # VACUUM lists the table folder with this many tasks (default 10,000: a minute here).
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(snapshot_partitions),
    }


def has_jvm_delta(spark: SparkSession) -> bool:
    """Whether the session reads and writes Delta through the JVM (delta-spark / Databricks).

    Connect-safe: no class-path probe through py4j. The session must name Delta's extension,
    and Delta must answer a ``DESCRIBE DETAIL`` of a path with no table with its own error
    (without the jars Spark does not know the command, or the extension was dropped).
    """
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return True
    try:
        extensions = spark.conf.get("spark.sql.extensions", "") or ""
    except Exception:  # Spark Connect may refuse some keys
        extensions = ""
    if "DeltaSparkSessionExtension" not in extensions:
        return False
    try:
        spark.sql(f"DESCRIBE DETAIL delta.`{_PROBE_PATH}`")
    except Exception as exc:
        return "DELTA_" in str(exc)
    return True
