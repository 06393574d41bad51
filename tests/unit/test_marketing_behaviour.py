"""Campaigns from transactions alone: the behavioural propensity ("bought again within N days",
back-dated snapshots, validated on the newest) and the consent policy."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from custseg.marketing.audience import flag_campaign
from custseg.marketing.behaviour import behaviour_cutoffs, fit_behaviour, repurchase_examples
from custseg.marketing.campaigns import Campaign
from custseg.marketing.consent import ConsentPolicy, with_consent
from custseg.marketing.propensity import PropensityParams, fit_goal, point_in_time_features

ORDERS = (
    "order_id string, customer_key string, order_ts timestamp, status string, net_revenue decimal(16,2), "
    "discount_amount decimal(16,2), gross_revenue decimal(16,2), n_lines int, n_units int"
)
CUSTOMERS = "customer_key string, signup_date date, opt_in_email boolean, member_tier string, age_band string"
AS_OF = date(2026, 6, 30)


def _order(oid: str, key: str | None, day: date, status: str = "completed", rev: str = "20") -> tuple:
    ts = datetime.combine(day, datetime.min.time()).replace(hour=10)
    return (oid, key, ts, status, Decimal(rev), Decimal("0"), Decimal(rev), 1, 1)


def test_cutoffs_end_their_label_window_by_the_run_date():
    cuts = behaviour_cutoffs(AS_OF, label_days=90, snapshots=3, step_days=30)
    assert cuts == [date(2026, 4, 2), date(2026, 3, 3), date(2026, 2, 1)]
    assert cuts[0] + timedelta(days=90) == AS_OF + timedelta(days=1)  # window [cutoff, cutoff + 90) ends with AS_OF


def test_repurchase_examples_by_hand(spark):
    cuts = [date(2026, 3, 1), date(2026, 2, 1)]
    orders = spark.createDataFrame(
        [
            _order("a1", "a", date(2026, 1, 10)),
            _order("a2", "a", date(2026, 2, 15)),  # again within 30 days of 2026-02-01; before 2026-03-01
            _order("b1", "b", date(2026, 2, 20)),  # first purchase between the cutoffs
            _order("b2", "b", date(2026, 3, 31)),  # day 30 after 2026-03-01: outside [cutoff, cutoff + 30)
            _order("c1", "c", date(2026, 1, 5)),
            _order("c2", "c", date(2026, 3, 10), status="returned"),  # not a purchase
            _order("d1", "d", date(2026, 3, 5)),  # no purchase before either cutoff: no example
            _order("g1", None, date(2026, 1, 5)),  # guest
            _order("f1", "f", date(2026, 1, 20), status="free", rev="0"),  # only free lines: not a purchase
            _order("f2", "f", date(2026, 2, 10)),
        ],
        ORDERS,
    )
    got = orders.transform(repurchase_examples(cuts, label_days=30))
    expected = spark.createDataFrame(
        [
            ("a", date(2026, 2, 1), 1.0, False),
            ("a", date(2026, 3, 1), 0.0, True),
            ("b", date(2026, 3, 1), 0.0, True),
            ("c", date(2026, 2, 1), 0.0, False),
            ("c", date(2026, 3, 1), 0.0, True),
            ("f", date(2026, 3, 1), 0.0, True),
        ],
        "customer_key string, cutoff_date date, label double, is_validation boolean",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def _regulars_and_lapsers(spark, n: int = 240, seed: int = 3):
    """Half the customers buy every 2-4 weeks all year (they come back); half bought a few
    times in the first months only (they do not): the planted truth the model must find."""
    rng = random.Random(seed)
    rows, custs = [], []
    start = AS_OF - timedelta(days=400)
    for i in range(n):
        key = f"c{i:04d}"
        regular = i % 2 == 0
        custs.append((key, start, None, None, None))
        day = start + timedelta(days=rng.randint(0, 30))
        end = AS_OF if regular else start + timedelta(days=rng.randint(60, 150))
        j = 0
        while day <= end:
            rows.append(_order(f"{key}-{j}", key, day, rev=str(rng.randint(10, 80))))
            day += timedelta(days=rng.randint(14, 30) if regular else rng.randint(20, 60))
            j += 1
    return spark.createDataFrame(rows, ORDERS), spark.createDataFrame(custs, CUSTOMERS)


def test_behavioural_model_finds_who_comes_back_and_is_scaled_to_the_response_rate(spark):
    orders, customers = _regulars_and_lapsers(spark)
    params = PropensityParams(models=("logistic",), behaviour_label_days=60, behaviour_snapshots=3)
    features_at = point_in_time_features(orders, customers)
    model = fit_behaviour(orders, features_at, AS_OF, params)
    assert model is not None and model.training_source == "behaviour"
    assert model.label == "bought again within 60 days"
    assert model.auc_chosen > 0.9, model.auc
    assert model.n_validation > 0 and model.n_train > model.n_validation  # two older snapshots train
    assert model.scale == pytest.approx(params.fallback_response_rate / model.base_rate)
    cal = model.calibration["logistic"]
    assert cal[0]["observed_rate"] > cal[-1]["observed_rate"]
    assert {r[-1] for r in model.quality_rows()} == {"bought again within 60 days"}
    snap = customers.select("customer_key", F.lit(AS_OF + timedelta(days=1)).alias("cutoff_date"))
    scored = model.score(snap.transform(features_at)).join(
        customers.select("customer_key"), on="customer_key", how="inner"
    )
    by_kind = {
        r["regular"]: r["p"]
        for r in scored.groupBy((F.substring("customer_key", 5, 1).cast("int") % 2 == 0).alias("regular"))
        .agg(F.avg("p_response").alias("p"))
        .collect()
    }
    assert by_kind[True] > 3 * by_kind[False]  # c0000, c0002, ... are the regulars
    assert scored.where((F.col("p_response") < 0) | (F.col("p_response") > 1)).count() == 0

    # A goal without any campaign history ranks by it, under its own goal name.
    goal = fit_goal("retention", None, features_at, AS_OF, params, behaviour=lambda: model)
    assert (goal.goal, goal.training_source, goal.label) == ("retention", "behaviour", model.label)
    off = PropensityParams(behaviour_enabled=False)
    assert fit_goal("retention", None, features_at, AS_OF, off, behaviour=lambda: model).chosen == "constant"


def test_too_short_a_history_gives_no_behavioural_model(spark):
    orders = spark.createDataFrame([_order("o1", "a", AS_OF - timedelta(days=100))], ORDERS)
    customers = spark.createDataFrame([("a", None, None, None, None)], CUSTOMERS)
    params = PropensityParams(behaviour_label_days=90, behaviour_snapshots=4, behaviour_step_days=30)
    assert fit_behaviour(orders, point_in_time_features(orders, customers), AS_OF, params) is None


BASE = (
    "customer_key string, opt_in_email boolean, opt_in_sms boolean, opt_in_ads boolean, email_key string, "
    "phone_key string, email_sha256 string, phone_sha256 string, last_contact_date date, contacts_30d long, "
    "last_complaint_date date, rfm_segment string, p double"
)


def test_consent_policy_crm_keeps_the_unknown_out_and_assumed_reaches_them_by_key(spark):
    base = spark.createDataFrame(
        [
            ("known", True, None, None, "ek", None, None, None, None, 0, None, "Loyal", 0.1),
            ("refused", False, False, False, "ek2", None, None, None, None, 0, None, "Loyal", 0.1),
            ("bare", None, None, None, None, None, None, None, None, 0, None, "Loyal", 0.1),
        ],
        BASE,
    )
    campaign = Campaign(
        id="c1",
        goal="retention",
        channels=("email", "ads"),
        cost_per_contact=1.0,
        revenue_per_response=50.0,
        margin_per_response=20.0,
        budget=10.0,
        holdout_share=0.0,
    )

    def channels(policy: ConsentPolicy) -> dict:
        flagged = base.transform(with_consent(policy)).transform(flag_campaign(campaign, AS_OF, "p"))
        return {r["customer_key"]: (r["channel"], r["eligible"]) for r in flagged.collect()}

    safe = ConsentPolicy()
    assert channels(safe) == {"known": ("email", True), "refused": (None, False), "bare": (None, False)}
    assumed = ConsentPolicy("assume_opted_in", ("email", "ads"))
    # Recorded consent wins (a refusal stays a refusal); ads need a hashed address, never the key.
    assert channels(assumed) == {"known": ("email", True), "refused": (None, False), "bare": ("email", True)}
    basis = {r["customer_key"]: r["consent_basis"] for r in base.transform(with_consent(assumed)).collect()}
    assert basis == {"known": "recorded", "refused": "recorded", "bare": "assumed"}
    assert "CONSENT ASSUMED" in assumed.warning() and safe.warning() is None


def test_consent_policy_is_checked_at_start_up(tmp_path):
    import custseg.marketing.campaigns  # noqa: F401 - registers the marketing validator
    from custseg.config import DEFAULT_CONF_DIR, ConfigError, load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {DEFAULT_CONF_DIR / 'base.yaml'}\nmarketing:\n  consent:\n    policy: everyone\n")
    with pytest.raises(ConfigError, match=r"marketing.consent.policy.*everyone"):
        load_config(bad)
    short = tmp_path / "short.yaml"
    short.write_text(
        f"extends: {DEFAULT_CONF_DIR / 'base.yaml'}\nmarketing:\n  propensity:\n    behaviour:\n      snapshots: 1\n"
    )
    with pytest.raises(ConfigError, match=r"marketing.propensity.behaviour.snapshots"):
        load_config(short)
