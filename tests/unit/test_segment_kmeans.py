"""fit_segments: k recovered from planted Gaussian blobs made in Spark, centres and
distances against hand values, the other algorithms, k-selection helpers and errors."""

from __future__ import annotations

import math

import pytest
from chispa import assert_approx_df_equality

from custseg.segment.kmeans import KPoint, choose_k, elbow_k, fit_segments
from custseg.segment.quality import adjusted_rand_index
from custseg.segment.synthetic import gaussian_blobs

BLOBS = [[0, 0, 0], [7, 0, 0], [0, 7, 0], [0, 0, 7], [7, 7, 7]]
COLS = ["x0", "x1", "x2"]


@pytest.fixture(scope="module")
def blobs(spark):
    df = gaussian_blobs(spark, 750, BLOBS, sd=1.0, seed=2, weights=[3, 2, 2, 1, 1], partitions=2).persist()
    df.count()
    yield df
    df.unpersist()


def test_k_chosen_from_data_recovers_planted_blobs(blobs):
    fit = fit_segments(blobs, COLS, k_range=(2, 7), seed=3, n_init=2, max_iter=30)
    try:
        assert fit.k == len(BLOBS)
        curve = {p.k: p for p in fit.k_curve}
        assert sorted(curve) == [2, 3, 4, 5, 6, 7]
        assert max(curve.values(), key=lambda p: p.silhouette).k == 5
        assert curve[5].wss < curve[4].wss < curve[2].wss
        ari = adjusted_rand_index(fit.assignments.join(blobs, "customer_key", how="inner"), "cluster", "truth")
        assert ari >= 0.8
        q = fit.quality
        assert q["rows"] == 750 and q["sample_rows"] == 750
        assert q["wss"] == pytest.approx(sum(c.wss for c in fit.centres))
        assert q["calinski_harabasz"] > 100 and 0.3 < q["distinctiveness"] <= 1.0
        assert sum(c.size for c in fit.centres) == 750
    finally:
        fit.unpersist()


def test_sampled_k_selection_and_other_algorithms(blobs):
    sampled = fit_segments(blobs, COLS, k_range=(4, 6), seed=3, n_init=2, max_iter=30, sample_rows=300)
    try:
        assert sampled.k == 5
        assert all(250 <= p.rows <= 350 for p in sampled.k_curve)  # Bernoulli sample of ~300
        assert sampled.quality["rows"] == 750  # final fit on everyone
    finally:
        sampled.unpersist()
    for algorithm in ("bisecting", "gmm"):
        fit = fit_segments(blobs, COLS, k=5, algorithm=algorithm, seed=3, n_init=1, max_iter=30)
        try:
            ari = adjusted_rand_index(fit.assignments.join(blobs, "customer_key", how="inner"), "cluster", "truth")
            assert ari >= 0.9, (algorithm, ari)
            assert fit.k_curve == [] and fit.quality["elbow_k"] is None
        finally:
            fit.unpersist()


def test_centres_and_distances_hand_computed(spark):
    df = spark.createDataFrame(
        [("a", 0.0, 0.0), ("b", 2.0, 0.0), ("c", 10.0, 10.0), ("d", 10.0, 12.0), ("e", None, 11.0)],
        "customer_key string, u double, v double",
    )
    # e's missing u takes the median of u (2.0, percentile_approx picks an observed value)
    fit = fit_segments(df, ["u", "v"], k=2, seed=1, n_init=1, standardize=False)
    try:
        low = next(c for c in fit.centres if c.size == 2)
        high = next(c for c in fit.centres if c.size == 3)
        assert low.z == pytest.approx((1.0, 0.0)) and low.mean == pytest.approx((1.0, 0.0))
        assert high.z == pytest.approx((22 / 3, 11.0))
        assert low.wss == pytest.approx(2.0)
        assert fit.quality["wss"] == pytest.approx(2.0 + (2 * (8 / 3) ** 2 + (16 / 3) ** 2) + 2.0)
        out = fit.assignments.select("customer_key", "distance")
        expected = spark.createDataFrame(
            [("a", 1.0), ("b", 1.0), ("c", math.hypot(8 / 3, 1)), ("d", math.hypot(8 / 3, 1)), ("e", 16 / 3)],
            "customer_key string, distance double",
        )
        assert_approx_df_equality(out, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)
    finally:
        fit.unpersist()


def test_choose_k_and_elbow():
    curve = [KPoint(2, 0.5, 100.0, 10), KPoint(3, 0.7, 40.0, 10), KPoint(4, 0.7, 30.0, 10), KPoint(5, 0.4, 25.0, 10)]
    assert choose_k(curve) == 3  # tie at 0.7: the smaller k
    assert choose_k(curve, "elbow") == 3
    assert elbow_k([2, 3, 4, 5, 6], [100, 90, 20, 15, 12]) == 4
    assert elbow_k([2, 3], [10, 5]) == 2
    assert choose_k([KPoint(2, None, 5.0, 3)]) == 2
    with pytest.raises(ValueError, match="criterion must be one of"):
        choose_k(curve, "gap")


def test_fit_segments_rejects_bad_input(spark):
    df = spark.createDataFrame([("a", 1.0)], "customer_key string, x double")
    with pytest.raises(ValueError, match=r"columns \['y'\] are not in the input"):
        fit_segments(df, ["x", "y"], k=2)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        fit_segments(df, ["x"], k=2, algorithm="dbscan")
    with pytest.raises(ValueError, match="cannot be split into 2..10 clusters"):
        fit_segments(df, ["x"])
