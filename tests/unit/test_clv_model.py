"""CLV: the Spark-SQL series for BG/NBD against scipy's hyp2f1, scoring, and the fits
(simulated customers from known parameters; the published CDNOW estimates)."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F
from scipy.special import hyp2f1

from custseg.features import clv

CDNOW_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def _bg(r, alpha, a, b) -> clv.BgNbdParams:
    return clv.BgNbdParams(r, alpha, a, b, 0.0, 0, 0)


def reference_expectation(t, x, t_x, T, r, alpha, a, b):
    """FHL 2005 eq. 10 with scipy's hyp2f1 (an independent implementation)."""
    z = t / (alpha + T + t)
    num = (
        (a + b + x - 1)
        / (a - 1)
        * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z))
    )
    odds = (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x) if x > 0 else 0.0
    return float(num / (1 + odds)), float(1 / (1 + odds))


ROWS = [
    (0, 0.0, 0.0),
    (0, 0.0, 30.0),
    (1, 1.0, 2.0),
    (2, 30.0, 38.0),
    (10, 35.0, 38.0),
    (50, 30.0, 31.0),
    (3, 2.0, 52.0),
]
PARAMS = [(0.243, 4.414, 0.793, 2.426), (0.5, 1.0, 3.0, 5.0), (2.0, 10.0, 1.5, 0.8), (0.3, 2.0, 0.6, 1.2)]


@pytest.mark.parametrize("params", PARAMS)
def test_series_expectation_matches_scipy(spark, params):
    horizon = 52.0  # z up to 52 / (alpha + 52): 0.96 for alpha = 2
    df = spark.createDataFrame(ROWS, "x int, t_x double, T double")
    bg = _bg(*params)
    x, t_x, T = F.col("x"), F.col("t_x"), F.col("T")
    actual = df.select(
        "x",
        "t_x",
        "T",
        clv.expected_purchases_expr(bg, horizon, x, t_x, T).alias("e"),
        clv.p_alive_expr(bg, x, t_x, T).alias("p_alive"),
    )
    expected = spark.createDataFrame(
        [(x_, tx_, T_, *reference_expectation(horizon, x_, tx_, T_, *params)) for x_, tx_, T_ in ROWS],
        "x int, t_x double, T double, e double, p_alive double",
    )
    assert_approx_df_equality(actual, expected, 1e-8, ignore_row_order=True, ignore_nullable=True)


def test_score_discounts_each_period_and_scores_value(spark):
    bg = _bg(**CDNOW_BG)
    gg = clv.GammaGammaParams(6.25, 3.74, 15.44, 0.0, 0, 0)
    summary = spark.createDataFrame(
        [("a", 2, 30.0, 38.0, 40.0), ("b", 0, 0.0, 10.0, None), ("n", None, None, None, None)],
        "customer_key string, clv_frequency int, clv_recency double, clv_T double, clv_monetary double",
    )
    # horizon 364 days in 2 periods of 26 weeks, 10% a year, margin 0.3
    actual = summary.transform(
        clv.score(bg, gg, horizon_days=364, discount_rate_annual=0.1, periods=2, time_unit_days=7, margin=0.3)
    )

    def expected_row(key, x, t_x, T, m):
        e1, p_alive = reference_expectation(26.0, x, t_x, T, *CDNOW_BG.values())
        e2, _ = reference_expectation(52.0, x, t_x, T, *CDNOW_BG.values())
        d1, d2 = 1.1 ** (-182 / 365), 1.1 ** (-364 / 365)
        value = 6.25 * (15.44 + m * x) / (6.25 * x + 2.74) if x > 0 else 6.25 * 15.44 / 2.74
        return (key, x, t_x, T, m, e2, p_alive, value, 0.3 * value * (e1 * d1 + (e2 - e1) * d2))

    expected = spark.createDataFrame(
        [
            expected_row("a", 2, 30.0, 38.0, 40.0),
            expected_row("b", 0, 0.0, 10.0, None),
            ("n", None, None, None, None, None, None, None, None),
        ],
        "customer_key string, clv_frequency int, clv_recency double, clv_T double, clv_monetary double, "
        "exp_purchases double, p_alive double, exp_avg_value double, clv double",
    )
    assert_approx_df_equality(actual, expected, 1e-8, ignore_row_order=True, ignore_nullable=True)


def _simulate(n: int, seed: int, r=0.9, alpha=6.0, a=0.8, b=2.5, p=6.0, q=4.0, gamma=15.0) -> pd.DataFrame:
    """Transactions of BG/NBD customers (weeks) with Gamma-Gamma spend, as calendar days."""
    rng = np.random.default_rng(seed)
    lam, drop, nu = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n), rng.gamma(q, 1 / gamma, n)
    observed_days = rng.integers(28, 365, n)
    end = date(2026, 6, 30)
    rows = []
    for i in range(n):
        start = end - timedelta(days=int(observed_days[i]))
        t, offsets = 0.0, [0]
        while True:
            t += rng.exponential(1 / lam[i])
            if t * 7 >= observed_days[i]:
                break
            offsets.append(int(t * 7))
            if rng.random() < drop[i]:
                break
        for off, value in zip(offsets, rng.gamma(p, 1 / nu[i], len(offsets)), strict=True):
            rows.append((f"c{i}", start + timedelta(days=off), float(value)))
    return pd.DataFrame(rows, columns=["customer_key", "order_date", "net_revenue"])


def test_fit_recovers_simulated_parameters(spark):
    tx = spark.createDataFrame(_simulate(8000, seed=3))
    summary = tx.transform(clv.summarize(date(2026, 6, 30), 7)).cache()
    bg = clv.fit_bgnbd(summary)
    gg = clv.fit_gamma_gamma(summary)
    summary.unpersist()
    # tolerances ~3 standard errors at n = 8000 (a, b and gamma are the least well identified)
    assert bg.r == pytest.approx(0.9, rel=0.15)
    assert bg.alpha == pytest.approx(6.0, rel=0.15)
    assert bg.a == pytest.approx(0.8, rel=0.25)
    assert bg.b == pytest.approx(2.5, rel=0.35)
    assert gg.p == pytest.approx(6.0, rel=0.2)
    assert gg.q == pytest.approx(4.0, rel=0.2)
    assert gg.gamma == pytest.approx(15.0, rel=0.3)
    assert bg.n_customers == 8000 and not bg.sampled and bg.n_rows < 8000


def test_fit_caps_driver_rows_with_a_seeded_sample(spark):
    tx = spark.createDataFrame(_simulate(1500, seed=5))
    summary = tx.transform(clv.summarize(date(2026, 6, 30), 7)).cache()
    full = clv.fit_bgnbd(summary)
    capped = clv.fit_bgnbd(summary, max_rows=300, seed=1)
    again = clv.fit_bgnbd(summary, max_rows=300, seed=1)
    summary.unpersist()
    assert not full.sampled and full.n_rows > 300
    assert capped.sampled and capped.n_rows <= 450  # a Bernoulli sample of ~300 customers
    assert capped.r == again.r and capped.b == again.b  # seeded: reproducible


def test_fit_without_repeat_buyers_fails_clearly(spark):
    summary = spark.createDataFrame(
        [("a", 0, 0.0, 5.0, None), ("b", 0, 0.0, 9.0, None)],
        "customer_key string, clv_frequency int, clv_recency double, clv_T double, clv_monetary double",
    )
    with pytest.raises(clv.ClvFitError, match="no repeat purchase"):
        clv.fit_bgnbd(summary)
    with pytest.raises(clv.ClvFitError, match="Gamma-Gamma"):
        clv.fit_gamma_gamma(summary)


def test_cdnow_published_estimates(spark, shared_datasets):
    """Fader, Hardie & Lee (2005) and Fader & Hardie (2013) on the CDNOW 1/10 sample."""
    raw = spark.read.text(str(shared_datasets / "CDNOW_sample.txt"))
    parts = F.split(F.trim("value"), r"\s+")
    tx = raw.select(
        parts[0].alias("customer_key"),
        F.to_date(parts[2], "yyyyMMdd").alias("order_date"),
        parts[4].cast("double").alias("net_revenue"),
    )
    summary = tx.transform(clv.summarize(date(1997, 9, 30), time_unit_days=7)).cache()
    bg = clv.fit_bgnbd(summary)
    gg = clv.fit_gamma_gamma(summary)
    summary.unpersist()
    for name, published in CDNOW_BG.items():
        assert getattr(bg, name) == pytest.approx(published, rel=0.01), name
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert bg.n_customers == 2357
    assert gg.n_customers == 946
    for name, published in CDNOW_GG.items():
        assert getattr(gg, name) == pytest.approx(published, rel=0.01), name


def test_analytic_gradients_match_finite_differences():
    from scipy.optimize import approx_fprime

    x, t_x, T = np.array([0.0, 1, 3, 10]), np.array([0.0, 2, 20, 30]), np.array([5.0, 10, 38, 31])
    w = np.array([3.0, 1, 2, 1])
    for params in PARAMS:
        numeric = approx_fprime(np.array(params), lambda p: clv.bgnbd_log_likelihood(p, x, t_x, T, w), 1e-7)
        assert clv.bgnbd_gradient(params, x, t_x, T, w) == pytest.approx(numeric, rel=1e-4, abs=1e-4)
    m = np.array([10.0, 25.0, 40.0, 12.5])
    for params in [(6.25, 3.74, 15.44), (0.9, 1.3, 110.0)]:
        numeric = approx_fprime(np.array(params), lambda p: clv.gamma_gamma_log_likelihood(p, x + 1, m, w), 1e-7)
        assert clv.gamma_gamma_gradient(params, x + 1, m, w) == pytest.approx(numeric, rel=1e-4, abs=1e-4)


def test_fit_converges_when_everyone_shares_one_dropout_probability(spark, caplog):
    """The generated demo data's case: the Beta mixing distribution collapses (a, b -> infinity
    with a/(a+b) fixed). The fit must stop at the edge of its box, quickly, with p = a/(a+b)
    recovered and finite scores, instead of wandering off along the ridge."""
    tx = spark.createDataFrame(_simulate(3000, seed=11, r=0.9, alpha=3.0, a=3.0e4, b=9.7e5))
    summary = tx.transform(clv.summarize(date(2026, 6, 30), 7)).cache()
    with caplog.at_level("INFO", logger="custseg.features.clv"):
        bg = clv.fit_bgnbd(summary, max_shape=1000.0)
    scored = (
        summary.transform(clv.score(bg, None, periods=2))
        .agg(
            F.count(F.when(F.isnan("exp_purchases") | F.col("exp_purchases").isNull(), 1)).alias("bad"),
            F.count("customer_key").alias("n"),
        )
        .first()
    )
    summary.unpersist()
    steps = [int(m.split(" steps")[0].split()[-1]) for m in caplog.messages if "BG/NBD: converged in" in m]
    assert steps and steps[0] < 200
    assert "b" in bg.at_bounds and bg.b == pytest.approx(1000.0)
    assert bg.a / (bg.a + bg.b) == pytest.approx(0.03, rel=0.3)
    assert bg.r == pytest.approx(0.9, rel=0.2) and bg.alpha == pytest.approx(3.0, rel=0.25)
    assert scored["n"] == 3000 and scored["bad"] == 0


def test_fit_on_the_ridge_converges_whatever_the_order_of_the_groups(spark):
    """Where L-BFGS-B stops on that ridge depends on rounding, so on the order the groups are
    summed in (on an AVX-512 machine one order in a few stopped at gradient 1.6e-4). Every
    order must converge, to the same estimate; and fit_bgnbd sorts the groups it collects."""
    tx = spark.createDataFrame(_simulate(3000, seed=11, r=0.9, alpha=3.0, a=3.0e4, b=9.7e5))
    summary = tx.transform(clv.summarize(date(2026, 6, 30), 7))
    rows, _, _ = clv._bounded_groups(
        summary.where(F.col("clv_frequency").isNotNull()), ["clv_frequency", "clv_recency", "clv_T"], 200000, 42
    )
    arr = np.array([(r["clv_frequency"], r["clv_recency"], r["clv_T"], r["n"]) for r in rows], dtype=float)
    fits = []
    for seed in range(12):
        params, edge = clv._fit_bgnbd_groups(arr[np.random.default_rng(seed).permutation(len(arr))], 1000.0)
        assert edge == ("b",)
        fits.append(params)
    for params in fits[1:]:
        assert params == pytest.approx(fits[0], rel=1e-4)
    assert np.array_equal(clv._sorted(arr[::-1]), clv._sorted(arr))


def test_a_fit_stalled_at_the_rounding_floor_is_accepted_within_the_stall_tolerance(spark, monkeypatch):
    """On the shared test run every restart stalled in place (no step lowered the likelihood)
    at a projected gradient of 1.0e-6, just over GRADIENT_TOLERANCE, and the CLV scores were
    left null. A tolerance below what the ridge data can reach forces the same stall here."""
    tx = spark.createDataFrame(_simulate(3000, seed=11, r=0.9, alpha=3.0, a=3.0e4, b=9.7e5))
    summary = tx.transform(clv.summarize(date(2026, 6, 30), 7))
    rows, _, _ = clv._bounded_groups(
        summary.where(F.col("clv_frequency").isNotNull()), ["clv_frequency", "clv_recency", "clv_T"], 200000, 42
    )
    arr = clv._sorted(np.array([(r["clv_frequency"], r["clv_recency"], r["clv_T"], r["n"]) for r in rows], float))
    reference, _ = clv._fit_bgnbd_groups(arr, 1000.0)
    monkeypatch.setattr(clv, "GRADIENT_TOLERANCE", 1e-15)
    stalled, edge = clv._fit_bgnbd_groups(arr, 1000.0)
    assert edge == ("b",) and stalled == pytest.approx(reference, rel=1e-4)
    monkeypatch.setattr(clv, "STALL_TOLERANCE", 1e-15)
    with pytest.raises(clv.ClvFitError, match="did not converge"):
        clv._fit_bgnbd_groups(arr, 1000.0)
