"""The offline evaluation's time split on hand-made orders (issue 28, item 5).

Ten customers buy a, b and c before the cut-off; ten others x, y and z. u0 lacks c and u10
lacks z until after the cut-off. After it, seven customers also buy ``canary``, an item nobody
bought before: the most popular item of the held-out days. A method that saw any purchase after
the cut-off would rank it first; none may list it.
"""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F

from custseg.basket.settings import BasketSettings
from custseg.config import load_config
from custseg.recommend.evaluate import holdout_quality, holdout_recommendations, holdout_split
from custseg.recommend.settings import RecommendSettings

AS_OF = date(2026, 6, 30)  # holdout_days 30: the cut-off is 2026-05-31
BEFORE, CUT, AFTER = date(2026, 4, 10), date(2026, 5, 31), date(2026, 6, 15)
LINES = "order_id string, customer_key string, order_date date, status string, qty int, sku string, category string"


def _orders() -> list[tuple]:
    rows = []

    def order(oid, who, day, items, status="completed"):
        rows.extend((oid, who, day, status, 1, item, f"cat_{item}") for item in items)

    for i in range(20):
        who = f"u{i}"
        taste = ["a", "b", "c"] if i < 10 else ["x", "y", "z"]
        owned = [t for t in taste if (who, t) not in {("u0", "c"), ("u10", "z")}]
        order(f"{who}-1", who, BEFORE, owned)
        order(f"{who}-2", who, CUT, owned[:1])  # on the cut-off day: still training
    order("u0-3", "u0", AFTER, ["c", "canary"])  # relevant: c (not owned) and canary
    order("u10-3", "u10", AFTER, ["z"])  # relevant: z
    order("u2-3", "u2", AFTER, ["a"])  # a re-purchase: not relevant
    order("u3-3", "u3", AFTER, ["d"], status="returned")  # not a purchase
    order("new-1", "new", AFTER, ["b"])  # no history before the cut-off: not evaluated
    for i in (1, 4, 5, 11, 12, 13):
        order(f"u{i}-4", f"u{i}", AFTER, ["canary"])
    return rows


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    conf = tmp_path_factory.mktemp("conf") / "holdout.yaml"
    conf.write_text(
        "basket:\n  level: sku\n  min_support: 0.05\n  min_confidence: 0.1\n  journeys:\n    enabled: false\n"
        "recommend:\n  holdout_days: 30\n  k: [2, 10]\n  als:\n    rank: 4\n    max_iter: 5\n"
    )
    cfg = load_config(conf)
    return BasketSettings.from_config(cfg), RecommendSettings.from_config(cfg)


@pytest.fixture(scope="module")
def lines(spark):
    return spark.createDataFrame(_orders(), LINES)


def test_split_holds_out_only_new_items_of_customers_with_history(spark, lines, settings):
    bs, rs = settings
    split = holdout_split(lines, AS_OF, bs, rs)
    try:
        assert split.cutoff == CUT
        relevant = {(r["customer_key"], r["item"]) for r in split.relevant.collect()}
        canary = {(f"u{i}", "canary") for i in (0, 1, 4, 5, 11, 12, 13)}
        assert relevant == {("u0", "c"), ("u10", "z")} | canary
        assert {r["customer_key"] for r in split.users.collect()} == {k for k, _ in relevant}
        assert split.owned.where(F.col("item") == "canary").count() == 0
    finally:
        split.unpersist()


def test_no_method_sees_past_the_cutoff(spark, lines, settings):
    bs, rs = settings
    split = holdout_split(lines, AS_OF, bs, rs)
    recs = holdout_recommendations(lines, None, split, bs, rs)
    try:
        assert set(recs.methods) == {"rules", "als", "blend", "popularity"}
        for name, df in recs.methods.items():
            got = df.select("customer_key", "rank", "item").collect()
            assert got, f"{name}: no recommendations"
            assert "canary" not in {r["item"] for r in got}, f"{name} recommends an item bought only after the cut-off"
            owned = {(r["customer_key"], r["item"]) for r in split.owned.collect()}
            assert not {(r["customer_key"], r["item"]) for r in got} & owned, f"{name} recommends what was bought"
        # The planted completion: the rules give u0 c and u10 z first (popularity would give x and a).
        for name in ("rules",):
            first = {r["customer_key"]: r["item"] for r in recs.methods[name].where("rank = 1").collect()}
            assert first["u0"] == "c" and first["u10"] == "z", (name, first)
    finally:
        recs.unpersist()
        split.unpersist()


def test_holdout_quality_by_hand(spark, lines, settings):
    """Eight evaluation users; u0 and u10 each hit their one findable item at rank 1 (AP@K = 1 /
    min(K, 2) and 1 / min(K, 1)); the seven canary buyers can score nothing."""
    bs, rs = settings
    rows = {(r["method"], r["k"]): r for r in holdout_quality(lines, None, AS_OF, bs, rs).collect()}
    for k in (2, 10):
        r = rows[("rules", k)]
        assert r["users"] == 8
        assert r["map"] == pytest.approx((1 / min(k, 2) + 1 / min(k, 1)) / 8)
        assert r["recall"] == pytest.approx((1 / 2 + 1) / 8)
        assert r["train_end"] == CUT and r["holdout_days"] == 30
