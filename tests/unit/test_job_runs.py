"""A failed job leaves a ``failed`` row in gold.job_runs before exiting non-zero."""

from __future__ import annotations

import json
from datetime import date

import pytest

from custseg.config import DEFAULT_CONF_DIR
from custseg.runs import JOB_RUNS
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
    rows = _runs(spark, tmp_path / "tables").collect()
    assert len(rows) == 1
    row = rows[0]
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
    rows = _runs(spark, tmp_path / "tables").orderBy("started_at").collect()
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
