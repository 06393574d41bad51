"""Real-time decisions: every decision planted once and read back, the shared caps, the holdout hash
(checked against an independent Python implementation), deterministic offer ids."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta

from pyspark.sql import functions as F

from custseg.realtime.decide import OFFER_COLUMNS, Gold, decide
from custseg.realtime.detect import CANDIDATE_SCHEMA
from custseg.realtime.triggers import parse_triggers

SALT = "test-salt"
NOW = datetime(2026, 12, 7, 12, 0, 0)
TRIGGERS = parse_triggers(
    {
        "defaults": {"holdout_share": 0.0, "channels": ["email", "sms"]},
        "triggers": {
            "cart": {
                "kind": "cart_abandonment",
                "eligibility": {"value_classes": ["gold", "silver"]},
                "offer": {"type": "coupon", "discount": 0.1},
                "expiry_minutes": 60,
            },
            "browse": {"kind": "browse_abandonment", "eligibility": {"min_propensity": 0.5}, "max_per_day": 1},
            "lunch": {"kind": "daypart", "holdout_share": 0.5, "channels": ["sms"]},
        },
    },
    "test",
)
BASE_SCHEMA = (
    "customer_key string, segment_name string, rfm_segment string, value_class string, propensity double, "
    "opt_in_email boolean, opt_in_sms boolean, opt_in_ads boolean, email_key string, phone_key string, "
    "email_sha256 string, phone_sha256 string, reach_by_key boolean"
)


def in_holdout(key: str, trigger: str, share: float) -> bool:
    """The batch holdout, computed here without Spark: sha2(key|trigger|salt), first 12 hex digits mod 10000."""
    digest = hashlib.sha256(f"{key}|{trigger}|{SALT}".encode()).hexdigest()
    return int(digest[:12], 16) % 10000 < round(share * 10000)


def customer(key, value_class="gold", propensity=0.9, email=True, sms=True, segment="Loyal"):
    return (
        key,
        segment,
        "Champions",
        value_class,
        propensity,
        email,
        sms,
        False,
        f"ek-{key}",
        f"pk-{key}",
        None,
        None,
        False,
    )


def offer_id(trigger, key, tkey):
    return hashlib.sha256(f"{trigger}|{key or ''}|{tkey}".encode()).hexdigest()


def test_each_decision_planted_and_read_back(spark):
    ctl = next(f"L{i}" for i in range(100) if in_holdout(f"L{i}", "lunch", 0.5))
    trt = next(f"L{i}" for i in range(100) if not in_holdout(f"L{i}", "lunch", 0.5))
    base = spark.createDataFrame(
        [
            customer("off"),
            customer("sms_only", email=False),
            customer("bronze", value_class="bronze"),
            customer("lowp", propensity=0.2),
            customer("nocons", email=False, sms=None),
            customer("batch"),
            customer("earlier"),
            customer("twice"),
            customer("yday"),
            customer(ctl),
            customer(trt),
        ],
        BASE_SCHEMA,
    )
    ev = NOW - timedelta(seconds=45)
    rows = [
        (None, "cart", "r", "s0", ev, "e0", "K1", "toys"),  # anonymous
        ("ghost", "cart", "r", "s1", ev, "e1", "K1", "toys"),  # not in the base
        ("off", "cart", "r", "s2", ev, "e2", "K1", "toys"),
        ("sms_only", "cart", "r", "s3", ev, "e3", None, "toys"),
        ("bronze", "cart", "r", "s4", ev, "e4", "K1", "toys"),  # value class not eligible
        ("lowp", "browse", "r", "s5", ev, "e5", None, "shoes"),  # propensity 0.2 < 0.5
        ("nocons", "cart", "r", "s6", ev, "e6", "K1", "toys"),
        ("batch", "cart", "r", "s7", ev, "e7", "K1", "toys"),  # a batch campaign contacts it today
        ("earlier", "browse", "r", "s8", ev, "e8", None, "shoes"),  # a real-time offer earlier today
        ("twice", "browse", "r", "s9", ev - timedelta(minutes=5), "e9", None, "shoes"),
        ("twice", "cart", "r", "s10", ev, "e10", "K1", "toys"),  # cart has priority over browse
        ("yday", "cart", "r", "s11", ev, "e11", "K1", "toys"),  # yesterday's offer does not cap today
        (ctl, "lunch", "r", "day:2026-12-07", ev, "e12", None, None),
        (trt, "lunch", "r", "day:2026-12-07", ev, "e13", None, None),
        ("off", "browse", "r", "already", ev, "e14", None, "shoes"),  # decided in an earlier batch
        ("off", "cart", "r", "s2", ev + timedelta(seconds=1), "e15", "K1", "toys"),  # same firing twice
    ]
    candidates = spark.createDataFrame(rows, CANDIDATE_SCHEMA)
    earlier = spark.createDataFrame(
        [
            (offer_id("lunch", "earlier", "x"), "earlier", "lunch", "offered", date(2026, 12, 7)),
            (offer_id("cart", "yday", "y"), "yday", "cart", "offered", date(2026, 12, 6)),
            (offer_id("browse", "off", "already"), "off", "browse", "ineligible", date(2026, 12, 7)),
        ],
        "offer_id string, customer_key string, trigger string, decision string, decision_date date",
    )
    gold = Gold(
        customers=base,
        contacted_today=spark.createDataFrame([("batch",)], "customer_key string"),
        run_date=date(2026, 12, 7),
        holdout_salt=SALT,
    )
    got = decide(candidates, gold, earlier, TRIGGERS, None, NOW, "sessions", 7)
    assert got.columns == OFFER_COLUMNS
    out = {(r["customer_key"], r["trigger"]): r for r in got.collect()}  # a few test rows
    decisions = {k: r["decision"] for k, r in out.items()}
    assert decisions == {
        (None, "cart"): "unknown_customer",
        ("ghost", "cart"): "unknown_customer",
        ("off", "cart"): "offered",
        ("sms_only", "cart"): "offered",
        ("bronze", "cart"): "ineligible",
        ("lowp", "browse"): "ineligible",
        ("nocons", "cart"): "no_consent",
        ("batch", "cart"): "capped",
        ("earlier", "browse"): "capped",
        ("twice", "cart"): "offered",
        ("twice", "browse"): "capped",
        ("yday", "cart"): "offered",
        (ctl, "lunch"): "control",
        (trt, "lunch"): "offered",
    }
    assert got.count() == len(decisions)  # the duplicate firing and the earlier-decided one are gone
    off = out[("off", "cart")]
    assert off["offer_id"] == offer_id("cart", "off", "s2")
    assert off["channel"] == "email" and out[("sms_only", "cart")]["channel"] == "sms"
    assert off["latency_s"] == 45.0 and off["event_ts"] == ev  # the earlier of the two reports
    assert off["decided_at"] == NOW and off["expires_at"] == NOW + timedelta(minutes=60)
    assert json.loads(off["offer"]) == {"type": "coupon", "discount": 0.1, "item": "K1", "name": "cart"}
    assert json.loads(out[("sms_only", "cart")]["offer"])["item"] == "toys"
    assert (off["segment"], off["value_class"], off["propensity"]) == ("Loyal", "gold", 0.9)
    assert (off["query"], off["batch_id"], off["decision_date"], off["holdout"]) == (
        "sessions",
        7,
        date(2026, 12, 7),
        False,
    )
    assert out[(ctl, "lunch")]["holdout"] is True and out[(ctl, "lunch")]["channel"] == "sms"
    assert out[("nocons", "cart")]["channel"] is None and out[("bronze", "cart")]["expires_at"] is None
    assert out[(None, "cart")]["holdout"] is None


def test_holdout_share_matches_python_hash_over_many_customers(spark):
    keys = [f"k{i}" for i in range(400)]
    base = spark.createDataFrame([customer(k) for k in keys], BASE_SCHEMA)
    cands = spark.createDataFrame(
        [(k, "lunch", "r", "day:2026-12-07", NOW, "e", None, None) for k in keys], CANDIDATE_SCHEMA
    )
    gold = Gold(customers=base, contacted_today=spark.createDataFrame([], "customer_key string"), holdout_salt=SALT)
    got = decide(cands, gold, None, TRIGGERS, None, NOW, "ingest", 0)
    control = {r["customer_key"] for r in got.where(F.col("decision") == "control").select("customer_key").collect()}
    assert control == {k for k in keys if in_holdout(k, "lunch", 0.5)}
    assert 150 < len(control) < 250


def test_replayed_batch_decides_the_same_rows(spark):
    base = spark.createDataFrame([customer("a"), customer("b")], BASE_SCHEMA)
    cands = spark.createDataFrame(
        [("a", "cart", "r", "s1", NOW, "e1", "K", None), ("b", "browse", "r", "s2", NOW, "e2", None, "x")],
        CANDIDATE_SCHEMA,
    )
    gold = Gold(customers=base, contacted_today=spark.createDataFrame([], "customer_key string"), holdout_salt=SALT)
    one = decide(cands, gold, None, TRIGGERS, None, NOW, "ingest", 3)
    two = decide(cands, gold, None, TRIGGERS, None, NOW, "ingest", 3)
    assert sorted(one.collect()) == sorted(two.collect())
    assert decide(cands, gold, one, TRIGGERS, None, NOW, "ingest", 4).count() == 0


def test_load_gold_reads_the_batch_tables(spark, tmp_path):
    from custseg.config import load_config
    from custseg.realtime.decide import load_gold
    from custseg.storage import Tables
    from custseg.storage.base import StorageSettings

    conf = load_config("local.yaml", env={"CUSTSEG_PII_SALT": "x" * 32})
    t = Tables(spark, StorageSettings(root=str(tmp_path / "tables")))
    day, before = date(2026, 12, 7), date(2026, 12, 1)
    t.append(
        spark.createDataFrame(
            [(before, "a", 0.8, True, 0.6), (before, "b", 0.3, False, 0.1), (date(2026, 12, 9), "a", 0.1, False, 0.0)],
            "snapshot_date date, customer_key string, p_alive double, declining boolean, weekday_lunch_share double",
        ),
        "gold.customer_features",
    )
    t.append(
        spark.createDataFrame(
            [("a", True, False, False, "ek", None, None, None), ("b", False, False, False, "ek2", None, None, None)],
            "customer_key string, opt_in_email boolean, opt_in_sms boolean, opt_in_ads boolean, email_key string, "
            "phone_key string, email_sha256 string, phone_sha256 string",
        ),
        "silver.customers",
    )
    t.append(
        spark.createDataFrame(
            [(before, "a", "Loyal", "gold"), (before, "b", "Lost", "low-value")],
            "snapshot_date date, customer_key string, segment_name string, value_class string",
        ),
        "gold.customer_segments",
    )
    t.append(
        spark.createDataFrame(
            [(day, "a", "treatment"), (day, "b", "control"), (before, "b", "treatment")],
            "snapshot_date date, customer_key string, group string",
        ),
        "gold.campaign_audiences",
    )
    t.append(
        spark.createDataFrame(
            [
                (before, "category", None, ["shoes"], "socks", 0.5, 1.5),
                (before, "sku", None, ["S1"], "S2", 0.5, 1.5),
                (before, "category", 3, ["shoes"], "bags", 0.5, 1.5),
            ],
            "snapshot_date date, level string, segment_id int, antecedent array<string>, consequent string, "
            "confidence double, lift double",
        ),
        "gold.association_rules",
    )
    gold = load_gold(t, conf, day)
    rows = {r["customer_key"]: r for r in gold.customers.collect()}
    assert set(rows) == {"a", "b"}  # the snapshot after the run date is not read
    assert (rows["a"]["propensity"], rows["a"]["declining"], rows["a"]["segment_name"]) == (0.8, True, "Loyal")
    assert rows["a"]["opt_in_email"] is True and rows["a"]["consent_basis"] == "recorded"
    assert [r["customer_key"] for r in gold.contacted_today.collect()] == ["a"]  # treatment, today only
    assert [(r["antecedent"], r["consequent"]) for r in gold.cross_sell_rules.collect()] == [(["shoes"], "socks")]
    assert gold.basket_level == "category" and gold.lunch_hours == (11, 14) and gold.products is None
