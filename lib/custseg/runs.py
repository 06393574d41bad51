"""Run records in ``gold.job_runs``: a ``started`` row when a job starts, its outcome when it ends.

A stage reports what it read, wrote and quarantined through a ``RunRecorder``; the
recorder times each step. The table is append-only: ``record_start`` appends a row with
status ``started`` (``ended_at`` null) before any work, ``record_run`` appends the closing
row (``succeeded`` / ``failed``) under the same ``run_id``. A run whose process died (a JVM
killed by a fatal error, a lost driver, ``kill -9``) keeps only its ``started`` row: the
next run of the same job and date closes it with a ``failed`` row (``ABANDONED``), so a
killed run is visible in the table and not only in a log that may be gone.

Readers want one row per run: ``latest_runs`` keeps the closing row where there is one,
else the open ``started`` row.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)
from pyspark.sql.window import Window

from custseg.runtime import application_id, job_tag

log = logging.getLogger(__name__)

JOB_RUNS = "gold.job_runs"
STARTED = "started"
ABANDONED = "abandoned: the run recorded its start but never its end (its process died or was killed); closed by "
JOB_RUNS_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("job", StringType(), False),
        StructField("run_date", DateType(), False),
        StructField("started_at", TimestampType(), False),
        StructField("ended_at", TimestampType(), True),  # null on the ``started`` row
        StructField("status", StringType(), False),
        StructField("rows_in", LongType(), True),
        StructField("rows_out", LongType(), True),
        StructField("quarantined", LongType(), True),
        StructField("seconds", DoubleType(), True),
        StructField("stage_seconds", StringType(), True),  # JSON {stage: seconds}
        StructField("details", StringType(), True),  # JSON, stage-specific counts
        StructField("error", StringType(), True),
        StructField("app_id", StringType(), True),
    ]
)


@dataclass
class RunRecorder:
    job: str
    run_date: str
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    # With a session, each step tags its Spark jobs ``custseg-<job>-<step>`` (UI, interruptTag).
    spark: Any = field(default=None, repr=False, compare=False)

    @contextmanager
    def stage(self, name: str):
        """Times a step, logs its start and end (progress on long jobs) and tags its Spark jobs."""
        log.info("[%s %s] %s ...", self.job, self.run_date, name)
        t0 = time.perf_counter()
        tag = job_tag(self.spark, f"custseg-{self.job}-{name}") if self.spark is not None else nullcontext()
        try:
            with tag:
                yield
        finally:
            secs = round(time.perf_counter() - t0, 3)
            self.stage_seconds[name] = round(self.stage_seconds.get(name, 0.0) + secs, 3)
            log.info("[%s %s] %s done in %.1fs", self.job, self.run_date, name, secs)

    @property
    def run_id(self) -> str:
        return f"{self.job}-{self.run_date}-{self.started_at.strftime('%Y%m%dT%H%M%S%f')}"

    def row(self, status: str, app_id: str | None, error: str | None = None) -> tuple:
        ended = None if status == STARTED else datetime.now(timezone.utc)
        return (
            self.run_id,
            self.job,
            date.fromisoformat(self.run_date),
            self.started_at.replace(tzinfo=None),
            ended.replace(tzinfo=None) if ended else None,
            status,
            int(self.rows_in),
            int(self.rows_out),
            int(self.quarantined),
            round((ended - self.started_at).total_seconds(), 3) if ended else None,
            json.dumps(self.stage_seconds),
            json.dumps(self.details, default=str),
            error,
            app_id,
        )


def latest_runs(runs: DataFrame) -> DataFrame:
    """One row per ``run_id``: its closing row (succeeded / failed), else its open ``started`` row."""
    last = Window.partitionBy("run_id").orderBy(
        (F.col("status") == F.lit(STARTED)).asc(), F.col("ended_at").desc_nulls_last()
    )
    return runs.withColumn("_n", F.row_number().over(last)).where(F.col("_n") == 1).drop("_n")


def _app_id(spark: SparkSession) -> str | None:
    return application_id(spark)  # from the session's conf: classic and Spark Connect alike


def record_start(spark: SparkSession, tables, recorder: RunRecorder) -> None:
    """Close the abandoned runs of this job and date, then append this run's ``started`` row.

    Never fails the job: a run record that cannot be written is logged.
    """
    try:
        if tables.exists(JOB_RUNS):
            _close_abandoned(spark, tables, recorder)
        df = spark.createDataFrame([recorder.row(STARTED, _app_id(spark))], JOB_RUNS_SCHEMA)
        tables.append(df, JOB_RUNS, partition_by=["run_date"])
    except Exception:  # pragma: no cover - logged, the job runs anyway
        log.exception("could not record the start of the run in %s", JOB_RUNS)


def _close_abandoned(spark: SparkSession, tables, recorder: RunRecorder) -> None:
    """A ``failed`` row for every earlier run of this job and date that has only its ``started`` row.

    Two runs of one job for one date at the same time are not supported (each date's
    writes replace the other's), so an open run found here is one that died.
    """
    mine = (
        tables.read(JOB_RUNS)
        .where((F.col("run_date") == F.lit(date.fromisoformat(recorder.run_date))) & (F.col("job") == recorder.job))
        .transform(latest_runs)
        .where(F.col("status") == F.lit(STARTED))
    )
    open_runs = mine.collect()  # the open runs of one job and date: a handful at most
    if not open_runs:
        return
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    closing = {"ended_at": now, "status": "failed", "seconds": None, "error": ABANDONED + recorder.run_id}
    rows = [tuple(closing.get(f.name, r[f.name]) for f in JOB_RUNS_SCHEMA.fields) for r in open_runs]
    for r in open_runs:
        log.warning("%s: run %s never recorded its end; closing it as failed", JOB_RUNS, r["run_id"])
    tables.append(spark.createDataFrame(rows, JOB_RUNS_SCHEMA), JOB_RUNS, partition_by=["run_date"])


def record_run(
    spark: SparkSession, tables, recorder: RunRecorder, status: str, error: BaseException | None = None
) -> None:
    """Append the run's closing row; never masks the job's own error if this write fails too."""
    err = None
    if error is not None:
        err = "".join(traceback.format_exception_only(type(error), error)).strip()[:4000]
    try:
        df = spark.createDataFrame([recorder.row(status, _app_id(spark), err)], JOB_RUNS_SCHEMA)
        tables.append(df, JOB_RUNS, partition_by=["run_date"])
    except Exception:  # pragma: no cover - logged, the job's own outcome decides the exit code
        log.exception("could not record the run in %s", JOB_RUNS)
