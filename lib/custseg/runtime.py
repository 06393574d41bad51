"""Facts about the running session that hold in classic and Spark Connect sessions alike.

Over Spark Connect (Databricks serverless and standard access, Databricks Connect, a Spark
Connect server) there is no ``sparkContext``: what the jobs need from it (application id,
default parallelism, checkpoint folder, job tags) is read from the session's conf or from a
tiny query instead.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

_PARALLELISM: dict[int, int] = {}


def is_connect(spark: SparkSession) -> bool:
    """Whether ``spark`` is a Spark Connect client session."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def conf_get(spark: SparkSession, key: str, default: str | None = None) -> str | None:
    """``spark.conf.get`` that returns ``default`` where the platform refuses the key (serverless)."""
    try:
        value = spark.conf.get(key, default)
    except Exception:  # Databricks serverless refuses many keys
        return default
    return default if value is None else value


def application_id(spark: SparkSession) -> str | None:
    """The Spark application id (``local-...``, ``app-...``, ``application_...``), when the platform tells."""
    return conf_get(spark, "spark.app.id")


def default_parallelism(spark: SparkSession) -> int:
    """What ``sparkContext.defaultParallelism`` would say: ``spark.default.parallelism`` when set, else the
    number of partitions Spark splits a range into (its leaf-node default: the cluster's cores),
    measured once per session with a query over 4,096 numbers."""
    key = id(spark)
    if key in _PARALLELISM:
        return _PARALLELISM[key]
    value = None
    for conf_key in ("spark.default.parallelism", "spark.sql.leafNodeDefaultParallelism"):
        text = conf_get(spark, conf_key)
        if text and str(text).strip().isdigit() and int(text) > 0:
            value = int(text)
            break
    if value is None:
        value = spark.range(0, 4096).select(F.spark_partition_id().alias("p")).distinct().count()
    _PARALLELISM[key] = max(1, int(value))
    return _PARALLELISM[key]


def checkpoint_dir(spark: SparkSession) -> str | None:
    """The reliable-checkpoint folder (``spark.checkpoint.dir``), or None when none is set."""
    return conf_get(spark, "spark.checkpoint.dir") or None


@contextmanager
def job_tag(spark: SparkSession, tag: str):
    """Over Spark Connect, tag every Spark job started inside the block with ``tag`` (``spark.addTag``).

    The Connect server's UI shows a job's tags, and ``spark.interruptTag`` cancels a step's jobs.
    Tags are made of ``[a-zA-Z0-9_-]`` here (Spark refuses commas). Classic sessions are not
    tagged: there ``addTag`` initialises the session's thread-local tag holder, which Java cannot
    serialise, and from then on every MLlib model that keeps its training summary (logistic
    regression in the propensity step) fails evaluation with "Task not serializable" (PySpark
    4.2; reproduced here).
    """
    if not is_connect(spark):
        yield None
        return
    clean = "".join(c if c.isalnum() or c in "-_" else "-" for c in tag)[:120] or "custseg"
    added = False
    try:
        spark.addTag(clean)
        added = True
    except Exception:  # pragma: no cover - tagging never fails a job
        log.debug("could not tag Spark jobs with %s", clean, exc_info=True)
    try:
        yield clean
    finally:
        if added:
            try:
                spark.removeTag(clean)
            except Exception:  # pragma: no cover
                log.debug("could not remove tag %s", clean, exc_info=True)


@contextmanager
def connect_gc_guard(spark: SparkSession):
    """Over Spark Connect, no cyclic garbage collection inside a stage; a full collection after it.

    A fitted MLlib model on a Connect client deletes its server-side copy from its finalizer
    with an RPC. When the collector runs that finalizer while the same thread is inside another
    RPC, PySpark 4.2's client deadlocks on its gRPC channel (SPARK-55020, SPARK-57655: the
    segment stage hung for minutes here). With the collector paused, finalizers run only where
    our code drops a model (between RPCs), and ``gc.collect()`` at the end of the stage releases
    the rest from a point where no RPC is in flight. Classic sessions are left alone.
    """
    import gc

    if not is_connect(spark) or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def pin(df: DataFrame) -> DataFrame:
    """``df`` computed once (a local checkpoint, memory then disk) and cut from its lineage: from
    the plan that made it, and from the tables it was read from. Unlike a cached frame it is not
    recomputed after a write to one of those tables (Spark re-caches every cached plan that reads
    a table it writes) and its plan no longer grows with every frame built on it."""
    return df.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)


def keep(df: DataFrame) -> DataFrame:
    """``df`` kept for reuse: ``cache()`` in a classic session; over Spark Connect a local
    checkpoint, which also cuts the plan. A Connect client sends the whole plan with every
    request, and protobuf refuses a plan nested more than ~100 levels deep (the evaluation's
    union of four recommenders went past it)."""
    if is_connect(df.sparkSession):
        return df.localCheckpoint(eager=True)
    return df.cache()
