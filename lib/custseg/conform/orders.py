"""bronze.orders -> silver.orders and silver.order_items.

Net line revenue = qty x unit_price x (1 - discount), rounded to cents. What counts as a
purchase (``conform.zero_price_lines``): by default a completed line with unit price 0 (a
free gift, a sample, a stock adjustment) is kept with status ``free``, and a completed order
with no paid line gets status ``free`` too: every stage counts only ``completed`` orders and
lines as purchases (frequency, recency, monetary, CLV, baskets), so a customer whose only
line was free is not a buyer. ``purchases`` keeps them ``completed`` (revenue 0). An order is
resolved to a customer through ``silver.identity_map``: by its customer_id, else by the
loyalty phone a POS ticket carries; guest orders keep a null customer_key (they still count for baskets).
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from custseg.conform.identity import (
    CUSTOMER_ID,
    PHONE,
    customer_id_key,
    phone_key,
    with_customer_key,
)
from custseg.pii import PiiKey
from custseg.sources.base import LINE_MONEY, MONEY, ORDER_MONEY, QTY, parse_ts

ORDER_COLUMNS = [
    "order_id",
    "customer_key",
    "order_ts",
    "order_date",
    "channel",
    "store_id",
    "status",
    "n_lines",
    "n_units",
    "gross_revenue",
    "discount_amount",
    "net_revenue",
    "_batch_date",
]
ITEM_COLUMNS = [
    "order_id",
    "line_no",
    "customer_key",
    "order_ts",
    "order_date",
    "channel",
    "status",
    "sku",
    "category",
    "subcategory",
    "qty",
    "unit_price",
    "list_price",
    "discount",
    "gross_revenue",
    "net_revenue",
]


def latest_orders(bronze: DataFrame) -> DataFrame:
    """One row per order_id: the copy from the latest batch wins (a re-sent order replaces the old)."""
    w = Window.partitionBy("order_id").orderBy(F.col("_batch_date").desc(), F.col("_source_file").desc())
    return bronze.withColumn("_r", F.row_number().over(w)).where(F.col("_r") == 1).drop("_r")


def resolve_customer(
    identity_map: DataFrame, salt: PiiKey | str, country_code: str = "44"
) -> Callable[[DataFrame], DataFrame]:
    """Adds ``customer_key`` from ``silver.identity_map``: by customer_id, else by the loyalty phone.

    A phone shared by two customers is ambiguous in the identity graph and resolves to neither.
    """
    return with_customer_key(
        identity_map,
        (CUSTOMER_ID, customer_id_key("customer_id", salt)),
        (PHONE, phone_key("loyalty_phone", salt, country_code)),
    )


FREE = "free"  # status of a zero-price line, and of an order without a paid line
ZERO_PRICE_CHOICES = ("not_purchases", "purchases")


def order_items(orders: DataFrame, zero_price_lines: str = "not_purchases") -> DataFrame:
    """Exploded, typed order lines; completed zero-price lines get status ``free`` unless
    ``zero_price_lines`` is ``purchases``."""
    if zero_price_lines not in ZERO_PRICE_CHOICES:
        raise ValueError(f"zero_price_lines must be one of {', '.join(ZERO_PRICE_CHOICES)}; got {zero_price_lines!r}")
    lines = orders.select(
        F.trim("order_id").alias("order_id"),
        "customer_key",
        parse_ts("order_ts").alias("order_ts"),
        F.lower(F.trim("channel")).alias("channel"),
        F.lower(F.trim("status")).alias("status"),
        F.posexplode("items").alias("pos", "item"),
    )
    qty = F.col("item.qty").try_cast(QTY)
    price = F.col("item.unit_price").try_cast(MONEY)
    status = F.col("status")
    if zero_price_lines == "not_purchases":
        status = F.when((status == "completed") & (price == 0), F.lit(FREE)).otherwise(status)
    discount = F.coalesce(F.col("item.discount").try_cast("double"), F.lit(0.0))
    gross = (qty * price).cast(LINE_MONEY)
    net = F.round(qty * price.cast("double") * (F.lit(1.0) - discount), 2).cast(LINE_MONEY)
    return lines.select(  # catalogue columns (category, list_price) are joined by the stage
        "order_id",
        (F.col("pos") + 1).alias("line_no"),
        "customer_key",
        "order_ts",
        F.to_date("order_ts").alias("order_date"),
        "channel",
        status.alias("status"),
        F.trim("item.sku").alias("sku"),
        qty.alias("qty"),
        price.alias("unit_price"),
        F.round(discount, 4).alias("discount"),
        gross.alias("gross_revenue"),
        net.alias("net_revenue"),
    )


def orders_from_items(orders: DataFrame, items: DataFrame) -> DataFrame:
    """Order headers with totals summed from their lines; a completed order whose lines are
    all ``free`` is ``free``."""
    totals = items.groupBy("order_id").agg(
        F.bool_and(F.col("status") == FREE).alias("_all_free"),
        F.count("*").alias("n_lines"),
        F.sum("qty").cast("long").alias("n_units"),
        F.sum("gross_revenue").cast(ORDER_MONEY).alias("gross_revenue"),
        F.sum("net_revenue").cast(ORDER_MONEY).alias("net_revenue"),
    )
    header = orders.select(
        F.trim("order_id").alias("order_id"),
        "customer_key",
        parse_ts("order_ts").alias("order_ts"),
        F.lower(F.trim("channel")).alias("channel"),
        F.nullif(F.trim("store_id"), F.lit("")).alias("store_id"),
        F.lower(F.trim("status")).alias("status"),
        "_batch_date",
    )
    all_free = (F.col("status") == "completed") & F.col("_all_free")
    return (
        header.join(totals, on="order_id", how="inner")
        .withColumn("status", F.when(all_free, F.lit(FREE)).otherwise(F.col("status")))
        .withColumn("order_date", F.to_date("order_ts"))
        .withColumn("discount_amount", (F.col("gross_revenue") - F.col("net_revenue")).cast(ORDER_MONEY))
        .select(*ORDER_COLUMNS)
    )
