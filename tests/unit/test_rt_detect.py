"""Trigger detection: sessions as a real stream (file source, watermark, late events), the session
triggers on closed sessions, and the stateless triggers on one micro-batch."""

from __future__ import annotations

import json
import os
from datetime import date, datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.realtime.decide import Gold
from custseg.realtime.detect import (
    CANDIDATE_COLUMNS,
    CANDIDATE_SCHEMA,
    session_candidates,
    sessions,
    stateless_candidates,
)
from custseg.realtime.triggers import parse_triggers

TRIGGERS = parse_triggers(
    {
        "triggers": {
            "cart": {"kind": "cart_abandonment", "timeout_minutes": 30},
            "browse": {"kind": "browse_abandonment", "min_views": 3, "timeout_minutes": 30},
            "xsell": {"kind": "post_purchase_cross_sell", "min_confidence": 0.3, "min_lift": 1.1},
            "back": {"kind": "declining_return"},
            "lunch": {"kind": "daypart", "min_lunch_share": 0.5, "lead_minutes": 60},
        }
    },
    "test",
)
EVENT_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("customer_key", T.StringType()),
        T.StructField("device_key", T.StringType()),
        T.StructField("session_id", T.StringType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("sku", T.StringType()),
        T.StructField("category", T.StringType()),
    ]
)


def ev(eid, hhmm, who, etype, sku=None, category=None, day="2026-12-07"):
    return {
        "event_id": eid,
        "ts": f"{day}T{hhmm}:00",
        "customer_key": f"c{who}",
        "device_key": f"d{who}",
        "session_id": f"s{who}",
        "event_type": etype,
        "sku": sku,
        "category": category,
    }


def _write(folder, n, rows):
    path = folder / f"part-{n:02d}.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.utime(path, (1_700_000_000 + n * 10, 1_700_000_000 + n * 10))  # the file source takes oldest first


def test_sessions_stream_closes_on_watermark_with_late_events(spark, tmp_path):
    landing = tmp_path / "events"
    landing.mkdir()
    # Batch 1: A views shoes twice; B views bags 3 times and buys; C leaves K1 in the cart;
    # D adds K2 and removes it.
    _write(
        landing,
        1,
        [
            ev("a1", "10:00", "A", "product_view", "S1", "Shoes"),
            ev("a2", "10:05", "A", "product_view", "S2", "shoes"),
            ev("b1", "10:00", "B", "product_view", "B1", "bags"),
            ev("b2", "10:02", "B", "product_view", "B1", "bags"),
            ev("b3", "10:04", "B", "product_view", "B2", "bags"),
            ev("b4", "10:06", "B", "purchase"),
            ev("c1", "10:01", "C", "add_to_cart", "K1", "toys"),
            ev("d1", "10:01", "D", "add_to_cart", "K2", "toys"),
            ev("d2", "10:03", "D", "remove_from_cart", "K2", "toys"),
        ],
    )
    # Batch 2: E at 10:40 moves the watermark to 10:30.
    _write(landing, 2, [ev("e1", "10:40", "E", "page_view")])
    # Batch 3: A's third view arrives late (10:32, behind E's 10:40) but inside the watermark: it
    # joins A's session. F's three views at 09:00 are behind the watermark: dropped.
    _write(
        landing,
        3,
        [ev("a3", "10:32", "A", "product_view", "S1", "shoes")]
        + [ev(f"f{i}", "09:00", "F", "product_view", "X", "hats") for i in range(3)],
    )
    # Batch 4: G at 13:00 moves the watermark past every session's end.
    _write(landing, 4, [ev("g1", "13:00", "G", "page_view")])

    stream = spark.readStream.schema(EVENT_SCHEMA).option("maxFilesPerTrigger", 1).json(str(landing))
    closed = sessions(stream, TRIGGERS, "10 minutes")
    out = tmp_path / "closed"
    query = (
        closed.writeStream.outputMode("append")
        .format("parquet")
        .option("path", str(out))
        .option("checkpointLocation", str(tmp_path / "chk"))
        .trigger(availableNow=True)
        .start()
    )
    assert query.awaitTermination(240)
    assert query.exception() is None
    got = spark.read.parquet(str(out))
    rows = {r["customer_key"]: r for r in got.collect()}  # a handful of test sessions
    # G's session is still open; F's events were too late to make one.
    assert set(rows) == {"cA", "cB", "cC", "cD", "cE"}
    a = rows["cA"]
    assert a["n_events"] == 3 and a["session_start"] == datetime(2026, 12, 7, 10, 0)
    assert a["session_end"] == datetime(2026, 12, 7, 11, 2) and a["last_event_id"] == "a3"
    assert sorted((v["sku"], v["category"]) for v in a["views"]) == [("S1", "shoes"), ("S1", "shoes"), ("S2", "shoes")]
    assert rows["cB"]["purchased"] is True and rows["cA"]["purchased"] is False

    cands = session_candidates(got, TRIGGERS)
    fired = {(r["customer_key"], r["trigger"], r["sku"], r["category"]) for r in cands.collect()}
    assert fired == {("cA", "browse", None, "shoes"), ("cC", "cart", "K1", "toys")}
    (a_row,) = [r for r in cands.collect() if r["customer_key"] == "cA"]
    assert a_row["event_ts"] == datetime(2026, 12, 7, 11, 2) and a_row["source_event_id"] == "a3"
    assert a_row["reason"] == "viewed category shoes 3 times in a session, no order within 30 min"
    assert a_row["trigger_key"].startswith("session:") and "dA" not in a_row["trigger_key"]


def _static_sessions(spark, rows):
    return sessions(spark.createDataFrame(rows, EVENT_SCHEMA), TRIGGERS, "10 minutes")


def _rows(dicts):
    return [
        (d["event_id"], datetime.fromisoformat(d["ts"]), *[d[k] for k in ("customer_key", "device_key", "session_id")])
        + (d["event_type"], d["sku"], d["category"])
        for d in dicts
    ]


def test_session_candidates_no_fire_on_an_order_from_another_channel_or_too_few_views(spark):
    closed = _static_sessions(
        spark,
        _rows(
            [
                ev("a1", "10:00", "A", "product_view", "S1", "shoes"),
                ev("a2", "10:01", "A", "product_view", "S1", "shoes"),
                ev("a3", "10:02", "A", "product_view", "S1", "shoes"),
                ev("h1", "10:00", "H", "product_view", "S1", "shoes"),
                ev("h2", "10:01", "H", "product_view", "S1", "shoes"),
                ev("h3", "10:02", "H", "product_view", "S1", "hats"),
                ev("h4", "10:03", "H", "product_view", "S1", "coats"),
                ev("k1", "10:00", "K", "add_to_cart", "P1", "toys"),
                ev("k2", "10:01", "K", "add_to_cart", "P2", "toys"),
                ev("k3", "10:02", "K", "remove_from_cart", "P1", "toys"),
            ]
        ),
    )
    orders = spark.createDataFrame([("cA", datetime(2026, 12, 7, 10, 20))], "customer_key string, order_ts timestamp")
    got = session_candidates(closed, TRIGGERS, orders).select("customer_key", "trigger", "sku", "category")
    # A ordered in-store 18 minutes after its last view; H viewed shoes only twice; K kept P2.
    expected = spark.createDataFrame(
        [("cK", "cart", "P2", "toys")], "customer_key string, trigger string, sku string, category string"
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert session_candidates(closed, TRIGGERS).where(F.col("customer_key") == "cA").count() == 1


def _gold(spark, customers, rules=None):
    base = spark.createDataFrame(customers, "customer_key string, declining boolean, weekday_lunch_share double")
    rules_df = spark.createDataFrame(
        rules or [], "antecedent array<string>, consequent string, confidence double, lift double"
    )
    return Gold(
        customers=base,
        contacted_today=spark.createDataFrame([], "customer_key string"),
        cross_sell_rules=rules_df,
        products=spark.createDataFrame(
            [("S1", "shoes"), ("S2", "socks"), ("S3", "bags")], "sku string, category string"
        ),
        run_date=date(2026, 12, 7),
        basket_level="category",
        lunch_hours=(11, 14),
    )


def test_stateless_candidates(spark):
    gold = _gold(
        spark,
        [("c1", True, 0.1), ("c2", False, 0.8), ("c3", False, 0.2), ("c4", None, None)],
        [
            (["shoes"], "socks", 0.5, 1.5),
            (["shoes"], "bags", 0.6, 1.05),  # lift below the trigger's 1.1
            (["shoes", "hats"], "coats", 0.9, 3.0),  # antecedent not all in the order
            (["bags"], "shoes", 0.4, 1.2),  # consequent already in the order
        ],
    )
    # Monday 7 Dec 2026: c1 (declining) shows up twice; c2 (lunch regular) opens at 10:15 (in the
    # 60 minutes before 11:00) and again at 12:00 (too late); c3 (no regular) at 10:30.
    events = spark.createDataFrame(
        [
            ("e1", datetime(2026, 12, 7, 9, 0), "c1", "page_view"),
            ("e2", datetime(2026, 12, 7, 9, 5), "c1", "login"),
            ("e3", datetime(2026, 12, 7, 10, 15), "c2", "page_view"),
            ("e4", datetime(2026, 12, 7, 12, 0), "c2", "page_view"),
            ("e5", datetime(2026, 12, 7, 10, 30), "c3", "page_view"),
            ("e6", datetime(2026, 12, 5, 10, 30), "c2", "page_view"),  # Saturday
            ("e7", datetime(2026, 12, 7, 9, 30), None, "page_view"),  # unknown visitor
        ],
        "event_id string, ts timestamp, customer_key string, event_type string",
    )
    orders = spark.createDataFrame(
        [
            ("o1", "c3", datetime(2026, 12, 7, 10, 0), "completed", "S1"),
            ("o1", "c3", datetime(2026, 12, 7, 10, 0), "completed", "S3"),
            ("o2", "c4", datetime(2026, 12, 7, 10, 5), "completed", "S2"),  # no rule on socks
            ("o3", "c2", datetime(2026, 12, 7, 10, 6), "cancelled", "S1"),
        ],
        "order_id string, customer_key string, order_ts timestamp, status string, sku string",
    )
    got = stateless_candidates(events, orders, gold, TRIGGERS)
    expected = spark.createDataFrame(
        [
            (
                "c3",
                "xsell",
                "order o1 holds shoes: rule -> socks (confidence 0.50, lift 1.50)",
                "order:o1",
                datetime(2026, 12, 7, 10, 0),
                "o1",
                None,
                "socks",
            ),
            (
                "c1",
                "back",
                "declining customer back on the site / app (e1)",
                "day:2026-12-07",
                datetime(2026, 12, 7, 9, 0),
                "e1",
                None,
                None,
            ),
            (
                "c2",
                "lunch",
                "lunch regular (weekday_lunch_share >= 0.5) opened the site / app at 10:15, before lunch (11:00)",
                "day:2026-12-07",
                datetime(2026, 12, 7, 10, 15),
                "e3",
                None,
                None,
            ),
        ],
        CANDIDATE_SCHEMA,
    )
    assert got.columns == CANDIDATE_COLUMNS
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_stateless_without_rules_or_orders(spark):
    gold = _gold(spark, [("c1", True, None)])
    gold.cross_sell_rules = None
    events = spark.createDataFrame(
        [("e1", datetime(2026, 12, 7, 9, 0), "c1", "search")],
        "event_id string, ts timestamp, customer_key string, event_type string",
    )
    got = stateless_candidates(events, None, gold, TRIGGERS)
    assert got.columns == CANDIDATE_COLUMNS and got.count() == 0  # search is not a return event


@pytest.mark.parametrize("level", ["sku"])
def test_cross_sell_at_sku_level_names_the_sku(spark, level):
    gold = _gold(spark, [], [(["S1"], "S9", 0.5, 2.0)])
    gold.basket_level = level
    orders = spark.createDataFrame(
        [("o1", "c1", datetime(2026, 12, 7, 10, 0), "S1")],
        "order_id string, customer_key string, order_ts timestamp, sku string",
    )
    (row,) = stateless_candidates(None, orders, gold, TRIGGERS).collect()
    assert (row["sku"], row["category"], row["trigger_key"]) == ("S9", None, "order:o1")
