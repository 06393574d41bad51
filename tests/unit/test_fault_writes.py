"""Fault injection on writes: a full disk mid-write, and two runs racing on one date.

- Disk full (the ``disk-full`` fault of custseg.faults: the tasks writing a table's data files
  fail with "No space left on device", as a full disk or quota makes them; a file write stops
  halfway with ENOSPC): the table or file is as it was, the job exits non-zero with a message
  that says so, gold.job_runs records the failure, and a rerun once there is space converges.
- Two ingest runs of the same date at the same time on the same tables: whichever way their
  commits interleave, the end state is one run's (no doubled rows); a run that loses a commit
  race fails with a clear concurrent-write error and its rerun converges.
"""

from __future__ import annotations

import errno
import threading

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from custseg import faults
from custseg.runs import JOB_RUNS
from custseg.storage import DiskFullError, StorageSettings, Tables
from tests.unit import ingest_helpers
from tests.unit.ingest_helpers import FEEDBACK_HEADER, D, land, reconciliation, run, tables

home = ingest_helpers.home  # the fixture: CUSTSEG_HOME in tmp_path

ROWS = [f"f{i},c{i},2026-06-30 09:00:00,web,{1 + i % 5},{i % 11},text {i}" for i in range(1, 41)]
BAD = ["f99,c99,not-a-date,web,5,9,bad ts", ",c98,2026-06-30 09:00:00,web,5,9,no id"]


def _feedback(home, rows, name="a.csv"):
    land(home, "feedback", name, "\n".join([FEEDBACK_HEADER, *rows]) + "\n")


def _ids(spark, home):
    return tables(spark, home).read("bronze.feedback").select("feedback_id")


def _expected_ids(spark, rows):
    return spark.createDataFrame([(r.split(",")[0],) for r in rows], "feedback_id string")


def _last_run(spark, home, job="ingest"):
    return (
        tables(spark, home)
        .read(JOB_RUNS)
        .where((F.col("job") == job) & (F.col("status") != "started"))
        .orderBy(F.col("ended_at").desc())
        .first()
    )


# --- a full disk ---------------------------------------------------------------------


def test_a_disk_full_write_leaves_the_table_unchanged_and_fails_the_job_clearly(spark, home, monkeypatch, caplog):
    _feedback(home, ROWS[:10])
    assert run(spark, "ingest") == 0
    t = tables(spark, home)
    before = {n: (t.version(n), t.read(n).count()) for n in ("bronze.feedback", "bronze.quarantine")}

    _feedback(home, ROWS[10:] + BAD, name="b.csv")  # a second file lands; the rerun must take it
    monkeypatch.setenv(faults.ENV, "ingest:disk-full:1")  # the first write: bronze.feedback
    assert run(spark, "ingest") == 1

    after = {n: (t.version(n), t.read(n).count()) for n in before}
    assert after == before  # no commit: same version, same rows (atomic)
    assert_df_equality(_ids(spark, home), _expected_ids(spark, ROWS[:10]), ignore_row_order=True, ignore_nullable=True)
    failed = _last_run(spark, home)
    assert failed["status"] == "failed"
    assert "DiskFullError: table bronze.feedback: no space left on the device" in failed["error"]
    assert "nothing was committed" in failed["error"]
    assert "DiskFullError: table bronze.feedback: no space left on the device" in caplog.text  # the job's log

    monkeypatch.delenv(faults.ENV)  # space again: the rerun converges on both files
    assert run(spark, "ingest") == 0
    assert_df_equality(_ids(spark, home), _expected_ids(spark, ROWS), ignore_row_order=True, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (42, 40, 2)


@pytest.mark.parametrize("engine", ["delta-rs", "spark-delta"])
def test_a_disk_full_table_write_commits_nothing_on_either_engine(spark, jvm_delta, tmp_path, monkeypatch, engine):
    if engine == "spark-delta" and not jvm_delta:
        pytest.skip("JVM Delta jars not on the class path")
    t = Tables(spark, StorageSettings(root=str(tmp_path / "tables"), engine=engine))
    first = spark.range(100).select(F.col("id"), (F.col("id") % 3).alias("part"))
    t.overwrite(first, "gold.sample", partition_by=["part"])
    monkeypatch.setenv(faults.ENV, "test:disk-full:1")
    with faults.stage("test"), pytest.raises(DiskFullError, match="nothing was committed"):
        t.overwrite(first.where(F.col("id") < 50), "gold.sample", where={"part": [0, 1, 2]})
    assert t.version("gold.sample") == 0
    assert t.read("gold.sample").count() == 100
    assert not list((tmp_path / "tables" / "gold" / "sample").glob("_staging*/**/*.parquet"))


def test_a_disk_full_file_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from custseg import fileio

    path = tmp_path / "reports" / D / "report.html"
    fileio.write_text(str(path), "<html>the last good report</html>")
    monkeypatch.setenv(faults.ENV, "report:disk-full:1")
    with faults.stage("report"), pytest.raises(OSError) as err:
        fileio.write_text(str(path), "<html>" + "x" * 10_000 + "</html>")
    assert err.value.errno == errno.ENOSPC
    assert path.read_text() == "<html>the last good report</html>"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.html"]  # no half-written temporary


# --- two runs racing on one date -------------------------------------------------------


def test_two_ingest_runs_racing_on_one_date_end_as_one_run(spark, home):
    _feedback(home, ROWS[:20] + BAD)
    land(home, "orders", "o.jsonl", "".join(_order(f"o{i}", f"c{i}") for i in range(1, 11)))
    start = threading.Barrier(2)
    rcs: list[int] = []

    def one_run():
        start.wait()
        rcs.append(run(spark, "ingest"))

    racers = [threading.Thread(target=one_run) for _ in range(2)]
    for r in racers:
        r.start()
    for r in racers:
        r.join(timeout=600)
    assert sorted(rcs) in ([0, 0], [0, 1]), rcs
    runs = tables(spark, home).read(JOB_RUNS).where(F.col("status") != "started").collect()
    failed = [r for r in runs if r["status"] == "failed" and not r["error"].startswith("abandoned")]
    assert len(failed) == rcs.count(1)
    for r in failed:  # the loser says why
        assert "concurrent write conflict" in r["error"], r["error"]
    if failed:
        assert run(spark, "ingest") == 0  # its rerun converges

    assert_df_equality(_ids(spark, home), _expected_ids(spark, ROWS[:20]), ignore_row_order=True, ignore_nullable=True)
    q = tables(spark, home).read("bronze.quarantine")
    assert q.where(F.col("source") == "feedback").count() == 2
    assert tables(spark, home).read("bronze.orders").count() == 10
    assert reconciliation(spark, home, "feedback") == (22, 20, 2)
    assert reconciliation(spark, home, "orders") == (10, 10, 0)
    landed = tables(spark, home).read("meta.landed_files")
    assert landed.count() == 2  # one row per file, not per run


def _order(order_id: str, customer: str) -> str:
    import json

    items = [{"sku": "SKU10001", "qty": 1, "unit_price": 2.5, "discount": 0.0}]
    row = {
        "order_id": order_id,
        "customer_id": customer,
        "loyalty_phone": None,
        "order_ts": "2026-06-30 10:00:00",
        "channel": "web",
        "store_id": None,
        "status": "completed",
        "items": items,
    }
    return json.dumps(row) + "\n"
