"""Whole-file failures, unknown columns, the reject-rate threshold, reruns and next-day batches.

Each test lands small files by hand and runs the ingest stage through the job entry
(custseg.cli.run_job); it checks the quarantine rows and that read = accepted + quarantined.
"""

from __future__ import annotations

import gzip
import json
import logging

from chispa import assert_df_equality
from pyspark.sql import functions as F

from tests.unit import ingest_helpers
from tests.unit.ingest_helpers import (
    FEEDBACK_HEADER,
    D,
    csv_json,
    land,
    quarantine,
    quarantine_df,
    reconciliation,
    run,
    tables,
)

GOOD_ROWS = ["f1,c1,2026-06-30 09:00:00,web,5,9,great", "f2,c2,2026-06-30 10:00:00,app,4,8,fine"]
GOOD_CSV = "\n".join([FEEDBACK_HEADER, *GOOD_ROWS]) + "\n"

home = ingest_helpers.home  # the fixture: CUSTSEG_HOME in tmp_path


def _bronze_ids(spark, home, table="bronze.feedback", key="feedback_id"):
    return tables(spark, home).read(table).select(key)


def _ids(spark, *ids, key="feedback_id"):
    return spark.createDataFrame([(i,) for i in ids], f"{key} string")


def _ingest_feedback_with(spark, home, name: str, content: str | bytes, accepted=("f1", "f2")) -> None:
    land(home, "feedback", "good.csv", GOOD_CSV)
    land(home, "feedback", name, content)
    assert run(spark, "ingest", "ingest.max_reject_rate=1.0") == 0
    # the good file of the batch is accepted whatever happened to the bad one
    assert_df_equality(_bronze_ids(spark, home), _ids(spark, *accepted), ignore_row_order=True, ignore_nullable=True)


def test_empty_file_is_one_quarantine_row_counted_as_one_record(spark, home):
    _ingest_feedback_with(spark, home, "empty.csv", b"")
    expected = quarantine_df(spark, [("empty_file", None, "empty.csv")])
    assert_df_equality(quarantine(spark, home, "feedback"), expected, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (3, 2, 1)


def test_wrong_delimiter_quarantines_every_line_of_the_file(spark, home):
    rows = ["f3;c3;2026-06-30 09:00:00;web;5;9;ok", "f4;c4;2026-06-30 09:00:00;web;3;5;meh"]
    _ingest_feedback_with(spark, home, "semicolon.csv", "\n".join([FEEDBACK_HEADER.replace(",", ";"), *rows]) + "\n")
    expected = quarantine_df(spark, [("wrong_delimiter", r, "semicolon.csv") for r in rows])
    assert_df_equality(quarantine(spark, home, "feedback"), expected, ignore_row_order=True, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (4, 2, 2)


def test_missing_column_names_the_column(spark, home):
    header = "feedback_id,customer_id,ts,channel,rating,text"  # no nps
    rows = ["f3,c3,2026-06-30 09:00:00,web,5,ok"]
    _ingest_feedback_with(spark, home, "no_nps.csv", "\n".join([header, *rows]) + "\n")
    expected = quarantine_df(spark, [("missing_column:nps", rows[0], "no_nps.csv")])
    assert_df_equality(quarantine(spark, home, "feedback"), expected, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (3, 2, 1)


def test_invalid_utf8_quarantines_the_file(spark, home):
    latin1 = "\n".join(
        [FEEDBACK_HEADER, "f3,c3,2026-06-30 09:00:00,web,5,9,très bien", "f4,c4,2026-06-30 09:00:00,web,5,9,ok"]
    )
    _ingest_feedback_with(spark, home, "latin1.csv", (latin1 + "\n").encode("latin-1"))
    expected = quarantine_df(
        spark,
        [
            ("invalid_utf8", "f3,c3,2026-06-30 09:00:00,web,5,9,tr\ufffds bien", "latin1.csv"),
            ("invalid_utf8", "f4,c4,2026-06-30 09:00:00,web,5,9,ok", "latin1.csv"),
        ],
    )
    assert_df_equality(quarantine(spark, home, "feedback"), expected, ignore_row_order=True, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (4, 2, 2)


def test_csv_with_a_short_last_row_and_no_newline_is_truncated(spark, home):
    rows = ["f3,c3,2026-06-30 09:00:00,web,5,9,ok", "f4,c4,2026-06-30 09:0"]
    _ingest_feedback_with(spark, home, "cut.csv", "\n".join([FEEDBACK_HEADER, *rows]))  # no final newline
    expected = quarantine_df(spark, [("truncated_last_line", r, "cut.csv") for r in rows])
    assert_df_equality(quarantine(spark, home, "feedback"), expected, ignore_row_order=True, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (4, 2, 2)


def _order(oid: str, ts: str = "2026-06-30 10:00:00") -> str:
    return json.dumps(
        {
            "order_id": oid,
            "customer_id": "c1",
            "order_ts": ts,
            "channel": "web",
            "status": "completed",
            "items": [{"sku": "s1", "qty": "1", "unit_price": "2.50", "discount": "0"}],
        }
    )


def test_jsonl_with_an_incomplete_last_object_is_truncated(spark, home):
    land(home, "orders", "good.jsonl", _order("o1") + "\n")
    lines = [_order("o2"), _order("o3")[:40]]
    land(home, "orders", "cut.jsonl", "\n".join(lines))  # the transfer stopped mid-object
    assert run(spark, "ingest", "ingest.max_reject_rate=1.0") == 0
    expected = quarantine_df(spark, [("truncated_last_line", r, "cut.jsonl") for r in lines])
    assert_df_equality(quarantine(spark, home, "orders"), expected, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(
        _bronze_ids(spark, home, "bronze.orders", "order_id"), _ids(spark, "o1", key="order_id"), ignore_nullable=True
    )
    assert reconciliation(spark, home, "orders") == (3, 1, 2)


def test_complete_last_line_without_newline_is_accepted(spark, home):
    land(home, "orders", "part.jsonl", _order("o1") + "\n" + _order("o2"))
    assert run(spark, "ingest") == 0
    assert_df_equality(
        _bronze_ids(spark, home, "bronze.orders", "order_id"),
        _ids(spark, "o1", "o2", key="order_id"),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert reconciliation(spark, home, "orders") == (2, 2, 0)


def test_extra_and_reordered_columns_are_read_by_name_and_logged(spark, home, caplog):
    header = "customer_id,feedback_id,ts,channel,rating,nps,text,survey_tool"
    rows = ["c3,f3,2026-06-30 09:00:00,web,5,9,ok,typeform", "c4,f4,2026-06-30 09:00:00,web,9,9,bad,typeform"]
    with caplog.at_level(logging.WARNING, logger="custseg.file_checks"):
        _ingest_feedback_with(spark, home, "z_extra.csv", "\n".join([header, *rows]) + "\n", ("f1", "f2", "f3"))
    bronze = tables(spark, home).read("bronze.feedback").where(F.col("feedback_id") == "f3")
    assert [tuple(r) for r in bronze.select("feedback_id", "customer_id", "rating", "text").collect()] == [
        ("f3", "c3", "5", "ok")
    ]
    assert "survey_tool" not in bronze.columns
    expected = quarantine_df(spark, [("rating_out_of_range", csv_json(header, rows[1]), "z_extra.csv")])
    assert_df_equality(quarantine(spark, home, "feedback"), expected, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (4, 3, 1)
    warning = [r.getMessage() for r in caplog.records if "survey_tool" in r.getMessage()]
    assert len(warning) == 1 and "feedback" in warning[0] and "z_extra.csv" in warning[0]


def test_gzip_files_are_read(spark, home):
    land(home, "feedback", "good.csv.gz", gzip.compress(GOOD_CSV.encode()))
    assert run(spark, "ingest") == 0
    assert_df_equality(_bronze_ids(spark, home), _ids(spark, "f1", "f2"), ignore_row_order=True, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (2, 2, 0)


def test_reject_rate_above_the_limit_fails_after_writing_quarantine(spark, home):
    from custseg.runs import JOB_RUNS, latest_runs

    bad = ["f3,c3,2026-06-30 09:00:00,web,0,9,x", "f4,c4,2026-06-30 09:00:00,web,5,12,y"]
    land(home, "feedback", "mixed.csv", "\n".join([FEEDBACK_HEADER, *GOOD_ROWS, *bad]) + "\n")
    assert run(spark, "ingest", "ingest.max_reject_rate=0.4") == 1  # 2 of 4 = 50% rejected
    expected = quarantine_df(
        spark,
        [
            ("rating_out_of_range", csv_json(FEEDBACK_HEADER, bad[0]), "mixed.csv"),
            ("nps_out_of_range", csv_json(FEEDBACK_HEADER, bad[1]), "mixed.csv"),
        ],
    )
    assert_df_equality(quarantine(spark, home, "feedback"), expected, ignore_row_order=True, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (4, 2, 2)
    run_row = tables(spark, home).read(JOB_RUNS).transform(latest_runs).collect()
    assert [(r["status"], r["quarantined"]) for r in run_row] == [("failed", 2)]
    assert "RejectRateExceeded" in run_row[0]["error"] and "feedback 50.0%" in run_row[0]["error"]


def test_rerun_of_a_date_leaves_bronze_and_quarantine_identical(spark, home):
    land(home, "feedback", "a.csv", GOOD_CSV + "f9,c9,2026-06-30 09:00:00,web,8,9,x\n")
    assert run(spark, "ingest", "ingest.max_reject_rate=1.0") == 0
    t = tables(spark, home)
    first = t.read("bronze.feedback").drop("_ingested_at").cache()
    first_q = t.read("bronze.quarantine").drop("_ingested_at").cache()
    first.count(), first_q.count()
    assert run(spark, "ingest", "ingest.max_reject_rate=1.0") == 0
    assert_df_equality(t.read("bronze.feedback").drop("_ingested_at"), first, ignore_row_order=True)
    assert_df_equality(t.read("bronze.quarantine").drop("_ingested_at"), first_q, ignore_row_order=True)
    assert reconciliation(spark, home, "feedback") == (3, 2, 1)
    first.unpersist(), first_q.unpersist()


def test_next_day_appends_without_touching_the_first_day(spark, home):
    nxt = "2026-07-01"
    land(home, "feedback", "a.csv", GOOD_CSV)
    land(home, "feedback", "b.csv", f"{FEEDBACK_HEADER}\nf5,c5,2026-07-01 09:00:00,web,3,6,ok\n", date=nxt)
    assert run(spark, "ingest") == 0
    t = tables(spark, home)
    day_one = t.read("bronze.feedback").cache()
    day_one.count()
    assert run(spark, "ingest", date=nxt) == 0
    after = t.read("bronze.feedback")
    assert_df_equality(after.where(F.col("_batch_date") == F.lit(D).cast("date")), day_one, ignore_row_order=True)
    assert_df_equality(
        after.where(F.col("_batch_date") == F.lit(nxt).cast("date")).select("feedback_id"),
        _ids(spark, "f5"),
        ignore_nullable=True,
    )
    assert reconciliation(spark, home, "feedback", nxt) == (1, 1, 0)
    day_one.unpersist()
