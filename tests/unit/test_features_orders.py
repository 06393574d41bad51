"""Per-customer order aggregate, churn signals and the CLV summary against hand-computed values.

Snapshot 2026-06-30 (a Tuesday), window 365 days = 2025-07-01..2026-06-30, churn windows
of 90 days: last = 2026-04-02..2026-06-30, previous = 2026-01-02..2026-04-01.
"""

from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DecimalType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from custseg.features import clv
from custseg.features.churn import with_churn_signals
from custseg.features.orders import ORDER_AGG_COLUMNS, customer_orders, purchase_days

AS_OF = date(2026, 6, 30)
ORDERS = StructType(
    [
        StructField("order_id", StringType()),
        StructField("customer_key", StringType()),
        StructField("order_ts", TimestampType()),
        StructField("channel", StringType()),
        StructField("status", StringType()),
        StructField("n_units", LongType()),
        StructField("discount_amount", DecimalType(16, 2)),
        StructField("net_revenue", DecimalType(16, 2)),
    ]
)


def _orders(spark):
    d = Decimal
    rows = [
        # a: regular buyer, one purchase before the window, two orders on one day, a return, a cancel
        ("a1", "a", datetime(2025, 6, 30, 12), "store", "completed", 1, d("0"), d("10.00")),
        ("a2", "a", datetime(2026, 1, 10, 12, 30), "web", "completed", 2, d("5.00"), d("20.00")),  # Saturday
        ("a3", "a", datetime(2026, 4, 1, 12), "web", "completed", 3, d("0"), d("30.00")),  # Wednesday lunch
        ("a4", "a", datetime(2026, 6, 1, 9), "app", "completed", 1, d("2.00"), d("40.00")),  # Monday
        ("a5", "a", datetime(2026, 6, 1, 13), "web", "completed", 1, None, d("5.00")),  # Monday lunch
        ("a6", "a", datetime(2026, 6, 27, 10), "web", "returned", 1, d("0"), d("15.00")),
        ("a7", "a", datetime(2026, 6, 29, 11), "store", "cancelled", 1, d("0"), d("99.00")),
        ("a8", "a", datetime(2026, 7, 2, 11), "store", "completed", 1, d("0"), d("99.00")),  # after snapshot
        # b: bought three days early in the window, then nothing: overdue
        ("b1", "b", datetime(2025, 7, 1, 10), "store", "completed", 1, d("0"), d("50.00")),
        ("b2", "b", datetime(2025, 7, 1, 15), "store", "completed", 1, d("0"), d("25.00")),
        ("b3", "b", datetime(2025, 7, 11, 10), "store", "completed", 2, d("0"), d("25.00")),
        ("b4", "b", datetime(2025, 7, 21, 10), "store", "completed", 1, d("0"), d("25.00")),
        # c: a single order on the snapshot day
        ("c1", "c", datetime(2026, 6, 30, 23), "app", "completed", 4, d("1.00"), d("9.99")),
        # d: only returns
        ("d1", "d", datetime(2026, 6, 1, 10), "web", "returned", 1, d("0"), d("12.00")),
        # e: four orders in the previous 90 days, one in the last 90
        ("e1", "e", datetime(2026, 2, 1, 10), "web", "completed", 1, d("0"), d("10.00")),
        ("e2", "e", datetime(2026, 2, 15, 10), "web", "completed", 1, d("0"), d("10.00")),
        ("e3", "e", datetime(2026, 3, 1, 10), "web", "completed", 1, d("0"), d("10.00")),
        ("e4", "e", datetime(2026, 3, 15, 10), "web", "completed", 1, d("0"), d("10.00")),
        ("e5", "e", datetime(2026, 6, 20, 10), "store", "completed", 1, d("0"), d("10.00")),
        # a guest order never becomes a customer
        ("g1", None, datetime(2026, 6, 1, 10), "store", "completed", 1, d("0"), d("10.00")),
    ]
    return spark.createDataFrame(rows, ORDERS)


@pytest.fixture(scope="module")
def aggregated(spark):
    return _orders(spark).transform(customer_orders(AS_OF, 365, 90, (11, 14), ("web", "app"))).cache()


def test_customer_orders_counts_and_sums(spark, aggregated):
    actual = aggregated.drop("purchases")
    d = Decimal
    expected = spark.createDataFrame(
        [
            ("a", date(2025, 6, 30), date(2026, 6, 1), 4, d("95.00"), 7, 1, 2, 1, 2, 0, 4, "web", 2, 2),
            ("b", date(2025, 7, 1), date(2025, 7, 21), 4, d("125.00"), 5, 0, 0, 0, 0, 0, 0, "store", 0, 0),
            # 23:00 on a Tuesday is past the evening hours [18, 23)
            ("c", date(2026, 6, 30), date(2026, 6, 30), 1, d("9.99"), 4, 0, 1, 0, 0, 0, 1, "app", 1, 0),
            ("d", None, None, 0, d("0.00"), 0, 1, 0, 0, 0, 0, 0, None, 0, 0),
            (
                "e",
                date(2026, 2, 1),
                date(2026, 6, 20),
                5,
                d("50.00"),
                5,
                0,
                0,
                5,
                0,
                0,
                4,
                "web",
                1,
                4,
            ),  # Sundays, a Saturday
        ],
        "customer_key string, first_purchase date, last_purchase date, frequency int, monetary decimal(16,2), "
        "units long, returned_orders int, discount_orders int, weekend_orders int, weekday_lunch_orders int, "
        "weekday_evening_orders int, online_orders int, preferred_channel string, orders_last_90 int, orders_prev_90 int",
    )
    assert aggregated.columns == ORDER_AGG_COLUMNS
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_weekday_day_parts_are_half_open_hours_on_monday_to_friday(spark):
    d = Decimal
    rows = [
        ("f1", "f", datetime(2026, 6, 2, 18, 0), "store", "completed", 1, d("0"), d("10")),  # Tuesday 18:00: evening
        ("f2", "f", datetime(2026, 6, 4, 22, 59), "store", "completed", 1, d("0"), d("10")),  # Thursday 22:59: evening
        ("f3", "f", datetime(2026, 6, 5, 17, 59), "store", "completed", 1, d("0"), d("10")),  # Friday 17:59: neither
        ("f4", "f", datetime(2026, 6, 6, 19, 0), "store", "completed", 1, d("0"), d("10")),  # Saturday 19:00: weekend
        ("f5", "f", datetime(2026, 6, 8, 11, 0), "store", "completed", 1, d("0"), d("10")),  # Monday 11:00: lunch
        ("f6", "f", datetime(2026, 6, 9, 19, 0), "store", "returned", 1, d("0"), d("10")),  # not a purchase
        ("g1", "g", datetime(2026, 6, 3, 20, 0), "web", "completed", 1, d("0"), d("10")),  # evening in [18, 21)
        ("g2", "g", datetime(2026, 6, 3, 21, 30), "web", "completed", 1, d("0"), d("10")),  # evening, not in [18, 21)
    ]
    orders = spark.createDataFrame(rows, ORDERS)
    counts = ["weekend_orders", "weekday_lunch_orders", "weekday_evening_orders"]
    default = orders.transform(customer_orders(AS_OF, 365, 90)).select("customer_key", *counts)
    narrow = orders.transform(customer_orders(AS_OF, 365, 90, evening_hours=(18, 21))).select("customer_key", *counts)
    schema = "customer_key string, weekend_orders int, weekday_lunch_orders int, weekday_evening_orders int"
    expected_default = spark.createDataFrame([("f", 1, 1, 2), ("g", 0, 0, 2)], schema)
    expected_narrow = spark.createDataFrame([("f", 1, 1, 1), ("g", 0, 0, 1)], schema)  # f2 at 22:59 drops out too
    assert_df_equality(default, expected_default, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(narrow, expected_narrow, ignore_row_order=True, ignore_nullable=True)


def test_purchase_days_are_distinct_and_sorted(spark, aggregated):
    actual = aggregated.select("customer_key", purchase_days(F.col("purchases")).alias("days"))
    expected = spark.createDataFrame(
        [
            ("a", [date(2025, 6, 30), date(2026, 1, 10), date(2026, 4, 1), date(2026, 6, 1)]),
            ("b", [date(2025, 7, 1), date(2025, 7, 11), date(2025, 7, 21)]),
            ("c", [date(2026, 6, 30)]),
            ("d", []),
            ("e", [date(2026, 2, 1), date(2026, 2, 15), date(2026, 3, 1), date(2026, 3, 15), date(2026, 6, 20)]),
        ],
        "customer_key string, days array<date>",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_churn_signals(spark, aggregated):
    base = aggregated.select(
        "customer_key",
        F.datediff(F.lit(AS_OF), "last_purchase").alias("recency_days"),
        "orders_last_90",
        "orders_prev_90",
        purchase_days(F.col("purchases")).alias("purchase_days"),
    )
    actual = base.transform(with_churn_signals(overdue_ratio_threshold=2.0, decline_ratio=0.5))
    expected = spark.createDataFrame(
        [
            # gaps 194, 81, 61 -> median 81; 29 days since the last purchase
            ("a", 29, 2, 2, 81.0, 29 / 81, False),
            # gaps 10, 10; 344 days since: overdue
            ("b", 344, 0, 0, 10.0, 34.4, True),
            # one purchase day: no gap, no ratio; 1 vs 0 is not a decline
            ("c", 0, 1, 0, None, None, False),
            ("d", None, 0, 0, None, None, False),
            # gaps 14, 14, 14, 97 -> median 14; 1 order vs 4 before: declining
            ("e", 10, 1, 4, 14.0, 10 / 14, True),
        ],
        "customer_key string, recency_days int, orders_last_90 int, orders_prev_90 int, median_gap_days double, "
        "overdue_ratio double, declining boolean",
    )
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_clv_summary_merges_same_day_orders(spark):
    purchases = _orders(spark).where("status = 'completed'")
    actual = purchases.transform(clv.summarize(AS_OF, 7, date_col="order_ts", value_col="net_revenue"))
    expected = spark.createDataFrame(
        [
            # x = repeat purchase days; t_x, T in weeks; mean value of the repeat days
            ("a", 3, 336 / 7, 365 / 7, 95 / 3),  # days 06-30 (10), 01-10 (20), 04-01 (30), 06-01 (40+5)
            ("b", 2, 20 / 7, 364 / 7, 25.0),  # first day 50+25, then 25 and 25
            ("c", 0, 0.0, 0.0, None),
            ("e", 4, 139 / 7, 149 / 7, 10.0),
        ],
        "customer_key string, clv_frequency int, clv_recency double, clv_T double, clv_monetary double",
    )
    assert actual.columns == clv.SUMMARY_COLUMNS
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)
