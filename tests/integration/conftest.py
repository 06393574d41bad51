"""Shared end-to-end fixture: one small generated data set and a pipeline run over it."""

from __future__ import annotations

import pytest


def run_stages(spark, home, run_date: str, stages: list[str], extra: list[str] | None = None) -> int:
    """Run stages through the same entry the jobs use, with tables under ``home``."""
    import os

    from custseg.cli import parse_job_args, run_job

    os.environ["CUSTSEG_HOME"] = str(home)
    for stage in stages:
        rc = run_job(parse_job_args(None, [stage, "--date", run_date, *(extra or [])]), spark=spark)
        if rc != 0:
            return rc
    return 0


@pytest.fixture(scope="session")
def demo_run(spark, tmp_path_factory):
    """~1.5k generated customers run through the pipeline once (shared by e2e tests)."""
    from custseg.datagen import generate
    from custseg.stages import pipeline_stages

    home = tmp_path_factory.mktemp("demo")
    summary = generate(home, customers=1500, days=365, seed=11, bad_share=0.02)
    run_date = summary.batch_dates[-1]
    rc = run_stages(spark, home, run_date, pipeline_stages())
    assert rc == 0, "pipeline failed on generated data"
    return home, run_date, summary
