"""Recommendations: ranking metrics, blend, popularity, dense ids, interactions and ALS."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from custseg.recommend.als import dense_ids, fit_als, interactions, recommend
from custseg.recommend.evaluate import blend, ranking_metrics
from custseg.recommend.popularity import (
    item_popularity,
    recommend_popular,
    recommend_popular_by_segment,
)
from custseg.recommend.settings import AlsParams

RECS = "customer_key string, rank int, item string"
PAIRS = "customer_key string, item string"
METRICS = "k int, users long, precision double, recall double, map double, coverage double"


# --- ranking metrics -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranked(spark):
    relevant = spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u2", "c"), ("u3", "d")], PAIRS)
    recs = spark.createDataFrame(
        [("u1", 1, "a"), ("u1", 2, "x"), ("u1", 3, "b"), ("u2", 1, "y"), ("u2", 2, "c"), ("u9", 1, "a")], RECS
    )
    return recs, relevant


def test_ranking_metrics_by_hand(spark, ranked):
    recs, relevant = ranked
    got = recs.transform(ranking_metrics(relevant, [2, 3]))
    # u1: hits at 1 and 3 of {a, b}; u2: hit at 2 of {c}; u3: no list; u9 is not an evaluation user.
    # K=2: P = (1/2 + 1/2 + 0)/3, R = (1/2 + 1 + 0)/3, AP: u1 (1/1)/2, u2 (1/2)/1 -> (1/2 + 1/2)/3
    # K=3: P = (2/3 + 1/3)/3, R = (1 + 1)/3, AP: u1 (1 + 2/3)/2 = 5/6, u2 1/2 -> (5/6 + 1/2)/3
    expected = spark.createDataFrame([(2, 3, 1 / 3, 0.5, 1 / 3, 2 / 3), (3, 3, 1 / 3, 2 / 3, 4 / 9, 2 / 3)], METRICS)
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def test_ranking_metrics_agree_with_spark_ranking_metrics(spark, ranked):
    from pyspark.mllib.evaluation import RankingMetrics

    recs, relevant = ranked
    got = {r["k"]: r for r in recs.transform(ranking_metrics(relevant, [1, 2, 3])).collect()}
    pairs = spark.sparkContext.parallelize([(["a", "x", "b"], ["a", "b"]), (["y", "c"], ["c"]), ([], ["d"])])
    spark_metrics = RankingMetrics(pairs)
    for k in (1, 2, 3):
        assert got[k]["precision"] == pytest.approx(spark_metrics.precisionAt(k), abs=1e-12)
        assert got[k]["recall"] == pytest.approx(spark_metrics.recallAt(k), abs=1e-12)
        assert got[k]["map"] == pytest.approx(spark_metrics.meanAveragePrecisionAt(k), abs=1e-12)


def test_blend_is_reciprocal_rank_fusion(spark):
    rules = spark.createDataFrame([("u1", 1, "a"), ("u1", 2, "b")], RECS)
    als = spark.createDataFrame([("u1", 1, "b"), ("u1", 2, "c"), ("u2", 1, "d")], RECS)
    got = rules.transform(blend(als, top_n=2, rules_weight=0.5, rrf_k=60))
    expected = spark.createDataFrame(
        [
            ("u1", 1, "b", 0.5 / 62 + 0.5 / 61, "blend"),
            ("u1", 2, "a", 0.5 / 61, "blend"),
            ("u2", 1, "d", 0.5 / 61, "blend"),
        ],
        RECS + ", score double, source string",
    )
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


# --- popularity --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def purchases(spark):
    return spark.createDataFrame([("c1", "a"), ("c1", "b"), ("c2", "a"), ("c3", "a"), ("c3", "c"), ("c4", "b")], PAIRS)


def test_item_popularity_counts_distinct_buyers(spark, purchases):
    got = purchases.unionByName(purchases).transform(item_popularity())  # repeats do not count twice
    expected = spark.createDataFrame(
        [("a", 3, 0.75, 1), ("b", 2, 0.5, 2), ("c", 1, 0.25, 3)], "item string, buyers long, share double, pop_rank int"
    )
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def test_popular_items_skip_what_the_customer_owns(spark, purchases):
    targets = spark.createDataFrame([("c1",), ("c2",), ("new",)], "customer_key string")
    got = targets.transform(recommend_popular(purchases.transform(item_popularity()), 2, purchases)).drop("score")
    expected = spark.createDataFrame(
        [
            ("c1", 1, "c", "popular"),
            ("c2", 1, "b", "popular"),
            ("c2", 2, "c", "popular"),
            ("new", 1, "a", "popular"),
            ("new", 2, "b", "popular"),
        ],
        RECS + ", source string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_cold_start_uses_the_segment_then_everyone(spark, purchases):
    segments = spark.createDataFrame(
        [("c1", 1), ("c2", 1), ("c3", 2), ("c4", 2), ("n1", 1), ("n3", 3)], "customer_key string, segment_id int"
    )
    targets = spark.createDataFrame([("n1",), ("n2",), ("n3",)], "customer_key string")
    got = targets.transform(recommend_popular_by_segment(purchases, segments, 2, purchases))
    # segment 1 (c1, c2): a bought by both (share 1.0), b by one (0.5). n2 has no segment,
    # segment 3 bought nothing: both get the overall list (a 3/4, b 2/4).
    expected = spark.createDataFrame(
        [
            ("n1", 1, "a", 1.0, "segment_popular"),
            ("n1", 2, "b", 0.5, "segment_popular"),
            ("n2", 1, "a", 0.75, "popular"),
            ("n2", 2, "b", 0.5, "popular"),
            ("n3", 1, "a", 0.75, "popular"),
            ("n3", 2, "b", 0.5, "popular"),
        ],
        RECS + ", score double, source string",
    )
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


# --- ALS ---------------------------------------------------------------------------------


def test_dense_ids_number_distinct_keys_from_zero(spark):
    keys = [(f"k{i % 37}",) for i in range(100)] + [(None,)]
    got = spark.createDataFrame(keys, "key string").repartition(3).transform(dense_ids("key", "id"))
    rows = got.collect()
    assert sorted(r["id"] for r in rows) == list(range(37))
    assert sorted(r["key"] for r in rows) == sorted(f"k{i}" for i in range(37))


def test_interactions_weigh_purchases_above_views(spark):
    lines = spark.createDataFrame(
        [
            ("c1", date(2026, 6, 1), "completed", "A"),
            ("c1", date(2026, 6, 5), "completed", "A"),
            ("c1", date(2026, 6, 6), "returned", "B"),  # not a purchase
            (None, date(2026, 6, 6), "completed", "B"),  # guest
            ("c2", date(2026, 1, 1), "completed", "B"),  # before the window
        ],
        "customer_key string, order_date date, status string, sku string",
    )
    events = spark.createDataFrame(
        [
            ("c1", "product_view", "A", None, datetime(2026, 6, 2, 10)),
            ("c1", "add_to_cart", "B", None, datetime(2026, 6, 2, 11)),
            ("c1", "page_view", None, None, datetime(2026, 6, 2, 12)),
            ("c1", "purchase", "A", None, datetime(2026, 6, 2, 13)),  # orders are the purchases
            (None, "product_view", "C", None, datetime(2026, 6, 2, 13)),
            ("c2", "product_view", "C", None, datetime(2026, 7, 2, 13)),  # after the snapshot
        ],
        "customer_key string, event_type string, sku string, category string, ts timestamp",
    )
    weights = {"purchase": 5.0, "add_to_cart": 2.0, "product_view": 1.0, "remove_from_cart": 0.0}
    got = interactions(lines, events, weights, "sku", date(2026, 3, 1), date(2026, 6, 30))
    expected = spark.createDataFrame([("c1", "A", 11.0), ("c1", "B", 2.0)], PAIRS + ", strength double")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_als_completes_each_taste_group_and_falls_back_for_cold_start(spark):
    # Two groups with disjoint tastes; u0 lacks c, u10 lacks z.
    rows = [
        (f"u{i}", item, 1.0 + i % 3)
        for i in range(20)
        for item in (["a", "b", "c"] if i < 10 else ["x", "y", "z"])
        if not (i == 0 and item == "c") and not (i == 10 and item == "z")
    ]
    inter = spark.createDataFrame(rows, PAIRS + ", strength double")
    fit = fit_als(inter, AlsParams(rank=4, max_iter=5, reg_param=0.05, alpha=10.0, seed=7, num_blocks=2))
    owned = inter.select("customer_key", "item")
    segments = spark.createDataFrame([("u1", 1), ("u2", 1), ("new", 1)], "customer_key string, segment_id int")
    targets = spark.createDataFrame([("u0",), ("u10",), ("new",)], "customer_key string")
    recs = targets.transform(recommend(fit, owned, segments, 5, 10)).cache()
    got = recs.where(F.col("rank") == 1).select("customer_key", "rank", "item", "source")
    expected = spark.createDataFrame(
        [("u0", 1, "c", "als"), ("u10", 1, "z", "als"), ("new", 1, "a", "segment_popular")],
        RECS + ", source string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # Nothing a customer bought comes back, however many items are asked for: u0 and u10
    # own 2 of the 6 items; "new" gets segment 1's list of 3 (a, b, c: tied, by name).
    assert recs.join(owned, on=["customer_key", "item"], how="inner").count() == 0
    counts = {r["customer_key"]: r["n"] for r in recs.groupBy("customer_key").agg(F.count("*").alias("n")).collect()}
    assert counts == {"u0": 4, "u10": 4, "new": 3}
    recs.unpersist()
    fit.unpersist()
