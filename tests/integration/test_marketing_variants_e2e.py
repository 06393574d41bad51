"""Offer variants end to end: the shared run's ARMS campaign (tests/integration/conftest.py) has
two variants, ``base`` (its 10% coupon) and ``deeper`` (25%). The marketing stage split the treated
customers by hash and gave each variant its offer; here responses are planted on that split
(control and ``base`` convert at 15%, ``deeper`` at 30%, a hash uniform per customer) and measured
with the stage's results code: ``deeper`` wins after the Holm correction across the campaign's
variants and segments, ``base`` does not. The stage's own gold.variant_results for the historical
campaigns (no variants: ``default``) must count what gold.campaign_results counts."""

from __future__ import annotations

from datetime import date

import pytest

from tests.integration.conftest import RUN_DATE

pytestmark = pytest.mark.slow

RATES = {"base": 0.15, "deeper": 0.30}  # the control group converts as base


def test_planted_better_variant_wins_after_the_correction(spark, demo_tables):
    from pyspark.sql import functions as F

    from custseg.marketing.abtest import TestSettings, latest_assignments, variant_results
    from custseg.marketing.propensity import stable_bucket

    snap = F.col("snapshot_date") == F.lit(RUN_DATE).cast("date")
    audiences = demo_tables.read("gold.campaign_audiences")
    mine = audiences.where(snap & (F.col("campaign_id") == "arms"))

    split = {
        (r["group"], r["variant"]): r["n"]
        for r in mine.groupBy("group", "variant").agg(F.count("*").alias("n")).collect()
    }
    print(f"arms audience by group and variant: {split}")
    assert set(split) == {("treatment", "base"), ("treatment", "deeper"), ("control", None)}
    treated = split[("treatment", "base")] + split[("treatment", "deeper")]
    assert split[("treatment", "deeper")] / treated == pytest.approx(0.5, abs=4 * 0.5 / treated**0.5)
    offers = {
        r["variant"]: sorted(r["d"])
        for r in mine.where("group = 'treatment'")
        .groupBy("variant")
        .agg(F.collect_set("offer_discount").alias("d"))
        .collect()
    }
    assert offers == {"base": [0.1], "deeper": [0.25]}

    u = stable_bucket(F.col("customer_key"), F.lit("variants-e2e")) / F.lit(10000.0)
    rate = F.when(F.col("variant") == "deeper", RATES["deeper"]).otherwise(RATES["base"])
    responses = mine.select(
        "campaign_id",
        "customer_key",
        "group",
        "segment_name",
        (u < rate).alias("converted"),
        F.when(u < rate, F.lit(60.0)).otherwise(F.lit(0.0)).alias("revenue"),
    )
    assigned = latest_assignments(audiences, date.fromisoformat(RUN_DATE))
    rows = variant_results(spark, responses, assigned, TestSettings(correction="holm"), 0.95, "segment_name").collect()
    overall = {r["variant"]: r for r in rows if r["level"] == "campaign"}
    for v, r in sorted(overall.items()):
        print(
            f"{v}: {r['conversions_variant']}/{r['n_variant']} = {r['rate_variant']:.3f} vs control "
            f"{r['conversions_control']}/{r['n_control']} = {r['rate_control']:.3f}; p {r['p_value']:.2g}, "
            f"Holm {r['p_adjusted']:.2g} (family {r['family_size']}), significant {r['significant']}, best {r['best']}"
        )
    assert set(overall) == {"base", "deeper"}
    d, b = overall["deeper"], overall["base"]
    assert d["significant"] and d["best"] and d["lift_abs_ci_low"] > 0
    assert not b["significant"] and not b["best"]
    tested = [r for r in rows if r["p_value"] is not None]
    assert all(r["p_adjusted"] >= r["p_value"] - 1e-12 for r in tested)
    assert {r["family_size"] for r in rows} == {len(tested)} and len(tested) > 2  # overall and per segment
    # the correction is applied: the smallest p-value is multiplied by the family size
    smallest = min(tested, key=lambda r: r["p_value"])
    assert smallest["p_adjusted"] == pytest.approx(min(1.0, len(tested) * smallest["p_value"]))


def test_variant_results_of_the_run_count_what_campaign_results_counts(demo_tables):
    """Two code paths over the same responses: evaluate.response_counts (treatment vs control)
    and abtest.variant_counts (per variant; the historical campaigns have one, default)."""
    from pyspark.sql import functions as F

    snap = F.col("snapshot_date") == F.lit(RUN_DATE).cast("date")
    variants = demo_tables.read("gold.variant_results").where(snap & (F.col("level") == "campaign")).collect()
    results = {
        r["campaign_id"]: r
        for r in demo_tables.read("gold.campaign_results").where(snap & (F.col("level") == "campaign")).collect()
    }
    assert variants and {r["variant"] for r in variants} == {"default"}
    for v in variants:
        c = results[v["campaign_id"]]
        got = (v["n_variant"], v["n_control"], v["conversions_variant"], v["conversions_control"])
        assert got == (c["n_treatment"], c["n_control"], c["conversions_treatment"], c["conversions_control"]), v
        assert v["p_value"] == pytest.approx(c["p_value"])
