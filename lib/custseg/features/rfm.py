"""RFM: recency, frequency, monetary over a window; 1-5 scores; the cell code and a named segment.

Definitions (the column dictionary in docs/ repeats them):
- purchases are orders with status ``completed``; returned and cancelled orders do not count;
- recency_days: days from the last purchase (any time up to the snapshot) to the snapshot date;
  null for a customer who never bought;
- frequency: purchases in the window (snapshot - window_days, snapshot];
- monetary: net revenue of those purchases.

Scores are quantile bins by value, so ties always share a score: with thresholds
q_i = the i/bins quantile (i = 1..bins-1) of the customers who bought in the window,
score = 1 + #{i : value > q_i}. For recency, lower is better, so it is scored on
-recency_days. Quantiles come from ``percentile_approx`` (exact on small data,
bounded error on large data) so no single-partition sort over all customers is needed.
Customers without a purchase in the window score 1 on all three.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

RFM_COLUMNS = [
    "customer_key",
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "rfm_cell",
    "rfm_segment",
]

# First matching rule wins; ranges are inclusive [low, high] on R and F scores (1-5).
DEFAULT_SEGMENTS: list[dict] = [
    {"name": "Champions", "r": [5, 5], "f": [4, 5]},
    {"name": "Loyal", "r": [3, 4], "f": [4, 5]},
    {"name": "Potential Loyalist", "r": [4, 5], "f": [2, 3]},
    {"name": "New", "r": [5, 5], "f": [1, 1]},
    {"name": "Promising", "r": [4, 4], "f": [1, 1]},
    {"name": "Need Attention", "r": [3, 3], "f": [3, 3]},
    {"name": "About to Sleep", "r": [3, 3], "f": [1, 2]},
    {"name": "Can't Lose Them", "r": [1, 2], "f": [5, 5]},
    {"name": "At Risk", "r": [1, 2], "f": [3, 4]},
    {"name": "Lost", "r": [1, 1], "f": [1, 1]},
    {"name": "Hibernating", "r": [1, 2], "f": [1, 2]},
]


def rfm_aggregates(as_of: date, window_days: int) -> list[Column]:
    """The RFM aggregates over one customer's orders: last_purchase, frequency, monetary.

    Shared with ``custseg.features.orders.customer_orders`` so the definitions cannot drift.
    silver.orders holds one row per order_id, so a count of rows counts orders.
    """
    window_start = as_of - timedelta(days=window_days)
    day = F.to_date("order_ts")
    purchase = (F.col("status") == "completed") & (day <= F.lit(as_of))
    in_window = purchase & (day > F.lit(window_start))
    return [
        F.max(F.when(purchase, day)).alias("last_purchase"),
        F.count(F.when(in_window, F.lit(1))).alias("frequency"),
        F.sum(F.when(in_window, F.col("net_revenue"))).alias("monetary"),
    ]


def rfm_base(as_of: date, window_days: int) -> Callable[[DataFrame], DataFrame]:
    """Orders -> one row per customer_key with recency_days, frequency, monetary."""

    def transform(orders: DataFrame) -> DataFrame:
        return (
            orders.where(F.col("customer_key").isNotNull())
            .groupBy("customer_key")
            .agg(*rfm_aggregates(as_of, window_days))
            .select(
                "customer_key",
                F.datediff(F.lit(as_of), "last_purchase").alias("recency_days"),
                F.col("frequency").cast("int").alias("frequency"),
                F.coalesce(F.col("monetary"), F.lit(0)).cast("decimal(16,2)").alias("monetary"),
            )
        )

    return transform


def quantile_thresholds(
    df: DataFrame, cols: Sequence[tuple[str, Column]], bins: int, accuracy: int
) -> dict[str, list[float]]:
    """Per measure, the bins-1 cut points (a bounded aggregate: a few numbers reach the driver)."""
    probs = [i / bins for i in range(1, bins)]
    row = df.agg(
        *[F.percentile_approx(expr.cast("double"), probs, accuracy).alias(name) for name, expr in cols]
    ).first()
    return {name: [float(v) for v in (row[name] or [])] for name, _ in cols}


def score_from_thresholds(value: Column, thresholds: Sequence[float]) -> Column:
    score = F.lit(1)
    for t in thresholds:
        score = score + F.when(value > F.lit(t), 1).otherwise(0)
    return score


def segment_expr(segments: Sequence[dict], r: Column, f: Column) -> Column:
    expr = None
    for rule in segments:
        (r_lo, r_hi), (f_lo, f_hi) = rule["r"], rule["f"]
        cond = r.between(r_lo, r_hi) & f.between(f_lo, f_hi)
        expr = F.when(cond, F.lit(rule["name"])) if expr is None else expr.when(cond, F.lit(rule["name"]))
    return F.coalesce(expr, F.lit("Other")) if expr is not None else F.lit("Other")


def rfm_measures() -> list[tuple[str, Column]]:
    """What is scored, higher = better: recency enters negated (fewer days is better)."""
    return [
        ("recency", -F.col("recency_days")),
        ("frequency", F.col("frequency")),
        ("monetary", F.col("monetary")),
    ]


def rfm_cuts(
    base: DataFrame,
    bins: int = 5,
    binning: str = "quantile",
    fixed: dict | None = None,
    accuracy: int = 100000,
) -> dict[str, list[float]]:
    """Cut points per measure: quantiles of the customers active in the window, or conf's fixed ones.

    Quantile cuts run one aggregate job over ``base`` (persist it first when it is expensive).
    """
    if binning == "fixed":
        fx = fixed or {}
        # Fixed thresholds are inclusive upper bounds in natural units: frequency 1 with
        # cut 1 scores 1; recency 30 with cut 30 scores 5 (recency is whole days, so -t-0.5).
        return {
            "recency": [-(t + 0.5) for t in reversed(fx["recency_days"])],
            "frequency": [float(t) for t in fx["frequency"]],
            "monetary": [float(t) for t in fx["monetary"]],
        }
    return quantile_thresholds(base.where(F.col("frequency") > 0), rfm_measures(), bins, accuracy)


def rfm_score_columns(cuts: dict[str, list[float]], segments: Sequence[dict] = DEFAULT_SEGMENTS) -> list[Column]:
    """r_score, f_score, m_score, rfm_cell, rfm_segment from recency_days, frequency, monetary."""
    active = F.col("frequency") > 0
    scores = {
        name: F.when(active, score_from_thresholds(expr.cast("double"), cuts[name])).otherwise(F.lit(1))
        for name, expr in rfm_measures()
    }
    r, f, m = scores["recency"], scores["frequency"], scores["monetary"]
    return [
        r.cast("int").alias("r_score"),
        f.cast("int").alias("f_score"),
        m.cast("int").alias("m_score"),
        F.concat(r.cast("string"), f.cast("string"), m.cast("string")).alias("rfm_cell"),
        segment_expr(segments, r, f).alias("rfm_segment"),
    ]


def with_rfm_scores(
    bins: int = 5,
    segments: Sequence[dict] = DEFAULT_SEGMENTS,
    binning: str = "quantile",
    fixed: dict | None = None,
    accuracy: int = 100000,
) -> Callable[[DataFrame], DataFrame]:
    """Adds r/f/m scores, the cell code and the segment name to ``rfm_base`` output."""

    def transform(base: DataFrame) -> DataFrame:
        cuts = rfm_cuts(base, bins, binning, fixed, accuracy)
        return base.select("customer_key", "recency_days", "frequency", "monetary", *rfm_score_columns(cuts, segments))

    return transform


def rfm_features(
    orders: DataFrame,
    customers: DataFrame,
    as_of: date,
    window_days: int = 365,
    bins: int = 5,
    segments: Sequence[dict] = DEFAULT_SEGMENTS,
    binning: str = "quantile",
    fixed: dict | None = None,
) -> DataFrame:
    """Every known customer with RFM; those who never bought get frequency 0 and scores of 1."""
    base = orders.transform(rfm_base(as_of, window_days))
    everyone = customers.select("customer_key").distinct().join(base, on="customer_key", how="full")
    everyone = everyone.select(
        "customer_key",
        "recency_days",
        F.coalesce("frequency", F.lit(0)).alias("frequency"),
        F.coalesce("monetary", F.lit(0).cast("decimal(16,2)")).alias("monetary"),
    )
    return everyone.transform(with_rfm_scores(bins, segments, binning, fixed)).select(*RFM_COLUMNS)
