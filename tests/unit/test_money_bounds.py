"""One typing of money and quantity: values out of ingest.bounds are quarantined, never null, never a crash."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

from pyspark.sql import functions as F

from tests.unit.ingest_helpers import home, land, quarantine, run, tables  # noqa: F401  (home is a fixture)
from tests.unit.test_pii_key_guard import CRM, ORDER


def _order(oid: str, qty: str, price: str) -> str:
    order = copy.deepcopy(ORDER)
    order["order_id"] = oid
    order["items"] = [{"sku": "s1", "qty": qty, "unit_price": price, "discount": "0"}]
    return json.dumps(order)


def test_money_and_quantities_out_of_bounds_are_quarantined_and_conform_runs(spark, home):  # noqa: F811
    land(home, "crm_customers", "crm.csv", CRM)
    lines = [
        _order("ok", "99999", "999999.99"),  # the largest line within bounds: 99,998,999,000.01
        _order("huge_price", "1000", "9999999999.00"),  # the old code overflowed decimal(14,2) in conform
        _order("price_1e10", "1", "1e10"),  # the old code turned it into a null price
        _order("huge_qty", "100001", "1.00"),
        _order("infinite", "1", "1e400"),
    ]
    land(home, "orders", "o.jsonl", "\n".join(lines) + "\n")
    assert run(spark, "ingest", "ingest.max_reject_rate=1.0") == 0
    reasons = {
        json.loads(r["raw_record"])["order_id"]: r["reason"] for r in quarantine(spark, home, "orders").collect()
    }
    assert reasons == {
        "huge_price": "item_unit_price_out_of_bounds",
        "price_1e10": "item_unit_price_out_of_bounds",
        "huge_qty": "item_qty_out_of_bounds",
        "infinite": "item_unit_price_out_of_bounds",
    }
    assert run(spark, "conform") == 0
    (item,) = tables(spark, home).read("silver.order_items").collect()
    assert (item["order_id"], item["qty"], item["unit_price"]) == ("ok", 99999, Decimal("999999.99"))
    assert item["gross_revenue"] == Decimal("99998999000.01")
    orders = tables(spark, home).read("silver.orders").where(F.col("order_id") == "ok").first()
    assert orders["gross_revenue"] == Decimal("99998999000.01")


def test_bounds_that_could_overflow_a_line_total_are_refused():
    import pytest

    from custseg.config import ConfigError, load_config

    conf = load_config("local.yaml", env={})
    with pytest.raises(ConfigError, match=r"ingest\.bounds\.max_qty.*below 10\^12"):
        conf.with_overrides({"ingest.bounds.max_qty": 10_000_000})
    with pytest.raises(ConfigError, match=r"ingest\.bounds\.max_price"):
        conf.with_overrides({"ingest.bounds.max_price": 1e11})
