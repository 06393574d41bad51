"""A/B/n offer tests: variant config, assignment by hash, power, corrections, per-variant results.

Hand-computed figures are worked in the comments. The planted test builds 24,000 customers whose
response rate depends on their variant, runs them through the same assignment and results code
as the marketing stage, and requires the planted better variant, and only it, to win after the
correction.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from pyspark.sql import functions as F

from custseg.config import ConfigError
from custseg.marketing.abtest import (
    VARIANT_RESULTS_SCHEMA,
    TestSettings,
    adjust_pvalues,
    latest_assignments,
    min_detectable_lift,
    variant_results,
    variant_rows,
    with_power,
    with_variant,
)
from custseg.marketing.audience import holdout_group
from custseg.marketing.campaigns import parse_campaigns
from custseg.marketing.propensity import stable_bucket

BASE = {
    "goal": "retention",
    "channels": ["email"],
    "cost_per_contact": 0.5,
    "revenue_per_response": 60,
    "margin_per_response": 20,
    "budget": 500,
    "offer": {"type": "coupon", "discount": 0.1, "valid_days": 10},
}
SALT = "test-holdout-salt"


def _campaign(**over):
    (c,) = parse_campaigns({"campaigns": {"keep": {**BASE, **over}}}, "campaigns.yaml")
    return c


def test_variants_parse_and_override_only_what_they_name():
    c = _campaign(variants=[{"id": "a"}, {"id": "b", "weight": 3, "offer": {"discount": 0.2}}])
    a, b = c.variants
    assert (a.id, a.weight, b.id, b.weight) == ("a", 1.0, "b", 3.0)
    assert a.offer == c.offer  # no override: the campaign's offer
    assert (b.offer.discount, b.offer.type, b.offer.valid_days) == (0.2, "coupon", 10)
    assert _campaign().variants == ()


@pytest.mark.parametrize(
    ("variants", "key", "fragment"),
    [
        ([{"id": "a"}], "campaigns.keep.variants", "at least two"),
        ([{"id": "a"}, {"id": "a"}], "campaigns.keep.variants", "repeats a variant id"),
        ([{"id": "a"}, {"id": "B!"}], "campaigns.keep.variants[1].id", "lower-case"),
        ([{"id": "a", "weight": 0}, {"id": "b"}], "campaigns.keep.variants[0].weight", "must be a number > 0"),
        ([{"id": "a"}, {"id": "b", "offer": {"discount": 2}}], "campaigns.keep.variants[1].offer.discount", "<= 0.9"),
        ([{"id": "a"}, {"id": "b", "colour": "red"}], "campaigns.keep.variants[1].colour", "unknown key"),
    ],
)
def test_bad_variants_fail_naming_file_and_key(variants, key, fragment):
    with pytest.raises(ConfigError) as e:
        _campaign(variants=variants)
    assert "campaigns.yaml" in str(e.value) and key in str(e.value) and fragment in str(e.value)


def test_settings_validated(tmp_path):
    from custseg.config import load_config

    conf = tmp_path / "bad.yaml"
    conf.write_text("marketing:\n  testing:\n    correction: bonferroni\n")
    with pytest.raises(ConfigError) as e:
        load_config(conf)
    assert "marketing.testing.correction" in str(e.value) and "bad.yaml" in str(e.value)


def test_holm_and_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm, ascending 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH, times m / rank = 4, 2, 4/3, 1 -> 0.02, 0.02, 0.04, 0.04 -> running min from the top
    assert adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # an untested row is not counted: m = 2
    assert adjust_pvalues([None, 0.01, 0.04], "holm") == pytest.approx([None, 0.02, 0.04])
    assert adjust_pvalues([0.3, 0.9], "holm") == pytest.approx([0.6, 0.9])  # capped, monotone
    with pytest.raises(ValueError):
        adjust_pvalues([0.1], "sidak")


def test_min_detectable_lift_by_hand(spark):
    # z(0.975) + z(0.8) = 1.959964 + 0.841621 = 2.801585; sqrt(0.1 * 0.9 * (1/1000 + 1/1000)) = 0.0134164
    assert min_detectable_lift(1000, 1000, 0.1, 0.05, 0.8) == pytest.approx(2.801585 * 0.0134164, rel=1e-5)
    # two variants: z(1 - 0.05/4) = 2.241403
    assert min_detectable_lift(1000, 1000, 0.1, 0.05, 0.8, 2) == pytest.approx(3.083024 * 0.0134164, rel=1e-5)
    assert min_detectable_lift(0, 1000, 0.1, 0.05, 0.8) is None

    settings = TestSettings(target_lift=0.35)
    one = _campaign()
    two = dataclasses.replace(_campaign(variants=[{"id": "a"}, {"id": "b", "weight": 3}]), id="ab")
    plan = spark.createDataFrame(
        [("keep", 2000, 1000, 0.1), ("ab", 4000, 1000, 0.1), ("keep", 2000, 0, 0.1)],
        "campaign_id string, contacts long, holdout long, response_rate double",
    )
    got = plan.transform(with_power(settings, [one, two])).collect()
    # keep: n_v = 2000, n_c = 1000: 2.801585 * sqrt(0.09 * 0.0015) = 0.032553, relative 0.3255 < 0.35
    # ab: the smaller variant has 1/4 of 4000 = 1000 and m = 2: 0.041363, relative 0.4136 > 0.35
    assert got[0]["variants"] == 1 and got[0]["mde_abs"] == pytest.approx(0.032553, rel=1e-4)
    assert got[1]["variants"] == 2 and got[1]["mde_abs"] == pytest.approx(0.041363, rel=1e-4)
    assert got[0]["mde_rel"] == pytest.approx(0.32553, rel=1e-4)
    assert [r["underpowered"] for r in got] == [False, True, True]  # the last has no control
    assert got[2]["mde_abs"] is None


def _customers(spark, n, campaign, share=0.2):
    return (
        spark.range(n)
        .select(F.format_string("c%06d", "id").alias("customer_key"))
        .withColumn("campaign_id", F.lit(campaign.id))
        .withColumn("group", holdout_group(F.lit(campaign.id), share, SALT))
        .transform(with_variant([campaign], SALT))
    )


def test_assignment_follows_weights_and_is_independent_of_the_holdout(spark):
    c = _campaign(variants=[{"id": "a"}, {"id": "b"}, {"id": "c", "weight": 2}])
    rows = _customers(spark, 20000, c).cache()
    assert rows.where("group = 'control' and variant is not null").count() == 0
    shares = {
        r["variant"]: r["n"]
        for r in rows.where("group = 'treatment'").groupBy("variant").agg(F.count("*").alias("n")).collect()
    }
    treated = sum(shares.values())
    assert shares["a"] / treated == pytest.approx(0.25, abs=0.015)
    assert shares["c"] / treated == pytest.approx(0.5, abs=0.015)
    # the variant a held-out customer would have had: the holdout share is 20% within each
    would = rows.withColumn("group", F.lit("treatment")).transform(with_variant([c], SALT))
    per = (
        would.join(rows.select("customer_key", F.col("group").alias("g")), "customer_key")
        .groupBy("variant")
        .agg(F.avg(F.when(F.col("g") == "control", 1.0).otherwise(0.0)).alias("held"))
    )
    for r in per.collect():
        assert r["held"] == pytest.approx(0.2, abs=0.02), r
    # stable: the same assignment again
    again = _customers(spark, 20000, c)
    assert rows.exceptAll(again).count() == 0
    rows.unpersist()


def _counts(variant, x, n=1000, x_c=50, n_c=1000):
    return {
        "campaign_id": "k",
        "level": "campaign",
        "segment": None,
        "variant": variant,
        "n": n,
        "x": x,
        "rev": 10.0 * x,
        "n_c": n_c,
        "x_c": x_c,
        "rev_c": 10.0 * x_c,
    }


COLS = [f.name for f in VARIANT_RESULTS_SCHEMA.fields]


def test_variant_rows_by_hand():
    a, b = (
        dict(zip(COLS, r, strict=True))
        for r in variant_rows([_counts("a", 60), _counts("b", 90)], TestSettings(), 0.95)
    )
    assert a["rate_variant"] == pytest.approx(0.06) and b["lift_abs"] == pytest.approx(0.04)
    # b: pooled p = 140/2000 = 0.07, se = sqrt(0.07 * 0.93 * 0.002) = 0.011411, z = 3.5055 -> p = 0.000456
    # a: z = 0.01 / sqrt(0.055 * 0.945 * 0.002) = 0.9815 -> p = 0.3264. Holm: b x 2, a x 1
    assert b["p_value"] == pytest.approx(0.000456, rel=0.01) and b["p_adjusted"] == pytest.approx(2 * b["p_value"])
    assert a["p_value"] == pytest.approx(0.3264, rel=0.01) and a["p_adjusted"] == pytest.approx(a["p_value"])
    assert (a["family_size"], a["significant"], b["significant"]) == (2, False, True)
    assert (a["best"], b["best"], b["revenue_variant"], b["revenue_control"]) == (False, True, 900.0, 500.0)


def test_the_correction_decides_what_is_significant():
    """a and c: 72/1000 against 50/1000, pooled 0.061, se 0.010703, z 2.0555, p 0.0398 (< 0.05
    unadjusted). With b (p 0.000456) in the family, Holm multiplies the two 0.0398 by 2 and 1
    and keeps the running max: 0.0796 for both, not significant. BH multiplies by 3/2 and 3/3
    and keeps the running min from the top: 0.0398 for both, significant."""
    counts = [_counts("a", 72), _counts("b", 90), _counts("c", 72)]
    for method, want in (("holm", 0.0796), ("bh", 0.0398)):
        rows = [dict(zip(COLS, r, strict=True)) for r in variant_rows(counts, TestSettings(correction=method), 0.95)]
        a, b, c = rows
        assert a["p_value"] == pytest.approx(0.0398, rel=0.01)
        assert a["p_adjusted"] == pytest.approx(want, rel=0.01) and c["p_adjusted"] == pytest.approx(want, rel=0.01)
        assert (a["significant"], c["significant"]) == ((False, False) if method == "holm" else (True, True))
        assert b["significant"] and b["best"] and a["correction"] == method


def test_planted_better_variant_wins_with_the_correction(spark):
    """Rates: control 5%, a 5%, b 5.5% (a small real lift), c 9%, 24,000 customers, 20% held out:
    c wins overall; the per-segment tests share one Holm family with the overall ones, and
    the correction changes what is significant."""
    c = _campaign(variants=[{"id": "a"}, {"id": "b"}, {"id": "c"}])
    rate = F.when(F.col("variant") == "c", 0.09).when(F.col("variant") == "b", 0.055).otherwise(0.05)
    u = stable_bucket(F.col("customer_key"), F.lit("planted-response")) / F.lit(10000.0)
    responses = (
        _customers(spark, 24000, c)
        .withColumn("converted", u < rate)
        .withColumn("revenue", F.when(F.col("converted"), F.lit(40.0)).otherwise(F.lit(0.0)))
        .withColumn(
            "segment_name", F.when(stable_bucket(F.col("customer_key"), F.lit("seg")) < 5000, "x").otherwise("y")
        )
    )
    audiences = responses.select(
        "campaign_id", "customer_key", "group", "variant", F.to_date(F.lit("2026-06-01")).alias("snapshot_date")
    )
    assigned = latest_assignments(audiences, date(2026, 6, 30))
    for correction in ("holm", "bh"):
        settings = TestSettings(correction=correction)
        rows = {
            (r["level"], r["segment"], r["variant"]): r
            for r in variant_results(
                spark, responses.drop("variant"), assigned, settings, 0.95, "segment_name"
            ).collect()
        }
        overall = {v: rows[("campaign", None, v)] for v in "abc"}
        assert overall["c"]["best"] and overall["c"]["significant"], overall["c"]
        assert overall["c"]["lift_abs_ci_low"] > 0
        assert not overall["a"]["significant"] and not overall["a"]["best"]
        assert {r["family_size"] for r in rows.values()} == {9}  # 3 variants x (overall + 2 segments)
        assert all(r["p_adjusted"] >= r["p_value"] - 1e-12 for r in rows.values())
        assert sum(r["n_variant"] for k, r in rows.items() if k[0] == "campaign") + overall["a"]["n_control"] == 24000
