"""Customer lifetime value: BG/NBD (Fader, Hardie & Lee 2005) and Gamma-Gamma (Fader & Hardie 2013).

Division of labour, so nothing that grows with the customer count reaches the driver:

1. ``summarize`` (Spark): per customer x (repeat purchase days), t_x (first to last
   purchase day), T (first purchase day to the snapshot), in ``time_unit_days`` units, and
   the mean value of the repeat purchase days. Orders on the same day are one transaction,
   as in the standard CDNOW summary.
2. ``fit_bgnbd`` / ``fit_gamma_gamma`` (driver): Spark groups identical (x, t_x, T), resp.
   (x, mean value), and counts them; the driver maximises the count-weighted
   log-likelihood with scipy. The grouped rows are bounded by ``max_rows``: above it the
   groups are taken from a seeded Bernoulli sample of customers (logged).
3. ``score`` (Spark, SQL expressions only): P(alive), expected purchases over the
   horizon, expected average value and the discounted CLV for every customer.

The conditional expectation needs the Gauss hypergeometric function
``2F1(r+x, b+x; a+b+x-1; z)`` with ``z = t/(alpha+T+t)``. Spark has no such function, so it
is a truncated power series written as a Spark SQL ``aggregate`` over ``sequence(1, n)``
(a higher-order function: evaluated in the JVM, no Python UDF). The series is first put
through Euler's transformation, 2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z), which
here gives 2F1(a+b-1-r, a-1; a+b+x-1; z): its terms fall like n^(a-r-x-2) z^n, so they
shrink from the start for any x instead of first growing like n^(r+x) as the raw series
does. Each row takes n = log(tol (1-z)) / log(z) terms (scaled up when a > r+x+2), capped
at ``max_terms``; with tol 1e-10 the result matches scipy's hyp2f1 to ~1e-10 relative
(tests/unit/test_clv_model.py). The 1/(a-1) factor of the expectation is folded into the
series and an ``expm1`` so a ~ 1 stays stable. The series is evaluated once per distinct
(x, t_x, T) and joined back, which is far fewer rows than customers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln

from custseg.features.orders import purchase_days

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["customer_key", "clv_frequency", "clv_recency", "clv_T", "clv_monetary"]
SCORE_COLUMNS = ["exp_purchases", "p_alive", "exp_avg_value", "clv"]


class ClvFitError(RuntimeError):
    """The model could not be fitted (too little data, or the optimiser did not converge)."""


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: int
    n_rows: int
    sampled: bool = False
    at_bounds: tuple[str, ...] = ()  # parameters the fit left at the edge of LOG_BOUNDS

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    n_customers: int
    n_rows: int
    sampled: bool = False
    at_bounds: tuple[str, ...] = ()

    @property
    def population_mean(self) -> float:
        """E[M] of a new customer, p*gamma/(q-1); finite only for q > 1."""
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1.0 else math.inf

    def as_dict(self) -> dict:
        return asdict(self)


# --- 1. summary ------------------------------------------------------------------------


def summary_columns(purchases: Column, days: Column, as_of: date, time_unit_days: int = 7) -> list[Column]:
    """clv_frequency, clv_recency, clv_T, clv_monetary from the purchases and their distinct days.

    ``purchases`` is an array<struct<d:date, v:double>>, ``days`` its ``purchase_days`` (pass a
    column computed in an earlier select so the sort runs once). Null for a customer without
    purchases. clv_monetary is the mean value of the repeat purchase days:
    (all value - first day's value) / x, null when x = 0.
    """
    n_days = F.coalesce(F.size(days), F.lit(0))
    bought = n_days > 0
    first, last = F.try_element_at(days, F.lit(1)), F.try_element_at(days, F.lit(-1))
    x = n_days - 1
    unit = float(time_unit_days)
    total = F.aggregate(purchases, F.lit(0.0), lambda acc, p: acc + F.coalesce(p["v"], F.lit(0.0)))
    first_value = F.aggregate(
        F.filter(purchases, lambda p: p["d"] == first), F.lit(0.0), lambda acc, p: acc + F.coalesce(p["v"], F.lit(0.0))
    )
    return [
        F.when(bought, x).cast("int").alias("clv_frequency"),
        F.when(bought, F.datediff(last, first) / F.lit(unit)).cast("double").alias("clv_recency"),
        F.when(bought, F.datediff(F.lit(as_of), first) / F.lit(unit)).cast("double").alias("clv_T"),
        F.when(bought & (x > 0), (total - first_value) / x).cast("double").alias("clv_monetary"),
    ]


def summarize(
    as_of: date,
    time_unit_days: int = 7,
    customer_col: str = "customer_key",
    date_col: str = "order_date",
    value_col: str = "net_revenue",
) -> Callable[[DataFrame], DataFrame]:
    """Transactions (one row per purchase, any grain) -> one summary row per customer.

    Only transactions dated on or before ``as_of`` count (the calibration period).
    """

    def transform(transactions: DataFrame) -> DataFrame:
        day = F.to_date(date_col)
        purchases = (
            transactions.where(F.col(customer_col).isNotNull() & day.isNotNull() & (day <= F.lit(as_of)))
            .groupBy(F.col(customer_col).alias("customer_key"))
            .agg(
                F.collect_list(F.struct(day.alias("d"), F.col(value_col).cast("double").alias("v"))).alias("purchases")
            )
        )
        return purchases.select("customer_key", "purchases", purchase_days(F.col("purchases")).alias("_days")).select(
            "customer_key", *summary_columns(F.col("purchases"), F.col("_days"), as_of, time_unit_days)
        )

    return transform


# --- 2. fitting on the driver ------------------------------------------------------------


def _bgnbd_terms(params, x, t_x, T, w, gradient: bool):
    """Count-weighted BG/NBD log-likelihood (FHL 2005, eq. 6) and, if asked, its gradient.

    LL_i = A1 + A2 + log(exp(A3) + [x>0] exp(A4)); with pi3, pi4 the shares of exp(A3) and
    exp(A4) in that sum, dLL/dtheta = dA1 + dA2 + pi3 dA3 + pi4 dA4.
    """
    r, alpha, a, b = params
    repeat = x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    bx1 = np.where(repeat, b + x - 1, 1.0)
    a4 = np.where(repeat, np.log(a) - np.log(bx1) - (r + x) * np.log(alpha + t_x), -np.inf)
    lse = np.logaddexp(a3, a4)
    ll = float(np.sum(w * (a1 + a2 + lse)))
    if not gradient:
        return ll, None
    pi3, pi4 = np.exp(a3 - lse), np.exp(a4 - lse)
    log_t, log_tx = np.log(alpha + T), np.log(alpha + t_x)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - pi3 * log_t - pi4 * log_tx
    d_alpha = r / alpha - (r + x) * (pi3 / (alpha + T) + pi4 / (alpha + t_x))
    d_a = digamma(a + b) - digamma(a + b + x) + pi4 / a
    d_b = digamma(b + x) - digamma(b) + digamma(a + b) - digamma(a + b + x) - pi4 / bx1
    return ll, np.array([np.sum(w * d) for d in (d_r, d_alpha, d_a, d_b)])


def _gamma_gamma_terms(params, x, m, w, gradient: bool):
    """Count-weighted Gamma-Gamma log-likelihood of the mean spend m over x transactions (and gradient)."""
    p, q, gamma = params
    px = p * x
    log_gm = np.log(gamma + m * x)
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * log_gm
    )
    if not gradient:
        return float(np.sum(w * ll)), None
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_gm)
    d_q = digamma(px + q) - digamma(q) + np.log(gamma) - log_gm
    d_gamma = q / gamma - (px + q) / (gamma + m * x)
    return float(np.sum(w * ll)), np.array([np.sum(w * d) for d in (d_p, d_q, d_gamma)])


def _arrays(*columns, weights=None):
    arrays = [np.asarray(c, float) for c in columns]
    w = np.ones_like(arrays[0]) if weights is None else np.asarray(weights, float)
    return (*arrays, w)


def bgnbd_log_likelihood(params, x, t_x, T, weights=None) -> float:
    """Sum of count-weighted BG/NBD log-likelihoods (Fader, Hardie & Lee 2005, eq. 6)."""
    return _bgnbd_terms(params, *_arrays(x, t_x, T, weights=weights), gradient=False)[0]


def bgnbd_gradient(params, x, t_x, T, weights=None) -> np.ndarray:
    """Gradient of ``bgnbd_log_likelihood`` in (r, alpha, a, b)."""
    return _bgnbd_terms(params, *_arrays(x, t_x, T, weights=weights), gradient=True)[1]


def gamma_gamma_log_likelihood(params, x, m, weights=None) -> float:
    """Sum of count-weighted Gamma-Gamma log-likelihoods of the mean spend m over x transactions."""
    return _gamma_gamma_terms(params, *_arrays(x, m, weights=weights), gradient=False)[0]


def gamma_gamma_gradient(params, x, m, weights=None) -> np.ndarray:
    """Gradient of ``gamma_gamma_log_likelihood`` in (p, q, gamma)."""
    return _gamma_gamma_terms(params, *_arrays(x, m, weights=weights), gradient=True)[1]


# The box the fit searches, in natural units. Lower edges keep logs finite. Shape parameters
# (r, a, b, p, q) stop at ``max_shape``: on data where the dropout probability is the same for
# everyone, the BG/NBD likelihood keeps rising along a ridge a, b -> infinity with a/(a+b)
# fixed (the Beta mixing distribution collapses to a point), and an unbounded search walks
# off along it (a = 9e5, b = 4e7 on the generated demo data, after ~10^4 Nelder-Mead steps).
# A Beta with a + b ~ 1000 is already a point mass for every score, and keeps the 2F1 series
# short. Scale parameters (alpha, gamma; in time and money units) get a wide box.
MIN_PARAMETER = 1e-6
MAX_SCALE = 1e9
GRADIENT_TOLERANCE = 1e-6  # on the mean log-likelihood per customer, per unit of log-parameter
RESTARTS = 3
# A restart whose line search cannot lower the objective at all (L-BFGS-B "ABNORMAL", no
# step taken) has reached the floating-point floor: the likelihood is flat to rounding in
# every direction it may move. There a gradient up to this is accepted as converged (and
# logged). Seen on the shared test run: b at its edge, projected gradient 1.0e-6, just over
# GRADIENT_TOLERANCE, and every restart stalled in place; the scores were left null.
STALL_TOLERANCE = 1e-4


def _maximise(
    terms: Callable, start: np.ndarray, total_weight: float, names: tuple[str, ...], upper: np.ndarray, what: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """L-BFGS-B with the analytic gradient on log-parameters (keeps them positive), within a box.

    The objective is the mean negative log-likelihood per customer, so the tolerances do not
    depend on the customer count. Returns (parameters, names of parameters at an edge of the
    box, which are logged: the data do not pin them down). Derivative-free Nelder-Mead
    needed thousands of evaluations here and never met its tolerance on the ridge above.
    """

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        with np.errstate(all="ignore"):
            ll, grad = terms(params)
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return 1e300, np.zeros_like(theta)
        return -ll / total_weight, -grad * params / total_weight

    low, high = np.full(len(start), math.log(MIN_PARAMETER)), np.log(np.asarray(upper, float))
    theta0 = np.clip(np.log(start), low, high)
    opts = {"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10}
    bounds = list(zip(low, high, strict=True))
    steps = evaluations = 0
    stalled = False
    # L-BFGS-B can stop on "relative reduction of f" along the flat ridge with the gradient
    # still above tolerance; where it stops depends on rounding (the order of the summed
    # groups, the CPU's vector unit). A restart from there drops the stale curvature pairs
    # and goes on; a few restarts are enough, and a fit that still fails is reported.
    for _ in range(RESTARTS + 1):
        res = minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
        steps, evaluations = steps + res.nit, evaluations + res.nfev
        value, grad = objective(res.x)
        at_low, at_high = res.x <= low + 1e-9, res.x >= high - 1e-9
        # projected gradient: at an edge only a component pointing back into the box counts
        free = np.where((at_low & (grad > 0)) | (at_high & (grad < 0)), 0.0, grad)
        worst = float(np.max(np.abs(free)))
        if value >= 1e300 or not np.all(np.isfinite(res.x)) or worst <= GRADIENT_TOLERANCE:
            break
        if res.nit == 0 and worst <= STALL_TOLERANCE:
            stalled = True
            log.info("%s: no further step lowers the likelihood (gradient %.2g): converged to rounding", what, worst)
            break
        theta0 = res.x
    if value >= 1e300 or not np.all(np.isfinite(res.x)) or (worst > GRADIENT_TOLERANCE and not stalled):
        raise ClvFitError(
            f"{what}: optimiser did not converge ({res.message}; gradient {worst:.2g} after {steps} steps)"
        )
    edge = tuple(n for n, lo, hi in zip(names, at_low, at_high, strict=True) if lo or hi)
    if edge:
        log.warning("%s: %s at the edge of the search box: the data do not identify it", what, ", ".join(edge))
    log.info("%s: converged in %d steps (%d evaluations)", what, steps, evaluations)
    return np.exp(res.x), edge


def _bounded_groups(df: DataFrame, keys: list[str], max_rows: int, seed: int) -> tuple[list, int, bool]:
    """Counted groups of identical ``keys`` (at most ~max_rows), the customer count, sampled?

    One job when the groups fit (at most max_rows + 1 rows come back); above that a count
    and a seeded Bernoulli sample of customers.
    """
    groups = df.groupBy(*keys).agg(F.count(F.lit(1)).alias("n"))
    rows = groups.limit(max_rows + 1).collect()
    if len(rows) <= max_rows:
        return rows, int(sum(r["n"] for r in rows)), False
    n_customers = df.count()
    fraction = max_rows / n_customers
    log.warning("CLV fit: more than %d distinct groups; fitting on a %.4f sample of customers", max_rows, fraction)
    sampled = df.sample(fraction=fraction, seed=seed).groupBy(*keys).agg(F.count(F.lit(1)).alias("n"))
    return sampled.collect(), n_customers, True


def _sorted(arr: np.ndarray) -> np.ndarray:
    """Groups in one fixed order: collect() returns them in task-completion order, and the
    sums of the likelihood (so the optimiser's path) would otherwise vary between reruns."""
    return arr[np.lexsort(arr.T[::-1])]


def _fit_bgnbd_groups(arr: np.ndarray, max_shape: float) -> tuple[np.ndarray, tuple[str, ...]]:
    """BG/NBD maximum likelihood on (x, t_x, T, n) group rows, in the order given."""
    x, t_x, T, w = arr.T
    # Moment-style start: r/alpha ~ purchase rate per unit of time; a, b mild.
    rate = max(float(np.sum(w * x) / max(np.sum(w * T), 1e-9)), 1e-3)
    start = np.array([1.0, 1.0 / rate, 1.0, 1.0])
    terms = lambda p: _bgnbd_terms(p, x, t_x, T, w, gradient=True)  # noqa: E731
    upper = np.array([max_shape, MAX_SCALE, max_shape, max_shape])
    return _maximise(terms, start, float(np.sum(w)), ("r", "alpha", "a", "b"), upper, "BG/NBD")


def fit_bgnbd(summary: DataFrame, max_rows: int = 200000, seed: int = 42, max_shape: float = 1000.0) -> BgNbdParams:
    """Maximum-likelihood BG/NBD (r, alpha, a, b) from a ``summarize`` output (time in its units).

    r, a and b are searched in [1e-6, max_shape], alpha in [1e-6, 1e9].
    """
    active = summary.where(F.col("clv_frequency").isNotNull())
    rows, n_customers, sampled = _bounded_groups(active, ["clv_frequency", "clv_recency", "clv_T"], max_rows, seed)
    if not rows:
        raise ClvFitError("BG/NBD: no customer with a purchase")
    arr = _sorted(np.array([(r["clv_frequency"], r["clv_recency"], r["clv_T"], r["n"]) for r in rows], dtype=float))
    x, t_x, T, w = arr.T
    if not np.any(x > 0):
        raise ClvFitError("BG/NBD: no repeat purchase, the dropout process cannot be identified")
    params, edge = _fit_bgnbd_groups(arr, max_shape)
    r, alpha, a, b = (float(v) for v in params)
    ll = bgnbd_log_likelihood(params, x, t_x, T, w)
    return BgNbdParams(r, alpha, a, b, ll, n_customers, len(rows), sampled, edge)


def fit_gamma_gamma(
    summary: DataFrame, max_rows: int = 200000, seed: int = 42, max_shape: float = 1000.0
) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma (p, q, gamma) on repeat buyers with a positive mean spend.

    p and q are searched in [1e-6, max_shape], gamma in [1e-6, 1e9].
    """
    repeat = summary.where((F.col("clv_frequency") > 0) & (F.col("clv_monetary") > 0))
    rows, n_customers, sampled = _bounded_groups(repeat, ["clv_frequency", "clv_monetary"], max_rows, seed)
    if len(rows) < 3:
        raise ClvFitError(f"Gamma-Gamma: {len(rows)} repeat buyers with positive spend, need at least 3")
    arr = _sorted(np.array([(r["clv_frequency"], r["clv_monetary"], r["n"]) for r in rows], dtype=float))
    x, m, w = arr.T
    start = np.array([1.0, 2.0, float(np.average(m, weights=w))])
    terms = lambda p: _gamma_gamma_terms(p, x, m, w, gradient=True)  # noqa: E731
    upper = np.array([max_shape, max_shape, MAX_SCALE])
    params, edge = _maximise(terms, start, float(np.sum(w)), ("p", "q", "gamma"), upper, "Gamma-Gamma")
    p, q, gamma = (float(v) for v in params)
    ll = gamma_gamma_log_likelihood(params, x, m, w)
    return GammaGammaParams(p, q, gamma, ll, n_customers, len(rows), sampled, edge)


# --- 3. scoring in Spark -----------------------------------------------------------------


def p_alive_expr(bg: BgNbdParams, x: Column, t_x: Column, T: Column) -> Column:
    """P(alive | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
    odds = (
        F.lit(bg.a)
        / (F.lit(bg.b) + x - 1)
        * F.exp((F.lit(bg.r) + x) * (F.log(F.lit(bg.alpha) + T) - F.log(F.lit(bg.alpha) + t_x)))
    )
    return F.lit(1.0) / (F.lit(1.0) + F.when(x > 0, odds).otherwise(F.lit(0.0)))


def _series_terms(z: Column, x: Column, bg: BgNbdParams, tolerance: float, max_terms: int) -> Column:
    """Terms for the Euler-transformed series: log(tol (1-z)) / log z, more when a > r+x+2."""
    grow = F.greatest(F.lit(0.0), F.lit(bg.a - bg.r - 2.0) - x)
    n = F.ceil((F.lit(math.log(tolerance)) + F.log1p(-z)) / F.log(z) * (F.lit(1.0) + grow))
    return F.when(z <= 0, F.lit(2)).otherwise(F.least(F.lit(max_terms), F.greatest(F.lit(2), n))).cast("int")


def expected_purchases_alive_expr(
    bg: BgNbdParams, t: float, x: Column, T: Column, tolerance: float = 1e-10, max_terms: int = 5000
) -> Column:
    """E[purchases in (T, T+t] | alive at T, x, T]: the part of FHL 2005 eq. 10 that needs 2F1.

    E[Y(t) | x, t_x, T] = P(alive | x, t_x, T) x this, and this depends on x and T only.
    It is (a+b+x-1)/(a-1) [1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)], z = t/(alpha+T+t).
    By Euler, (1-z)^(r+x) 2F1(...) = (1-z)^(a-1) F', F' = 2F1(a+b-1-r, a-1; a+b+x-1; z) = 1 + (a-1) S,
    so it equals (a+b+x-1) [-expm1((a-1) log(1-z)) / (a-1) - (1-z)^(a-1) S].
    """
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    if t <= 0:
        return F.lit(0.0)
    z = F.lit(float(t)) / (F.lit(alpha + float(t)) + T)
    A, B, C = F.lit(a + b - 1.0 - r), F.lit(a - 1.0), F.lit(a + b - 1.0) + x
    first = A * z / C  # u_1 of S: the series term with the leading (a-1) divided out
    n_terms = _series_terms(z, x, bg, tolerance, max_terms)
    acc0 = F.struct(first.alias("u"), first.alias("s"))

    def step(acc: Column, k: Column) -> Column:
        u = acc["u"] * (A + k) * (B + k) * z / ((C + k) * (k + F.lit(1.0)))
        return F.struct(u.alias("u"), (acc["s"] + u).alias("s"))

    s = F.aggregate(F.sequence(F.lit(1), n_terms - 1), acc0, step, lambda acc: acc["s"])
    log1mz = F.log1p(-z)
    # -expm1((a-1) log(1-z)) / (a-1), whose limit as a -> 1 is -log(1-z)
    head = -log1mz if abs(a - 1.0) < 1e-12 else -F.expm1(F.lit(a - 1.0) * log1mz) / F.lit(a - 1.0)
    bracket = head - F.exp(F.lit(a - 1.0) * log1mz) * s
    return (F.lit(a + b - 1.0) + x) * bracket


def expected_purchases_expr(
    bg: BgNbdParams, t: float, x: Column, t_x: Column, T: Column, tolerance: float = 1e-10, max_terms: int = 5000
) -> Column:
    """E[purchases in (T, T+t] | x, t_x, T] (FHL 2005 eq. 10) as one Spark SQL expression."""
    return expected_purchases_alive_expr(bg, t, x, T, tolerance, max_terms) * p_alive_expr(bg, x, t_x, T)


def expected_value_expr(gg: GammaGammaParams, x: Column, m: Column) -> Column:
    """E[M | x, m] = p (gamma + m x) / (p x + q - 1); the population mean p gamma/(q-1) when x = 0."""
    p, q, gamma = gg.p, gg.q, gg.gamma
    has_spend = (x > 0) & m.isNotNull()
    conditional = F.lit(p) * (F.lit(gamma) + m * x) / (F.lit(p) * x + F.lit(q - 1.0))
    return F.when(has_spend, conditional).otherwise(F.lit(gg.population_mean))


def score(
    bg: BgNbdParams,
    gg: GammaGammaParams | None,
    horizon_days: int = 365,
    discount_rate_annual: float = 0.1,
    periods: int = 12,
    time_unit_days: int = 7,
    margin: float = 1.0,
    tolerance: float = 1e-10,
    max_terms: int = 5000,
) -> Callable[[DataFrame], DataFrame]:
    """Adds exp_purchases, p_alive, exp_avg_value and clv to a ``summarize`` output.

    clv = margin x exp_avg_value x sum_k (E[Y(t_k)] - E[Y(t_k-1)]) / (1+d)^(t_k / 365 days),
    t_k = k x horizon / periods: each period's expected purchases discounted at its end.
    The series runs once per distinct (x, T) (E given alive depends on nothing else;
    bounded by purchase counts x days of history) and is joined back; P(alive) is closed
    form per customer. Customers without a purchase (null summary) get nulls; so do the
    values when ``gg`` is None.
    """
    step_units = horizon_days / periods / time_unit_days
    discount = [(1.0 + discount_rate_annual) ** (-(k * horizon_days / periods) / 365.0) for k in range(1, periods + 1)]
    # sum_k (E_k - E_{k-1}) d_k = sum_k E_k (d_k - d_{k+1}) with d_{K+1} = 0
    weights = [discount[k] - (discount[k + 1] if k + 1 < periods else 0.0) for k in range(periods)]

    def transform(summary: DataFrame) -> DataFrame:
        x, t_x, T = F.col("clv_frequency"), F.col("clv_recency"), F.col("clv_T")
        alive_paths = [
            expected_purchases_alive_expr(bg, (k + 1) * step_units, x, T, tolerance, max_terms) for k in range(periods)
        ]
        per_x_T = (
            summary.where(x.isNotNull())
            .select("clv_frequency", "clv_T")
            .distinct()
            .select("clv_frequency", "clv_T", F.array(*alive_paths).alias("_alive_paths"))
            .select(
                "clv_frequency",
                "clv_T",
                F.element_at("_alive_paths", -1).alias("_alive_purchases"),
                sum((F.col("_alive_paths")[k] * F.lit(w) for k, w in enumerate(weights)), F.lit(0.0)).alias(
                    "_alive_discounted"
                ),
            )
        )
        p_alive = p_alive_expr(bg, x, t_x, T)
        value = expected_value_expr(gg, x, F.col("clv_monetary")) if gg is not None else F.lit(None).cast("double")
        scored = summary.join(F.broadcast(per_x_T), on=["clv_frequency", "clv_T"], how="left")
        return scored.select(
            *summary.columns,
            (p_alive * F.col("_alive_purchases")).cast("double").alias("exp_purchases"),
            F.when(x.isNotNull(), p_alive).cast("double").alias("p_alive"),
            F.when(x.isNotNull(), value).cast("double").alias("exp_avg_value"),
            (F.lit(margin) * value * p_alive * F.col("_alive_discounted")).cast("double").alias("clv"),
        )

    return transform
