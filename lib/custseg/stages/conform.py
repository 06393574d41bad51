"""Stage ``conform``: bronze -> silver customers, identity_map, products, orders, order_items, activity."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, DoubleType, LongType, StringType, StructField, StructType

from custseg.conform.activity import (
    conform_events,
    conform_feedback,
    conform_responses,
    conform_social,
)
from custseg.conform.consent import consent_records, latest_consent
from custseg.conform.customers import conform_activation_ids, conform_customers
from custseg.conform.identity import (
    DEFAULT_MAX_ITERATIONS,
    customer_edges,
    customer_id_key,
    login_edges,
    order_edges,
    resolve_identities,
)
from custseg.conform.orders import (
    FREE,
    ITEM_COLUMNS,
    latest_orders,
    order_items,
    orders_from_items,
    resolve_customer,
)
from custseg.pii import PiiKey, resolve_pii_key
from custseg.sources.base import MONEY, parse_ts
from custseg.sources.consent_file import TABLE as CONSENT_TABLE
from custseg.sources.consent_file import ConsentFileSettings, from_file
from custseg.stages.context import StageContext
from custseg.stages.flat_inputs import bronze_with_flat
from custseg.stages.key_guard import check_pii_key, record_pii_key
from custseg.stages.snapshots import SilverWrites, record_snapshot

log = logging.getLogger(__name__)

ACTIVITY_TABLES = ("events", "feedback", "social", "campaign_responses")
# Every silver table holding keys made with the PII key (its fingerprint is checked before writing).
KEYED_TABLES = [
    "silver.customers",
    "silver.activation_ids",
    "silver.identity_map",
    "silver.order_items",
    "silver.orders",
    *(f"silver.{name}" for name in ACTIVITY_TABLES),
    "silver.consent",
]


def run(ctx: StageContext) -> None:
    t, rec = ctx.tables, ctx.recorder
    # Every silver write goes through `w`, which keeps the versions this run committed; they become
    # the run date's snapshot only once all are written (custseg.stages.snapshots).
    w = SilverWrites(t)
    salt = resolve_pii_key(ctx.conf, demo=ctx.demo)
    # Before anything is written: a run with another key fails here, and the first run records
    # its key for every keyed table up front, so a run that fails midway is still guarded.
    on_record = check_pii_key(t, salt, KEYED_TABLES)
    record_pii_key(ctx.spark, t, salt, KEYED_TABLES, ctx.as_of, on_record)
    rec.details["pii_key_fingerprint"] = salt.fingerprint
    cc = ctx.conf.pii.default_country_code
    upto = F.col("_batch_date") <= F.lit(ctx.as_of)  # a rerun of an old date ignores later batches

    with rec.stage("silver.customers"):
        customers = bronze_with_flat(ctx, "crm_customers").where(upto).transform(conform_customers(salt, ctx.as_of, cc))
        w.overwrite(customers, "silver.customers")
        customers = w.read("silver.customers")

    with rec.stage("silver.activation_ids"):
        # The restricted pseudonym table (docs/security.md): customer_key -> source customer id.
        crm = bronze_with_flat(ctx, "crm_customers").where(upto)
        w.overwrite(crm.transform(conform_activation_ids(salt)), "silver.activation_ids")

    with rec.stage("silver.identity_map"):
        w.overwrite(_identity_map(ctx, customers, upto, salt, cc), "silver.identity_map")
        id_map = w.read("silver.identity_map")

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
                    F.col("list_price").try_cast(MONEY).alias("list_price"),
                )
            )
            w.overwrite(products, "silver.products")

    with rec.stage("silver.order_items"):
        orders = (
            bronze_with_flat(ctx, "orders")
            .where(upto)
            .withColumn("order_id", F.trim("order_id"))
            .transform(latest_orders)
            .transform(resolve_customer(id_map, salt, cc))
            .where(parse_ts("order_ts") <= F.lit(ctx.as_of) + F.expr("INTERVAL 1 DAY"))
        )
        zero_price = str(ctx.conf.get_path("conform.zero_price_lines", "not_purchases"))
        items = order_items(orders, zero_price)
        if w.wrote("silver.products"):
            # The catalogue is small (bounded by the number of SKUs): broadcast it.
            catalogue = w.read("silver.products").select("sku", "category", "subcategory", "list_price")
            items = items.join(F.broadcast(catalogue), on="sku", how="left")
        else:
            items = items.select(
                "*",
                *[
                    F.lit(None).cast(tp).alias(c)
                    for c, tp in (("category", "string"), ("subcategory", "string"), ("list_price", MONEY))
                ],
            )
        w.overwrite(items.select(*ITEM_COLUMNS), "silver.order_items", partition_by=None)
    with rec.stage("silver.orders"):
        w.overwrite(orders_from_items(orders, w.read("silver.order_items")), "silver.orders")
        free = w.read("silver.orders").where(F.col("status") == FREE).agg(F.count("*").alias("n")).first()["n"]
        rec.details["free_orders"] = int(free)  # completed orders without a paid line: not purchases
        if free:
            log.info("silver.orders: %d orders have only zero-price lines: status %s, not purchases", free, FREE)

    activity = list(
        zip(ACTIVITY_TABLES, (conform_events, conform_feedback, conform_social, conform_responses), strict=True)
    )
    for name, conform in activity:
        if not t.exists(f"bronze.{name}"):
            log.warning("bronze.%s does not exist: silver.%s not built", name, name)
            continue
        with rec.stage(f"silver.{name}"):
            w.overwrite(t.read(f"bronze.{name}").where(upto).transform(conform(salt, id_map)), f"silver.{name}")
    if from_file(ctx.conf):
        with rec.stage("silver.consent"):
            _silver_consent(ctx, w, salt, id_map, upto)
    _record_resolution(ctx, w)
    with rec.stage("silver snapshot"):
        # Last, in one commit: until here readers of this date see its previous snapshot (or none).
        record_snapshot(ctx.spark, t, ctx.run_date, w.versions, getattr(rec, "run_id", None))
    rec.details["silver_snapshot"] = dict(sorted(w.versions.items()))


def _silver_consent(ctx: StageContext, w: SilverWrites, salt: PiiKey, id_map: DataFrame, upto) -> None:
    """bronze.consent (every batch up to the run date) -> silver.consent, the latest per customer and channel."""
    t = ctx.tables
    if not t.exists(CONSENT_TABLE):
        log.warning(
            "marketing.consent.policy is from_file but %s does not exist (no consent file landed yet): "
            "silver.consent not built, so nobody counts as opted in",
            CONSENT_TABLE,
        )
        return
    records = t.read(CONSENT_TABLE).where(upto).transform(consent_records(ConsentFileSettings.from_config(ctx.conf)))
    w.overwrite(records.transform(latest_consent(salt, id_map)), "silver.consent")
    known = id_map.where(F.col("id_type") == "customer_id").select(F.col("id_key").alias("k"))
    unknown = (
        records.select(customer_id_key("customer_id", salt).alias("k"))
        .distinct()
        .join(known, on="k", how="left_anti")
        .count()
    )
    row = (
        w.read("silver.consent")
        .agg(
            F.count("*").alias("rows"),
            F.countDistinct("customer_key").alias("customers"),
            F.count_if("opted_in").alias("opted_in"),
        )
        .first()
    )
    stats = {"rows": int(row["rows"]), "customers": int(row["customers"]), "opted_in": int(row["opted_in"] or 0)}
    stats["ids_not_in_customers"] = unknown
    ctx.recorder.details["consent"] = stats
    log.info("silver.consent: %s (records of ids unknown to silver.customers are dropped)", stats)


def _identity_map(ctx: StageContext, customers: DataFrame, upto, salt: PiiKey, cc: str) -> DataFrame:
    """Edges from CRM, POS tickets with both customer_id and loyalty phone, and login events."""
    t = ctx.tables
    edges = customer_edges(customers)
    edges = edges.unionByName(bronze_with_flat(ctx, "orders").where(upto).transform(order_edges(salt, cc)))
    if t.exists("bronze.events"):
        edges = edges.unionByName(t.read("bronze.events").where(upto).transform(login_edges(salt)))
    max_iter = int(ctx.conf.get_path("conform.identity_max_iterations", DEFAULT_MAX_ITERATIONS))
    res = resolve_identities(edges, customers, max_iter)
    graph = {"iterations": res.iterations, "converged": res.converged, "ambiguous_identifiers": res.ambiguous.count()}
    ctx.recorder.details["identity_graph"] = graph
    log.info("identity graph: %s", graph)
    return res.identity_map


IDENTITY_METRICS = "meta.identity_metrics"
IDENTITY_METRICS_SCHEMA = StructType(
    [
        StructField("batch_date", DateType(), False),
        StructField("table", StringType(), False),
        StructField("rows", LongType(), False),
        StructField("resolved", LongType(), False),
        StructField("resolved_share", DoubleType(), True),
    ]
)


def _record_resolution(ctx: StageContext, w: SilverWrites) -> None:
    """Share of rows resolved to a customer per silver table: logged, in the run record and in
    ``meta.identity_metrics`` (one partition per batch date, replaced on a rerun)."""
    t = ctx.tables
    shares, rows = {}, []
    for name in ("orders", "events", "feedback", "social", "campaign_responses"):
        if w.wrote(f"silver.{name}"):
            row = (
                w.read(f"silver.{name}").agg(F.count("*").alias("n"), F.count("customer_key").alias("resolved")).first()
            )
            shares[name] = round(row["resolved"] / row["n"], 4) if row["n"] else None
            rows.append((ctx.as_of, name, int(row["n"]), int(row["resolved"]), shares[name]))
    ctx.recorder.details["resolved_share"] = shares
    log.info("identity resolution: share resolved to a customer %s", shares)
    t.overwrite(
        ctx.spark.createDataFrame(rows, IDENTITY_METRICS_SCHEMA),
        IDENTITY_METRICS,
        partition_by=["batch_date"],
        where={"batch_date": ctx.run_date},
    )


def _latest(key: str):
    from pyspark.sql.window import Window

    return Window.partitionBy(F.trim(key)).orderBy(F.col("_batch_date").desc(), F.col("_source_file").desc())
