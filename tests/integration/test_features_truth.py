"""Planted truth comes back out of gold.customer_features (the shared pipeline run on ~2,500
generated customers): churners are overdue, bargain hunters pay less than list price, and
loyal high-value customers make up the Champions segment.

The truth file is keyed by the CRM customer_id; gold is keyed by the HMAC customer_key of
silver, which for a CRM customer is identity_key("customer_id", customer_id, salt).
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
from pyspark.sql import functions as F

pytestmark = pytest.mark.slow

CHURNING = "churning"  # custseg.datagen.personas: stops buying 90-200 days before the end date
BARGAIN = "bargain_hunter"
HIGH_VALUE = "loyal_high_value"


@pytest.fixture(scope="module")
def labelled(spark, demo_run, demo_tables) -> pd.DataFrame:
    """One row per planted customer: persona and the features under test (~2.5k rows, bounded)."""
    from custseg.pii import identity_key

    home, run_date, _ = demo_run
    truth = pd.read_csv(home / "truth" / "customers.csv", usecols=["customer_id", "persona"])
    keys = spark.createDataFrame(truth).select(
        identity_key("customer_id", "customer_id", os.environ["CUSTSEG_PII_SALT"]).alias("customer_key"), "persona"
    )
    feats = demo_tables.read("gold.customer_features").where(F.col("snapshot_date") == F.lit(run_date).cast("date"))
    joined = feats.join(keys, on="customer_key", how="inner").select(
        "customer_key", "persona", "overdue_ratio", "recency_days", "discount_coef", "rfm_segment"
    )
    frame = joined.toPandas()
    assert len(frame) >= 0.95 * len(truth), "most planted customers must have a feature row"
    return frame


def auc(scores: pd.Series, positive: pd.Series) -> float:
    """Mann-Whitney AUC: P(score of a random positive > score of a random negative), ties half."""
    ranks = scores.rank(method="average")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_auc_helper_on_known_rankings():
    s = pd.Series([0.1, 0.4, 0.35, 0.8])
    assert auc(s, pd.Series([False, False, True, True])) == pytest.approx(0.75)
    assert auc(s, pd.Series([True, True, False, False])) == pytest.approx(0.25)


def test_overdue_ratio_ranks_churners_first(labelled):
    # The ratio exists for customers with at least two purchase days; every planted churner
    # has at least three orders, so nearly all of them are scored.
    scored = labelled[labelled["overdue_ratio"].notna()]
    churner = scored["persona"] == CHURNING
    coverage = churner.sum() / (labelled["persona"] == CHURNING).sum()
    value = auc(scored["overdue_ratio"], churner)
    print(
        f"overdue_ratio AUC churners vs others: {value:.3f} on {len(scored)} customers; churner coverage {coverage:.0%}"
    )
    assert coverage >= 0.9
    assert value >= 0.8


def test_bargain_hunters_pay_clearly_less_of_list_price(labelled):
    c = labelled[labelled["discount_coef"].notna()]
    by_persona = c.groupby("persona")["discount_coef"].median()
    print("median C by persona:", by_persona.round(3).to_dict())
    bargain = c.loc[c["persona"] == BARGAIN, "discount_coef"]
    rest = c.loc[c["persona"] != BARGAIN, "discount_coef"]
    assert bargain.median() <= rest.median() - 0.15
    # not just on average: bargain hunters sit below every other persona, and mostly below the rest
    assert by_persona.idxmin() == BARGAIN
    assert auc(-c["discount_coef"], c["persona"] == BARGAIN) >= 0.9


def test_champions_are_dominated_by_planted_high_value(labelled):
    champions = labelled[labelled["rfm_segment"] == "Champions"]
    shares = champions["persona"].value_counts(normalize=True)
    print(f"Champions: {len(champions)} customers; persona shares {shares.round(3).to_dict()}")
    assert len(champions) >= 50
    assert shares.idxmax() == HIGH_VALUE
    assert shares[HIGH_VALUE] >= 0.5


def test_planted_favourite_categories_become_preferred_category(spark, demo_run, demo_tables):
    """The generator draws each line from the customer's planted favourite categories with
    probability 0.6-0.8 (custseg.datagen.personas.P_FAV). For customers with 3+ orders,
    preferred_category is one of their favourites for at least 95% (measured 98.5% on seed 23),
    far above naming everyone the most common preferred category."""
    from tests.integration.landing_truth import customer_key

    home, run_date, _ = demo_run
    salt = os.environ["CUSTSEG_PII_SALT"]
    truth = pd.read_csv(home / "truth" / "customers.csv", usecols=["customer_id", "favourite_categories"])
    truth = truth.dropna(subset=["favourite_categories"])
    favourites = {
        customer_key(c, salt): set(f.split("|"))
        for c, f in zip(truth.customer_id, truth.favourite_categories, strict=True)
    }
    feats = (
        demo_tables.read("gold.customer_features")
        .where((F.col("snapshot_date") == F.lit(run_date).cast("date")) & (F.col("frequency") >= 3))
        .select("customer_key", "preferred_category")
        .collect()  # ~1.5k rows
    )
    rows = [(favourites[r["customer_key"]], r["preferred_category"]) for r in feats if r["customer_key"] in favourites]
    assert len(rows) >= 1000
    accuracy = sum(p in fav for fav, p in rows) / len(rows)
    mode = pd.Series([p for _, p in rows]).mode()[0]
    baseline = sum(mode in fav for fav, _ in rows) / len(rows)
    print(
        f"preferred_category in the planted favourites: {accuracy:.3f} of {len(rows)} (mode '{mode}': {baseline:.3f})"
    )
    assert accuracy >= 0.95 and accuracy >= baseline + 0.3, (accuracy, baseline)
