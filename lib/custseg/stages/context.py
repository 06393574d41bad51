"""What every stage gets: session, config, run date, tables, the run recorder and the model tracker."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from custseg.config import Config
from custseg.runs import RunRecorder
from custseg.tracking import NO_TRACKING, Tracker


def absolute(path: str) -> str:
    """Local relative paths are made absolute (executors may not share the driver's cwd)."""
    if urlparse(path).scheme in ("", "file"):
        return os.path.abspath(path.removeprefix("file:"))
    return path


@dataclass
class StageContext:
    spark: SparkSession
    conf: Config
    run_date: str
    tables: object  # custseg.storage.Tables
    recorder: RunRecorder
    demo: bool = False  # the demo may fall back to the demo PII salt
    tracker: Tracker = NO_TRACKING  # MLflow tracking of the models a stage fits (custseg.tracking)

    @property
    def as_of(self) -> date:
        return date.fromisoformat(self.run_date)

    @property
    def landing(self) -> str:
        return absolute(self.conf.paths.landing)
