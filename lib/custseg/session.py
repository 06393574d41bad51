"""SparkSession for local runs and clusters.

Under spark-submit, Databricks or EMR the cluster's settings win: we only name the app
and never touch master, memory or partitions. Locally we tune for a small machine.
"""

from __future__ import annotations

import logging
import os
import sys

from pyspark.sql import SparkSession

from custseg.config import Config
from custseg.redaction import SPARK_REDACTION_REGEX

log = logging.getLogger(__name__)


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


def get_session(conf: Config, app_name: str | None = None) -> SparkSession:
    """The job's session: reuse an active one, else build one for this environment."""
    name = app_name or conf.get_path("app_name", "custseg")
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if launched_by_cluster():
        spark = SparkSession.builder.appName(name).getOrCreate()
        log.info("session from the cluster: master=%s", spark.sparkContext.master)
        return spark
    return local_session(conf, name)


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
    )
    for key, value in sconf.conf.items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info(
        "local session: master=%s shuffle_partitions=%s delta_jvm=%s", sconf.master, partitions, has_jvm_delta(spark)
    )
    return spark


def has_jvm_delta(spark: SparkSession) -> bool:
    """Whether the session can read and write Delta through the JVM (delta-spark / Databricks)."""
    try:
        extensions = spark.conf.get("spark.sql.extensions", "") or ""
    except Exception:  # Spark Connect may refuse some keys
        extensions = ""
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return True
    if "DeltaSparkSessionExtension" not in extensions:
        return False
    try:
        jvm = spark.sparkContext._jvm  # noqa: SLF001 - the only way to probe the class path
        jvm.java.lang.Class.forName("io.delta.sql.DeltaSparkSessionExtension")
        return True
    except Exception:
        return False
