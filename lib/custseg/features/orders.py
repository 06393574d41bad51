"""One pass over silver.orders: every per-customer order measure the feature families need.

RFM, churn signals, order behaviour and the CLV summary all derive from these columns,
so silver.orders is grouped by customer once instead of once per family. A purchase is
an order with status ``completed`` dated on or before the snapshot; "in the window"
means dated in (snapshot - window_days, snapshot]. Times of day and weekdays are read in
the session time zone (UTC in the jobs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

ORDER_AGG_COLUMNS = [
    "customer_key",
    "first_purchase",
    "last_purchase",
    "frequency",
    "monetary",
    "units",
    "returned_orders",
    "discount_orders",
    "weekend_orders",
    "weekday_lunch_orders",
    "weekday_evening_orders",
    "online_orders",
    "preferred_channel",
    "orders_last_90",
    "orders_prev_90",
    "purchases",
]

PURCHASE_TYPE = "array<struct<d:date,v:double>>"


def _count(cond: Column) -> Column:
    return F.count(F.when(cond, F.lit(1)))


def customer_orders(
    as_of: date,
    window_days: int = 365,
    churn_window_days: int = 90,
    lunch_hours: tuple[int, int] = (11, 14),
    online_channels: Sequence[str] = ("web", "app"),
    evening_hours: tuple[int, int] = (18, 23),
) -> Callable[[DataFrame], DataFrame]:
    """silver.orders -> one row per customer_key (guest orders, with a null key, are left out).

    Day-parts are [start, end) hours on Monday-Friday: ``lunch_hours`` and ``evening_hours``
    (the synthetic generator's habits are 11:30-14:00 and 18:00-22:30, custseg.datagen.clock).

    ``purchases`` holds every purchase up to the snapshot as (day, net value): the purchase
    days give the median gap between orders and the CLV summary without a second scan.
    """
    window_start = as_of - timedelta(days=window_days)
    last_start = as_of - timedelta(days=churn_window_days)
    prev_start = as_of - timedelta(days=2 * churn_window_days)

    def transform(orders: DataFrame) -> DataFrame:
        day = F.to_date("order_ts")
        upto = day <= F.lit(as_of)
        purchase = (F.col("status") == "completed") & upto
        in_window = day > F.lit(window_start)
        bought = purchase & in_window
        returned = (F.col("status") == "returned") & upto & in_window
        dow = F.dayofweek("order_ts")  # 1 = Sunday, 7 = Saturday
        weekend = dow.isin(1, 7)
        hour = F.hour("order_ts")
        lunch = ~weekend & (hour >= lunch_hours[0]) & (hour < lunch_hours[1])
        evening = ~weekend & (hour >= evening_hours[0]) & (hour < evening_hours[1])
        has_discount = F.coalesce(F.col("discount_amount"), F.lit(0)) > 0
        return (
            orders.where(F.col("customer_key").isNotNull())
            .groupBy("customer_key")
            .agg(
                F.min(F.when(purchase, day)).alias("first_purchase"),
                F.max(F.when(purchase, day)).alias("last_purchase"),
                _count(bought).alias("frequency"),
                F.sum(F.when(bought, F.col("net_revenue"))).alias("monetary"),
                F.sum(F.when(bought, F.col("n_units"))).alias("units"),
                _count(returned).alias("returned_orders"),
                _count(bought & has_discount).alias("discount_orders"),
                _count(bought & weekend).alias("weekend_orders"),
                _count(bought & lunch).alias("weekday_lunch_orders"),
                _count(bought & evening).alias("weekday_evening_orders"),
                _count(bought & F.col("channel").isin(*online_channels)).alias("online_orders"),
                F.mode(F.when(bought, F.col("channel")), deterministic=True).alias("preferred_channel"),
                _count(purchase & (day > F.lit(last_start))).alias("orders_last_90"),
                _count(purchase & (day > F.lit(prev_start)) & (day <= F.lit(last_start))).alias("orders_prev_90"),
                F.collect_list(
                    F.when(purchase, F.struct(day.alias("d"), F.col("net_revenue").cast("double").alias("v")))
                ).alias("purchases"),
            )
            .select(
                "customer_key",
                "first_purchase",
                "last_purchase",
                F.col("frequency").cast("int").alias("frequency"),
                F.coalesce(F.col("monetary"), F.lit(0)).cast("decimal(16,2)").alias("monetary"),
                F.coalesce(F.col("units"), F.lit(0)).cast("long").alias("units"),
                F.col("returned_orders").cast("int").alias("returned_orders"),
                F.col("discount_orders").cast("int").alias("discount_orders"),
                F.col("weekend_orders").cast("int").alias("weekend_orders"),
                F.col("weekday_lunch_orders").cast("int").alias("weekday_lunch_orders"),
                F.col("weekday_evening_orders").cast("int").alias("weekday_evening_orders"),
                F.col("online_orders").cast("int").alias("online_orders"),
                "preferred_channel",
                F.col("orders_last_90").cast("int").alias("orders_last_90"),
                F.col("orders_prev_90").cast("int").alias("orders_prev_90"),
                F.col("purchases").cast(PURCHASE_TYPE).alias("purchases"),
            )
        )

    return transform


def purchase_days(purchases: Column) -> Column:
    """Distinct purchase days in ascending order (several orders on one day are one purchase day)."""
    return F.array_sort(F.array_distinct(F.transform(purchases, lambda p: p["d"])))
