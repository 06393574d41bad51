"""KPI trends: the customer-base figures a marketer tracks, period by period, overall and per segment.

``kpi_trends(orders, feedback, segments, as_of, settings)`` -> one row per period and segment
(plus segment ``all``), for the ``periods`` periods of ``period_days`` days ending at ``as_of``
(period 0 = (as_of - period_days, as_of], period 1 the one before, ...):

- ``active``: customers with at least one order (of ``statuses``) in the period;
- ``new``: active customers whose first order ever falls in the period;
- ``previous_active``: customers active in the period before;
- ``retained`` / ``churned``: of ``previous_active``, those active / not active in the period;
- ``retention_rate`` = retained / previous_active, ``churn_rate`` = churned / previous_active;
- ``repeat_rate``: share of the active customers with two or more orders in the period;
- ``orders``, ``revenue`` (sum of net_revenue), ``aov`` = revenue / orders;
- ``feedback`` (records in the period), ``satisfaction`` (mean rating), ``nps`` (% promoters
  - % detractors among NPS answers, -100..100), ``complaints``, ``complaint_rate`` = complaints / feedback.

Customers are grouped by their segment *at the snapshot* (``segments``, one row per customer):
a segment's line shows how today's members behaved in past periods (a cohort view), so it is
not changed by later re-segmentation of the past. Customers without a segment count as
``unsegmented``. Every rate is null when its denominator is 0.

Everything is aggregated in Spark; the output is bounded by periods x (segments + 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from custseg.config import Config, validator

ALL = "all"
UNSEGMENTED = "unsegmented"
KPI_COLUMNS = [
    "snapshot_date",
    "period",
    "period_start",
    "period_end",
    "segment_name",
    "active",
    "new",
    "previous_active",
    "retained",
    "churned",
    "retention_rate",
    "churn_rate",
    "repeat_rate",
    "orders",
    "revenue",
    "aov",
    "feedback",
    "satisfaction",
    "nps",
    "complaints",
    "complaint_rate",
]


@dataclass(frozen=True)
class KpiSettings:
    period_days: int = 30
    periods: int = 12
    statuses: tuple[str, ...] = ("completed",)

    @classmethod
    def from_config(cls, conf: Config) -> KpiSettings:
        g, d = conf.get_path, cls()
        period_days, periods = g("marketing.kpis.period_days", d.period_days), g("marketing.kpis.periods", d.periods)
        statuses = g("marketing.kpis.statuses", list(d.statuses))
        if not isinstance(period_days, int) or isinstance(period_days, bool) or period_days < 1:
            raise conf.error("marketing.kpis.period_days", f"must be a positive integer; got {period_days!r}")
        if not isinstance(periods, int) or isinstance(periods, bool) or not 1 <= periods <= 120:
            raise conf.error("marketing.kpis.periods", f"must be an integer from 1 to 120; got {periods!r}")
        if not isinstance(statuses, list) or not statuses or not all(isinstance(x, str) for x in statuses):
            raise conf.error("marketing.kpis.statuses", f"must be a non-empty list of order statuses; got {statuses!r}")
        return cls(period_days=period_days, periods=periods, statuses=tuple(statuses))


@validator
def _check_kpis(conf: Config) -> None:
    KpiSettings.from_config(conf)


def _period(day: Column, as_of: date, period_days: int) -> Column:
    """0 for (as_of - period_days, as_of], 1 for the period before, ...; negative after as_of."""
    return F.floor(F.datediff(F.lit(as_of), day) / F.lit(period_days)).cast("int")


def ratio(num: str, den: str) -> Column:
    return F.when(F.col(den) > 0, F.col(num) / F.col(den))


def with_segment(df: DataFrame, segments: DataFrame | None) -> DataFrame:
    """Each row twice: once under the customer's segment, once under ``all``."""
    if segments is None:
        seg = F.lit(UNSEGMENTED)
    else:
        df = df.join(segments.select("customer_key", F.col("segment_name").alias("_seg")), "customer_key", "left")
        seg = F.coalesce(F.col("_seg"), F.lit(UNSEGMENTED))
    return df.withColumn("segment_name", F.explode(F.array(seg, F.lit(ALL)))).drop("_seg")


def kpi_trends(
    orders: DataFrame,
    feedback: DataFrame | None,
    segments: DataFrame | None,
    as_of: date,
    s: KpiSettings,
) -> DataFrame:
    """orders (customer_key, order_id, order_date, status, net_revenue), feedback (customer_key, ts,
    rating, nps, is_complaint) or None, segments (customer_key, segment_name) or None -> KPI rows."""
    done = orders.where(
        F.col("status").isin(*s.statuses) & F.col("customer_key").isNotNull() & (F.col("order_date") <= F.lit(as_of))
    )
    first = done.groupBy("customer_key").agg(F.min("order_date").alias("_first"))
    # periods 0..periods-1 are reported; period `periods` is only the "before" of the oldest one
    horizon = as_of - timedelta(days=s.period_days * (s.periods + 1))
    per_customer = (
        done.where(F.col("order_date") > F.lit(horizon))
        .withColumn("period", _period(F.col("order_date"), as_of, s.period_days))
        .groupBy("customer_key", "period")
        .agg(
            F.count_distinct("order_id").alias("_orders"),
            F.sum(F.col("net_revenue").cast("double")).alias("_revenue"),
        )
    )
    now = per_customer.select("customer_key", "period", "_orders", "_revenue", F.lit(True).alias("_now"))
    before = per_customer.select("customer_key", (F.col("period") - 1).alias("period"), F.lit(True).alias("_before"))
    flags = (
        now.join(before, ["customer_key", "period"], "full")
        .where(F.col("period").between(0, s.periods - 1))
        .join(first, "customer_key", "left")
        .withColumn("_now", F.coalesce("_now", F.lit(False)))
        .withColumn("_before", F.coalesce("_before", F.lit(False)))
        .withColumn("_new", F.col("_now") & (_period(F.col("_first"), as_of, s.period_days) == F.col("period")))
    )
    counted = (
        with_segment(flags, segments)
        .groupBy("period", "segment_name")
        .agg(
            F.sum(F.col("_now").cast("long")).alias("active"),
            F.sum(F.col("_new").cast("long")).alias("new"),
            F.sum(F.col("_before").cast("long")).alias("previous_active"),
            F.sum((F.col("_now") & F.col("_before")).cast("long")).alias("retained"),
            F.sum((~F.col("_now") & F.col("_before")).cast("long")).alias("churned"),
            F.sum((F.coalesce(F.col("_orders"), F.lit(0)) >= 2).cast("long")).alias("_repeat"),
            F.coalesce(F.sum("_orders"), F.lit(0)).cast("long").alias("orders"),
            F.coalesce(F.sum("_revenue"), F.lit(0.0)).alias("revenue"),
        )
    )
    if feedback is not None:
        fb = (
            feedback.where(F.col("customer_key").isNotNull())
            .withColumn("period", _period(F.to_date("ts"), as_of, s.period_days))
            .where(F.col("period").between(0, s.periods - 1))
        )
        said = (
            with_segment(fb, segments)
            .groupBy("period", "segment_name")
            .agg(
                F.count("*").alias("feedback"),
                F.avg(F.col("rating").cast("double")).alias("satisfaction"),
                F.count("nps").alias("_nps_n"),
                F.sum((F.col("nps") >= 9).cast("long")).alias("_promoters"),
                F.sum((F.col("nps") <= 6).cast("long")).alias("_detractors"),
                F.sum(F.coalesce(F.col("is_complaint"), F.lit(False)).cast("long")).alias("complaints"),
            )
        )
        counted = counted.join(said, ["period", "segment_name"], "full")
    else:
        counted = counted.select(
            "*",
            F.lit(0).cast("long").alias("feedback"),
            F.lit(None).cast("double").alias("satisfaction"),
            F.lit(0).cast("long").alias("_nps_n"),
            F.lit(0).cast("long").alias("_promoters"),
            F.lit(0).cast("long").alias("_detractors"),
            F.lit(0).cast("long").alias("complaints"),
        )
    zero = ["active", "new", "previous_active", "retained", "churned", "_repeat", "orders", "feedback", "complaints"]
    out = counted.fillna(0, subset=zero).fillna(0.0, subset=["revenue"])
    end = F.date_sub(F.lit(as_of), F.col("period") * F.lit(s.period_days))
    nps = F.lit(100.0) * (F.col("_promoters") - F.col("_detractors")) / F.col("_nps_n")
    return out.withColumns(
        {
            "snapshot_date": F.lit(as_of),
            "period": F.col("period").cast("int"),
            "period_start": F.date_sub(end, s.period_days - 1),
            "period_end": end,
            "retention_rate": ratio("retained", "previous_active"),
            "churn_rate": ratio("churned", "previous_active"),
            "repeat_rate": ratio("_repeat", "active"),
            "aov": ratio("revenue", "orders"),
            "nps": F.when(F.col("_nps_n") > 0, nps),
            "complaint_rate": ratio("complaints", "feedback"),
        }
    ).select(*KPI_COLUMNS)
