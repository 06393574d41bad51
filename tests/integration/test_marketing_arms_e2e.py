"""Designed arms end to end: the shared run's ARMS campaign (tests/integration/conftest.py) drew a
blanket arm and chose a precise arm; responses are planted from the generator's truth
(treated conversion = control rate + multiplier x planted propensity, control conversion = control
rate) and measured with the results code. The precise arm beats the blanket arm on measured
response rate and on revenue / cost, each arm lifts over its own control, and the blanket arm is a
random sample (its planted propensity is the population's)."""

from __future__ import annotations

import os
from datetime import date, timedelta

import pytest

from tests.integration.conftest import ARMS, RUN_DATE

pytestmark = pytest.mark.slow

# Middle of the generator's planted ranges (lib/custseg/datagen/campaigns.py).
CONTROL_RATE, MULTIPLIER = 0.02, 0.8
REVENUE = ARMS["revenue_per_response"]
SENT = date.fromisoformat(RUN_DATE) + timedelta(days=1)


def _truth(spark, home):
    import pandas as pd
    from pyspark.sql import functions as F

    from custseg.pii import identity_key

    truth = pd.read_csv(home / "truth" / "customers.csv")[["customer_id", "responder_propensity"]]
    return spark.createDataFrame(truth).select(
        identity_key("customer_id", F.col("customer_id"), os.environ["CUSTSEG_PII_SALT"]).alias("customer_key"),
        F.col("responder_propensity").cast("double").alias("propensity"),
    )


def _planted_responses(audience, truth):
    """One response row per audience row, converted by the planted propensity (a hash uniform per customer)."""
    from pyspark.sql import functions as F

    from custseg.marketing.propensity import stable_bucket

    u = stable_bucket(F.col("customer_key"), F.lit("arms-e2e")) / F.lit(10000.0)
    p = F.when(
        F.col("group") == "treatment",
        F.least(F.lit(CONTROL_RATE) + F.lit(MULTIPLIER) * F.col("propensity"), F.lit(0.95)),
    ).otherwise(F.lit(CONTROL_RATE))
    converted = u < p
    return audience.join(truth, on="customer_key", how="inner").select(
        "campaign_id",
        "customer_key",
        "channel",
        "group",
        F.lit(f"{SENT} 09:30:00").cast("timestamp").alias("sent_ts"),
        converted.alias("converted"),
        F.when(converted, F.lit(REVENUE)).otherwise(F.lit(0.0)).alias("revenue"),
    )


def test_precise_arm_beats_blanket_arm_measured(spark, demo_run, demo_tables):
    from pyspark.sql import functions as F

    from custseg.marketing.arms import arm_costs, with_arm
    from custseg.marketing.campaigns import parse_campaigns
    from custseg.marketing.evaluate import EvaluationParams, campaign_results

    home, _, _ = demo_run
    snap = F.col("snapshot_date") == F.lit(RUN_DATE).cast("date")
    audiences = demo_tables.read("gold.campaign_audiences")
    mine = audiences.where(snap & (F.col("campaign_id") == "arms"))
    by_arm = {
        (r["arm"], r["group"]): (r["n"], r["cost"])
        for r in mine.groupBy("arm", "group")
        .agg(F.count("*").alias("n"), F.sum("contact_cost").alias("cost"))
        .collect()
    }
    print(f"arms audience: {by_arm}")
    # The stage drew the blanket arm to size at its own cost, and chose the precise arm within budget.
    assert by_arm[("blanket", "treatment")] == (1000, pytest.approx(500.0))
    n_precise, cost_precise = by_arm[("precise", "treatment")]
    assert 0 < n_precise <= 200 and cost_precise == pytest.approx(0.75 * n_precise)
    assert by_arm[("blanket", "control")][0] > 0 and by_arm[("precise", "control")][0] > 0
    assert mine.groupBy("customer_key").count().where("count > 1").count() == 0  # nobody in both arms

    plan = {
        r["strategy"]: r
        for r in demo_tables.read("gold.campaign_plan").where(snap & (F.col("campaign_id") == "arms")).collect()
    }
    assert plan["blanket_arm"]["contacts"] == 1000 and plan["blanket_arm"]["cost"] == pytest.approx(500.0)
    assert plan["precise_arm"]["contacts"] == n_precise and plan["precise_arm"]["within_budget"]
    assert plan["precise_arm"]["response_rate"] > plan["blanket_arm"]["response_rate"]  # the model's prediction

    truth = _truth(spark, home)
    # The blanket arm is a random sample: its planted propensity is the population's.
    mean = {
        r["arm"]: r["m"]
        for r in mine.join(truth, "customer_key").groupBy("arm").agg(F.avg("propensity").alias("m")).collect()
    }
    everyone = truth.agg(F.avg("propensity"), F.stddev("propensity")).first()
    print(f"planted propensity: blanket {mean['blanket']:.3f}, precise {mean['precise']:.3f}, all {everyone[0]:.3f}")
    assert abs(mean["blanket"] - everyone[0]) <= 4 * everyone[1] / (1250**0.5)
    assert mean["precise"] > 2 * everyone[0]

    # Measured: planted responses, attributed to arms from gold.campaign_audiences, through the results code.
    responses = _planted_responses(mine, truth).transform(with_arm(audiences))
    campaigns = parse_campaigns({"campaigns": {"arms": ARMS}}, "conftest ARMS")
    results = campaign_results(
        spark,
        responses,
        SENT + timedelta(days=30),
        EvaluationParams(),
        {"arms": (0.75, 20.0 / 60.0)},
        None,
        arm_costs(campaigns),
    )
    got = {r["arm"]: r for r in results.where("level = 'arm'").collect()}
    for arm in ("blanket", "precise"):
        r = got[arm]
        print(
            f"measured {arm}: {r['n_treatment']} contacts, cost {r['cost']:.1f}, {r['conversions_treatment']} "
            f"responses ({r['rate_treatment']:.3f}), revenue {r['revenue_treatment']:.1f}, revenue / cost "
            f"{r['revenue_per_cost']:.2f}, profit {r['profit']:.1f}; control {r['rate_control']:.3f} "
            f"(n {r['n_control']}), lift {r['lift_abs']:.3f}"
        )
    b, p = got["blanket"], got["precise"]
    assert (b["n_treatment"], p["n_treatment"]) == (1000, n_precise)
    assert b["cost"] == pytest.approx(500.0) and p["cost"] == pytest.approx(0.75 * n_precise)
    assert p["rate_treatment"] > b["rate_treatment"]
    assert p["revenue_per_cost"] > b["revenue_per_cost"]
    assert p["revenue_treatment"] == pytest.approx(REVENUE * p["conversions_treatment"])
    assert p["lift_abs"] > 0 and b["lift_abs"] > 0
