"""Quality scores against hand-computed values and scikit-learn: ARI from the contingency
table, Calinski-Harabasz and WSS from per-cluster sums, entropy distinctiveness, response rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from chispa import assert_approx_df_equality
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from custseg.segment.quality import (
    adjusted_rand_index,
    ari_from_contingency,
    band_counts,
    cluster_stats,
    distinctiveness_from_counts,
    response_rates,
)


def test_ari_from_contingency_hand_values():
    # a = [0,0,1,1], b = [0,0,1,2]: index 1, sum_a 2, sum_b 1, expected 2/6, max 1.5
    assert ari_from_contingency(np.array([[2, 0, 0], [0, 1, 1]])) == pytest.approx((1 - 1 / 3) / (1.5 - 1 / 3))
    assert ari_from_contingency(np.array([[3, 0], [0, 4]])) == 1.0  # same partition, other ids
    assert ari_from_contingency(np.array([[5]])) == 1.0  # both one cluster
    assert ari_from_contingency(np.array([[1, 1], [1, 1]])) == pytest.approx(-0.5)


def test_ari_matches_sklearn_on_random_labelings():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(4)
    for _ in range(5):
        a = rng.integers(0, 4, 300)
        b = np.where(rng.random(300) < 0.6, a, rng.integers(0, 5, 300))
        table = np.zeros((4, 5), dtype=int)
        np.add.at(table, (a, b), 1)
        assert ari_from_contingency(table) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)


def test_adjusted_rand_index_in_spark_skips_unlabelled_rows(spark):
    rows = [("c1", 0, "x"), ("c2", 0, "x"), ("c3", 1, "y"), ("c4", 1, "z"), ("c5", None, "z"), ("c6", 1, None)]
    df = spark.createDataFrame(rows, "customer_key string, a int, b string")
    assert adjusted_rand_index(df, "a", "b") == pytest.approx((1 - 1 / 3) / (1.5 - 1 / 3))


def _vectors(spark, points, labels):
    return spark.createDataFrame(
        [(int(lab), Vectors.dense([float(v) for v in p])) for p, lab in zip(points, labels, strict=True)],
        StructType([StructField("cluster", IntegerType()), StructField("features", VectorUDT())]),
    )


def test_cluster_stats_wss_and_calinski_harabasz_match_sklearn(spark):
    from sklearn.metrics import calinski_harabasz_score

    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(0, 1, (20, 3)), rng.normal(4, 1, (15, 3)), rng.normal(-3, 2, (10, 3))])
    lab = np.repeat([0, 1, 2], [20, 15, 10])
    stats = cluster_stats(_vectors(spark, x, lab), 3)
    wss = sum(((x[lab == c] - x[lab == c].mean(axis=0)) ** 2).sum() for c in range(3))
    assert stats.clusters == (0, 1, 2)
    assert list(stats.counts) == [20, 15, 10]
    assert stats.wss() == pytest.approx(wss)
    assert stats.tss() == pytest.approx(((x - x.mean(axis=0)) ** 2).sum())
    assert stats.calinski_harabasz() == pytest.approx(calinski_harabasz_score(x, lab))
    np.testing.assert_allclose(stats.means[1], x[lab == 1].mean(axis=0))


def test_calinski_harabasz_undefined_for_one_cluster(spark):
    stats = cluster_stats(_vectors(spark, [[0.0], [1.0], [2.0]], [0, 0, 0]), 1)
    assert stats.calinski_harabasz() is None
    assert stats.wss() == pytest.approx(2.0)


def test_band_counts_and_distinctiveness_hand_values(spark):
    # feature 0 splits the clusters into opposite bands; feature 1 is the same for both.
    pts = [[-2.0, 0.0], [-2.0, 0.0], [2.0, 0.0], [2.0, 0.0]]
    ids, counts = band_counts(_vectors(spark, pts, [0, 0, 1, 1]), 2)
    assert ids == (0, 1)
    np.testing.assert_array_equal(counts[0], [[2, 0, 0, 0, 0], [0, 0, 2, 0, 0]])
    np.testing.assert_array_equal(counts[1], [[0, 0, 0, 0, 2], [0, 0, 2, 0, 0]])
    overall, per = distinctiveness_from_counts(counts)
    assert overall == pytest.approx(1.0)  # feature 1 has no entropy and is left out
    # each segment: KL on feature 0 = log 2, on feature 1 = 0 -> mean (log 2) / 2
    np.testing.assert_allclose(per, [math.log(2) / 2, math.log(2) / 2])


def test_distinctiveness_zero_when_segments_look_alike():
    counts = np.array([[[1, 2, 3, 2, 1]], [[2, 4, 6, 4, 2]]], dtype=float)
    overall, per = distinctiveness_from_counts(counts)
    assert overall == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(per, [0.0, 0.0], atol=1e-12)


RESP = StructType(
    [
        StructField("campaign_id", StringType()),
        StructField("customer_key", StringType()),
        StructField("group", StringType()),
        StructField("converted", BooleanType()),
    ]
)


def test_response_rates_per_segment(spark):
    segments = spark.createDataFrame(
        [("a", 1), ("b", 1), ("c", 1), ("d", 2), ("e", 2), ("f", 3)], "customer_key string, segment_id int"
    )
    responses = spark.createDataFrame(
        [
            ("k1", "a", "treatment", True),
            ("k1", "b", "treatment", False),
            ("k1", "c", "control", False),
            ("k2", "a", "treatment", True),
            ("k2", "c", "control", True),
            ("k1", "d", "treatment", None),
            ("k1", "e", "treatment", False),
            ("k1", "f", "control", True),
            ("k1", "zz", "treatment", True),  # not segmented: ignored
        ],
        RESP,
    )
    expected = spark.createDataFrame(
        [
            (1, 3, 2, 2 / 3, 2, 0.5, 2 / 3 - 0.5),
            (2, 2, 0, 0.0, 0, None, None),
            (3, 0, 0, None, 1, 1.0, None),
        ],
        StructType(
            [
                StructField("segment_id", IntegerType()),
                StructField("contacts", LongType()),
                StructField("responders", LongType()),
                StructField("response_rate", DoubleType()),
                StructField("control_contacts", LongType()),
                StructField("control_rate", DoubleType()),
                StructField("lift", DoubleType()),
            ]
        ),
    )
    out = segments.transform(response_rates(responses))
    assert_approx_df_equality(out, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)
