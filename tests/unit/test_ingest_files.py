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


def _ingest_feedback_with(spark, home, name: str, content: str | bytes, accepted=("f1", "f2"), *sets: str) -> None:
    land(home, "feedback", "good.csv", GOOD_CSV)
    land(home, "feedback", name, content)
    assert run(spark, "ingest", "ingest.max_reject_rate=1.0", *sets) == 0
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
    """With on_unknown_fields: accept, an extra column is kept in raw_record only, with a warning."""
    header = "customer_id,feedback_id,ts,channel,rating,nps,text,survey_tool"
    rows = ["c3,f3,2026-06-30 09:00:00,web,5,9,ok,typeform", "c4,f4,2026-06-30 09:00:00,web,9,9,bad,typeform"]
    content = "\n".join([header, *rows]) + "\n"
    accept = "sources={feedback: {on_unknown_fields: accept}}"
    with caplog.at_level(logging.WARNING, logger="custseg.file_checks"):
        _ingest_feedback_with(spark, home, "z_extra.csv", content, ("f1", "f2", "f3"), accept)
    bronze = tables(spark, home).read("bronze.feedback").where(F.col("feedback_id") == "f3")
    assert [tuple(r) for r in bronze.select("feedback_id", "customer_id", "rating", "text").collect()] == [
        ("f3", "c3", "5", "ok")
    ]
    assert "survey_tool" not in bronze.columns
    expected = quarantine_df(spark, [("rating_out_of_range", csv_json(header, rows[1]), "z_extra.csv")])
    assert_df_equality(quarantine(spark, home, "feedback"), expected, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (4, 3, 1)
    warning = [r.getMessage() for r in caplog.records if "survey_tool" in r.getMessage()]
    (by_file,) = [w for w in warning if "z_extra.csv" in w]  # the file, then the batch's count
    assert "feedback" in by_file and any("2 records carry undeclared fields (survey_tool)" in w for w in warning)


def test_gzip_files_are_read(spark, home):
    land(home, "feedback", "good.csv.gz", gzip.compress(GOOD_CSV.encode()))
    assert run(spark, "ingest") == 0
    assert_df_equality(_bronze_ids(spark, home), _ids(spark, "f1", "f2"), ignore_row_order=True, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (2, 2, 0)


def test_reject_rate_above_the_limit_fails_before_anything_is_written(spark, home):
    """The gate decides before the commit: a batch over the limit reaches neither bronze nor quarantine,
    so no later conform can read it; the other sources of the run are written."""
    from custseg.runs import JOB_RUNS

    bad = ["f3,c3,2026-06-30 09:00:00,web,0,9,x", "f4,c4,2026-06-30 09:00:00,web,5,12,y"]
    land(home, "feedback", "mixed.csv", "\n".join([FEEDBACK_HEADER, *bad, *GOOD_ROWS]) + "\n")
    land(home, "orders", "o.jsonl", _order("o1") + "\n")
    assert run(spark, "ingest", "ingest.max_reject_rate=0.4") == 1  # 2 of 4 = 50% rejected
    t = tables(spark, home)
    assert not t.exists("bronze.feedback")
    assert t.read("bronze.quarantine").where(F.col("source") == "feedback").count() == 0
    assert t.read("meta.reconciliation").where(F.col("source") == "feedback").count() == 0
    assert [r["order_id"] for r in t.read("bronze.orders").collect()] == ["o1"]  # the other source carries on
    assert reconciliation(spark, home, "orders") == (1, 1, 0)
    (row,) = [r for r in t.read(JOB_RUNS).collect() if r["status"] == "failed"]
    assert "RejectRateExceeded" in row["error"] and "feedback: reject rate 50.0%" in row["error"]
    details = json.loads(row["details"])
    assert details["gated_reasons"]["feedback"] == {"rating_out_of_range": 1, "nps_out_of_range": 1}
    assert details["reconciliation"]["feedback"]["gate"].startswith("reject rate")


def test_unknown_csv_column_quarantines_its_records_by_default(spark, home):
    header = f"{FEEDBACK_HEADER},survey_tool"
    row = "f3,c3,2026-06-30 09:00:00,web,5,9,ok,typeform"
    _ingest_feedback_with(spark, home, "z_extra.csv", f"{header}\n{row}\n")
    expected = quarantine_df(spark, [("unknown_field:survey_tool", csv_json(header, row), "z_extra.csv")])
    assert_df_equality(quarantine(spark, home, "feedback"), expected, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (3, 2, 1)


def test_renamed_json_field_is_quarantined_not_a_guest_order(spark, home):
    """customer_id renamed upstream: without the check every order would silently become a guest order."""
    renamed = json.loads(_order("o2"))
    renamed["customerId"] = renamed.pop("customer_id")
    land(home, "orders", "o.jsonl", _order("o1") + "\n" + json.dumps(renamed) + "\n")
    assert run(spark, "ingest", "ingest.max_reject_rate=1.0") == 0
    assert [r["order_id"] for r in tables(spark, home).read("bronze.orders").collect()] == ["o1"]
    expected = quarantine_df(spark, [("unknown_field:customerId", json.dumps(renamed), "o.jsonl")])
    assert_df_equality(quarantine(spark, home, "orders"), expected, ignore_nullable=True)
    assert reconciliation(spark, home, "orders") == (2, 1, 1)


def test_schema_drift_fails_the_batch_when_the_source_says_fail(spark, home):
    extra = json.loads(_order("o2"))
    extra["loyalty_tier"] = "gold"
    land(home, "orders", "o.jsonl", _order("o1") + "\n" + json.dumps(extra) + "\n")
    land(home, "feedback", "good.csv", GOOD_CSV)
    assert run(spark, "ingest", "ingest.max_reject_rate=1.0", "sources={orders: {on_unknown_fields: fail}}") == 1
    t = tables(spark, home)
    assert not t.exists("bronze.orders") and t.read("bronze.feedback").count() == 2
    error = t.read("gold.job_runs").where(F.col("status") == "failed").first()["error"]
    assert "BatchGated" in error and "orders: schema drift: 1 records" in error


def test_reconciliation_fails_when_records_are_lost_between_files_and_reader(spark, home, monkeypatch):
    """The files' line count is independent of the parsers: a reader that loses a record is caught
    before anything is written."""
    import custseg.stages.ingest as stage

    real = stage.read_raw
    monkeypatch.setattr(stage, "read_raw", lambda *a, **k: real(*a, **k).where(F.col("feedback_id") != "f2"))
    land(home, "feedback", "good.csv", GOOD_CSV)
    assert run(spark, "ingest") == 1
    t = tables(spark, home)
    assert not t.exists("bronze.feedback")
    error = t.read("gold.job_runs").where(F.col("status") == "failed").first()["error"]
    assert "the files hold 2 records (non-blank lines) but 1 were read" in error


def test_reconciliation_fails_when_the_commit_lost_rows(spark, home, monkeypatch):
    """Rows read back from the committed partitions must equal the rows accepted and quarantined."""
    from custseg.storage import Tables

    real = Tables.overwrite

    def lossy(self, df, name, *a, **k):
        return real(self, df.limit(1) if name == "bronze.feedback" else df, name, *a, **k)

    monkeypatch.setattr(Tables, "overwrite", lossy)
    land(home, "feedback", "good.csv", GOOD_CSV)
    assert run(spark, "ingest") == 1
    row = tables(spark, home).read("gold.job_runs").where(F.col("status") == "failed").first()
    assert (
        "ReconciliationError" in row["error"]
        and "committed 1 bronze / 0 quarantine rows, expected 2 / 0" in row["error"]
    )
    assert json.loads(row["details"])["reconciliation"]["feedback"]["committed_accepted"] == 1


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
    first = t.version("bronze.feedback")
    assert run(spark, "ingest", date=nxt) == 0
    # Day one as committed then (a cached DataFrame of the table would follow JVM Delta's
    # cache refresh after the next write, so the version pins it).
    day_one = t.read("bronze.feedback", version=first)
    after = t.read("bronze.feedback")
    assert_df_equality(after.where(F.col("_batch_date") == F.lit(D).cast("date")), day_one, ignore_row_order=True)
    assert_df_equality(
        after.where(F.col("_batch_date") == F.lit(nxt).cast("date")).select("feedback_id"),
        _ids(spark, "f5"),
        ignore_nullable=True,
    )
    assert reconciliation(spark, home, "feedback", nxt) == (1, 1, 0)


def test_files_in_underscore_and_dot_folders_are_not_read(spark, home):
    """In-flight uploads (_temporary/, .staging/) are not part of the delivery."""
    land(home, "feedback", "good.csv", GOOD_CSV)
    land(home, "feedback", "_temporary/0/part-1.csv", f"{FEEDBACK_HEADER}\nf7,c7,2026-06-30 09:00:00,web,5,9,x\n")
    land(home, "feedback", ".staging/part-2.csv", f"{FEEDBACK_HEADER}\nf8,c8,2026-06-30 09:00:00,web,5,9,x\n")
    land(home, "feedback", "sub/_part-3.csv", f"{FEEDBACK_HEADER}\nf9,c9,2026-06-30 09:00:00,web,5,9,x\n")
    assert run(spark, "ingest") == 0
    assert_df_equality(_bronze_ids(spark, home), _ids(spark, "f1", "f2"), ignore_row_order=True, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (2, 2, 0)


def test_a_required_success_marker_holds_back_an_incomplete_delivery(spark, home):
    marker = "sources={feedback: {require_success_marker: true}}"
    land(home, "feedback", "good.csv", GOOD_CSV)
    land(home, "orders", "o.jsonl", _order("o1") + "\n")
    assert run(spark, "ingest", marker) == 1
    t = tables(spark, home)
    assert not t.exists("bronze.feedback") and t.read("bronze.orders").count() == 1  # orders carry on
    error = t.read("gold.job_runs").where(F.col("status") == "failed").first()["error"]
    assert "feedback: incomplete delivery: no _SUCCESS" in error
    land(home, "feedback", "_SUCCESS", b"")  # the sender finished
    assert run(spark, "ingest", marker) == 0
    assert_df_equality(_bronze_ids(spark, home), _ids(spark, "f1", "f2"), ignore_row_order=True, ignore_nullable=True)


def test_truncated_gzip_is_quarantined_and_the_other_sources_carry_on(spark, home):
    """A gzip cut in transfer used to abort the whole ingest (Spark's EOFException)."""
    body = FEEDBACK_HEADER + "\n" + "".join(f"f{i},c{i},2026-06-30 09:00:00,web,5,9,text {i}\n" for i in range(3, 3000))
    whole = gzip.compress(body.encode())
    land(home, "orders", "o.jsonl", _order("o1") + "\n")
    _ingest_feedback_with(spark, home, "cut.csv.gz", whole[: len(whole) // 2])
    assert_df_equality(
        quarantine(spark, home, "feedback"),
        quarantine_df(spark, [("corrupt_gzip", None, "cut.csv.gz")]),
        ignore_nullable=True,
    )
    assert reconciliation(spark, home, "feedback") == (3, 2, 1)
    assert reconciliation(spark, home, "orders") == (1, 1, 0)


def test_truncated_gzip_with_a_bad_header_is_corrupt_gzip_not_a_crash(spark, home):
    """Found by tests/unit/test_landing_fuzz.py: a cut gzip whose header also lacked a column was
    quarantined line by line, and reading its lines aborted the ingest (EOFException)."""
    body = FEEDBACK_HEADER.replace("nps", "score") + "\n"
    body += "".join(f"f{i},c{i},2026-06-30 09:00:00,web,5,9,text {i}\n" for i in range(3, 3000))
    whole = gzip.compress(body.encode())
    _ingest_feedback_with(spark, home, "cut.csv.gz", whole[: len(whole) // 2])
    assert_df_equality(
        quarantine(spark, home, "feedback"),
        quarantine_df(spark, [("corrupt_gzip", None, "cut.csv.gz")]),
        ignore_nullable=True,
    )
    assert reconciliation(spark, home, "feedback") == (3, 2, 1)


def test_csv_cut_inside_its_last_field_is_quarantined(spark, home):
    """No final newline: the last value ("fi" of "fine", or an open quote) may be cut; the file is not trusted."""
    cut = "\n".join(
        [FEEDBACK_HEADER, "f3,c3,2026-06-30 09:00:00,web,5,9,great", "f4,c4,2026-06-30 09:00:00,app,4,8,fi"]
    )
    _ingest_feedback_with(spark, home, "cut.csv", cut)
    expected = [("truncated_last_line", line, "cut.csv") for line in cut.split("\n")[1:]]  # lines as they landed
    assert_df_equality(
        quarantine(spark, home, "feedback"), quarantine_df(spark, expected), ignore_row_order=True, ignore_nullable=True
    )
    assert reconciliation(spark, home, "feedback") == (4, 2, 2)


def test_open_quote_at_the_end_is_truncated_even_when_final_newlines_are_not_required(spark, home):
    cut = f'{FEEDBACK_HEADER}\nf3,c3,2026-06-30 09:00:00,web,5,9,"great, really'
    lenient = "sources={feedback: {csv_require_final_newline: false}}"
    _ingest_feedback_with(spark, home, "cut.csv", cut, ("f1", "f2"), lenient)
    (row,) = quarantine(spark, home, "feedback").collect()
    assert row["reason"] == "truncated_last_line"
    # without the open quote, a lenient source accepts a complete-looking last line
    land(home, "feedback", "cut.csv", f"{FEEDBACK_HEADER}\nf3,c3,2026-06-30 09:00:00,web,5,9,great")
    assert run(spark, "ingest", "ingest.max_reject_rate=1.0", lenient) == 0
    assert_df_equality(
        _bronze_ids(spark, home), _ids(spark, "f1", "f2", "f3"), ignore_row_order=True, ignore_nullable=True
    )


def test_a_redelivered_file_is_quarantined_as_duplicate_file(spark, home):
    """The same content again, under another name or on a later date, must not count twice."""
    land(home, "feedback", "good.csv", GOOD_CSV)
    assert run(spark, "ingest") == 0
    land(home, "feedback", "good.csv", GOOD_CSV, date="2026-07-01")  # re-sent the next day
    land(home, "feedback", "new.csv", f"{FEEDBACK_HEADER}\nf5,c5,2026-07-01 09:00:00,web,3,6,ok\n", date="2026-07-01")
    land(
        home,
        "feedback",
        "new-copy.csv",
        f"{FEEDBACK_HEADER}\nf5,c5,2026-07-01 09:00:00,web,3,6,ok\n",
        date="2026-07-01",
    )
    assert run(spark, "ingest", "ingest.max_reject_rate=1.0", date="2026-07-01") == 0
    t = tables(spark, home)
    day2 = t.read("bronze.feedback").where(F.col("_batch_date") == F.lit("2026-07-01").cast("date"))
    assert [r["feedback_id"] for r in day2.collect()] == ["f5"]
    reasons = quarantine(spark, home, "feedback").select("reason", "file").collect()
    assert sorted(tuple(r) for r in reasons) == [("duplicate_file", "good.csv")] * 2 + [("duplicate_file", "new.csv")]
    assert reconciliation(spark, home, "feedback", date="2026-07-01") == (4, 1, 3)
    # a rerun of the first date is not a re-delivery of itself
    assert run(spark, "ingest", date=D) == 0
    assert reconciliation(spark, home, "feedback") == (2, 2, 0)


def test_a_line_of_tabs_in_a_csv_is_blank_to_the_reader_and_to_the_line_count(spark, home):
    """Found by tests/unit/test_landing_fuzz.py: Spark's CSV reader skips a line of tabs (Java trim),
    the independent line count took it for a record, and the mismatch gated the whole batch."""
    land(
        home,
        "feedback",
        "dir with space/tabs.csv",
        FEEDBACK_HEADER + "\n" + GOOD_ROWS[0] + "\n\t\n \t \n" + GOOD_ROWS[1] + "\n",
    )
    assert run(spark, "ingest") == 0
    assert_df_equality(_bronze_ids(spark, home), _ids(spark, "f1", "f2"), ignore_row_order=True, ignore_nullable=True)
    assert reconciliation(spark, home, "feedback") == (2, 2, 0)
