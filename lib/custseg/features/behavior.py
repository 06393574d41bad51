"""Behaviour features: one per-customer aggregate per silver table, joined by the assembler.

Every aggregate covers the window (snapshot - window_days, snapshot] unless noted, keeps
only rows with a customer_key, and never reads past the snapshot. A customer absent from
an aggregate gets 0 for counts and null for averages and ratios (see ``EMPTY_DEFAULTS``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

TOP_CATEGORY_TYPE = "array<struct<category:string,share:double>>"

ITEM_COLUMNS = ["customer_key", "distinct_categories", "preferred_category", "top_categories", "discount_coef"]
EVENT_COLUMNS = ["customer_key", "sessions", "page_views", "product_views", "cart_adds", "avg_session_seconds"]
FEEDBACK_COLUMNS = ["customer_key", "avg_rating", "latest_nps_band", "complaints"]
SOCIAL_COLUMNS = ["customer_key", "social_influence"]

# Value of a feature for a customer without rows in its source table (or without the table).
EMPTY_DEFAULTS: dict[str, tuple[object, str]] = {
    "distinct_categories": (0, "int"),
    "preferred_category": (None, "string"),
    "top_categories": (None, TOP_CATEGORY_TYPE),
    "discount_coef": (None, "double"),
    "sessions": (0, "long"),
    "page_views": (0, "long"),
    "product_views": (0, "long"),
    "cart_adds": (0, "long"),
    "avg_session_seconds": (None, "double"),
    "avg_rating": (None, "double"),
    "latest_nps_band": (None, "string"),
    "complaints": (0, "long"),
    "social_influence": (0.0, "double"),
}


def _window(as_of: date, window_days: int) -> tuple[datetime, datetime]:
    """[start, end) timestamps of the window: days after as_of - window_days up to the end of as_of."""
    start = datetime.combine(as_of - timedelta(days=window_days - 1), time.min)
    end = datetime.combine(as_of + timedelta(days=1), time.min)
    return start, end


def _in_window(ts: str, as_of: date, window_days: int) -> Column:
    start, end = _window(as_of, window_days)
    return (F.col(ts) >= F.lit(start)) & (F.col(ts) < F.lit(end))


def item_features(as_of: date, window_days: int = 365, top_k: int = 3) -> Callable[[DataFrame], DataFrame]:
    """silver.order_items -> categories bought and the discount coefficient C, per customer.

    Lines of completed orders in the window. Category shares are shares of units; ties
    go to the alphabetically first category. discount_coef = sum(net_revenue) /
    sum(qty x list_price) over lines with a known positive list price: the list-value
    weighted mean of price paid / list price (1 = full price, 0.7 = 30% below list).
    """

    def transform(items: DataFrame) -> DataFrame:
        lines = items.where(
            F.col("customer_key").isNotNull()
            & (F.col("status") == "completed")
            & _in_window("order_ts", as_of, window_days)
        )
        priced = F.col("list_price") > 0
        per_category = lines.groupBy("customer_key", "category").agg(
            F.sum("qty").alias("units"),
            F.sum(F.when(priced, F.col("net_revenue"))).alias("paid"),
            F.sum(F.when(priced, F.col("qty") * F.col("list_price"))).alias("list_value"),
        )
        named = F.col("category").isNotNull() & (F.col("units") > 0)
        ranked = per_category.groupBy("customer_key").agg(
            F.count(F.when(named, F.lit(1))).alias("distinct_categories"),
            F.sum(F.when(named, F.col("units"))).alias("named_units"),
            F.sort_array(
                F.collect_list(F.when(named, F.struct((-F.col("units")).alias("neg_units"), "category")))
            ).alias("_ranked"),
            F.sum("paid").alias("paid"),
            F.sum("list_value").alias("list_value"),
        )
        top = F.transform(
            F.slice("_ranked", 1, top_k),
            lambda e: F.struct(
                e["category"].alias("category"), (-e["neg_units"] / F.col("named_units")).cast("double").alias("share")
            ),
        )
        return ranked.select(
            "customer_key",
            F.col("distinct_categories").cast("int").alias("distinct_categories"),
            F.try_element_at("_ranked", F.lit(1))["category"].alias("preferred_category"),
            F.when(F.size("_ranked") > 0, top).cast(TOP_CATEGORY_TYPE).alias("top_categories"),
            F.when(F.col("list_value") > 0, F.col("paid").cast("double") / F.col("list_value").cast("double"))
            .cast("double")
            .alias("discount_coef"),
        )

    return transform


def event_features(
    as_of: date,
    window_days: int = 365,
    page_view_events: Sequence[str] = ("page_view", "product_view"),
    product_view_events: Sequence[str] = ("product_view",),
    cart_add_events: Sequence[str] = ("add_to_cart",),
) -> Callable[[DataFrame], DataFrame]:
    """silver.events -> sessions, page views, product views, cart adds, average session seconds.

    A session's length is the sum of its events' duration_ms; events without a session_id
    count as a session of their own.
    """

    def transform(events: DataFrame) -> DataFrame:
        rows = events.where(F.col("customer_key").isNotNull() & _in_window("ts", as_of, window_days))
        etype = F.lower(F.col("event_type"))
        per_session = rows.groupBy("customer_key", F.coalesce("session_id", "event_id").alias("session")).agg(
            F.sum(F.coalesce(F.col("duration_ms"), F.lit(0))).alias("ms"),
            F.count(F.when(etype.isin(*page_view_events), F.lit(1))).alias("page_views"),
            F.count(F.when(etype.isin(*product_view_events), F.lit(1))).alias("product_views"),
            F.count(F.when(etype.isin(*cart_add_events), F.lit(1))).alias("cart_adds"),
        )
        return (
            per_session.groupBy("customer_key")
            .agg(
                F.count(F.lit(1)).cast("long").alias("sessions"),
                F.sum("page_views").cast("long").alias("page_views"),
                F.sum("product_views").cast("long").alias("product_views"),
                F.sum("cart_adds").cast("long").alias("cart_adds"),
                (F.avg("ms") / F.lit(1000.0)).cast("double").alias("avg_session_seconds"),
            )
            .select(*EVENT_COLUMNS)
        )

    return transform


def feedback_features(as_of: date, window_days: int = 365) -> Callable[[DataFrame], DataFrame]:
    """silver.feedback -> average rating and complaints in the window, latest NPS band ever."""

    def transform(feedback: DataFrame) -> DataFrame:
        _, end = _window(as_of, window_days)
        rows = feedback.where(F.col("customer_key").isNotNull() & (F.col("ts") < F.lit(end)))
        recent = _in_window("ts", as_of, window_days)
        return (
            rows.groupBy("customer_key")
            .agg(
                F.avg(F.when(recent, F.col("rating"))).alias("avg_rating"),
                F.max_by(F.col("nps_band"), F.when(F.col("nps_band").isNotNull(), F.col("ts"))).alias(
                    "latest_nps_band"
                ),
                F.count(F.when(recent & F.col("is_complaint"), F.lit(1))).alias("complaints"),
            )
            .select(
                "customer_key",
                F.col("avg_rating").cast("double").alias("avg_rating"),
                "latest_nps_band",
                F.col("complaints").cast("long").alias("complaints"),
            )
        )

    return transform


def social_features(
    as_of: date, weights: Sequence[tuple[str, float]] = (("followers", 1.0), ("shares", 1.0), ("mentions", 1.0))
) -> Callable[[DataFrame], DataFrame]:
    """silver.social -> social_influence = sum over measures of weight x log10(1 + total).

    The latest observation (up to the snapshot) of each of the customer's handles counts;
    totals add up over platforms. log10 keeps a celebrity from dwarfing everyone else.
    """
    measures = [m for m, _ in weights]

    def transform(social: DataFrame) -> DataFrame:
        _, end = _window(as_of, 1)
        observed = F.coalesce(F.col("observed_at"), F.lit(datetime(1970, 1, 1)))
        latest = (
            social.where(F.col("customer_key").isNotNull() & (observed < F.lit(end)))
            .groupBy("customer_key", "platform", "handle_key")
            .agg(F.max_by(F.struct(*[F.col(m).cast("double").alias(m) for m in measures]), observed).alias("last"))
        )
        totals = latest.groupBy("customer_key").agg(*[F.sum(F.col("last")[m]).alias(m) for m in measures])
        score = sum(
            (
                F.lit(w) * F.log10(F.lit(1.0) + F.greatest(F.coalesce(F.col(m), F.lit(0.0)), F.lit(0.0)))
                for m, w in weights
            ),
            F.lit(0.0),
        )
        return totals.select("customer_key", score.cast("double").alias("social_influence"))

    return transform


def order_behavior_columns() -> list[Column]:
    """Behaviour from ``orders.customer_orders`` (+ product_views): ratios over window purchases.

    Null when the customer made no purchase in the window (no basket to describe).
    """
    n = F.col("frequency")
    bought = n > 0

    def share(col: str) -> Column:
        return F.when(bought, F.col(col) / n).cast("double")

    resolved = F.col("frequency") + F.col("returned_orders")
    return [
        F.when(bought, F.col("preferred_channel")).alias("preferred_channel"),
        F.when(F.col("product_views") > 0, F.col("online_orders") / F.col("product_views"))
        .cast("double")
        .alias("view_to_purchase"),
        share("weekend_orders").alias("weekend_share"),
        share("weekday_lunch_orders").alias("weekday_lunch_share"),
        share("weekday_evening_orders").alias("weekday_evening_share"),
        F.when(bought, F.col("units") / n).cast("double").alias("avg_basket_size"),
        F.when(bought, F.col("monetary").cast("double") / n).cast("double").alias("avg_basket_value"),
        F.when(resolved > 0, F.col("returned_orders") / resolved).cast("double").alias("return_rate"),
        share("discount_orders").alias("discount_order_share"),
    ]
