"""Edge customers through the whole per-customer step (``raw_features``), against hand-computed
values of every family that needs no population statistic: no orders, one order, only
returns, no events, and a repeat buyer with same-day orders and a return.

Snapshot 2026-06-30 (a Tuesday); RFM window 365 days; churn windows of 90 days:
last = 2026-04-02..2026-06-30, previous = 2026-01-02..2026-04-01. Feedback and social are
absent, so their columns take the empty defaults.
"""

from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_approx_df_equality

from custseg.features.assemble import RAW_COLUMNS, SilverInputs, raw_features
from custseg.features.settings import FeatureSettings

AS_OF = date(2026, 6, 30)

CUSTOMERS = "customer_key string, signup_date date"
ORDERS = (
    "order_id string, customer_key string, order_ts timestamp, channel string, status string, n_units long, "
    "discount_amount decimal(16,2), net_revenue decimal(16,2)"
)
ITEMS = (
    "order_id string, customer_key string, order_ts timestamp, status string, category string, qty int, "
    "list_price decimal(12,2), net_revenue decimal(14,2)"
)
EVENTS = "event_id string, customer_key string, session_id string, ts timestamp, event_type string, duration_ms long"


@pytest.fixture(scope="module")
def raw(spark):
    d = Decimal
    customers = spark.createDataFrame(
        [
            ("none", date(2026, 1, 1)),  # in CRM, never ordered, never browsed
            ("one", date(2025, 6, 30)),  # a single order, no events
            ("ret", None),  # only a returned order; no signup date
            ("rep", date(2026, 3, 1)),  # repeat buyer
        ],
        CUSTOMERS,
    )
    orders = spark.createDataFrame(
        [
            ("o1", "one", datetime(2026, 6, 27, 12), "store", "completed", 2, d("0"), d("30")),  # Saturday
            ("r1", "ret", datetime(2026, 6, 1, 12), "web", "returned", 1, d("3"), d("12")),
            ("p1", "rep", datetime(2026, 4, 1, 12, 30), "web", "completed", 4, d("5"), d("50")),  # Wednesday lunch
            ("p2", "rep", datetime(2026, 4, 1, 18), "app", "completed", 1, None, d("5")),  # same day, evening
            ("p3", "rep", datetime(2026, 5, 1, 12), "web", "completed", 2, d("0"), d("20")),  # Friday lunch
            ("p4", "rep", datetime(2026, 6, 10, 13, 59), "store", "returned", 1, d("0"), d("10")),
            ("g1", None, datetime(2026, 6, 1, 12), "web", "completed", 9, d("0"), d("99")),  # guest
        ],
        ORDERS,
    )
    items = spark.createDataFrame(
        [
            ("o1", "one", datetime(2026, 6, 27, 12), "completed", "books", 2, d("20"), d("30")),
            ("r1", "ret", datetime(2026, 6, 1, 12), "returned", "toys", 1, d("15"), d("12")),
            ("p1", "rep", datetime(2026, 4, 1, 12, 30), "completed", "toys", 3, d("20"), d("45")),
            ("p1", "rep", datetime(2026, 4, 1, 12, 30), "completed", "books", 1, d("5"), d("5")),
            ("p2", "rep", datetime(2026, 4, 1, 18), "completed", None, 1, None, d("5")),  # no category, no list price
            ("p3", "rep", datetime(2026, 5, 1, 12), "completed", "toys", 2, d("10"), d("20")),
            ("p4", "rep", datetime(2026, 6, 10, 13, 59), "returned", "games", 1, d("10"), d("10")),
        ],
        ITEMS,
    )
    t = datetime(2026, 6, 2, 20)
    events = spark.createDataFrame(
        [
            ("e1", "ret", "s1", t, "product_view", 1000),
            ("e2", "ret", "s1", t, "product_view", 2000),
            ("e3", "rep", "s2", t, "product_view", None),
            ("e4", "rep", "s2", t, "product_view", None),
            ("e5", "rep", "s2", t, "product_view", None),
            ("e6", "rep", "s2", t, "product_view", None),
            ("e7", "rep", "s2", t, "add_to_cart", None),
        ],
        EVENTS,
    )
    silver = SilverInputs(customers=customers, orders=orders, order_items=items, events=events)
    return raw_features(silver, FeatureSettings(), AS_OF).cache()


def test_raw_columns_are_the_contract(raw):
    assert raw.columns == RAW_COLUMNS


def test_order_behaviour_churn_and_clv_summary_of_edge_customers(spark, raw):
    cols = [
        "customer_key",
        "tenure_days",
        "recency_days",
        "first_purchase_date",
        "last_purchase_date",
        "frequency",
        "monetary",
        "units",
        "preferred_channel",
        "view_to_purchase",
        "weekend_share",
        "weekday_lunch_share",
        "avg_basket_size",
        "avg_basket_value",
        "return_rate",
        "discount_order_share",
        "orders_last_90",
        "orders_prev_90",
        "median_gap_days",
        "overdue_ratio",
        "declining",
        "clv_frequency",
        "clv_recency",
        "clv_T",
        "clv_monetary",
    ]
    d = Decimal
    expected = spark.createDataFrame(
        [
            # nothing bought: counts 0, ratios null (no basket to describe), not declining, no CLV summary
            (
                "none",
                180,
                None,
                None,
                None,
                0,
                d("0.00"),
                0,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                0,
                0,
                None,
                None,
                False,
                None,
                None,
                None,
                None,
            ),
            # one Saturday store order 3 days ago: one purchase day, so no gap, no overdue ratio, x = 0
            (
                "one",
                365,
                3,
                date(2026, 6, 27),
                date(2026, 6, 27),
                1,
                d("30.00"),
                2,
                "store",
                None,
                1.0,
                0.0,
                2.0,
                30.0,
                0.0,
                0.0,
                1,
                0,
                None,
                None,
                False,
                0,
                0.0,
                3 / 7,
                None,
            ),
            # only a return: no purchase, no tenure (no signup, no first purchase); views but no online
            # purchase -> view_to_purchase 0; every resolved order returned -> return rate 1
            (
                "ret",
                None,
                None,
                None,
                None,
                0,
                d("0.00"),
                0,
                None,
                0.0,
                None,
                None,
                None,
                None,
                1.0,
                None,
                0,
                0,
                None,
                None,
                False,
                None,
                None,
                None,
                None,
            ),
            # three orders on two days (04-01 twice, 05-01), one return; 3 online orders / 4 product views;
            # lunch 04-01 12:30 and 05-01 12:00; one discounted order; 04-01 is in the previous 90 days;
            # gap 30 days, 60 days since -> overdue 2.0 >= 2.0: declining; x = 1 repeat day worth 20
            (
                "rep",
                121,
                60,
                date(2026, 4, 1),
                date(2026, 5, 1),
                3,
                d("75.00"),
                7,
                "web",
                0.75,
                0.0,
                2 / 3,
                7 / 3,
                25.0,
                0.25,
                1 / 3,
                1,
                2,
                30.0,
                2.0,
                True,
                1,
                30 / 7,
                90 / 7,
                20.0,
            ),
        ],
        "customer_key string, tenure_days int, recency_days int, first_purchase_date date, "
        "last_purchase_date date, frequency int, monetary decimal(16,2), units long, preferred_channel string, "
        "view_to_purchase double, weekend_share double, weekday_lunch_share double, avg_basket_size double, "
        "avg_basket_value double, return_rate double, discount_order_share double, orders_last_90 int, "
        "orders_prev_90 int, median_gap_days double, overdue_ratio double, declining boolean, clv_frequency int, "
        "clv_recency double, clv_T double, clv_monetary double",
    )
    assert_approx_df_equality(raw.select(*cols), expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_item_event_and_absent_source_features_of_edge_customers(spark, raw):
    cols = [
        "customer_key",
        "distinct_categories",
        "preferred_category",
        "top_categories",
        "discount_coef",
        "sessions",
        "page_views",
        "product_views",
        "cart_adds",
        "avg_session_seconds",
        "avg_rating",
        "latest_nps_band",
        "complaints",
        "social_influence",
    ]
    expected = spark.createDataFrame(
        [
            ("none", 0, None, None, None, 0, 0, 0, 0, None, None, None, 0, 0.0),
            # C = 30 / (2 x 20); no events: zero counts, no average session
            ("one", 1, "books", [("books", 1.0)], 0.75, 0, 0, 0, 0, None, None, None, 0, 0.0),
            # the returned line counts for nothing; one session of 3 s with 2 product views
            ("ret", 0, None, None, None, 1, 2, 2, 0, 3.0, None, None, 0, 0.0),
            # units toys 5, books 1 (the uncategorised line is left out of shares);
            # C over lines with a list price: (45 + 5 + 20) / (60 + 5 + 20); durations unknown -> 0 s
            ("rep", 2, "toys", [("toys", 5 / 6), ("books", 1 / 6)], 70 / 85, 1, 4, 4, 1, 0.0, None, None, 0, 0.0),
        ],
        "customer_key string, distinct_categories int, preferred_category string, "
        "top_categories array<struct<category:string,share:double>>, discount_coef double, sessions long, "
        "page_views long, product_views long, cart_adds long, avg_session_seconds double, avg_rating double, "
        "latest_nps_band string, complaints long, social_influence double",
    )
    assert_approx_df_equality(raw.select(*cols), expected, 1e-9, ignore_row_order=True, ignore_nullable=True)
