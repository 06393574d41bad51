"""Stage ``conform``: bronze -> silver customers, products, orders, order_items."""

from __future__ import annotations

from pyspark.sql import functions as F

from custseg.conform.customers import conform_customers
from custseg.conform.orders import latest_orders, order_items, orders_from_items, resolve_customer
from custseg.pii import resolve_salt
from custseg.sources.base import parse_ts
from custseg.stages.context import StageContext


def run(ctx: StageContext) -> None:
    t, rec = ctx.tables, ctx.recorder
    salt = resolve_salt(ctx.conf, allow_demo=ctx.demo)
    cc = ctx.conf.pii.default_country_code
    upto = F.col("_batch_date") <= F.lit(ctx.as_of)  # a rerun of an old date ignores later batches

    with rec.stage("silver.customers"):
        customers = t.read("bronze.crm_customers").where(upto).transform(conform_customers(salt, ctx.as_of, cc))
        t.overwrite(customers, "silver.customers")
        customers = t.read("silver.customers")

    if t.exists("bronze.products"):
        with rec.stage("silver.products"):
            products = (
                t.read("bronze.products")
                .where(upto)
                .withColumn("_r", F.row_number().over(_latest("sku")))
                .where(F.col("_r") == 1)
                .select(
                    F.trim("sku").alias("sku"),
                    F.trim("name").alias("name"),
                    F.lower(F.trim("category")).alias("category"),
                    F.lower(F.trim("subcategory")).alias("subcategory"),
                    F.trim("brand").alias("brand"),
                    F.col("list_price").try_cast("decimal(12,2)").alias("list_price"),
                )
            )
            t.overwrite(products, "silver.products")

    with rec.stage("silver.order_items"):
        orders = (
            t.read("bronze.orders")
            .where(upto)
            .withColumn("order_id", F.trim("order_id"))
            .transform(latest_orders)
            .transform(resolve_customer(customers, salt, cc))
            .where(parse_ts("order_ts") <= F.lit(ctx.as_of) + F.expr("INTERVAL 1 DAY"))
        )
        items = order_items(orders)
        t.overwrite(items, "silver.order_items", partition_by=None)
    with rec.stage("silver.orders"):
        t.overwrite(orders_from_items(orders, t.read("silver.order_items")), "silver.orders")


def _latest(key: str):
    from pyspark.sql.window import Window

    return Window.partitionBy(F.trim(key)).orderBy(F.col("_batch_date").desc(), F.col("_source_file").desc())
