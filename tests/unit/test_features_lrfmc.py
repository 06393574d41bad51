"""LRFMC winsorizing and z-scores against hand-computed means and standard deviations."""

import math
from decimal import Decimal

import pytest
from chispa import assert_approx_df_equality

from custseg.features.lrfmc import lrfmc_stats, with_lrfmc_z

SCHEMA = (
    "customer_key string, tenure_days int, recency_days int, frequency int, monetary decimal(16,2), "
    "units long, discount_coef double"
)
Z_SCHEMA = "customer_key string, l_z double, r_z double, f_z double, m_z double, c_z double"


@pytest.fixture(scope="module")
def rows(spark):
    d = Decimal
    return spark.createDataFrame(
        [
            ("a", 100, 1, 1, d("10"), 1, 1.0),
            ("b", 200, 2, 2, d("20"), 2, 0.9),
            ("c", 300, 3, 3, d("30"), 3, 0.8),
            ("d", 400, 4, 4, d("40"), 4, 0.7),
            ("e", 500, 100, 100, d("1000"), 5, None),  # outlier; no list prices
            ("f", 50, 400, 0, d("0"), 0, None),  # inactive in the window: scored, not in the stats
            ("g", None, None, 0, d("0"), 0, None),  # never bought, no signup date
        ],
        SCHEMA,
    )


def test_z_scores_without_clipping(spark, rows):
    stats = lrfmc_stats(rows, "net_revenue", quantile=1.0)
    actual = rows.transform(with_lrfmc_z(stats, "net_revenue")).select(
        "customer_key", "l_z", "r_z", "f_z", "m_z", "c_z"
    )
    # active population a..e: L mean 300, sd sqrt(25000); R and F values 1,2,3,4,100;
    # M 10,20,30,40,1000; C over a..d only: mean 0.85, sd sqrt(0.05/3)
    sd_l = math.sqrt(25000)
    rf = [1, 2, 3, 4, 100]
    mean_rf = sum(rf) / 5
    sd_rf = math.sqrt(sum((v - mean_rf) ** 2 for v in rf) / 4)
    m = [10, 20, 30, 40, 1000]
    mean_m = sum(m) / 5
    sd_m = math.sqrt(sum((v - mean_m) ** 2 for v in m) / 4)
    sd_c = math.sqrt(0.05 / 3)

    def z(v, mean, sd):
        return None if v is None else (v - mean) / sd

    raw = {
        "a": (100, 1, 1, 10, 1.0),
        "b": (200, 2, 2, 20, 0.9),
        "c": (300, 3, 3, 30, 0.8),
        "d": (400, 4, 4, 40, 0.7),
        "e": (500, 100, 100, 1000, None),
        "f": (50, 400, 0, 0, None),
        "g": (None, None, 0, 0, None),
    }
    expected = spark.createDataFrame(
        [
            (k, z(l_, 300, sd_l), z(r, mean_rf, sd_rf), z(f, mean_rf, sd_rf), z(m_, mean_m, sd_m), z(c, 0.85, sd_c))
            for k, (l_, r, f, m_, c) in raw.items()
        ],
        Z_SCHEMA,
    )
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_winsorizing_clips_to_quantiles_and_units_measure(spark, rows):
    stats = lrfmc_stats(rows, "units", quantile=0.8)
    # 5 active values: the 0.2 / 0.8 quantiles are the 1st and 4th smallest
    assert (stats["r"].low, stats["r"].high) == (1.0, 4.0)
    assert (stats["m"].low, stats["m"].high) == (1.0, 4.0)  # units 1..5
    actual = rows.transform(with_lrfmc_z(stats, "units")).select("customer_key", "r_z", "m_z")
    # R clipped: 1,2,3,4,4 -> mean 2.8, sd sqrt(1.7); units clipped 1,2,3,4,4 likewise
    sd = math.sqrt(1.7)
    expected = spark.createDataFrame(
        [
            ("a", (1 - 2.8) / sd, (1 - 2.8) / sd),
            ("b", (2 - 2.8) / sd, (2 - 2.8) / sd),
            ("c", (3 - 2.8) / sd, (3 - 2.8) / sd),
            ("d", (4 - 2.8) / sd, (4 - 2.8) / sd),
            ("e", (4 - 2.8) / sd, (4 - 2.8) / sd),
            ("f", (4 - 2.8) / sd, (1 - 2.8) / sd),  # 400 days clipped to 4; 0 units clipped up to 1
            ("g", None, (1 - 2.8) / sd),
        ],
        "customer_key string, r_z double, m_z double",
    )
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_no_spread_gives_zero_and_no_buyers_gives_null(spark):
    flat = spark.createDataFrame(
        [("a", 10, 5, 1, Decimal("10"), 1, 1.0), ("b", 10, 5, 1, Decimal("10"), 1, 1.0)], SCHEMA
    )
    stats = lrfmc_stats(flat, quantile=1.0)
    assert stats["l"].std == 0.0
    actual = flat.transform(with_lrfmc_z(stats)).select("customer_key", "l_z", "c_z")
    expected = spark.createDataFrame([("a", 0.0, 0.0), ("b", 0.0, 0.0)], "customer_key string, l_z double, c_z double")
    assert_approx_df_equality(actual, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)

    nobody = spark.createDataFrame([("z", 10, None, 0, Decimal("0"), 0, None)], SCHEMA)
    stats = lrfmc_stats(nobody, quantile=0.99)
    actual = nobody.transform(with_lrfmc_z(stats)).select("customer_key", "l_z", "r_z")
    expected = spark.createDataFrame([("z", None, None)], "customer_key string, l_z double, r_z double")
    assert_approx_df_equality(actual, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)
