"""Per-record quarantine reasons: one case per bad-input class, each with its reconciliation.

The cases are landed together (one file per source: two good records plus that source's bad
ones) and ingested once; each case checks its quarantine row (reason and raw record) and
that the source's batch reconciles, read = accepted + quarantined.
"""

from __future__ import annotations

import json

import pytest
from chispa import assert_df_equality

from tests.unit.ingest_helpers import (
    FEEDBACK_HEADER,
    csv_json,
    land,
    quarantine,
    quarantine_df,
    reconciliation,
    run,
    tables,
)


def order(oid, ts="2026-06-30 10:00:00", channel="web", price="2.50", qty="1") -> str:
    return json.dumps(
        {
            "order_id": oid,
            "customer_id": "c1",
            "order_ts": ts,
            "channel": channel,
            "status": "completed",
            "items": [{"sku": "s1", "qty": qty, "unit_price": price, "discount": "0"}],
        }
    )


def event(eid, event_type="page_view", ts="2026-06-30 10:00:00") -> str:
    return json.dumps({"event_id": eid, "ts": ts, "device_id": "d1", "session_id": "s1", "event_type": event_type})


def feedback(fid, rating="4", nps="8", ts="2026-06-30 09:00:00", channel="web") -> str:
    return f"{fid},c1,{ts},{channel},{rating},{nps},fine"


GOOD = {
    "orders": ("jsonl", "id", "order_id", [order("o1"), order("o2")]),
    "events": ("jsonl", "id", "event_id", [event("e1"), event("e2")]),
    "feedback": ("csv", "id", "feedback_id", [feedback("f1"), feedback("f2")]),
}
# (case, source, bad line, expected reason)
CASES = [
    ("malformed_json", "orders", '{"order_id": "o9", "customer_id": "c1", "items": [', "malformed_json"),
    ("missing_id", "orders", order(None), "missing_order_id"),
    ("negative_price", "orders", order("o9", price="-2.50"), "bad_item_price"),
    ("negative_quantity", "orders", order("o9", qty="-1"), "bad_item_qty"),
    ("unparsable_date", "orders", order("o9", ts="31/02/2026"), "bad_order_ts"),
    ("future_timestamp", "orders", order("o9", ts="2026-09-30 10:00:00"), "future_order_ts"),
    ("bad_order_channel", "orders", order("o9", channel="fax"), "bad_channel"),
    ("bad_event_type", "events", event("e9", event_type="teleport"), "bad_event_type"),
    ("duplicate_id", "events", event("e1"), "duplicate_id"),
    ("rating_out_of_range", "feedback", feedback("f9", rating="7"), "rating_out_of_range"),
    ("nps_out_of_range", "feedback", feedback("f9", nps="11"), "nps_out_of_range"),
    ("bad_feedback_channel", "feedback", feedback("f9", channel="pigeon"), "bad_channel"),
    ("malformed_csv_row", "feedback", "f9,c1,2026-06-30 09:00:00,web,4", "malformed_csv_row"),
]


@pytest.fixture(scope="module")
def landed(spark, tmp_path_factory):
    """One ingest run over files holding every case (one Spark job set for all the cases)."""
    import os

    home = tmp_path_factory.mktemp("records")
    old = os.environ.get("CUSTSEG_HOME")
    os.environ["CUSTSEG_HOME"] = str(home)
    try:
        for source, (fmt, _, _, good) in GOOD.items():
            header = [FEEDBACK_HEADER] if fmt == "csv" else []
            bad = [c[2] for c in CASES if c[1] == source]
            land(home, source, f"part-00000.{fmt}", "\n".join([*header, *good, *bad]) + "\n")
        assert run(spark, "ingest", "ingest.max_reject_rate=1.0") == 0
    finally:
        os.environ.pop("CUSTSEG_HOME") if old is None else os.environ.__setitem__("CUSTSEG_HOME", old)
    return home


def _raw(source: str, bad: str, reason: str) -> str:
    fmt = GOOD[source][0]
    return bad if fmt == "jsonl" or reason == "malformed_csv_row" else csv_json(FEEDBACK_HEADER, bad)


@pytest.mark.parametrize(("source", "bad", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_record_is_quarantined_with_its_reason_and_the_batch_reconciles(spark, landed, source, bad, reason):
    from pyspark.sql import functions as F

    fmt = GOOD[source][0]
    raw = _raw(source, bad, reason)
    got = quarantine(spark, landed, source).where(F.col("raw_record") == raw)
    assert_df_equality(got, quarantine_df(spark, [(reason, raw, f"part-00000.{fmt}")]), ignore_nullable=True)
    n_bad = sum(1 for c in CASES if c[1] == source)
    assert reconciliation(spark, landed, source) == (2 + n_bad, 2, n_bad)


@pytest.mark.parametrize("source", list(GOOD))
def test_only_the_good_records_reach_bronze(spark, landed, source):
    fmt, _, key, good = GOOD[source]
    accepted = tables(spark, landed).read(f"bronze.{source}").select(key)
    ids = [json.loads(g)[key] if fmt == "jsonl" else g.split(",")[0] for g in good]
    expected = spark.createDataFrame([(i,) for i in ids], f"{key} string")
    assert_df_equality(accepted, expected, ignore_row_order=True, ignore_nullable=True)
    expected_q = quarantine_df(
        spark, [(c[3], _raw(source, c[2], c[3]), f"part-00000.{fmt}") for c in CASES if c[1] == source]
    )
    assert_df_equality(quarantine(spark, landed, source), expected_q, ignore_row_order=True, ignore_nullable=True)


def test_generated_good_records_pass_the_enum_checks():
    """What datagen writes for the enum columns is accepted (no new reason on clean records)."""
    from custseg.datagen.events import EVENT_TYPES as GEN_EVENT_TYPES
    from custseg.datagen.feedback import FEEDBACK_CHANNELS as GEN_FEEDBACK_CHANNELS
    from custseg.datagen.personas import CHANNELS as GEN_CHANNELS
    from custseg.sources.catalog import EVENT_TYPES, FEEDBACK_CHANNELS, ORDER_CHANNELS

    assert set(GEN_EVENT_TYPES) <= set(EVENT_TYPES)
    assert set(GEN_CHANNELS) <= set(ORDER_CHANNELS)
    assert set(GEN_FEEDBACK_CHANNELS) <= set(FEEDBACK_CHANNELS)
