"""Console entry points of the wheel: ``custseg-<stage>`` runs one stage as a job.

Databricks ``python_wheel_task`` and any ``pip install``-ed environment call these; each
parses ``sys.argv`` (``--conf``, ``--date``, ``--set``), runs the stage through
``custseg.cli.job_main`` (which records the run in ``gold.job_runs``) and exits with
its status, so a failed stage fails the task.
"""

from __future__ import annotations

import sys

STAGES = ("ingest", "conform", "features", "segment", "basket", "marketing", "report", "pipeline", "maintain")
# Not stages: `custseg stream` runs until stopped (or, with --trigger available-now, until caught up);
# `custseg stream-export` writes the hourly activation files of real-time offers (no --date: --hour).
JOBS = (*STAGES, "stream", "stream-export")


def _run(stage: str) -> None:
    from custseg.cli import job_main

    sys.exit(job_main(stage, sys.argv[1:]))


def ingest() -> None:
    """``custseg-ingest``: landing -> bronze + quarantine."""
    _run("ingest")


def conform() -> None:
    """``custseg-conform``: bronze -> silver."""
    _run("conform")


def features() -> None:
    """``custseg-features``: silver -> gold.customer_features."""
    _run("features")


def segment() -> None:
    """``custseg-segment``: customer segments, profiles, quality, migration."""
    _run("segment")


def basket() -> None:
    """``custseg-basket``: association rules, cross-sell, recommendations."""
    _run("basket")


def marketing() -> None:
    """``custseg-marketing``: campaign audiences, plans, exports, results."""
    _run("marketing")


def report() -> None:
    """``custseg-report``: the HTML report of the snapshot."""
    _run("report")


def pipeline() -> None:
    """``custseg-pipeline``: every stage in order."""
    _run("pipeline")


def maintain() -> None:
    """``custseg-maintain``: OPTIMIZE and VACUUM every table (not part of the pipeline)."""
    _run("maintain")


def stream() -> None:
    """``custseg-stream``: the real-time job (docs/realtime.md); no --date, runs until stopped."""
    from custseg.realtime.job import main

    sys.exit(main(sys.argv[1:]))


def stream_export() -> None:
    """``custseg-stream-export``: hours of real-time offers -> activation files (docs/realtime.md)."""
    from custseg.realtime.export_job import main

    sys.exit(main(sys.argv[1:]))
