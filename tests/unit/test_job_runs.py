"""A job appends a ``started`` row to gold.job_runs before any work and its outcome at the end;
a failed job leaves a ``failed`` row before exiting non-zero, and a run that died without an end
is closed as failed by the next run of the same job and date."""

from __future__ import annotations

import json
from datetime import date

import pytest
from pyspark.sql import functions as F

from custseg.config import DEFAULT_CONF_DIR
from custseg.runs import ABANDONED, JOB_RUNS, RunRecorder, latest_runs, record_start
from custseg.storage import StorageSettings, Tables

RUN_DATE = "2026-06-30"


@pytest.fixture()
def conf_file(tmp_path):
    """An overlay whose landing folder is empty and whose tables live in tmp_path."""
    (tmp_path / "landing").mkdir()
    path = tmp_path / "test.yaml"
    path.write_text(
        f"extends: {DEFAULT_CONF_DIR / 'base.yaml'}\n"
        "paths:\n"
        f"  landing: {tmp_path / 'landing'}\n"
        f"  tables: {tmp_path / 'tables'}\n"
        f"  reports: {tmp_path / 'reports'}\n"
        f"  exports: {tmp_path / 'exports'}\n"
    )
    return path


def _runs(spark, root):
    return Tables(spark, StorageSettings(root=str(root))).read(JOB_RUNS)


def test_missing_required_source_records_a_failed_run(spark, conf_file, tmp_path):
    from custseg.cli import parse_job_args, run_job

    rc = run_job(parse_job_args("ingest", ["--date", RUN_DATE, "--conf", str(conf_file)]), spark=spark)
    assert rc == 1
    rows = _runs(spark, tmp_path / "tables").orderBy(F.col("ended_at").asc_nulls_first()).collect()
    assert [r["status"] for r in rows] == ["started", "failed"]
    started, row = rows
    assert started["run_id"] == row["run_id"] and started["started_at"] == row["started_at"]
    assert started["ended_at"] is None and started["seconds"] is None and started["error"] is None
    assert (row["job"], row["run_date"], row["status"]) == ("ingest", date(2026, 6, 30), "failed")
    assert row["error"].startswith("custseg.stages.ingest.MissingSourceError: no files for source ")
    assert "ingest.required_sources" in row["error"]
    assert row["ended_at"] >= row["started_at"] and row["seconds"] >= 0
    assert row["app_id"] == spark.sparkContext.applicationId
    assert "ingest" in json.loads(row["stage_seconds"])  # the stage was timed up to the failure
    assert (row["rows_in"], row["rows_out"], row["quarantined"]) == (0, 0, 0)
    assert row["run_id"].startswith("ingest-2026-06-30-")


def test_failure_inside_a_later_stage_is_recorded_and_runs_accumulate(spark, conf_file, tmp_path):
    """features without silver tables fails in the storage layer; a second failure adds a second row."""
    from custseg.cli import parse_job_args, run_job

    args = parse_job_args("features", ["--date", RUN_DATE, "--conf", str(conf_file)])
    assert run_job(args, spark=spark) == 1
    assert run_job(args, spark=spark) == 1
    rows = _runs(spark, tmp_path / "tables").transform(latest_runs).orderBy("started_at").collect()
    assert [(r["job"], r["status"]) for r in rows] == [
        ("features", "failed"),
        ("features", "failed"),
    ]
    assert all("StorageError: table silver." in r["error"] and "does not exist" in r["error"] for r in rows)
    assert rows[0]["run_id"] != rows[1]["run_id"]


def test_a_config_error_exits_2_before_any_spark_work(spark, tmp_path):
    from custseg.cli import parse_job_args, run_job

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {DEFAULT_CONF_DIR / 'base.yaml'}\nreport:\n  dpi: 5\n")
    import custseg.report.settings  # noqa: F401 - registers the report validator

    assert run_job(parse_job_args("report", ["--date", RUN_DATE, "--conf", str(bad)]), spark=spark) == 2
    assert not (tmp_path / "tables").exists()


def test_a_run_that_died_is_closed_as_failed_by_the_next_run(spark, conf_file, tmp_path):
    """A process killed mid-run (a JVM taken down by a fatal error) leaves only its started row;
    the next run of the job and date appends a failed row for it, naming itself."""
    from custseg.cli import parse_job_args, run_job

    root = tmp_path / "tables"
    tables = Tables(spark, StorageSettings(root=str(root)))
    dead = RunRecorder(job="features", run_date=RUN_DATE)
    record_start(spark, tables, dead)
    other_date = RunRecorder(job="features", run_date="2026-06-29")
    record_start(spark, tables, other_date)  # another date: not this run's business
    latest = {r["run_id"]: r["status"] for r in _runs(spark, root).transform(latest_runs).collect()}
    assert latest == {dead.run_id: "started", other_date.run_id: "started"}

    assert run_job(parse_job_args("features", ["--date", RUN_DATE, "--conf", str(conf_file)]), spark=spark) == 1
    rows = {r["run_id"]: r for r in _runs(spark, root).transform(latest_runs).collect()}
    assert set(rows) == {dead.run_id, other_date.run_id, *[k for k in rows if k.startswith("features-2026-06-30-")]}
    assert rows[dead.run_id]["status"] == "failed" and rows[dead.run_id]["ended_at"] is not None
    new = [r for k, r in rows.items() if k not in (dead.run_id, other_date.run_id)]
    assert len(new) == 1 and new[0]["status"] == "failed"
    assert rows[dead.run_id]["error"] == ABANDONED + new[0]["run_id"]
    # Killed with no end and no later run of its date: visible as started, never ended.
    assert rows[other_date.run_id]["status"] == "started"
    assert rows[other_date.run_id]["ended_at"] is None and rows[other_date.run_id]["seconds"] is None
