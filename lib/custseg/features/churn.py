"""Churn signals: recent vs previous order counts, the overdue ratio and a declining flag.

- orders_last_90 / orders_prev_90: purchases in the last ``churn_window_days`` (default 90)
  before the snapshot and in the same span before that (computed in ``orders.customer_orders``);
- median_gap_days: the median of the gaps between consecutive distinct purchase days, all
  history up to the snapshot; null with fewer than two purchase days;
- overdue_ratio: days since the last purchase / median_gap_days (1 = "due now", 3 = three
  usual gaps without buying); null when the median gap is null;
- declining: orders_last_90 < decline_ratio x orders_prev_90, or overdue_ratio >=
  overdue_ratio_threshold. False for a customer without purchases (nothing to decline from).
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

CHURN_COLUMNS = ["orders_last_90", "orders_prev_90", "median_gap_days", "overdue_ratio", "declining"]


def median_gap_days(days: Column) -> Column:
    """Median of consecutive differences of a sorted array<date>; null below two days."""
    gaps = F.array_sort(
        F.transform(
            F.slice(days, 2, F.greatest(F.size(days) - 1, F.lit(1))),
            lambda d, i: F.datediff(d, F.element_at(days, i + 1)),
        )
    )
    m = F.size(gaps)
    middle_low = F.try_element_at(gaps, F.floor((m + 1) / 2).cast("int"))
    middle_high = F.try_element_at(gaps, F.floor(m / 2).cast("int") + 1)
    return F.when(F.size(days) >= 2, (middle_low + middle_high) / F.lit(2.0)).cast("double")


def churn_flag_columns(overdue_ratio_threshold: float = 2.0, decline_ratio: float = 0.5) -> list[Column]:
    """overdue_ratio and declining from recency_days, median_gap_days, orders_last_90, orders_prev_90."""
    overdue = F.when(F.col("median_gap_days") > 0, F.col("recency_days") / F.col("median_gap_days"))
    falling = F.col("orders_last_90") < F.lit(decline_ratio) * F.col("orders_prev_90")
    is_overdue = F.coalesce(overdue >= F.lit(overdue_ratio_threshold), F.lit(False))
    return [
        overdue.cast("double").alias("overdue_ratio"),
        (F.coalesce(falling, F.lit(False)) | is_overdue).alias("declining"),
    ]


def with_churn_signals(
    overdue_ratio_threshold: float = 2.0, decline_ratio: float = 0.5
) -> Callable[[DataFrame], DataFrame]:
    """Rows with customer_key, recency_days, orders_last_90, orders_prev_90 and ``purchase_days``
    (sorted array<date>) -> customer_key, recency_days and the CHURN_COLUMNS."""

    def transform(df: DataFrame) -> DataFrame:
        return (
            df.select(
                "customer_key",
                "recency_days",
                F.coalesce(F.col("orders_last_90"), F.lit(0)).cast("int").alias("orders_last_90"),
                F.coalesce(F.col("orders_prev_90"), F.lit(0)).cast("int").alias("orders_prev_90"),
                median_gap_days(F.col("purchase_days")).alias("median_gap_days"),
            )
            .select("*", *churn_flag_columns(overdue_ratio_threshold, decline_ratio))
            .select("customer_key", "recency_days", *CHURN_COLUMNS)
        )

    return transform
