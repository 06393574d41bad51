"""Bring your own transactions: an Online Retail style line-item CSV through ingest and conform."""

from __future__ import annotations

import os
from datetime import date, datetime
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import functions as F

from custseg.pii import identity_key
from tests.unit import ingest_helpers
from tests.unit.ingest_helpers import land, quarantine, quarantine_df, reconciliation, run, tables

DAY = "2010-12-01"
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
GOOD = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom",
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.50,14527.0,United Kingdom",  # cancelled invoice
    '536380,22961,"JAM MAKING SET, PRINTED",24,2010-12-01 09:41:00,1.45,,United Kingdom',  # guest
    "536381,22139,RETROSPOT TEA SET,-2,2010-12-01 09:45:00,4.95,15311.0,United Kingdom",  # returned
    "536365,23166,FREE SAMPLE,1,2010-12-01 08:26:00,0.00,17850.0,United Kingdom",  # free line, paid order
    "536390,23843,PAPER CRAFT LITTLE BIRDIE,5,2010-12-01 10:00:00,0,16000.0,United Kingdom",  # only free lines
]
BAD = [
    ("bad_qty", "536382,22139,RETROSPOT TEA SET,two,2010-12-01 09:45:00,4.95,15311.0,United Kingdom"),
    ("missing_order_id", ",22139,RETROSPOT TEA SET,1,2010-12-01 09:45:00,4.95,15311.0,United Kingdom"),
    ("bad_order_ts", "536383,22139,RETROSPOT TEA SET,1,01/12/2010 09:45,4.95,15311.0,United Kingdom"),
    ("bad_unit_price", "A563185,B,Adjust bad debt,1,2010-12-01 14:50:00,-11062.06,,United Kingdom"),
]
FLAT_ON = "flat_transactions.enabled=true"

home = ingest_helpers.home  # the fixture: CUSTSEG_HOME in tmp_path


def _raw(line: str) -> str:
    import csv
    import json

    fields = dict(zip(HEADER.split(","), next(csv.reader([line])), strict=True))
    return json.dumps({k: v for k, v in fields.items() if v != ""}, separators=(",", ":"))


def _key(spark, customer_id: str) -> str:
    df = spark.createDataFrame([(customer_id,)], "cid string")
    return df.select(identity_key("customer_id", F.col("cid"), os.environ["CUSTSEG_PII_SALT"]).alias("k")).first()["k"]


def test_line_items_become_orders_items_and_customers(spark, home):
    land(
        home, "flat_transactions", "retail.csv", "\n".join([HEADER, *GOOD, *(line for _, line in BAD)]) + "\n", date=DAY
    )
    assert run(spark, "ingest", FLAT_ON, "ingest.max_reject_rate=1.0", date=DAY) == 0
    assert reconciliation(spark, home, "flat_transactions", DAY) == (12, 8, 4)
    expected_q = quarantine_df(spark, [(reason, _raw(line), "retail.csv") for reason, line in BAD])
    assert_df_equality(
        quarantine(spark, home, "flat_transactions"), expected_q, ignore_row_order=True, ignore_nullable=True
    )
    bronze = tables(spark, home).read("bronze.flat_transactions")
    assert bronze.columns[:8] == [
        "order_id",
        "sku",
        "description",
        "qty",
        "order_ts",
        "unit_price",
        "customer_id",
        "country",
    ]

    assert run(spark, "conform", FLAT_ON, date=DAY) == 0
    t = tables(spark, home)
    k1, k2, k3, k4 = (_key(spark, c) for c in ("17850", "14527", "15311", "16000"))

    customers = t.read("silver.customers").select("customer_key", "signup_date", "city")
    expected_c = spark.createDataFrame(
        [(k1, date(2010, 12, 1), None), (k2, date(2010, 12, 1), None), (k3, date(2010, 12, 1), None)]
        + [(k4, date(2010, 12, 1), None)],
        "customer_key string, signup_date date, city string",
    )
    assert_df_equality(customers, expected_c, ignore_row_order=True, ignore_nullable=True)

    ts = datetime.fromisoformat
    orders = t.read("silver.orders").select(
        "order_id", "customer_key", "order_ts", "channel", "status", "n_lines", "n_units", "net_revenue"
    )
    expected_o = spark.createDataFrame(
        [
            ("536365", k1, ts("2010-12-01 08:26:00"), "web", "completed", 3, 13, Decimal("35.64")),
            ("536366", k1, ts("2010-12-01 08:28:00"), "web", "completed", 1, 6, Decimal("11.10")),
            ("C536379", k2, ts("2010-12-01 09:41:00"), "web", "cancelled", 1, 1, Decimal("27.50")),
            ("536380", None, ts("2010-12-01 09:41:00"), "web", "completed", 1, 24, Decimal("34.80")),
            ("536381", k3, ts("2010-12-01 09:45:00"), "web", "returned", 1, 2, Decimal("9.90")),
            # only zero-price lines: not a purchase (conform.zero_price_lines: not_purchases)
            ("536390", k4, ts("2010-12-01 10:00:00"), "web", "free", 1, 5, Decimal("0.00")),
        ],
        "order_id string, customer_key string, order_ts timestamp, channel string, status string, "
        "n_lines long, n_units long, net_revenue decimal(16,2)",
    )
    assert_df_equality(orders, expected_o, ignore_row_order=True, ignore_nullable=True)

    items = t.read("silver.order_items").select("order_id", "line_no", "sku", "status", "qty", "unit_price", "category")
    done, free = "completed", "free"
    expected_i = spark.createDataFrame(
        [
            ("536365", 1, "23166", free, 1, Decimal("0.00"), None),
            ("536365", 2, "71053", done, 6, Decimal("3.39"), None),
            ("536365", 3, "85123A", done, 6, Decimal("2.55"), None),
            ("536366", 1, "22633", done, 6, Decimal("1.85"), None),
            ("C536379", 1, "D", "cancelled", 1, Decimal("27.50"), None),
            ("536380", 1, "22961", done, 24, Decimal("1.45"), None),
            ("536381", 1, "22139", "returned", 2, Decimal("4.95"), None),
            ("536390", 1, "23843", free, 5, Decimal("0.00"), None),
        ],
        "order_id string, line_no int, sku string, status string, qty int, unit_price decimal(12,2), category string",
    )
    assert_df_equality(items, expected_i, ignore_row_order=True, ignore_nullable=True)

    # The other choice: zero-price lines are purchases (revenue 0).
    assert run(spark, "conform", FLAT_ON, "conform.zero_price_lines=purchases", date=DAY) == 0
    statuses = {r["order_id"]: r["status"] for r in t.read("silver.orders").select("order_id", "status").collect()}
    assert statuses["536390"] == "completed" and statuses["536365"] == "completed"
    assert t.read("silver.order_items").where(F.col("status") == "free").count() == 0


def test_flat_settings_reject_a_bad_status_naming_the_key(tmp_path):
    import pytest

    import custseg.sources.flat  # noqa: F401 - registers the flat_transactions validator
    from custseg.config import DEFAULT_CONF_DIR, ConfigError, load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {DEFAULT_CONF_DIR / 'base.yaml'}\nflat_transactions:\n  cancel_status: refunded\n")
    with pytest.raises(ConfigError, match=r"flat_transactions.cancel_status.*refunded"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(f"extends: {DEFAULT_CONF_DIR / 'base.yaml'}\nflat_transactions:\n  columns:\n    price: P\n")
    with pytest.raises(ConfigError, match=r"unknown key 'flat_transactions.columns.price'"):
        load_config(unknown)
