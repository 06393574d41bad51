"""gold.segment_strategy: the 4P of every segment, each rule checked against figures computed by hand.

Six segments, each built so that one promotion rule fires (first purchase, win-back, birthday /
anniversary by value class, tier upgrade by CLV index, cross-sell) plus the unsegmented; the price
cap binds for the bargain segment; channel mixes are ordered by reach x conversion rate (the
segment's own sends, else the channel's over all segments, else the fallback rate).
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from custseg.config import ConfigError, load_config
from custseg.marketing.audience import offer_columns
from custseg.marketing.campaigns import Offer, parse_campaigns
from custseg.marketing.strategy import STRATEGY_COLUMNS, StrategySettings, segment_strategy, strategy_offers

AS_OF = date(2026, 3, 31)
S = StrategySettings(top_n=2, min_reach_share=0.5, min_channel_sends=2)
MEMBER_SCHEMA = (
    "customer_key string, segment_name string, value_class string, clv double, frequency int, recency_days int, "
    "preferred_category string, distinct_categories int, discount_order_share double, preferred_channel string, "
    "weekday_lunch_share double, weekday_evening_share double, weekend_share double, "
    "opt_in_email boolean, opt_in_sms boolean, opt_in_ads boolean, email_key string, phone_key string, "
    "email_sha256 string, phone_sha256 string"
)
MEMBERS = [
    # Newbies: 1 of 2 never bought, the other once -> new share 100% -> first purchase
    ("n1", "Newbies", None, None, 0, None, None, None, None, None, None, None, None, True, False, False, "ek", None, None, None),
    ("n2", "Newbies", "general", 50.0, 1, 10, "bakery", 1, 0.2, "web", None, None, None, False, False, False, None, None, None, None),
    # Lapsed: 2 of 3 not bought for >= 90 days -> win-back; evening buyers
    ("l1", "Lapsed", "general", 100.0, 3, 200, "grocery", 2, 0.0, "store", 0.1, 0.6, 0.3, True, True, False, "ek", "pk", None, None),
    ("l2", "Lapsed", "general", 100.0, 4, 150, "grocery", 2, 0.0, "store", 0.1, 0.5, 0.4, True, False, False, "ek", None, None, None),
    ("l3", "Lapsed", "general", 100.0, 2, 30, "dairy", 2, 0.6, "web", 0.2, 0.4, 0.4, False, True, False, None, "pk", None, None),
    # VIP: important-retain -> birthday / anniversary; lunch buyers
    ("v1", "VIP", "important-retain", 1000.0, 10, 5, "wine", 3, 0.0, "app", 0.6, 0.2, 0.2, False, True, False, None, "pk", None, None),
    ("v2", "VIP", "important-retain", 1000.0, 10, 5, "cheese", 3, 0.0, "app", 0.5, 0.2, 0.3, True, True, False, "ek", "pk", None, None),
    # Rising: CLV index 350 / 315 = 1.11 -> tier upgrade; 4.5 categories per buyer -> trial; no day-part
    ("r1", "Rising", "general", 350.0, 5, 10, "toys", 5, 0.4, "store", 0.25, 0.25, 0.2, False, False, False, None, None, None, None),
    ("r2", "Rising", "general", 350.0, 5, 10, "toys", 4, 0.4, "store", 0.2, 0.25, 0.25, False, False, False, None, None, None, None),
    # Bargain: 95% of orders discounted -> 28.75% wanted, capped at 23.5% -> 23%; weekend; ads only
    ("b1", "Bargain", "low-value", 50.0, 6, 20, "grocery", 1, 0.9, "web", 0.1, 0.1, 0.8, False, False, True, None, None, "h", None),
    ("b2", "Bargain", "low-value", 50.0, 6, 20, "snacks", 2, 1.0, "web", 0.2, 0.2, 0.6, False, False, True, None, None, None, None),
    # No segment: counted as unsegmented
    ("u1", None, None, None, 2, 10, None, 1, None, None, None, None, None, False, False, False, None, None, None, None),
]  # fmt: skip
RESPONSE_SCHEMA = "campaign_id string, customer_key string, channel string, group string, converted boolean"
RESPONSES = [
    ("c1", "l1", "email", "treatment", True),
    ("c1", "l2", "email", "treatment", False),
    ("c1", "l3", "sms", "treatment", True),
    ("c1", "v1", "sms", "treatment", False),
    ("c1", "v2", "sms", "treatment", False),
    ("c2", "v1", "sms", "treatment", False),
    ("c2", "l2", "sms", "control", True),  # control: never a channel's response
]
ITEM_SCHEMA = "customer_key string, rank int, item string"
CROSS_SELL = [("l1", 1, "butter"), ("l2", 1, "butter"), ("l2", 2, "milk"), ("v1", 1, "port")]
RECOS = [("r1", 1, "lego"), ("r2", 1, "lego"), ("r2", 2, "puzzle"), ("b1", 1, "chips")]

CHOICES = (
    "segment_name string, customers long, buyers long, value_class string, clv_mean double, clv_index double, "
    "top_categories array<string>, cross_sell_items array<string>, als_items array<string>, "
    "new_product_trial boolean, discount_sensitivity double, discount_wanted double, discount_depth double, "
    "discount_capped boolean, channel_mix array<string>, primary_channel string, purchase_channel string, "
    "daypart string, goal string, promotion string, offer_type string"
)
EXPECTED = [
    ("Newbies", 2, 1, "general", 50.0, 0.1587, ["bakery"], [], [], False, 0.2, 0.1, 0.1, False,
     ["email"], "email", "web", "any", "acquisition", "first_purchase", "coupon"),
    ("Lapsed", 3, 3, "general", 100.0, 0.3175, ["grocery", "dairy"], ["butter", "milk"], [], False, 0.2, 0.1, 0.1,
     False, ["email", "sms"], "email", "store", "weekday_evening", "reactivation", "win_back", "voucher"),
    ("VIP", 2, 2, "important-retain", 1000.0, 3.1746, ["cheese", "wine"], ["port"], [], False, 0.0, 0.05, 0.05,
     False, ["email", "sms"], "email", "app", "weekday_lunch", "retention", "birthday_anniversary", "voucher"),
    ("Rising", 2, 2, "general", 350.0, 1.1111, ["toys"], [], ["lego", "puzzle"], True, 0.4, 0.15, 0.15, False,
     [], None, "store", "any", "growth", "tier_upgrade", "coupon"),
    ("Bargain", 2, 2, "low-value", 50.0, 0.1587, ["grocery", "snacks"], [], ["chips"], False, 0.95, 0.2875, 0.23,
     True, ["ads"], "ads", "web", "weekend", "growth", "cross_sell", "cross_sell"),
    ("unsegmented", 1, 1, None, None, None, [], [], [], False, None, 0.05, 0.05, False,
     [], None, None, "any", "growth", "cross_sell", "cross_sell"),
]  # fmt: skip


def _inputs(spark):
    return (
        spark.createDataFrame(MEMBERS, MEMBER_SCHEMA),
        spark.createDataFrame(RESPONSES, RESPONSE_SCHEMA),
        spark.createDataFrame(CROSS_SELL, ITEM_SCHEMA),
        spark.createDataFrame(RECOS, ITEM_SCHEMA),
    )


def _choices(df):
    cols = [c.split(" ")[0] for c in CHOICES.split(", ") if " " in c]
    rounded = {c: F.round(c, 4) for c in cols if c in ("clv_mean", "clv_index", "discount_sensitivity")}
    rounded.update({c: F.round(c, 6) for c in ("discount_wanted", "discount_depth")})
    return df.withColumns(rounded).select(*cols)


@pytest.fixture(scope="module")
def strategy(spark):
    members, responses, cross_sell, recos = _inputs(spark)
    out = segment_strategy(members, responses, cross_sell, recos, S, AS_OF).cache()
    yield out
    out.unpersist()


def test_each_rule_by_hand(spark, strategy):
    assert strategy.columns == STRATEGY_COLUMNS
    expected = spark.createDataFrame(EXPECTED, CHOICES)
    assert_df_equality(_choices(strategy), expected, ignore_row_order=True, ignore_nullable=True)
    assert {r["snapshot_date"] for r in strategy.select("snapshot_date").collect()} == {AS_OF}
    cap = (0.35 - 0.15) / (1 - 0.15)
    assert {round(r["discount_cap"], 9) for r in strategy.select("discount_cap").collect()} == {round(cap, 9)}


def test_evidence_says_why(strategy):
    ev = {r["segment_name"]: r for r in strategy.collect()}
    # price: the cap and the margin behind it
    assert "95% of the buyers' orders discounted -> 28." in ev["Bargain"]["price_evidence"]
    assert "margin 35%, floor 15% -> cap 23.5%" in ev["Bargain"]["price_evidence"]
    # place: the segment's own rate where it has enough sends, the channel's where not
    vip = ev["VIP"]["place_evidence"]
    assert vip.startswith("email 50% reachable x 50% converted (all segments, 0 own sends)"), vip
    assert "sms 100% reachable x 0% converted (3 sends)" in vip
    assert "buys at app" in vip and "weekday_lunch 55%" in vip
    assert "ads 50% reachable x 2% converted (assumed, no history)" in ev["Bargain"]["place_evidence"]
    # product and promotion
    assert "butter (2 members), milk (1 members)" in ev["Lapsed"]["product_evidence"]
    assert "4.5 distinct categories per buyer (trial from 4)" in ev["Rising"]["product_evidence"]
    assert ev["Lapsed"]["promotion_rule"].startswith("67% of members have not bought for 90 days")
    assert ev["Newbies"]["promotion_rule"].startswith("100% of members have at most one purchase")
    assert "CLV index 1.11 (tier upgrade from 1" in ev["Rising"]["promotion_rule"]


def test_without_optional_tables_and_columns(spark):
    members = spark.createDataFrame(MEMBERS, MEMBER_SCHEMA).drop(
        "discount_order_share", "value_class", "clv", "weekday_evening_share", "preferred_channel"
    )
    out = segment_strategy(members, None, None, None, S, AS_OF)
    rows = {r["segment_name"]: r for r in out.collect()}
    assert set(rows) == {"Newbies", "Lapsed", "VIP", "Rising", "Bargain", "unsegmented"}
    for r in rows.values():
        assert r["cross_sell_items"] == [] and r["als_items"] == []
        assert r["discount_depth"] == pytest.approx(0.05)  # no sensitivity: the minimum discount
        assert r["clv_index"] is None and r["value_class"] is None and r["purchase_channel"] is None
    # No response history: every channel at the fallback rate, so reach decides.
    assert rows["VIP"]["channel_mix"] == ["sms", "email"]
    assert rows["Lapsed"]["promotion"] == "win_back"  # recency still there
    assert rows["VIP"]["promotion"] == "cross_sell"  # neither value class nor CLV to call it loyal
    assert rows["Lapsed"]["daypart"] == "weekend"  # evening unknown: weekend 0.367 is the largest


def test_price_floor_never_crossed():
    for sens in (0.0, 0.5, 1.0):
        for rate, floor in ((0.35, 0.15), (0.2, 0.1), (0.5, 0.45)):
            s = StrategySettings(margin_rate=rate, margin_floor=floor, min_discount=0.05, max_discount=0.6)
            d = min(s.min_discount + (s.max_discount - s.min_discount) * sens, s.discount_cap)
            assert (rate - d) / (1 - d) >= floor - 1e-12


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("margin_floor: 0.4", "marketing.strategy.margin_floor"),  # at or above margin_rate 0.35
        ("min_discount: 0.5", "marketing.strategy.min_discount"),  # above max_discount 0.3
        ("top_n: 0", "marketing.strategy.top_n"),
        ("margin_rate: high", "marketing.strategy.margin_rate"),
        ("loyalty_value_classes: important", "marketing.strategy.loyalty_value_classes"),
    ],
)
def test_settings_fail_naming_key_and_file(tmp_path, yaml_text, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"marketing:\n  strategy:\n    {yaml_text}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*" + re.escape(key)):
        StrategySettings.from_config(load_config(bad))


def test_defaults_in_base_config_match_the_settings_class():
    from custseg.config import DEFAULT_CONF_DIR

    assert StrategySettings.from_config(load_config(DEFAULT_CONF_DIR / "base.yaml")) == StrategySettings()


# --- offers: from_strategy -------------------------------------------------------------

CAMPAIGN = {
    "goal": "growth",
    "channels": ["email"],
    "cost_per_contact": 0.5,
    "revenue_per_response": 60,
    "margin_per_response": 20,
    "budget": 500,
}


def test_offers_from_strategy_parsed_and_validated():
    (c,) = parse_campaigns({"campaigns": {"grow": {**CAMPAIGN, "offers": "from_strategy"}}}, "c.yaml")
    assert c.offers_from_strategy and c.offers == "from_strategy"
    (d,) = parse_campaigns({"campaigns": {"grow": CAMPAIGN}}, "c.yaml")
    assert not d.offers_from_strategy and d.offers == "fixed"
    with pytest.raises(
        ConfigError, match=r"c\.yaml: key 'campaigns\.grow\.offers' must be one of fixed, from_strategy"
    ):
        parse_campaigns({"campaigns": {"grow": {**CAMPAIGN, "offers": "strategy"}}}, "c.yaml")


def test_offers_from_strategy_take_type_and_discount_of_the_segment(spark, strategy):
    base = spark.createDataFrame(
        [
            ("l1", "Lapsed", "dairy", "sku-1", None),
            ("b1", "Bargain", "snacks", None, "chips"),
            ("x1", "Nowhere", "toys", "sku-2", None),  # no strategy row: the campaign's own offer
        ],
        "customer_key string, segment_name string, preferred_category string, cross_sell_item string, reco_item string",
    )
    offer = Offer(type="content", discount=0.0, category="preferred", daypart="any", valid_days=7)
    got = base.transform(offer_columns(offer, AS_OF, 0.3, strategy_offers(strategy))).select(
        "customer_key", "offer_type", "offer_category", "offer_item", "offer_discount"
    )
    expected = spark.createDataFrame(
        [
            ("l1", "voucher", "dairy", None, 0.10),  # win-back: voucher at the segment's 10%
            ("b1", "cross_sell", "snacks", "chips", 0.23),  # cross-sell: the item (reco fallback), capped 23%
            ("x1", "content", "toys", None, 0.0),
        ],
        "customer_key string, offer_type string, offer_category string, offer_item string, offer_discount double",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
