"""Segmentation on the generator's output (the shared pipeline run): the planted personas
come back. Unlike test_segment_e2e.py, whose blobs are planted straight into
gold.customer_features, these personas went through the whole pipeline (logs -> bronze ->
silver -> features), so the feature set has to carry what sets them apart."""

from __future__ import annotations

import os

import pytest
from pyspark.sql import functions as F

pytestmark = pytest.mark.slow

PLANTED = 6  # custseg.datagen.personas.PERSONAS


@pytest.fixture(scope="module")
def found(spark, demo_run, demo_tables):
    """(segments joined to the planted persona, segment_quality of the run date)."""
    import pandas as pd

    from custseg.pii import identity_key

    home, run_date, _ = demo_run
    truth = pd.read_csv(home / "truth" / "customers.csv")[["customer_id", "persona"]]
    truth_df = spark.createDataFrame(truth).select(
        identity_key("customer_id", F.col("customer_id"), os.environ["CUSTSEG_PII_SALT"]).alias("customer_key"),
        "persona",
    )
    seg = demo_tables.read("gold.customer_segments").where(F.col("snapshot_date") == F.lit(run_date))
    joined = (
        seg.join(truth_df, on="customer_key", how="inner")
        .select("customer_key", "segment_id", "segment_name", "persona")
        .cache()
    )
    quality = demo_tables.read("gold.segment_quality").where(F.col("snapshot_date") == F.lit(run_date)).cache()
    return joined, quality, len(truth)


def test_every_planted_customer_is_segmented(found):
    joined, _, planted_customers = found
    assert joined.count() == planted_customers


def test_k_chosen_is_the_number_of_personas(found):
    _, quality, _ = found
    chosen = [r["k"] for r in quality.where("kind = 'k_selection' AND metric = 'chosen' AND value = 1").collect()]
    curve = {r["k"]: r["value"] for r in quality.where("kind = 'k_selection' AND metric = 'silhouette'").collect()}
    print(f"k chosen {chosen}, silhouette by k {dict(sorted(curve.items()))}")
    assert chosen == [PLANTED], curve


def test_segments_recover_the_planted_personas(found):
    from custseg.segment.quality import adjusted_rand_index

    joined, _, _ = found
    ari = adjusted_rand_index(joined, "segment_id", "persona")
    print(f"ARI(segments, planted personas) = {ari:.3f}")
    assert ari >= 0.8, ari


def test_planted_personas_get_the_names_that_describe_them(found):
    joined, _, _ = found
    counts = joined.groupBy("persona", "segment_name").count().collect()
    majority = {}
    for r in sorted(counts, key=lambda r: -r["count"]):
        majority.setdefault(r["persona"], r["segment_name"])
    print(majority)
    assert majority["loyal_high_value"] == "High-value loyal"
    assert majority["new_customer"] == "New"
    assert majority["bargain_hunter"] == "Bargain hunters"
    assert majority["occasional_big_spender"] == "Occasional big spenders"
    assert len(set(majority.values())) == PLANTED, majority
