"""Designed arms: config, the blanket draw, response attribution, the plan's arm rows, and the
measured arm results, textbook table 9.1 reproduced from its inputs."""

from __future__ import annotations

import math
from datetime import date, datetime

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F

from custseg.config import ConfigError
from custseg.marketing.arms import arm_costs, arm_totals, blanket_arm, with_arm, without
from custseg.marketing.audience import holdout_group
from custseg.marketing.campaigns import Arms, Campaign, parse_campaigns
from custseg.marketing.evaluate import EvaluationParams, campaign_results
from custseg.marketing.plan import campaign_plan, campaigns_frame

VALID = {
    "goal": "retention",
    "channels": ["email"],
    "cost_per_contact": 0.5,
    "revenue_per_response": 60,
    "margin_per_response": 20,
    "budget": 500,
}
SALT = "arms-test"
SENT = datetime(2026, 6, 1, 10, 0)
AS_OF = date(2026, 6, 30)


def _parse(arms):
    return parse_campaigns({"defaults": {"holdout_share": 0.1}, "campaigns": {"k": {**VALID, "arms": arms}}}, "c.yaml")[
        0
    ]


# --- config -----------------------------------------------------------------------------


def test_arms_config_sets_costs_and_control():
    c = _parse(
        {
            "blanket": {"size": 20000, "cost_per_contact": 5},
            "precise": {"cost_per_contact": 12.5},
            "control": {"fraction": 0.2},
        }
    )
    assert c.arms == Arms(blanket_size=20000, blanket_fraction=0.0, blanket_cost_per_contact=5.0)
    # The precise arm's cost replaces cost_per_contact; the control fraction the (default) holdout share.
    assert c.cost_per_contact == 12.5 and c.holdout_share == 0.2
    d = _parse({"blanket": {"fraction": 0.1}})
    assert d.arms == Arms(0, 0.1, 0.5)  # the blanket cost defaults to the campaign's
    assert (d.cost_per_contact, d.holdout_share) == (0.5, 0.1)
    plain = parse_campaigns({"campaigns": {"k": VALID}}, "c.yaml")[0]
    assert plain.arms is None and plain.cost_per_contact == 0.5


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ({"blanket": {"size": 10, "fraction": 0.1}}, "key 'campaigns.k.arms.blanket.size' or 'fraction'"),
        ({"blanket": {"cost_per_contact": 1}}, "key 'campaigns.k.arms.blanket.size' or 'fraction'"),
        ({"blanket": {"size": 0}}, "key 'campaigns.k.arms.blanket.size' must be an integer >= 1"),
        ({"blanket": {"fraction": 1.5}}, "key 'campaigns.k.arms.blanket.fraction' must be a number"),
        ({"blanket": {"size": 5, "cost_per_contact": 0}}, "key 'campaigns.k.arms.blanket.cost_per_contact'"),
        ({"precise": {"cost_per_contact": -1}}, "key 'campaigns.k.arms.precise.cost_per_contact'"),
        ({"control": {"fraction": 0.9}}, "key 'campaigns.k.arms.control.fraction' must be a number"),
        ({"treatment": {}}, "unknown key(s) 'campaigns.k.arms.treatment'"),
        ([1], "key 'campaigns.k.arms' must be a mapping"),
    ],
)
def test_bad_arms_fail_naming_key_and_file(arms, message):
    with pytest.raises(ConfigError) as err:
        _parse(arms)
    assert message in str(err.value) and str(err.value).startswith("c.yaml:")


# --- table 9.1 --------------------------------------------------------------------------


def _contacts(spark, arm: str, n: int, responders: int, revenue: float, group: str = "treatment", cid: str = "book"):
    """n contacted customers of one arm, the first ``responders`` of them converted with ``revenue`` each."""
    converted = F.col("id") < F.lit(responders)
    return spark.range(n).select(
        F.lit(cid).alias("campaign_id"),
        F.concat(F.lit(f"{arm}-{group}-"), F.col("id").cast("string")).alias("customer_key"),
        F.lit("email").alias("channel"),
        F.lit(group).alias("group"),
        F.lit(SENT).alias("sent_ts"),
        converted.alias("converted"),
        F.when(converted, F.lit(revenue)).otherwise(F.lit(0.0)).alias("revenue"),
        F.lit(arm).alias("arm"),
    )


def test_textbook_table_9_1_from_its_inputs(spark):
    """Blanket: cost 100,000 at 5 per contact -> 20,000 contacts; revenue 99,540 at 210 per response
    -> 474 responses. Precise: cost 25,000 at 12.5 -> 2,000 contacts; revenue 46,620 / 210 -> 222.
    ROI as the textbook reads it: revenue / cost = 99,540 / 100,000 (99%) and 46,620 / 25,000 (186%)."""
    responses = _contacts(spark, "blanket", 20000, 474, 210.0).unionByName(
        _contacts(spark, "precise", 2000, 222, 210.0)
    )
    params = EvaluationParams(confidence=0.95, margin_rate=0.3, default_cost_per_contact=0.1, attribution_days=14)
    costs = {("book", "blanket"): 5.0, ("book", "precise"): 12.5}
    got = campaign_results(spark, responses, AS_OF, params, {"book": (12.5, 0.3)}, None, costs).where("level = 'arm'")
    cols = [
        "arm",
        "n_treatment",
        "cost",
        "conversions_treatment",
        "rate_treatment",
        "revenue_treatment",
        "revenue_per_cost",
        "profit",
    ]
    expected = spark.createDataFrame(
        [
            # 20,000 x 5 = 100,000; 474 / 20,000 = 2.37%; 474 x 210 = 99,540; 99,540 / 100,000; 99,540 - 100,000
            ("blanket", 20000, 100000.0, 474, 0.0237, 99540.0, 0.9954, -460.0),
            # 2,000 x 12.5 = 25,000; 222 / 2,000 = 11.1%; 222 x 210 = 46,620; 46,620 / 25,000; 46,620 - 25,000
            ("precise", 2000, 25000.0, 222, 0.111, 46620.0, 1.8648, 21620.0),
        ],
        "arm string, n_treatment long, cost double, conversions_treatment long, rate_treatment double, "
        "revenue_treatment double, revenue_per_cost double, profit double",
    )
    assert_approx_df_equality(got.select(*cols), expected, precision=1e-9, ignore_row_order=True, ignore_nullable=True)
    rows = {r["arm"]: r for r in got.collect()}
    # The book prints the ratios cut to whole percent: 99% and 186%.
    assert [math.floor(rows[a]["revenue_per_cost"] * 100) for a in ("blanket", "precise")] == [99, 186]
    # No control in the book's table: no lift.
    assert rows["precise"]["lift_abs"] is None and rows["precise"]["n_control"] == 0
    # The campaign row costs every contact at its arm's price: 100,000 + 25,000.
    camp = campaign_results(spark, responses, AS_OF, params, {"book": (12.5, 0.3)}, None, costs).where(
        "level = 'campaign'"
    )
    c = camp.first()
    assert c["n_treatment"] == 22000 and c["cost"] == pytest.approx(125000.0)
    assert c["revenue_per_cost"] == pytest.approx(146160.0 / 125000.0) and c["arm"] is None


def test_each_arm_lift_is_against_its_own_control(spark):
    # Blanket: 100 treated, 5 respond; its control 50, 2 respond. Precise: 40 treated, 12 respond; control 10, 1.
    responses = (
        _contacts(spark, "blanket", 100, 5, 10.0)
        .unionByName(_contacts(spark, "blanket", 50, 2, 10.0, group="control"))
        .unionByName(_contacts(spark, "precise", 40, 12, 10.0))
        .unionByName(_contacts(spark, "precise", 10, 1, 10.0, group="control"))
    )
    params = EvaluationParams()
    got = campaign_results(spark, responses, AS_OF, params, {}, None, {("book", "blanket"): 0.2})
    rows = {r["arm"]: r for r in got.where("level = 'arm'").collect()}
    assert rows["blanket"]["rate_control"] == pytest.approx(0.04) and rows["blanket"]["lift_abs"] == pytest.approx(
        0.05 - 0.04
    )
    assert rows["precise"]["lift_abs"] == pytest.approx(0.3 - 0.1)
    assert rows["blanket"]["cost"] == pytest.approx(100 * 0.2)  # the arm's own cost per contact
    assert rows["precise"]["cost"] == pytest.approx(40 * 0.1)  # no arm cost: the default cost per contact
    assert rows["precise"]["profit"] == pytest.approx(120.0 - 4.0)


# --- the blanket draw -------------------------------------------------------------------


def _campaign(cid="k", **arms):
    return Campaign(
        id=cid,
        goal="retention",
        channels=("email",),
        cost_per_contact=1.0,
        revenue_per_response=30.0,
        margin_per_response=10.0,
        budget=20.0,
        holdout_share=0.2,
        arms=Arms(**arms),
    )


def _scored(spark, c: Campaign, n=400):
    """n eligible customers of ``c`` with a falling P(response), grouped by the campaign's holdout hash."""
    return (
        spark.range(n)
        .select(
            F.lit(c.id).alias("campaign_id"),
            F.lit(c.goal).alias("goal"),
            F.format_string("c%04d", F.col("id")).alias("customer_key"),
            F.lit("email").alias("channel"),
            (F.lit(0.5) - F.col("id") / F.lit(1000.0)).alias("p_response"),
            F.lit(c.cost_per_contact).alias("contact_cost"),
            ((F.lit(0.5) - F.col("id") / F.lit(1000.0)) * F.lit(10.0) - F.lit(1.0)).alias("expected_profit"),
            F.lit(c.budget).alias("budget"),
            F.lit(0).alias("max_contacts"),
        )
        .withColumn("group", holdout_group(F.col("campaign_id"), c.holdout_share, SALT))
    )


def test_blanket_size_draws_that_many_contacts_at_random_and_the_same_on_rerun(spark):
    c = _campaign(blanket_size=60, blanket_cost_per_contact=0.4)
    scored = _scored(spark, c)
    arm = scored.transform(blanket_arm(c, SALT))
    rows = arm.collect()
    treated = [r for r in rows if r["group"] == "treatment"]
    control = [r for r in rows if r["group"] == "control"]
    assert len(treated) == 60 and 0 < len(control) < 30
    assert {r["arm"] for r in rows} == {"blanket"} and {r["contact_cost"] for r in rows} == {0.4}
    # Random, not the model's top: customers from the whole P(response) range are drawn.
    ids = sorted(int(r["customer_key"][1:]) for r in treated)
    assert ids[0] < 100 and ids[-1] >= 300
    assert sum(ids) / len(ids) == pytest.approx(200, abs=60)
    # The control covers the same draw: every control row ranks before the last treated row.
    assert max(r["rank"] for r in control) < max(r["rank"] for r in treated)
    assert sorted(r["customer_key"] for r in scored.transform(blanket_arm(c, SALT)).collect()) == sorted(
        r["customer_key"] for r in rows
    )
    # Another campaign (or salt) draws another sample.
    other = _campaign("other", blanket_size=60, blanket_cost_per_contact=0.4)
    drawn = {r["customer_key"] for r in _scored(spark, other).transform(blanket_arm(other, SALT)).collect()}
    assert drawn != {r["customer_key"] for r in rows}


def test_blanket_fraction_and_the_precise_pool_excludes_it(spark):
    c = _campaign(blanket_fraction=0.25, blanket_cost_per_contact=0.4)
    scored = _scored(spark, c)
    arm = scored.transform(blanket_arm(c, SALT))
    n = arm.count()
    assert 60 <= n <= 140  # 25% of 400 = 100, binomial sd ~ 8.7
    pool = scored.transform(without(arm))
    assert pool.count() == 400 - n
    assert pool.join(arm, on=["campaign_id", "customer_key"], how="inner").count() == 0
    with pytest.raises(ValueError, match="no blanket arm"):
        scored.transform(blanket_arm(_campaign(), SALT))


# --- plan and attribution ---------------------------------------------------------------


def test_plan_shows_each_arm_with_its_cost_and_control(spark):
    c = _campaign(blanket_size=3, blanket_cost_per_contact=0.4)
    params = campaigns_frame(spark, [c], {})
    audience = spark.createDataFrame(
        [
            ("k", "a", "treatment", 0.5, 1.0, "precise"),
            ("k", "b", "treatment", 0.3, 1.0, "precise"),
            ("k", "c", "control", 0.3, 1.0, "precise"),
            ("k", "d", "treatment", 0.1, 0.4, "blanket"),
            ("k", "e", "treatment", 0.05, 0.4, "blanket"),
            ("k", "f", "treatment", 0.05, 0.4, "blanket"),
            ("k", "g", "control", 0.1, 0.4, "blanket"),
        ],
        "campaign_id string, customer_key string, group string, p_response double, contact_cost double, arm string",
    )
    flagged = audience.select(
        "campaign_id",
        "customer_key",
        F.lit("email").alias("channel"),
        *[F.lit(False).alias(f"suppressed_{s}") for s in ("contact", "cap", "complaint", "consent")],
        F.lit(True).alias("eligible"),
        "p_response",
    )
    plan = campaign_plan(flagged, flagged, audience, params, arm_totals(audience, params, ["k"]))
    got = {r["strategy"]: r for r in plan.collect()}
    assert set(got) == {"precision", "blanket", "random", "precise_arm", "blanket_arm"}
    b, p = got["blanket_arm"], got["precise_arm"]
    # blanket arm: 3 contacts x 0.4 = 1.2; responses 0.2; revenue 0.2 x 30 = 6; control 1
    assert (b["contacts"], b["holdout"]) == (3, 1)
    assert b["cost"] == pytest.approx(1.2) and b["expected_responses"] == pytest.approx(0.2)
    assert b["revenue"] == pytest.approx(6.0) and b["budget"] is None
    # precise arm: 2 contacts x 1.0; responses 0.8; revenue 24; within the budget of 20
    assert (p["contacts"], p["holdout"], p["cost"], p["within_budget"]) == (2, 1, 2.0, True)
    assert p["revenue"] == pytest.approx(24.0)
    # The precision strategy is the precise arm only (the blanket rows are not model-chosen).
    assert (got["precision"]["contacts"], got["precision"]["holdout"]) == (2, 1)


def test_responses_take_the_arm_of_the_latest_audience_before_the_send(spark):
    audiences = spark.createDataFrame(
        [
            ("k", "a", date(2026, 5, 1), "blanket"),
            ("k", "a", date(2026, 5, 20), "precise"),
            ("k", "a", date(2026, 6, 10), "blanket"),  # planned after the send: not this send's arm
            ("k", "b", date(2026, 5, 1), "blanket"),
        ],
        "campaign_id string, customer_key string, snapshot_date date, arm string",
    )
    responses = spark.createDataFrame(
        [("k", "a", SENT, True), ("k", "b", SENT, False), ("k", "z", SENT, True), ("old", "a", SENT, True)],
        "campaign_id string, customer_key string, sent_ts timestamp, converted boolean",
    )
    got = sorted(
        (r["campaign_id"], r["customer_key"], r["arm"]) for r in responses.transform(with_arm(audiences)).collect()
    )
    assert got == [("k", "a", "precise"), ("k", "b", "blanket"), ("k", "z", None), ("old", "a", None)]


def test_arm_costs_from_campaigns():
    c = _campaign(blanket_size=5, blanket_cost_per_contact=0.4)
    plain = Campaign("p", "growth", ("email",), 0.3, 10.0, 5.0, 100.0)
    assert arm_costs([c, plain]) == {("k", "precise"): 1.0, ("k", "blanket"): 0.4, ("p", "precise"): 0.3}
