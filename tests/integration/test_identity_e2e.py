"""Identity resolution on generated data: the planted identities come back, never merged.

``truth/identities.csv`` lists every raw identifier (customer_id, each e-mail and phone
spelling seen in CRM, social and POS tickets, every device seen at login) planted as
resolvable, with its owner. After ingest + conform, each must map to its owner's
customer_key, and no customer_key may hold identifiers of two planted customers.
"""

from __future__ import annotations

import os

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from custseg.conform.identity import customer_id_key, device_key, email_key, phone_key

pytestmark = pytest.mark.slow

RUN_DATE = "2026-06-30"
MIN_LINK_RATE = 0.99


@pytest.fixture(scope="module")
def resolved(demo_run, demo_tables):
    """The shared pipeline run (ingest and conform over ~2.5k planted customers, one year)."""
    home, run_date, _ = demo_run
    assert run_date == RUN_DATE
    return home, demo_tables


def _truth_keys(spark, home):
    salt = os.environ["CUSTSEG_PII_SALT"]
    raw = spark.read.csv(str(home / "truth" / "identities.csv"), header=True)
    kind, ident = F.col("identifier_type"), F.col("identifier")
    return raw.select(
        F.when(kind == "device_id", F.lit("device")).otherwise(kind).alias("id_type"),
        F.when(kind == "customer_id", customer_id_key(ident, salt))
        .when(kind == "email", email_key(ident, salt))
        .when(kind == "phone", phone_key(ident, salt, "44"))
        .when(kind == "device_id", device_key(ident, salt))
        .alias("id_key"),
        customer_id_key("customer_id", salt).alias("planted_key"),
        F.col("customer_id").alias("planted_customer"),
        ident.alias("identifier"),
    )


def test_planted_identities_resolve_without_merging_customers(spark, resolved):
    home, tables = resolved
    truth = _truth_keys(spark, home)
    id_map = tables.read("silver.identity_map")
    linked = truth.join(id_map, on=["id_type", "id_key"], how="left")

    # No identifier maps to somebody else.
    wrong = linked.where(F.col("customer_key").isNotNull() & (F.col("customer_key") != F.col("planted_key")))
    assert_df_equality(wrong, linked.limit(0))

    # No customer_key holds identifiers of two planted customers (the merge count is 0).
    merged = (
        linked.where(F.col("customer_key").isNotNull())
        .groupBy("customer_key")
        .agg(F.countDistinct("planted_customer").alias("n_planted"))
        .where(F.col("n_planted") > 1)
    )
    assert_df_equality(merged, merged.limit(0).select("customer_key", "n_planted"))

    # The map holds one key per identifier (an identifier never maps to two customers).
    dup = id_map.groupBy("id_type", "id_key").count().where(F.col("count") > 1)
    assert_df_equality(dup, dup.limit(0))

    rates = {
        r["id_type"]: (r["linked"], r["n"])
        for r in linked.groupBy("id_type")
        .agg(F.count("*").alias("n"), F.count("customer_key").alias("linked"))
        .collect()
    }  # four rows, one per identifier type
    total = sum(n for _, n in rates.values())
    rate = sum(k for k, _ in rates.values()) / total
    print(f"identity link rate {rate:.4%} of {total} planted identifiers; per type {rates}")
    assert set(rates) == {"customer_id", "email", "phone", "device"}
    assert rate >= MIN_LINK_RATE, rates
    assert rates["customer_id"][0] == rates["customer_id"][1], "every CRM customer maps to itself"


def test_silver_tables_carry_the_resolved_keys(spark, resolved):
    home, tables = resolved
    orders = tables.read("silver.orders")
    events = tables.read("silver.events")
    metrics = tables.read("meta.identity_metrics").where(F.col("batch_date") == F.lit(RUN_DATE).cast("date"))
    expected = (
        orders.select(F.lit("orders").alias("table"), "customer_key")
        .unionByName(events.select(F.lit("events").alias("table"), "customer_key"))
        .unionByName(tables.read("silver.feedback").select(F.lit("feedback").alias("table"), "customer_key"))
        .unionByName(tables.read("silver.social").select(F.lit("social").alias("table"), "customer_key"))
        .unionByName(
            tables.read("silver.campaign_responses").select(F.lit("campaign_responses").alias("table"), "customer_key")
        )
        .groupBy("table")
        .agg(F.count("*").alias("rows"), F.count("customer_key").alias("resolved"))
    )
    assert_df_equality(
        metrics.select("table", "rows", "resolved"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_phone_only_orders_and_anonymous_events_are_attributed(spark, resolved):
    _, tables = resolved
    blank = F.nullif(F.trim("customer_id"), F.lit("")).isNull()
    phone_only = (
        tables.read("bronze.orders")
        .where(blank & F.col("loyalty_phone").isNotNull())
        .select(F.trim("order_id").alias("order_id"))
    )
    orders = tables.read("silver.orders").join(phone_only, on="order_id", how="left_semi")
    assert orders.count() > 50  # the generator plants ~40% of store tickets with a phone only
    unresolved = orders.where(F.col("customer_key").isNull())
    assert_df_equality(unresolved, orders.limit(0))

    events = tables.read("silver.events")
    seen_at_login = (
        tables.read("silver.identity_map")
        .where(F.col("id_type") == "device")
        .select(F.col("id_key").alias("device_key"))
    )
    attributable = events.join(seen_at_login, on="device_key", how="left_semi")
    anonymous = tables.read("bronze.events").where(blank).select(F.trim("event_id").alias("event_id"))
    assert attributable.join(anonymous, on="event_id", how="left_semi").count() > 100
    unattributed = attributable.where(F.col("customer_key").isNull())
    assert_df_equality(unattributed, attributable.limit(0))
