"""Planted trigger situations: written in the landing layout, and read back by detect + decide with
every planted firing found, no near miss fired, and each expected decision met."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import date, datetime

import pytest
from pyspark.sql import functions as F

from custseg.config import load_config
from custseg.datagen.plant_triggers import PlantCustomer, plant, read_catalog, write_planted
from custseg.realtime.decide import Gold, decide
from custseg.realtime.detect import session_candidates, sessions, stateless_candidates
from custseg.realtime.triggers import load_triggers

DAY = date(2026, 12, 7)  # a Monday
CATALOG = {"grocery": ["G1", "G2"], "dairy": ["D1"], "toys": ["T1"], "shoes": ["S1"]}
RULE = (["grocery"], "dairy")


def _customers():
    out = [PlantCustomer(f"C{i:03d}", f"C{i:03d}") for i in range(21)]
    out += [PlantCustomer(f"L{i:03d}", f"L{i:03d}", lunch_regular=True) for i in range(4)]
    out += [PlantCustomer(f"D{i:03d}", f"D{i:03d}", declining=True, lunch_regular=i == 0) for i in range(3)]
    out += [
        PlantCustomer("N001", "N001", opted_in=False),
        PlantCustomer("B001", "B001", contacted_today=True),
        PlantCustomer("U001", None, known=False),
    ]
    return out


def test_planted_files_and_truth(tmp_path):
    triggers = load_triggers(load_config("local.yaml"))
    planted = plant(_customers(), CATALOG, DAY, triggers, RULE)
    paths = write_planted(planted, tmp_path / "landing", tmp_path / "truth", DAY)
    assert paths["events"] == tmp_path / "landing" / "events" / "2026-12-07" / "planted-triggers.jsonl"
    first = json.loads(paths["events"].read_text().splitlines()[0])
    assert set(first) >= {"event_id", "ts", "device_id", "customer_id", "session_id", "event_type", "sku", "category"}
    order = json.loads(paths["orders"].read_text().splitlines()[0])
    assert order["items"][0]["sku"] in {"G1", "D1"} and order["status"] == "completed"
    with paths["truth"].open() as fh:
        truth = list(csv.DictReader(fh))
    situations = Counter(r["situation"] for r in truth)
    assert situations["declining"] == 3 and situations["lunch"] == 2 and situations["lunch_late"] == 2
    for s in ("browse", "cart", "cross_sell", "browse_short", "cart_bought", "cart_removed", "cross_sell_owned"):
        assert situations[s] >= 3, s
    assert {r["expected_decision"] for r in truth if r["trigger"] == ""} == {"none"}
    by_id = {r["customer_id"]: r for r in truth}
    assert by_id["U001"]["expected_decision"] in ("unknown_customer", "none")
    with pytest.raises(ValueError, match="weekend"):
        plant(_customers(), CATALOG, date(2026, 12, 5), triggers, RULE)


def test_read_catalog(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("sku,name,category\nB,x,Toys\nA,y,toys\nC,z,\n", encoding="utf-8")
    assert read_catalog(f) == {"toys": ["A", "B"]}


def test_detect_and_decide_recover_the_planted_truth(spark):
    conf = load_config("local.yaml")
    triggers = load_triggers(conf)
    customers = _customers()
    planted = plant(customers, CATALOG, DAY, triggers, RULE)
    known = {c.customer_id for c in customers if c.known}
    # What ingest + conform would make of the planted records (customer_key = the id of a known customer).
    events = spark.createDataFrame(
        [
            (
                e["event_id"],
                datetime.fromisoformat(e["ts"]),
                e["customer_id"] if e["customer_id"] in known else None,
                e["device_id"],
                e["session_id"],
                e["event_type"],
                e["sku"],
                e["category"],
            )
            for e in planted.events
        ],
        "event_id string, ts timestamp, customer_key string, device_key string, session_id string, "
        "event_type string, sku string, category string",
    )
    lines = spark.createDataFrame(
        [
            (
                o["order_id"],
                o["customer_id"] if o["customer_id"] in known else None,
                datetime.fromisoformat(o["order_ts"]),
                o["status"],
                i["sku"],
            )
            for o in planted.orders
            for i in o["items"]
        ],
        "order_id string, customer_key string, order_ts timestamp, status string, sku string",
    )
    base = spark.createDataFrame(
        [
            (
                c.customer_id,
                "Loyal",
                "Champions",
                "general",
                0.9,
                c.opted_in,
                False,
                False,
                "ek",
                "pk",
                None,
                None,
                False,
                c.declining,
                0.7 if c.lunch_regular else 0.1,
            )
            for c in customers
            if c.known
        ],
        "customer_key string, segment_name string, rfm_segment string, value_class string, propensity double, "
        "opt_in_email boolean, opt_in_sms boolean, opt_in_ads boolean, email_key string, phone_key string, "
        "email_sha256 string, phone_sha256 string, reach_by_key boolean, declining boolean, weekday_lunch_share double",
    )
    gold = Gold(
        customers=base,
        contacted_today=spark.createDataFrame(
            [(c.customer_id,) for c in customers if c.contacted_today], "customer_key string"
        ),
        cross_sell_rules=spark.createDataFrame(
            [(["grocery"], "dairy", 0.5, 2.0)],
            "antecedent array<string>, consequent string, confidence double, lift double",
        ),
        products=spark.createDataFrame(
            [(s, k) for k, skus in CATALOG.items() for s in skus], "sku string, category string"
        ),
        run_date=DAY,
    )
    closed = sessions(events, triggers, "10 minutes")
    cands = session_candidates(closed, triggers).unionByName(stateless_candidates(events, lines, gold, triggers))
    offers = decide(cands, gold, None, triggers, conf, datetime(2026, 12, 7, 18, 0), "test", 0)
    got = Counter((r["customer_key"], r["trigger"], r["decision"]) for r in offers.collect())
    want = Counter(
        (r["customer_id"] if r["customer_id"] in known else None, r["trigger"], r["expected_decision"])
        for r in planted.truth
        if r["trigger"]
    )
    assert got == want
    decisions = {d for (_, _, d) in want}
    assert {"offered", "no_consent", "capped", "unknown_customer"} <= decisions
    assert offers.where(F.col("decision") == "offered").count() >= 10


def test_customers_from_gold_reads_the_flags(spark):
    from custseg.conform.identity import customer_id_key
    from custseg.datagen.plant_triggers import customers_from_gold

    salt = "plant-test-salt-0123456789abcdef0123"
    triggers = load_triggers(load_config("local.yaml"))
    ids = spark.createDataFrame([("C1", "k1"), ("C2", "k2"), ("C3", "k3")], "cid string, customer_key string")
    identity_map = ids.select(
        F.lit("customer_id").alias("id_type"), customer_id_key("cid", salt).alias("id_key"), "customer_key"
    )
    base = (
        spark.createDataFrame(
            [
                ("k1", True, 0.1, True, False, "ek", None, False),
                ("k2", False, 0.7, False, False, "ek", None, False),
                ("k3", None, None, False, True, None, "pk", False),
            ],
            "customer_key string, declining boolean, weekday_lunch_share double, opt_in_email boolean, "
            "opt_in_sms boolean, email_key string, phone_key string, reach_by_key boolean",
        )
        .withColumn("opt_in_ads", F.lit(False))
        .withColumn("email_sha256", F.lit(None).cast("string"))
        .withColumn("phone_sha256", F.lit(None).cast("string"))
    )
    gold = Gold(customers=base, contacted_today=spark.createDataFrame([("k3",)], "customer_key string"))
    got = customers_from_gold(spark, gold, identity_map, ["C1", "C2", "C3", "C4"], salt, triggers)
    assert got == [
        PlantCustomer("C1", "k1", declining=True, lunch_regular=False, opted_in=True),
        PlantCustomer("C2", "k2", lunch_regular=True, opted_in=False),
        PlantCustomer("C3", "k3", opted_in=True, contacted_today=True),
        PlantCustomer("C4", None, known=False),
    ]


def test_cli_plants_into_a_generated_layout(tmp_path):
    from custseg.datagen.plant_triggers import main

    products = tmp_path / "landing" / "products" / "2026-12-01"
    products.mkdir(parents=True)
    (products / "part-00000.csv").write_text(
        "sku,name,category\nG1,a,grocery\nD1,b,dairy\nT1,c,toys\n", encoding="utf-8"
    )
    ids = tmp_path / "ids.csv"
    ids.write_text("customer_id,customer_key,declining,opted_in\nC1,k1,true,\nC2,,,false\nC3,k3,,\n", encoding="utf-8")
    assert (
        main(["--out", str(tmp_path), "--customers", str(ids), "--day", "2026-12-07", "--rule", "grocery->dairy"]) == 0
    )
    with (tmp_path / "truth" / "realtime_triggers.csv").open() as fh:
        truth = {r["customer_id"]: r for r in csv.DictReader(fh)}
    assert truth["C1"]["situation"] == "declining" and truth["C1"]["expected_decision"] in ("offered", "control")
    assert truth["C2"]["situation"] == "browse" and truth["C2"]["expected_decision"] == "no_consent"
    assert truth["C3"]["situation"] == "cart"
    assert (tmp_path / "landing" / "events" / "2026-12-07" / "planted-triggers.jsonl").exists()
