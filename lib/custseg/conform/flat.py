"""bronze.flat_transactions -> the shapes of bronze.orders, bronze.crm_customers and bronze.products.

Pure transforms: conform unions their output with the real bronze tables, so a line-item
file (one row per item, e.g. the UCI Online Retail CSV) flows through the same cleaning,
identity resolution and features as the built-in sources.

- Ids exported as floats lose the configured suffix (``17850.0`` -> ``17850``).
- A file without invoice ids (``columns.order_id: ""``) has one order per customer and day:
  ``<customer_id>-<yyyyMMdd>`` (CDNOW: customer, date, number of CDs, dollar value).
- A file without SKUs (``columns.sku: ""``) gives orders whose lines have no sku: features,
  CLV, segments and marketing use them; the basket and recommendation stages skip.
- A line total (``columns.amount``, with ``unit_price: ""``) makes the line one unit at that
  price (a negative quantity, where there is one, still marks a return), so revenue is the
  file's amount to the cent.
- An invoice is one order, per batch (a later batch's copy replaces it, as for orders).
  Its status: ``cancel_status`` when its id starts with ``cancel_prefix``; else
  ``negative_qty_status`` when any line has a negative quantity; else ``completed``.
  Quantities are made positive: the status says what happened, as in bronze.orders.
- A row without a customer id is a guest order: kept for baskets, customer_key stays null.
- The only customer attributes known are the id and the first purchase (signup_date).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from custseg.sources.catalog import CRM_CUSTOMERS, ORDER_ITEM, ORDERS, PRODUCTS
from custseg.sources.flat import FlatSettings

META = ["_source_file", "_batch_id", "_ingested_at", "_batch_date"]
TS_OUT = "yyyy-MM-dd HH:mm:ss"  # a format custseg.sources.base.parse_ts reads


def clean_id(col: str, suffix: str) -> Column:
    """Trimmed id, empty -> null, without a trailing ``suffix`` (ids exported as floats)."""
    value = F.nullif(F.trim(F.col(col)), F.lit(""))
    return F.regexp_replace(value, re.escape(suffix) + "$", "") if suffix else value


def _lines(s: FlatSettings) -> Callable[[DataFrame], DataFrame]:
    has = {c for c, h in s.columns.items() if h}

    def transform(flat: DataFrame) -> DataFrame:
        ts = F.try_to_timestamp(F.trim("order_ts"), F.lit(s.ts_format))
        customer = clean_id("customer_id", s.id_suffix)
        if "order_id" in has:
            order_id = clean_id("order_id", s.id_suffix)
        else:  # one order per customer and day
            order_id = F.concat(customer, F.lit("-"), F.date_format(ts, "yyyyMMdd"))
        qty = F.col("qty").try_cast("double").cast("long")
        if "unit_price" in has:
            price = F.trim("unit_price")
        else:  # a line total: one unit at that price (the sign of a quantity still marks a return)
            price = F.trim("amount")
            qty = F.when(qty < 0, F.lit(-1)).otherwise(F.lit(1)).cast("long") if "qty" in has else F.lit(1).cast("long")
        return flat.select(
            order_id.alias("order_id"),
            customer.alias("customer_id"),
            ts.alias("ts"),
            F.nullif(F.trim("sku"), F.lit("")).alias("sku"),
            qty.alias("qty"),
            price.alias("unit_price"),
            *META,
        )

    return transform


def flat_orders(s: FlatSettings) -> Callable[[DataFrame], DataFrame]:
    """One row per (invoice, batch) in the bronze.orders shape, lines nested in ``items``."""

    def transform(flat: DataFrame) -> DataFrame:
        is_cancel = F.col("order_id").startswith(s.cancel_prefix) if s.cancel_prefix else F.lit(False)
        item = F.struct(
            F.col("sku").alias("sku"),
            F.abs("qty").cast("string").alias("qty"),
            F.col("unit_price").alias("unit_price"),
            F.lit("0").alias("discount"),
        ).cast(ORDER_ITEM)
        orders = (
            flat.transform(_lines(s))
            .groupBy("order_id", "_batch_date")
            .agg(
                F.max("customer_id").alias("customer_id"),
                F.min("ts").alias("ts"),
                F.min("qty").alias("min_qty"),
                F.array_sort(F.collect_list(item)).alias("items"),
                F.max("_source_file").alias("_source_file"),
                F.max("_batch_id").alias("_batch_id"),
                F.max("_ingested_at").alias("_ingested_at"),
            )
        )
        status = (
            F.when(is_cancel, F.lit(s.cancel_status))
            .when(F.col("min_qty") < 0, F.lit(s.negative_qty_status))
            .otherwise(F.lit("completed"))
        )
        return orders.select(
            "order_id",
            "customer_id",
            F.lit(None).cast("string").alias("loyalty_phone"),
            F.date_format("ts", TS_OUT).alias("order_ts"),
            F.lit(s.channel).alias("channel"),
            F.lit(None).cast("string").alias("store_id"),
            status.alias("status"),
            "items",
            *META,
        ).select(*_typed(ORDERS.schema.fields))

    return transform


def flat_customers(s: FlatSettings) -> Callable[[DataFrame], DataFrame]:
    """One row per customer id in the bronze.crm_customers shape: id and first purchase only."""

    def transform(flat: DataFrame) -> DataFrame:
        known = {
            "customer_id": F.col("customer_id"),
            "signup_date": F.date_format("first_ts", "yyyy-MM-dd"),
        }
        return (
            flat.transform(_lines(s))
            .where(F.col("customer_id").isNotNull())
            .groupBy("customer_id")
            .agg(
                F.min("ts").alias("first_ts"),
                F.max("_batch_date").alias("_batch_date"),
                F.max("_source_file").alias("_source_file"),
                F.max("_batch_id").alias("_batch_id"),
                F.max("_ingested_at").alias("_ingested_at"),
            )
            .select(
                *[known.get(f.name, F.lit(None)).cast("string").alias(f.name) for f in CRM_CUSTOMERS.schema.fields],
                *META,
            )
        )

    return transform


def flat_products(s: FlatSettings) -> Callable[[DataFrame], DataFrame]:
    """One row per sku in the bronze.products shape: the latest description as name,
    ``default_category`` (or null) as category; nothing else is known."""

    def transform(flat: DataFrame) -> DataFrame:
        latest = Window.partitionBy("sku").orderBy(F.col("_batch_date").desc(), F.col("description").desc_nulls_last())
        named = (
            flat.select(F.trim("sku").alias("sku"), F.trim("description").alias("description"), *META)
            .where(F.col("sku").isNotNull() & (F.col("sku") != ""))
            .withColumn("_r", F.row_number().over(latest))
            .where(F.col("_r") == 1)
        )
        known = {
            "sku": F.col("sku"),
            "name": F.col("description"),
            "category": F.lit(s.default_category or None),
        }
        return named.select(
            *[known.get(f.name, F.lit(None)).cast("string").alias(f.name) for f in PRODUCTS.schema.fields],
            *META,
        )

    return transform


def _typed(fields) -> list[Column]:
    return [*(F.col(f.name).cast(f.dataType).alias(f.name) for f in fields), *META]
