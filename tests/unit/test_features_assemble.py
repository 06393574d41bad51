"""The assembled gold.customer_features: contract columns and types, wiring of the families,
defaults for absent optional tables, and one scan per silver table for the whole job."""

import re
from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_approx_df_equality

from custseg.features.assemble import (
    FEATURE_COLUMNS,
    SilverInputs,
    customer_features,
    finish_features,
    raw_features,
)
from custseg.features.settings import FeatureSettings

AS_OF = date(2026, 6, 30)

CUSTOMERS = "customer_key string, signup_date date, region string"
ORDERS = (
    "order_id string, customer_key string, order_ts timestamp, order_date date, channel string, store_id string, "
    "status string, n_lines int, n_units long, gross_revenue decimal(16,2), discount_amount decimal(16,2), "
    "net_revenue decimal(16,2), _batch_date date"
)
ITEMS = (
    "order_id string, line_no int, customer_key string, order_ts timestamp, order_date date, channel string, "
    "status string, sku string, category string, subcategory string, qty int, unit_price decimal(12,2), "
    "list_price decimal(12,2), discount double, gross_revenue decimal(14,2), net_revenue decimal(14,2)"
)
EVENTS = (
    "event_id string, customer_key string, device_key string, session_id string, ts timestamp, event_date date, "
    "event_type string, sku string, category string, page string, duration_ms long, utm_source string, "
    "utm_medium string, utm_campaign string"
)


def _silver(spark) -> SilverInputs:
    d = Decimal
    customers = spark.createDataFrame(
        [("a", date(2025, 6, 30), "north"), ("b", None, "south"), ("z", date(2026, 1, 1), "east")], CUSTOMERS
    )

    def order(oid, key, ts, channel, units, disc, net):
        return (oid, key, ts, ts.date(), channel, None, "completed", 1, units, d(net) + d(disc), d(disc), d(net), AS_OF)

    orders = spark.createDataFrame(
        [
            order("o1", "a", datetime(2026, 6, 1, 10), "web", 2, "0", "30"),
            order("o2", "a", datetime(2026, 6, 15, 10), "web", 1, "5", "20"),
            order("o3", "b", datetime(2026, 3, 1, 10), "store", 1, "0", "10"),
            order("o4", "o", datetime(2026, 6, 29, 10), "store", 3, "0", "100"),  # not (yet) in CRM
        ],
        ORDERS,
    )

    def item(oid, key, ts, category, qty, list_price, net):
        return (
            oid,
            1,
            key,
            ts,
            ts.date(),
            "web",
            "completed",
            "s",
            category,
            None,
            qty,
            None,
            d(list_price),
            0.0,
            None,
            d(net),
        )

    items = spark.createDataFrame(
        [
            item("o1", "a", datetime(2026, 6, 1, 10), "books", 2, "15", "30"),
            item("o2", "a", datetime(2026, 6, 15, 10), "toys", 1, "25", "20"),
            item("o3", "b", datetime(2026, 3, 1, 10), "books", 1, "10", "10"),
            item("o4", "o", datetime(2026, 6, 29, 10), "games", 3, "40", "100"),
        ],
        ITEMS,
    )
    t = datetime(2026, 6, 1, 9)
    events = spark.createDataFrame(
        [
            ("e1", "a", "k", "s1", t, t.date(), "product_view", None, None, None, 1000, None, None, None),
            ("e2", "a", "k", "s1", t, t.date(), "product_view", None, None, None, 1000, None, None, None),
        ],
        EVENTS,
    )
    return SilverInputs(customers=customers, orders=orders, order_items=items, events=events)


def test_assembled_features_wire_every_family(spark):
    features, report = customer_features(_silver(spark), FeatureSettings(), AS_OF)
    assert features.columns == FEATURE_COLUMNS
    actual = features.select(
        "customer_key",
        "snapshot_date",
        "tenure_days",
        "recency_days",
        "frequency",
        "rfm_cell",
        "rfm_segment",
        "discount_coef",
        "preferred_category",
        "sessions",
        "product_views",
        "view_to_purchase",
        "discount_order_share",
        "avg_rating",
        "complaints",
        "social_influence",
        "median_gap_days",
        "overdue_ratio",
        "declining",
        "clv_frequency",
        "exp_avg_value",
        "clv",
    )
    expected = spark.createDataFrame(
        [
            # RFM cuts over a, b, o: -recency [-121,-15,-15,-1], frequency [1,1,1,2], monetary [10,50,50,100]
            (
                "a",
                AS_OF,
                365,
                15,
                2,
                "242",
                "At Risk",
                50 / 55,
                "books",
                1,
                2,
                1.0,
                0.5,
                None,
                0,
                0.0,
                14.0,
                15 / 14,
                False,
                1,
                None,
                None,
            ),
            # no signup date: tenure from the first purchase; one order in the previous 90 days, none since
            (
                "b",
                AS_OF,
                121,
                121,
                1,
                "111",
                "Lost",
                1.0,
                "books",
                0,
                0,
                None,
                0.0,
                None,
                0,
                0.0,
                None,
                None,
                True,
                0,
                None,
                None,
            ),
            (
                "o",
                AS_OF,
                1,
                1,
                1,
                "414",
                "Promising",
                100 / 120,
                "games",
                0,
                0,
                None,
                0.0,
                None,
                0,
                0.0,
                None,
                None,
                False,
                0,
                None,
                None,
            ),
            (
                "z",
                AS_OF,
                180,
                None,
                0,
                "111",
                "Lost",
                None,
                None,
                0,
                0,
                None,
                None,
                None,
                0,
                0.0,
                None,
                None,
                False,
                None,
                None,
                None,
            ),
        ],
        "customer_key string, snapshot_date date, tenure_days int, recency_days int, frequency int, rfm_cell string, "
        "rfm_segment string, discount_coef double, preferred_category string, sessions long, product_views long, "
        "view_to_purchase double, discount_order_share double, avg_rating double, complaints long, "
        "social_influence double, median_gap_days double, overdue_ratio double, declining boolean, "
        "clv_frequency int, exp_avg_value double, clv double",
    )
    assert_approx_df_equality(actual, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)
    # one repeat buyer: Gamma-Gamma cannot be fitted, which is reported (and values stay null)
    assert any("Gamma-Gamma" in w for w in report.warnings)


def test_feature_types_are_the_contract(spark):
    features, _ = customer_features(_silver(spark), FeatureSettings(), AS_OF)
    types = dict(features.dtypes)
    expected = {
        "customer_key": "string",
        "snapshot_date": "date",
        "recency_days": "int",
        "frequency": "int",
        "monetary": "decimal(16,2)",
        "r_score": "int",
        "f_score": "int",
        "m_score": "int",
        "rfm_cell": "string",
        "rfm_segment": "string",
        "tenure_days": "int",
        "units": "bigint",
        "discount_coef": "double",
        "sessions": "bigint",
        "page_views": "bigint",
        "product_views": "bigint",
        "cart_adds": "bigint",
        "preferred_channel": "string",
        "preferred_category": "string",
        "top_categories": "array<struct<category:string,share:double>>",
        "distinct_categories": "int",
        "latest_nps_band": "string",
        "complaints": "bigint",
        "first_purchase_date": "date",
        "last_purchase_date": "date",
        "orders_last_90": "int",
        "orders_prev_90": "int",
        "declining": "boolean",
        "clv_frequency": "int",
    }
    doubles = set(FEATURE_COLUMNS) - set(expected)
    assert {c: types[c] for c in expected} == expected
    assert {c: types[c] for c in doubles} == dict.fromkeys(doubles, "double")


def _leaves(plan) -> list:
    seq = plan.collectLeaves()
    return [seq.apply(i) for i in range(seq.size())]


def test_each_silver_table_is_scanned_once(spark, tmp_path):
    """Parquet copies of the inputs. The persisted per-customer frame scans each table once;
    every later job (RFM cuts, LRFMC moments, CLV fits, the final scoring) reads only that cache."""
    silver = _silver(spark)
    paths = {}
    for name in ("customers", "orders", "order_items", "events"):
        paths[name] = str(tmp_path / name)
        getattr(silver, name).write.parquet(paths[name])
    read = SilverInputs(**{n: spark.read.parquet(p) for n, p in paths.items()})
    spark.conf.set("spark.sql.adaptive.enabled", "false")  # plain trees to read the scans from
    spark.conf.set("spark.sql.maxMetadataStringLength", "10000")  # untruncated locations
    try:
        raw = raw_features(read, FeatureSettings(), AS_OF).persist()
        raw.count()
        features, _ = finish_features(raw, FeatureSettings(), AS_OF)
        features.collect()
        final_leaves = _leaves(features._jdf.queryExecution().executedPlan())
        cached = [leaf.relation().cachedPlan() for leaf in _leaves(raw._jdf.queryExecution().executedPlan())]
        cached_leaves = [leaf for plan in cached for leaf in _leaves(plan)]
        final_kinds = {leaf.getClass().getSimpleName() for leaf in final_leaves}
        scans = [re.search(r"\[file:([^\]]+)\]", leaf.toString()).group(1) for leaf in cached_leaves]
        raw.unpersist()
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", "true")
        spark.conf.unset("spark.sql.maxMetadataStringLength")
    assert final_kinds == {"InMemoryTableScanExec"}
    assert len(cached) == 1
    assert sorted(scans) == sorted(paths.values())


@pytest.mark.parametrize("absent", ["order_items", "events"])
def test_absent_optional_table_gives_defaults(spark, absent):
    silver = _silver(spark)
    setattr(silver, absent, None)
    features, _ = customer_features(silver, FeatureSettings(), AS_OF)
    row = features.where("customer_key = 'a'").first()
    if absent == "order_items":
        assert (row.distinct_categories, row.preferred_category, row.top_categories, row.discount_coef) == (
            0,
            None,
            None,
            None,
        )
        assert row.sessions == 1
    else:
        assert (row.sessions, row.page_views, row.product_views, row.cart_adds) == (0, 0, 0, 0)
        assert row.avg_session_seconds is None and row.view_to_purchase is None
        assert row.discount_coef == pytest.approx(50 / 55)
