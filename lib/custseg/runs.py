"""Run records: one row per job run in ``gold.job_runs``, success or failure.

A stage reports what it read, wrote and quarantined through a ``RunRecorder``; the
recorder times each step and appends the row at the end, including when the job
fails, so that a failed run is visible in the table and not only in a log.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql.types import (
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

log = logging.getLogger(__name__)

JOB_RUNS = "gold.job_runs"
JOB_RUNS_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("job", StringType(), False),
        StructField("run_date", DateType(), False),
        StructField("started_at", TimestampType(), False),
        StructField("ended_at", TimestampType(), False),
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

    @contextmanager
    def stage(self, name: str):
        """Times a step and logs its start and end (progress on long jobs)."""
        log.info("[%s %s] %s ...", self.job, self.run_date, name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            secs = round(time.perf_counter() - t0, 3)
            self.stage_seconds[name] = round(self.stage_seconds.get(name, 0.0) + secs, 3)
            log.info("[%s %s] %s done in %.1fs", self.job, self.run_date, name, secs)

    def row(self, status: str, app_id: str | None, error: str | None = None) -> tuple:
        ended = datetime.now(timezone.utc)
        run_id = f"{self.job}-{self.run_date}-{self.started_at.strftime('%Y%m%dT%H%M%S%f')}"
        return (
            run_id,
            self.job,
            date.fromisoformat(self.run_date),
            self.started_at.replace(tzinfo=None),
            ended.replace(tzinfo=None),
            status,
            int(self.rows_in),
            int(self.rows_out),
            int(self.quarantined),
            round((ended - self.started_at).total_seconds(), 3),
            json.dumps(self.stage_seconds),
            json.dumps(self.details, default=str),
            error,
            app_id,
        )


def record_run(
    spark: SparkSession, tables, recorder: RunRecorder, status: str, error: BaseException | None = None
) -> None:
    """Append the run's row; never masks the job's own error if this write fails too."""
    err = None
    if error is not None:
        err = "".join(traceback.format_exception_only(type(error), error)).strip()[:4000]
    try:
        app_id = spark.sparkContext.applicationId
    except Exception:
        app_id = None
    try:
        df = spark.createDataFrame([recorder.row(status, app_id, err)], JOB_RUNS_SCHEMA)
        tables.append(df, JOB_RUNS, partition_by=["run_date"])
    except Exception:  # pragma: no cover - logged, the job's own outcome decides the exit code
        log.exception("could not record the run in %s", JOB_RUNS)
