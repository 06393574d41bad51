"""gold.customer_features from the silver tables: one row per customer, every feature family.

Two steps, so the stage can persist what lies between them:

1. ``raw_features`` aggregates each silver table once per customer and joins the
   aggregates (orders: RFM base, churn counts, order behaviour, the CLV purchase history;
   order_items: categories and C; events; feedback; social). Everything per-customer that
   needs no population statistic is computed here.
2. ``finish_features`` computes the bounded population statistics on the driver (RFM
   quantile cuts, LRFMC winsorizing bounds, means and standard deviations, the BG/NBD and
   Gamma-Gamma fits on grouped rows) and scores every customer in Spark with them.

Persisting the step-1 frame means each silver table is scanned once for the whole job:
every later job reads the cached per-customer frame. Customers are the keys of
silver.customers plus any customer_key with orders; keys seen only in events, feedback or
social are not customers yet and are left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from custseg.features import clv
from custseg.features.behavior import (
    EMPTY_DEFAULTS,
    event_features,
    feedback_features,
    item_features,
    order_behavior_columns,
    social_features,
)
from custseg.features.churn import churn_flag_columns, median_gap_days
from custseg.features.lrfmc import lrfmc_stats, lrfmc_z_columns
from custseg.features.orders import PURCHASE_TYPE, customer_orders, purchase_days
from custseg.features.rfm import rfm_cuts, rfm_score_columns
from custseg.features.settings import FeatureSettings

log = logging.getLogger(__name__)

# The contract of gold.customer_features (docs/features.md describes every column).
FEATURE_COLUMNS = [
    "customer_key",
    "snapshot_date",
    # RFM
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "rfm_cell",
    "rfm_segment",
    # LRFMC (R, F, M above)
    "tenure_days",
    "units",
    "discount_coef",
    "l_z",
    "r_z",
    "f_z",
    "m_z",
    "c_z",
    # behaviour
    "sessions",
    "page_views",
    "product_views",
    "cart_adds",
    "view_to_purchase",
    "avg_session_seconds",
    "preferred_channel",
    "preferred_category",
    "top_categories",
    "weekend_share",
    "weekday_lunch_share",
    "weekday_evening_share",
    "avg_basket_size",
    "avg_basket_value",
    "distinct_categories",
    "return_rate",
    "discount_order_share",
    "avg_rating",
    "latest_nps_band",
    "complaints",
    "social_influence",
    # churn signals
    "first_purchase_date",
    "last_purchase_date",
    "orders_last_90",
    "orders_prev_90",
    "median_gap_days",
    "overdue_ratio",
    "declining",
    # CLV
    "clv_frequency",
    "clv_recency",
    "clv_T",
    "clv_monetary",
    "exp_purchases",
    "p_alive",
    "exp_avg_value",
    "clv",
]

# Columns of ``raw_features`` (everything except scores that need population statistics).
RAW_COLUMNS = [
    c
    for c in FEATURE_COLUMNS
    if c
    not in {
        "snapshot_date",
        "r_score",
        "f_score",
        "m_score",
        "rfm_cell",
        "rfm_segment",
        "l_z",
        "r_z",
        "f_z",
        "m_z",
        "c_z",
        "exp_purchases",
        "p_alive",
        "exp_avg_value",
        "clv",
    }
]

OPTIONAL_TABLES = ("order_items", "events", "feedback", "social")


@dataclass
class SilverInputs:
    """The silver tables the job reads; an optional table may be None (not there yet)."""

    customers: DataFrame
    orders: DataFrame
    order_items: DataFrame | None = None
    events: DataFrame | None = None
    feedback: DataFrame | None = None
    social: DataFrame | None = None


@dataclass
class FitReport:
    """The bounded statistics the job fitted (logged and stored in the run record)."""

    rfm_cuts: dict = field(default_factory=dict)
    lrfmc: dict = field(default_factory=dict)
    bgnbd: dict | None = None
    gamma_gamma: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "rfm_cuts": self.rfm_cuts,
            "lrfmc": self.lrfmc,
            "bgnbd": self.bgnbd,
            "gamma_gamma": self.gamma_gamma,
            "warnings": self.warnings,
        }


def _defaults(columns: list[str]) -> list[Column]:
    return [F.lit(EMPTY_DEFAULTS[c][0]).cast(EMPTY_DEFAULTS[c][1]).alias(c) for c in columns]


def _filled(name: str) -> Column:
    value, dtype = EMPTY_DEFAULTS[name]
    col = F.col(name).cast(dtype)
    return (F.coalesce(col, F.lit(value).cast(dtype)) if value is not None else col).alias(name)


def _count0(name: str, dtype: str = "int") -> Column:
    return F.coalesce(F.col(name), F.lit(0)).cast(dtype).alias(name)


def raw_features(silver: SilverInputs, s: FeatureSettings, as_of: date) -> DataFrame:
    """Silver tables -> one row per customer with every feature that needs no population statistic."""
    window = s.rfm.window_days
    orders = silver.orders.transform(
        customer_orders(
            as_of, window, s.churn_window_days, s.lunch_hours, s.online_channels, evening_hours=s.evening_hours
        )
    )
    customers = (
        silver.customers.where(F.col("customer_key").isNotNull())
        .groupBy("customer_key")
        .agg(F.min("signup_date").alias("signup_date"))
    )
    joined = customers.join(orders, on="customer_key", how="full")

    families = {
        "order_items": (
            item_features(as_of, window, s.top_categories),
            ["distinct_categories", "preferred_category", "top_categories", "discount_coef"],
        ),
        "events": (
            event_features(as_of, window, s.page_view_events, s.product_view_events, s.cart_add_events),
            ["sessions", "page_views", "product_views", "cart_adds", "avg_session_seconds"],
        ),
        "feedback": (feedback_features(as_of, window), ["avg_rating", "latest_nps_band", "complaints"]),
        "social": (social_features(as_of, s.social_weights), ["social_influence"]),
    }
    for table, (transform, columns) in families.items():
        source = getattr(silver, table)
        if source is None:
            log.warning("silver.%s is absent: %s get their empty defaults", table, ", ".join(columns))
            joined = joined.select("*", *_defaults(columns))
        else:
            joined = joined.join(source.transform(transform), on="customer_key", how="left")

    counts = [
        "frequency",
        "returned_orders",
        "discount_orders",
        "weekend_orders",
        "weekday_lunch_orders",
        "weekday_evening_orders",
        "online_orders",
        "orders_last_90",
        "orders_prev_90",
    ]
    behaviour = [c for _, cols in families.values() for c in cols]
    purchases = F.coalesce(F.col("purchases"), F.array().cast(PURCHASE_TYPE))
    step1 = joined.select(
        "customer_key",
        F.datediff(F.lit(as_of), F.coalesce("signup_date", "first_purchase")).cast("int").alias("tenure_days"),
        F.datediff(F.lit(as_of), "last_purchase").cast("int").alias("recency_days"),
        F.col("first_purchase").alias("first_purchase_date"),
        F.col("last_purchase").alias("last_purchase_date"),
        *[_count0(c) for c in counts],
        F.coalesce(F.col("monetary"), F.lit(0)).cast("decimal(16,2)").alias("monetary"),
        _count0("units", "long"),
        "preferred_channel",
        purchases.alias("purchases"),
        purchase_days(purchases).alias("purchase_days"),
        *[_filled(c) for c in behaviour],
    )
    step2 = step1.select(
        *[c for c in step1.columns if c not in ("purchases", "purchase_days", "preferred_channel")],
        median_gap_days(F.col("purchase_days")).alias("median_gap_days"),
        *clv.summary_columns(F.col("purchases"), F.col("purchase_days"), as_of, s.clv.time_unit_days),
        *order_behavior_columns(),
    )
    return step2.select("*", *churn_flag_columns(s.overdue_ratio_threshold, s.decline_ratio)).select(*RAW_COLUMNS)


def _null_scores(df: DataFrame) -> DataFrame:
    return df.select("*", *[F.lit(None).cast("double").alias(c) for c in clv.SCORE_COLUMNS])


def finish_features(raw: DataFrame, s: FeatureSettings, as_of: date) -> tuple[DataFrame, FitReport]:
    """Population statistics from ``raw`` (persist it first), then every customer scored.

    Runs a handful of small jobs over ``raw``; only cut points, moments and model
    parameters reach the driver. A CLV model that cannot be fitted (too few repeat
    buyers) leaves the CLV scores null and says so in the report, not fail the job.
    """
    report = FitReport()
    r = s.rfm
    cuts = rfm_cuts(raw, r.bins, r.binning, r.fixed_thresholds, r.quantile_accuracy)
    report.rfm_cuts = cuts
    stats = lrfmc_stats(raw, s.lrfmc_monetary, s.winsorize_quantile, r.quantile_accuracy)
    report.lrfmc = {k: vars(v) for k, v in stats.items()}

    c = s.clv
    scored = None
    try:
        bg = clv.fit_bgnbd(raw, c.max_fit_rows, c.seed, c.max_shape)
        report.bgnbd = bg.as_dict()
        gg = None
        try:
            gg = clv.fit_gamma_gamma(raw, c.max_fit_rows, c.seed, c.max_shape)
            report.gamma_gamma = gg.as_dict()
            if gg.q <= 1.0:
                report.warnings.append(f"Gamma-Gamma q={gg.q:.3f} <= 1: expected values undefined, left null")
                gg = None
        except clv.ClvFitError as exc:
            report.warnings.append(str(exc))
        scored = raw.transform(
            clv.score(
                bg,
                gg,
                c.horizon_days,
                c.discount_rate_annual,
                c.periods,
                c.time_unit_days,
                c.margin,
                c.series_tolerance,
                c.series_max_terms,
            )
        )
    except clv.ClvFitError as exc:
        report.warnings.append(str(exc))
        scored = raw.transform(_null_scores)
    for w in report.warnings:
        log.warning("features: %s", w)

    features = scored.select(
        "*",
        F.lit(as_of).alias("snapshot_date"),
        *rfm_score_columns(cuts, r.segments),
        *lrfmc_z_columns(stats, s.lrfmc_monetary),
    ).select(*FEATURE_COLUMNS)
    return features, report


def customer_features(silver: SilverInputs, s: FeatureSettings, as_of: date) -> tuple[DataFrame, FitReport]:
    """Both steps without persisting (small inputs, tests); the stage persists in between."""
    return finish_features(raw_features(silver, s, as_of), s, as_of)
