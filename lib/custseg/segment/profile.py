"""Segment profiles: size, revenue, mean features (original units and z), top categories,
preferred channel, churn risk, CLV, and the LRFMC value class of each segment.

All figures are Spark aggregates over (segment x something small): one row per segment
comes out. A profile's ``profile_z`` is (segment mean - mean of all customers) / sd of all
customers, the scale naming rules read (naming.py).

Value classes (classic airline LRFMC study, see docs/segments.md): each segment's mean
l_z, r_z, f_z, m_z, c_z is read as a sign pattern (+ above average by more than
``margin``, - below by more than ``margin``); the first rule whose signs all hold names the
class. R is recency (days since the last purchase), so "-" on R means recently active.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from custseg.segment.settings import (
    DEFAULT_VALUE_CLASS_COLUMNS,
    DEFAULT_VALUE_CLASS_RULES,
    LRFMC,
    parse_sign,
)

PROFILE_COLUMNS = [
    "segment_id",
    "customers",
    "customer_share",
    "revenue",
    "revenue_share",
    "profile",
    "profile_z",
    "top_categories",
    "preferred_channel",
    "churn_risk_share",
    "avg_churn_risk",
    "avg_clv",
]
TOP_CATEGORIES_TYPE = "array<struct<category:string,share:double>>"


def _map(pairs: Sequence[tuple[str, Column]]) -> Column:
    if not pairs:
        return F.create_map().cast("map<string,double>")
    return F.create_map(*[x for name, expr in pairs for x in (F.lit(name), expr.cast("double"))])


def _top_categories(items: DataFrame | None, segments: DataFrame, top: int) -> DataFrame:
    """segment_id, revenue, top_categories (share of the segment's revenue, largest first)."""
    if items is None:
        return segments.sparkSession.createDataFrame(
            [], "segment_id int, revenue double, top_categories " + TOP_CATEGORIES_TYPE
        )
    joined = items.select("customer_key", F.col("net_revenue").cast("double").alias("net_revenue"), "category").join(
        segments.select("customer_key", "segment_id"), on="customer_key", how="inner"
    )
    by_cat = joined.groupBy("segment_id", "category").agg(F.sum("net_revenue").alias("cat_revenue"))
    seg_total = Window.partitionBy("segment_id")
    ranked = by_cat.select(
        "segment_id",
        "category",
        F.sum("cat_revenue").over(seg_total).alias("revenue"),
        (F.col("cat_revenue") / F.sum("cat_revenue").over(seg_total)).alias("share"),
        F.row_number()
        .over(seg_total.orderBy(F.col("cat_revenue").desc(), F.col("category").asc_nulls_last()))
        .alias("rank"),
    )
    ranked_top = ranked.where((F.col("rank") <= F.lit(top)) & F.col("category").isNotNull() & (F.col("share") > 0))
    tops = ranked_top.groupBy("segment_id").agg(
        F.array_sort(F.collect_list(F.struct("rank", "category", "share"))).alias("_top")
    )
    totals = ranked.groupBy("segment_id").agg(F.first("revenue").alias("revenue"))
    return totals.join(tops, on="segment_id", how="left").select(
        "segment_id",
        "revenue",
        F.transform(
            F.coalesce(F.col("_top"), F.array().cast("array<struct<rank:int,category:string,share:double>>")),
            lambda s: F.struct(s["category"].alias("category"), s["share"].alias("share")),
        )
        .cast(TOP_CATEGORIES_TYPE)
        .alias("top_categories"),
    )


def segment_profiles(
    features: DataFrame,
    items: DataFrame | None = None,
    profile_columns: Sequence[str] = (),
    churn_risk_threshold: float = 0.5,
    top_categories: int = 3,
) -> Callable[[DataFrame], DataFrame]:
    """Segments (customer_key, segment_id) -> one profile row per segment.

    ``features`` gives the profile columns (those it lacks are skipped), and optionally
    ``p_alive`` (churn risk = 1 - p_alive), ``clv`` and ``preferred_channel``; ``items``
    (customer_key, net_revenue, category), already limited to the profile window, gives
    revenue and top categories. Customers without features or purchases count in the size.
    """

    def transform(segments: DataFrame) -> DataFrame:
        cols = [c for c in profile_columns if c in features.columns]
        extras = [c for c in ("p_alive", "clv", "preferred_channel") if c in features.columns and c not in cols]
        base = segments.select("customer_key", "segment_id").join(
            features.select("customer_key", *cols, *extras), on="customer_key", how="left"
        )
        churn = (
            (F.lit(1.0) - F.col("p_alive").cast("double"))
            if "p_alive" in features.columns
            else F.lit(None).cast("double")
        )
        clv = F.col("clv").cast("double") if "clv" in features.columns else F.lit(None).cast("double")
        channel = F.col("preferred_channel") if "preferred_channel" in features.columns else F.lit(None).cast("string")
        seg = base.groupBy("segment_id").agg(
            F.count(F.lit(1)).alias("customers"),
            *[F.avg(F.col(c).cast("double")).alias(f"_m_{c}") for c in cols],
            F.avg(F.when(churn.isNotNull(), (churn > F.lit(churn_risk_threshold)).cast("double"))).alias(
                "churn_risk_share"
            ),
            F.avg(churn).alias("avg_churn_risk"),
            F.avg(clv).alias("avg_clv"),
            F.mode(channel, deterministic=True).alias("preferred_channel"),
        )
        pop = base.agg(
            F.count(F.lit(1)).alias("_n_all"),
            *[F.avg(F.col(c).cast("double")).alias(f"_pm_{c}") for c in cols],
            *[F.stddev_pop(F.col(c).cast("double")).alias(f"_ps_{c}") for c in cols],
        )
        z = {
            c: F.when(F.col(f"_ps_{c}") > 0, (F.col(f"_m_{c}") - F.col(f"_pm_{c}")) / F.col(f"_ps_{c}")).otherwise(
                F.when(F.col(f"_m_{c}").isNotNull(), F.lit(0.0))
            )
            for c in cols
        }
        revenue = _top_categories(items, segments, top_categories)
        total = revenue.agg(F.sum("revenue").alias("_total_revenue"))
        joined = (
            seg.crossJoin(F.broadcast(pop)).crossJoin(F.broadcast(total)).join(revenue, on="segment_id", how="left")
        )
        rev = F.coalesce(F.col("revenue"), F.lit(0.0))
        return joined.select(
            F.col("segment_id").cast("int").alias("segment_id"),
            F.col("customers").cast("long").alias("customers"),
            (F.col("customers") / F.col("_n_all")).cast("double").alias("customer_share"),
            rev.cast("double").alias("revenue"),
            (rev / F.when(F.col("_total_revenue") != 0, F.col("_total_revenue"))).cast("double").alias("revenue_share"),
            _map([(c, F.col(f"_m_{c}")) for c in cols]).alias("profile"),
            _map([(c, z[c]) for c in cols]).alias("profile_z"),
            F.coalesce(F.col("top_categories"), F.array().cast(TOP_CATEGORIES_TYPE)).alias("top_categories"),
            F.col("preferred_channel").cast("string").alias("preferred_channel"),
            F.col("churn_risk_share").cast("double").alias("churn_risk_share"),
            F.col("avg_churn_risk").cast("double").alias("avg_churn_risk"),
            F.col("avg_clv").cast("double").alias("avg_clv"),
        )

    return transform


def parse_value_class_rules(rules: Sequence[Mapping] = DEFAULT_VALUE_CLASS_RULES) -> list[tuple[str, dict[str, int]]]:
    """[(name, {axis: +1/-1})] in order."""
    return [(str(r["name"]), {axis: parse_sign(sign) for axis, sign in (r.get("when") or {}).items()}) for r in rules]


def value_class_of(
    centre: Mapping[str, float | None],
    rules: Sequence[Mapping] = DEFAULT_VALUE_CLASS_RULES,
    margin: float = 0.0,
) -> str | None:
    """The value class of one centre given as {"L": z, "R": z, "F": z, "M": z, "C": z}."""
    if any(centre.get(a) is None for a in LRFMC):
        return None
    for name, signs in parse_value_class_rules(rules):
        if all((centre[a] > margin) if s > 0 else (centre[a] < -margin) for a, s in signs.items()):
            return name
    return None


def value_class_expr(
    lookup: Callable[[str], Column],
    rules: Sequence[Mapping] = DEFAULT_VALUE_CLASS_RULES,
    margin: float = 0.0,
) -> Column:
    """The same rules as ``value_class_of`` as a Spark expression; ``lookup(axis)`` gives
    the z column of L, R, F, M or C."""
    expr = None
    for name, signs in parse_value_class_rules(rules):
        cond = F.lit(True)
        for axis, s in signs.items():
            v = lookup(axis)
            cond = cond & ((v > F.lit(margin)) if s > 0 else (v < F.lit(-margin)))
        expr = F.when(cond, F.lit(name)) if expr is None else expr.when(cond, F.lit(name))
    known = F.lit(True)
    for axis in LRFMC:
        known = known & lookup(axis).isNotNull()
    return F.when(known, expr if expr is not None else F.lit(None).cast("string"))


def with_value_class(
    rules: Sequence[Mapping] = DEFAULT_VALUE_CLASS_RULES,
    margin: float = 0.0,
    columns: Mapping[str, str] = DEFAULT_VALUE_CLASS_COLUMNS,
) -> Callable[[DataFrame], DataFrame]:
    """Profiles -> profiles + ``value_class`` from the segment means of the LRFMC z columns
    held in ``profile`` (null when a profile lacks one of them)."""

    def transform(profiles: DataFrame) -> DataFrame:
        expr = value_class_expr(lambda axis: F.col("profile")[columns[axis]], rules, margin)
        return profiles.select(*profiles.columns, expr.cast("string").alias("value_class"))

    return transform


__all__ = [
    "PROFILE_COLUMNS",
    "TOP_CATEGORIES_TYPE",
    "parse_value_class_rules",
    "segment_profiles",
    "value_class_expr",
    "value_class_of",
    "with_value_class",
]
