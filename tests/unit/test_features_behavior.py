"""Behaviour aggregates of order_items, events, feedback and social against hand-computed values.

Snapshot 2026-06-30, window 365 days (2025-07-01 00:00 .. 2026-06-30 23:59:59).
"""

from datetime import date, datetime
from decimal import Decimal

from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql.types import (
    BooleanType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from custseg.features.behavior import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    event_features,
    feedback_features,
    item_features,
    social_features,
)

AS_OF = date(2026, 6, 30)

ITEMS = StructType(
    [
        StructField("customer_key", StringType()),
        StructField("order_ts", TimestampType()),
        StructField("status", StringType()),
        StructField("category", StringType()),
        StructField("qty", IntegerType()),
        StructField("list_price", DecimalType(12, 2)),
        StructField("net_revenue", DecimalType(14, 2)),
    ]
)


def test_item_features_categories_and_discount_coefficient(spark):
    d = Decimal
    june, may = datetime(2026, 6, 1, 10), datetime(2026, 5, 1, 10)
    items = spark.createDataFrame(
        [
            ("a", june, "completed", "books", 2, d("10.00"), d("20.00")),  # full price
            ("a", june, "completed", "toys", 1, d("10.00"), d("4.00")),  # 60% off
            ("a", may, "completed", "books", 1, d("20.00"), d("10.00")),  # half price
            ("a", may, "completed", "games", 3, None, d("15.00")),  # no list price: not in C
            ("a", datetime(2026, 6, 10), "returned", "toys", 5, d("10.00"), d("50.00")),
            ("a", datetime(2025, 1, 1), "completed", "food", 9, d("1.00"), d("9.00")),  # before the window
            ("a", datetime(2026, 7, 1, 1), "completed", "food", 9, d("1.00"), d("9.00")),  # after the snapshot
            ("b", june, "completed", None, 2, d("5.00"), d("10.00")),  # unknown category
            ("c", june, "completed", "gifts", 1, d("0.00"), d("0.00")),  # free gift: no C
            (None, june, "completed", "books", 1, d("10.00"), d("10.00")),
        ],
        ITEMS,
    )
    actual = items.transform(item_features(AS_OF, 365, top_k=2))
    expected = spark.createDataFrame(
        [
            # units: books 3, games 3, toys 1 -> books wins the tie alphabetically; C = 34 / 50
            ("a", 3, "books", [("books", 3 / 7), ("games", 3 / 7)], 0.68),
            ("b", 0, None, None, 1.0),
            ("c", 1, "gifts", [("gifts", 1.0)], None),
        ],
        "customer_key string, distinct_categories int, preferred_category string, "
        "top_categories array<struct<category:string,share:double>>, discount_coef double",
    )
    assert actual.columns == ITEM_COLUMNS
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_event_features_sessions_views_and_duration(spark):
    schema = StructType(
        [
            StructField("event_id", StringType()),
            StructField("customer_key", StringType()),
            StructField("session_id", StringType()),
            StructField("ts", TimestampType()),
            StructField("event_type", StringType()),
            StructField("duration_ms", LongType()),
        ]
    )
    t = datetime(2026, 6, 1, 10)
    events = spark.createDataFrame(
        [
            ("e1", "a", "s1", t, "page_view", 1000),
            ("e2", "a", "s1", t, "product_view", 3000),
            ("e3", "a", "s1", t, "add_to_cart", 500),
            ("e4", "a", "s2", t, "Product_View", 2000),  # event types compare case-insensitively
            ("e5", "a", "s2", t, "search", None),
            ("e6", "a", None, t, "page_view", 1500),  # no session: a session of its own
            ("e7", "a", "s9", datetime(2025, 1, 1), "page_view", 9000),  # before the window
            ("e8", "a", "s9", datetime(2026, 7, 1, 0, 0, 1), "page_view", 9000),  # after the snapshot
            ("e9", None, "s5", t, "page_view", 9000),  # never attributed
            ("e10", "b", "s6", t, "login", 0),
        ],
        schema,
    )
    actual = events.transform(event_features(AS_OF, 365))
    expected = spark.createDataFrame(
        [("a", 3, 4, 2, 1, (4500 + 2000 + 1500) / 3 / 1000), ("b", 1, 0, 0, 0, 0.0)],
        "customer_key string, sessions long, page_views long, product_views long, cart_adds long, avg_session_seconds double",
    )
    assert actual.columns == EVENT_COLUMNS
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_feedback_features(spark):
    schema = StructType(
        [
            StructField("customer_key", StringType()),
            StructField("ts", TimestampType()),
            StructField("rating", IntegerType()),
            StructField("nps_band", StringType()),
            StructField("is_complaint", BooleanType()),
        ]
    )
    feedback = spark.createDataFrame(
        [
            ("a", datetime(2026, 1, 1), 2, "detractor", True),
            ("a", datetime(2026, 6, 1), 5, "promoter", False),
            ("a", datetime(2026, 6, 15), None, None, True),  # latest, but without an NPS answer
            ("a", datetime(2026, 7, 15), 1, "detractor", True),  # after the snapshot
            ("b", datetime(2025, 1, 1), 1, "passive", True),  # before the window: only the NPS band counts
        ],
        schema,
    )
    actual = feedback.transform(feedback_features(AS_OF, 365))
    expected = spark.createDataFrame(
        [("a", 3.5, "promoter", 2), ("b", None, "passive", 0)],
        "customer_key string, avg_rating double, latest_nps_band string, complaints long",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_social_influence_uses_latest_observation_per_handle(spark):
    schema = StructType(
        [
            StructField("customer_key", StringType()),
            StructField("platform", StringType()),
            StructField("handle_key", StringType()),
            StructField("followers", LongType()),
            StructField("shares", LongType()),
            StructField("mentions", LongType()),
            StructField("observed_at", TimestampType()),
        ]
    )
    social = spark.createDataFrame(
        [
            ("a", "instagram", "h1", 99, 9, 0, datetime(2026, 5, 1)),
            ("a", "instagram", "h1", 999, 9, 0, datetime(2026, 6, 1)),  # latest of h1
            ("a", "instagram", "h1", 9999999, 0, 0, datetime(2026, 7, 10)),  # after the snapshot
            ("a", "tiktok", "h2", 0, 0, 9, None),  # no date: counts, as the oldest
            ("b", "x", "h3", None, 0, 0, datetime(2026, 6, 1)),
        ],
        schema,
    )
    weights = (("followers", 1.0), ("shares", 2.0), ("mentions", 0.5))
    actual = social.transform(social_features(AS_OF, weights))
    expected = spark.createDataFrame(
        # log10(1 + 999) + 2 log10(1 + 9) + 0.5 log10(1 + 9)
        [("a", 3.0 + 2.0 + 0.5), ("b", 0.0)],
        StructType([StructField("customer_key", StringType()), StructField("social_influence", DoubleType())]),
    )
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)
