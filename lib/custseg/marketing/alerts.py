"""Churn alerts: the customers a retention team should call now, each with the reasons why.

A customer of one feature snapshot is flagged when any of three signals holds:

- ``declining``: orders in the last churn window fell below ``decline_ratio`` x the window
  before (``orders_last_90 < decline_ratio x orders_prev_90``);
- ``overdue``: ``overdue_ratio >= overdue_ratio_threshold`` (days since the last purchase
  against the customer's usual gap);
- ``churn_risk``: ``1 - p_alive >= churn_risk_threshold`` (the BG/NBD probability that the
  customer has stopped buying; the same churn_risk as gold.customer_segments).

The first two are the two halves of the ``declining`` feature flag (custseg.features.churn),
with the same thresholds, so "flagged" = ``declining`` or a high churn risk. Reasons keep
that order; ``value_at_risk`` (churn_risk x window spend) lets a team work the list by value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from custseg.config import Config

ALERT_REASONS = ("declining", "overdue", "churn_risk")
ALERT_COLUMNS = [
    "snapshot_date",
    "customer_key",
    "reasons",
    "n_reasons",
    "churn_risk",
    "p_alive",
    "overdue_ratio",
    "orders_last_90",
    "orders_prev_90",
    "recency_days",
    "monetary",
    "clv",
    "value_at_risk",
    "rfm_segment",
    "segment_name",
]


@dataclass(frozen=True)
class AlertSettings:
    churn_risk_threshold: float = 0.5
    overdue_ratio_threshold: float = 2.0
    decline_ratio: float = 0.5

    @classmethod
    def from_config(cls, conf: Config) -> AlertSettings:
        """``marketing.churn_alerts.churn_risk_threshold``; the other two are the feature job's own."""
        d = cls()
        return cls(
            churn_risk_threshold=float(
                conf.get_path("marketing.churn_alerts.churn_risk_threshold", d.churn_risk_threshold)
            ),
            overdue_ratio_threshold=float(conf.get_path("features.overdue_ratio_threshold", d.overdue_ratio_threshold)),
            decline_ratio=float(conf.get_path("features.decline_ratio", d.decline_ratio)),
        )


def churn_risk() -> Column:
    """1 - p_alive; null without a CLV fit (a customer who never bought)."""
    return (F.lit(1.0) - F.col("p_alive").cast("double")).cast("double")


def reason_columns(s: AlertSettings) -> dict[str, Column]:
    """One boolean per reason, false where the inputs are null (a null never raises an alert)."""
    last, prev = F.col("orders_last_90"), F.col("orders_prev_90")
    return {
        "declining": F.coalesce(last < F.lit(s.decline_ratio) * prev, F.lit(False)),
        "overdue": F.coalesce(F.col("overdue_ratio") >= F.lit(s.overdue_ratio_threshold), F.lit(False)),
        "churn_risk": F.coalesce(churn_risk() >= F.lit(s.churn_risk_threshold), F.lit(False)),
    }


def churn_alerts(s: AlertSettings, as_of: date) -> Callable[[DataFrame], DataFrame]:
    """Customer base of one snapshot (features, optionally segment_name) -> one row per flagged customer."""

    def transform(base: DataFrame) -> DataFrame:
        flags = reason_columns(s)
        reasons = F.filter(
            F.array(*[F.when(flags[r], F.lit(r)) for r in ALERT_REASONS]),
            lambda r: r.isNotNull(),
        )
        segment = F.col("segment_name") if "segment_name" in base.columns else F.lit(None)
        risk = churn_risk()
        return (
            base.select("*", reasons.alias("reasons"))
            .where(F.size("reasons") > 0)
            .select(
                F.lit(as_of).alias("snapshot_date"),
                F.col("customer_key").cast("string").alias("customer_key"),
                F.col("reasons").cast("array<string>").alias("reasons"),
                F.size("reasons").cast("int").alias("n_reasons"),
                risk.alias("churn_risk"),
                F.col("p_alive").cast("double").alias("p_alive"),
                F.col("overdue_ratio").cast("double").alias("overdue_ratio"),
                F.col("orders_last_90").cast("int").alias("orders_last_90"),
                F.col("orders_prev_90").cast("int").alias("orders_prev_90"),
                F.col("recency_days").cast("int").alias("recency_days"),
                F.col("monetary").cast("decimal(16,2)").alias("monetary"),
                F.col("clv").cast("double").alias("clv"),
                (risk * F.col("monetary").cast("double")).cast("double").alias("value_at_risk"),
                F.col("rfm_segment").cast("string").alias("rfm_segment"),
                segment.cast("string").alias("segment_name"),
            )
        )

    return transform


def with_alert_flag(alerts: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Base -> base + ``churn_alert`` (boolean, false when not flagged) and ``churn_alert_reasons``.

    Campaigns select the alert list with ``filters: [{column: churn_alert, op: "==", value: true}]``.
    """

    def transform(base: DataFrame) -> DataFrame:
        flagged = alerts.select("customer_key", F.col("reasons").alias("churn_alert_reasons"))
        return (
            base.join(flagged, on="customer_key", how="left")
            .withColumn("churn_alert", F.col("churn_alert_reasons").isNotNull())
            .select(*base.columns, "churn_alert", "churn_alert_reasons")
        )

    return transform
