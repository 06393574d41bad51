"""Order lines -> baskets (one row per order, its distinct items at a chosen level).

A basket is an order whose status is one of ``statuses`` (``completed`` by default:
returned and cancelled orders are not what people chose to buy together). Lines with
no item at the level or a non-positive quantity are dropped, and an item appears
once per basket however many lines or units carry it. Guest orders (null
``customer_key``) are baskets too: they count for the rules, not for cross-sell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from custseg.basket.settings import LEVELS

BASKET_COLUMNS = ["order_id", "customer_key", "order_date", "items"]
PURCHASE_COLUMNS = ["customer_key", "item"]


def with_item(level: str, products: DataFrame | None = None) -> Callable[[DataFrame], DataFrame]:
    """Adds ``item``: the line's sku, category or subcategory.

    silver.order_items carries all three; a frame without the level column (older
    silver, events) gets it from ``products`` by sku.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}; got {level!r}")

    def transform(lines: DataFrame) -> DataFrame:
        if level in lines.columns:
            return lines.withColumn("item", F.col(level))
        if products is None:
            raise ValueError(f"lines have no {level!r} column and no products table was given to map sku -> {level}")
        lookup = products.select(F.col("sku").alias("_sku"), F.col(level).alias("item"))
        return lines.join(F.broadcast(lookup), F.col("sku") == F.col("_sku"), how="left").drop("_sku")

    return transform


def _in_window(start: date | None, end: date | None):
    cond = F.lit(True)
    if start is not None:
        cond = cond & (F.col("order_date") > F.lit(start))
    if end is not None:
        cond = cond & (F.col("order_date") <= F.lit(end))
    return cond


def _purchased_lines(
    level: str, statuses: Sequence[str], start: date | None, end: date | None, products: DataFrame | None
) -> Callable[[DataFrame], DataFrame]:
    def transform(lines: DataFrame) -> DataFrame:
        kept = lines.where(
            F.col("status").isin(list(statuses)) & (F.coalesce(F.col("qty"), F.lit(1)) > 0) & _in_window(start, end)
        )
        return kept.transform(with_item(level, products)).where(F.col("item").isNotNull())

    return transform


def baskets(
    level: str = "sku",
    statuses: Sequence[str] = ("completed",),
    start: date | None = None,
    end: date | None = None,
    products: DataFrame | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """silver.order_items -> order_id, customer_key, order_date, items (sorted, distinct).

    ``start`` is exclusive and ``end`` inclusive, on ``order_date``: (start, end].
    """

    def transform(lines: DataFrame) -> DataFrame:
        return (
            lines.transform(_purchased_lines(level, statuses, start, end, products))
            .groupBy("order_id")
            .agg(
                F.first("customer_key", ignorenulls=True).alias("customer_key"),
                F.min("order_date").alias("order_date"),
                F.array_sort(F.collect_set("item")).alias("items"),
            )
            .select(*BASKET_COLUMNS)
        )

    return transform


def customer_purchases(
    level: str = "sku",
    statuses: Sequence[str] = ("completed",),
    start: date | None = None,
    end: date | None = None,
    products: DataFrame | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """silver.order_items -> distinct (customer_key, item) bought in (start, end]; guests left out."""

    def transform(lines: DataFrame) -> DataFrame:
        return (
            lines.where(F.col("customer_key").isNotNull())
            .transform(_purchased_lines(level, statuses, start, end, products))
            .select(*PURCHASE_COLUMNS)
            .distinct()
        )

    return transform


def first_purchases(
    level: str = "sku",
    statuses: Sequence[str] = ("completed",),
    start: date | None = None,
    end: date | None = None,
    products: DataFrame | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """silver.order_items -> customer_key, item, first_date (first order_date in (start, end]); guests left out."""

    def transform(lines: DataFrame) -> DataFrame:
        return (
            lines.where(F.col("customer_key").isNotNull())
            .transform(_purchased_lines(level, statuses, start, end, products))
            .groupBy("customer_key", "item")
            .agg(F.min("order_date").alias("first_date"))
        )

    return transform


def item_prices(
    level: str = "sku",
    statuses: Sequence[str] = ("completed",),
    start: date | None = None,
    end: date | None = None,
    products: DataFrame | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """silver.order_items -> item, unit_price: net revenue per unit sold, for expected-margin scores."""

    def transform(lines: DataFrame) -> DataFrame:
        sold = lines.transform(_purchased_lines(level, statuses, start, end, products))
        return (
            sold.groupBy("item")
            .agg(
                F.sum(F.col("net_revenue").cast("double")).alias("_revenue"),
                F.sum(F.col("qty").cast("double")).alias("_units"),
            )
            .where(F.col("_units") > 0)
            .select("item", (F.col("_revenue") / F.col("_units")).alias("unit_price"))
        )

    return transform
