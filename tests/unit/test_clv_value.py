"""CLV in expected profit: a response is worth margin_per_response x the customer's CLV factor.

Planted truth: two customers with the same response probability, one with 6x the CLV of the
other; with CLV valuation the high-CLV one is ranked first and wins the only contact the budget
allows, without it the tie goes to the customer key. The plan's margin is the sum of p x the
customer's margin, the same figures the audience was ranked by.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from chispa import assert_approx_df_equality

from custseg.config import ConfigError, load_config
from custseg.marketing.audience import (
    ClvValue,
    flag_campaign,
    score_campaign,
    select_under_budget,
    with_clv_factor,
)
from custseg.marketing.campaigns import Campaign
from custseg.marketing.plan import campaign_plan, campaigns_frame

AS_OF = date(2026, 3, 31)
CAMPAIGN = Campaign(
    id="keep",
    goal="retention",
    channels=("email",),
    cost_per_contact=0.5,
    revenue_per_response=60.0,
    margin_per_response=20.0,
    budget=0.5,  # one contact
    holdout_share=0.0,
)
BASE_SCHEMA = (
    "customer_key string, clv double, p double, opt_in_email boolean, opt_in_sms boolean, opt_in_ads boolean, "
    "email_key string, phone_key string, email_sha256 string, phone_sha256 string, last_contact_date date, "
    "contacts_30d int, last_complaint_date date"
)


def _base(spark, rows):
    return spark.createDataFrame(
        [(k, clv, p, True, False, False, "ek", None, None, None, None, 0, None) for k, clv, p in rows], BASE_SCHEMA
    )


def test_clv_factor_is_clv_over_the_mean_clamped_with_fallback(spark):
    # mean of the known CLVs: (100 + 300 + 200 + 2000) / 4 = 650
    base = _base(spark, [("a", 100.0, 0.1), ("b", 300.0, 0.1), ("c", None, 0.1), ("d", 200.0, 0.1), ("e", 2000.0, 0.1)])
    got = {
        r["customer_key"]: r["clv_factor"] for r in base.transform(with_clv_factor(ClvValue(True, 0.25, 2.0))).collect()
    }
    assert got == pytest.approx({"a": 0.25, "b": 300 / 650, "c": 1.0, "d": 200 / 650, "e": 2.0})
    off = base.transform(with_clv_factor(ClvValue(enabled=False))).collect()
    assert {r["clv_factor"] for r in off} == {1.0}
    no_clv = base.drop("clv").transform(with_clv_factor(ClvValue())).collect()
    assert {r["clv_factor"] for r in no_clv} == {1.0}


def _selected(spark, settings: ClvValue):
    # Same P(response); "a_low" sorts first, so a flat margin's tie goes to it.
    base = _base(spark, [("a_low", 50.0, 0.1), ("z_high", 300.0, 0.1)]).transform(with_clv_factor(settings))
    scored = base.transform(flag_campaign(CAMPAIGN, AS_OF, "p")).transform(score_campaign(CAMPAIGN, "s"))
    return scored, select_under_budget(scored)


def test_high_clv_customer_outranks_low_clv_at_the_same_probability(spark):
    scored, selected = _selected(spark, ClvValue(True, 0.25, 4.0))
    # mean CLV 175: factors 50/175 and 300/175; margins 20 x factor; profit 0.1 x margin - 0.5
    got = {r["customer_key"]: (r["response_margin"], r["expected_profit"]) for r in scored.collect()}
    assert got["a_low"] == pytest.approx((20 * 50 / 175, 0.1 * 20 * 50 / 175 - 0.5))
    assert got["z_high"] == pytest.approx((20 * 300 / 175, 0.1 * 20 * 300 / 175 - 0.5))
    rows = selected.collect()
    assert [(r["customer_key"], r["rank"]) for r in rows] == [("z_high", 1)]  # the budget buys one contact

    _, flat = _selected(spark, ClvValue(enabled=False))
    assert [r["customer_key"] for r in flat.collect()] == ["a_low"]  # flat margin: a tie, broken by key
    # A campaign that values responses flat ranks the same way with the CLV factor present.
    base = _base(spark, [("a_low", 50.0, 0.1), ("z_high", 300.0, 0.1)]).transform(with_clv_factor(ClvValue()))
    flat_campaign = replace(CAMPAIGN, response_value="flat")
    scored = base.transform(flag_campaign(flat_campaign, AS_OF, "p")).transform(score_campaign(flat_campaign, "s"))
    assert {r["response_margin"] for r in scored.collect()} == {20.0}
    assert [r["customer_key"] for r in select_under_budget(scored).collect()] == ["a_low"]


def test_plan_margin_is_the_sum_of_p_times_the_customers_margin(spark):
    c = Campaign(
        id="keep",
        goal="retention",
        channels=("email",),
        cost_per_contact=2.0,
        revenue_per_response=50.0,
        margin_per_response=20.0,
        budget=5.0,
        holdout_share=0.1,
    )
    params = campaigns_frame(spark, [c], {"retention": ("gbt", 0.8)})
    flagged = spark.createDataFrame(
        [("keep", k, "email", False, False, False, False, True, p) for k, p in (("a", 0.5), ("b", 0.3), ("c", 0.1))],
        "campaign_id string, customer_key string, channel string, suppressed_contact boolean, suppressed_cap boolean, "
        "suppressed_complaint boolean, suppressed_consent boolean, eligible boolean, p_response double",
    )
    scored = spark.createDataFrame(
        [("keep", "a", 0.5, 40.0), ("keep", "b", 0.3, 10.0), ("keep", "c", 0.1, 20.0)],
        "campaign_id string, customer_key string, p_response double, response_margin double",
    )
    audience = spark.createDataFrame(
        [("keep", "a", "treatment", 0.5), ("keep", "b", "treatment", 0.3), ("keep", "c", "control", 0.1)],
        "campaign_id string, customer_key string, group string, p_response double",
    )
    got = campaign_plan(flagged, scored, audience, params).select("strategy", "expected_responses", "margin", "profit")
    # precision: 0.5 x 40 + 0.3 x 10 = 23 on 0.8 responses, cost 4; blanket: 23 + 0.1 x 20 = 25 on 0.9,
    # cost 6; random: 2 contacts at the blanket rate 0.3 = 0.6 responses x 25 / 0.9 per response, cost 4.
    expected = spark.createDataFrame(
        [
            ("precision", 0.8, 23.0, 19.0),
            ("blanket", 0.9, 25.0, 19.0),
            ("random", 0.6, 0.6 * 25 / 0.9, 0.6 * 25 / 0.9 - 4),
        ],
        "strategy string, expected_responses double, margin double, profit double",
    )
    assert_approx_df_equality(got, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_clv_value_settings_fail_naming_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("marketing:\n  clv_value:\n    min_factor: 5.0\n    max_factor: 2.0\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*marketing\.clv_value\.min_factor"):
        ClvValue.from_config(load_config(bad))


def test_response_value_parsed_and_validated():
    from custseg.marketing.campaigns import parse_campaigns

    doc = {
        "goal": "growth",
        "channels": ["email"],
        "cost_per_contact": 0.5,
        "revenue_per_response": 60,
        "margin_per_response": 20,
        "budget": 500,
    }
    (c,) = parse_campaigns({"campaigns": {"grow": doc}}, "c.yaml")
    assert c.response_value == "clv"
    (f,) = parse_campaigns({"campaigns": {"grow": {**doc, "response_value": "flat"}}}, "c.yaml")
    assert f.response_value == "flat"
    with pytest.raises(ConfigError, match=r"c\.yaml: key 'campaigns\.grow\.response_value' must be one of clv, flat"):
        parse_campaigns({"campaigns": {"grow": {**doc, "response_value": "ltv"}}}, "c.yaml")
