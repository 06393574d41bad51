"""Decisions: each trigger firing against batch gold, consent, the shared caps and the holdout.

A candidate (custseg.realtime.detect) becomes one OFFER row of ``gold.realtime_offers`` with a
``decision``, checked in this order (the first that applies):

1. ``unknown_customer``: no customer key, or a key the batch customer base does not know;
2. ``ineligible``: fails the trigger's eligibility (segments, RFM segments, value classes,
   feature filters, ``min_propensity``);
3. ``no_consent``: none of the trigger's channels is consented to and reachable (the batch
   campaigns' rule and consent policy, custseg.marketing.consent);
4. ``capped``: contacted today by a batch campaign (gold.campaign_audiences treatment rows of the
   day, silver.campaign_responses sent that day), or over the trigger's ``max_per_day``, or over
   ``realtime.max_offers_per_customer_per_day`` with the real-time offers decided earlier today;
   within a micro-batch a customer's candidates take the cap in trigger priority, then event time;
5. ``control``: the stable holdout of the batch campaigns, sha2(customer_key|trigger|salt), with
   the trigger's ``holdout_share``: logged, never offered;
6. ``offered``.

Caps count offered and control rows alike, so the control group stays drawn like the treated.
``offer_id`` = sha2(trigger|customer_key|trigger_key): a firing already decided (in
``earlier_offers``) is not decided again, so a replayed batch or a session seen twice never
offers twice. Everything depends only on the batch's input, the gold tables and
``decided_at`` (taken once per batch by the caller).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from custseg.config import Config
from custseg.marketing.audience import assigned_channel, customer_base, eligibility_expr, holdout_group
from custseg.marketing.consent import ConsentPolicy, with_consent
from custseg.realtime.triggers import RealtimeSettings, Trigger

log = logging.getLogger(__name__)

OFFERED, CONTROL, CAPPED = "offered", "control", "capped"
NO_CONSENT, INELIGIBLE, UNKNOWN = "no_consent", "ineligible", "unknown_customer"
DECISIONS = (OFFERED, CONTROL, CAPPED, NO_CONSENT, INELIGIBLE, UNKNOWN)
OFFER_SCHEMA = T.StructType(
    [
        T.StructField("offer_id", T.StringType()),
        T.StructField("customer_key", T.StringType()),
        T.StructField("trigger", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("trigger_key", T.StringType()),
        T.StructField("event_ts", T.TimestampType()),
        T.StructField("decided_at", T.TimestampType()),
        T.StructField("latency_s", T.DoubleType()),
        T.StructField("decision", T.StringType()),
        T.StructField("offer", T.StringType()),
        T.StructField("channel", T.StringType()),
        T.StructField("expires_at", T.TimestampType()),
        T.StructField("segment", T.StringType()),
        T.StructField("value_class", T.StringType()),
        T.StructField("propensity", T.DoubleType()),
        T.StructField("holdout", T.BooleanType()),
        T.StructField("query", T.StringType()),
        T.StructField("batch_id", T.LongType()),
        T.StructField("decision_date", T.DateType()),
    ]
)
OFFER_COLUMNS = [f.name for f in OFFER_SCHEMA.fields]
FEATURES, SEGMENTS = "gold.customer_features", "gold.customer_segments"
RULES, AUDIENCES = "gold.association_rules", "gold.campaign_audiences"
RESPONSES, CUSTOMERS, PRODUCTS = "silver.campaign_responses", "silver.customers", "silver.products"


@dataclass
class Gold:
    """What decisions and the stateless triggers read of the batch tables, once per micro-batch.

    ``customers``: one row per known customer: segment_name, rfm_segment, value_class,
    ``propensity`` (p_alive of gold.customer_features, BG/NBD), declining, weekday_lunch_share,
    the consent columns and identifiers of custseg.marketing.audience.BASE_COLUMNS, and every
    feature column (for eligibility filters). ``contacted_today``: customer_key of every customer a
    batch campaign contacts on ``run_date``. ``cross_sell_rules``: antecedent, consequent,
    confidence, lift at ``basket_level`` (None: no basket run yet).
    """

    customers: DataFrame
    contacted_today: DataFrame
    cross_sell_rules: DataFrame | None = None
    products: DataFrame | None = None
    run_date: date | None = None
    basket_level: str = "category"
    lunch_hours: tuple[int, int] = (11, 14)
    holdout_salt: str = "custseg-holdout-v1"
    max_offers_per_customer_per_day: int = 1


def _col_or_null(df: DataFrame, name: str) -> Column:
    return F.col(name).cast("double") if name in df.columns else F.lit(None).cast("double")


def _latest(df: DataFrame, as_of: date, name: str) -> DataFrame | None:
    """The latest snapshot up to ``as_of`` (one bounded max reaches the driver)."""
    latest = df.where(F.col("snapshot_date") <= F.lit(as_of)).agg(F.max("snapshot_date").alias("d")).first()["d"]
    if latest is None:
        return None
    if latest != as_of:
        log.info("realtime: using %s of %s (latest up to %s)", name, latest, as_of)
    return df.where(F.col("snapshot_date") == F.lit(latest)).drop("snapshot_date")


def load_gold(tables, conf: Config, run_date: date) -> Gold:
    """Read the batch gold a micro-batch decides against (features and silver.customers required).

    Raises ``RuntimeError`` naming the stage to run when gold.customer_features has no snapshot
    up to ``run_date``; the optional inputs (segments, rules, audiences, responses, products,
    silver.consent) are done without, each absence logged.
    """
    if not tables.exists(FEATURES) or not tables.exists(CUSTOMERS):
        raise RuntimeError(f"realtime decisions need {FEATURES} and {CUSTOMERS}: run the batch pipeline first")
    features = _latest(tables.read(FEATURES), run_date, FEATURES)
    if features is None:
        raise RuntimeError(f"{FEATURES} has no snapshot up to {run_date}: run the features stage first")

    def optional(name: str, why: str) -> DataFrame | None:
        if tables.exists(name):
            return tables.read(name)
        log.warning("realtime: optional input %s is absent: %s", name, why)
        return None

    segments_all = optional(SEGMENTS, "eligibility by segment / value class matches nobody")
    segments = _latest(segments_all, run_date, SEGMENTS) if segments_all is not None else None
    policy = ConsentPolicy.from_config(conf)
    file_consent = optional("silver.consent", "consent from_file: nobody opted in") if policy.from_file else None
    base = (
        features.withColumn("propensity", _col_or_null(features, "p_alive"))
        .transform(customer_base(tables.read(CUSTOMERS), segments))
        .transform(with_consent(policy, file_consent))
    )
    level = str(conf.get_path("basket.level", "category"))
    rules_all = optional(RULES, "no post-purchase cross-sell")
    rules = _latest(rules_all, run_date, RULES) if rules_all is not None else None
    if rules is not None:
        rules = rules.where(F.col("level") == F.lit(level)) if "level" in rules.columns else rules
        if "segment_id" in rules.columns:
            rules = rules.where(F.col("segment_id").isNull())  # the rules mined over all baskets
        rules = rules.select("antecedent", "consequent", "confidence", "lift")
    contacted = _contacted_today(
        optional(AUDIENCES, "no cap by today's batch audiences"),
        optional(RESPONSES, "no cap by today's batch sends"),
        run_date,
        base.sparkSession,
    )
    lunch = conf.get_path("features.lunch_hours", [11, 14])
    return Gold(
        customers=base,
        contacted_today=contacted,
        cross_sell_rules=rules,
        products=optional(PRODUCTS, "order lines must carry their basket.level item"),
        run_date=run_date,
        basket_level=level,
        lunch_hours=(int(lunch[0]), int(lunch[1])),
        holdout_salt=str(conf.get_path("marketing.holdout_salt", "custseg-holdout-v1")),
        max_offers_per_customer_per_day=RealtimeSettings.from_config(conf).max_offers_per_customer_per_day,
    )


def _contacted_today(audiences: DataFrame | None, responses: DataFrame | None, day: date, spark) -> DataFrame:
    """customer_key of everyone a batch campaign contacts on ``day`` (treatment only: the control was not)."""
    parts = []
    if audiences is not None:
        parts.append(
            audiences.where((F.col("snapshot_date") == F.lit(day)) & (F.col("group") == "treatment")).select(
                "customer_key"
            )
        )
    if responses is not None:
        parts.append(
            responses.where((F.to_date("sent_ts") == F.lit(day)) & (F.col("group") == "treatment")).select(
                "customer_key"
            )
        )
    if not parts:
        return spark.createDataFrame([], "customer_key string")
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out.where(F.col("customer_key").isNotNull()).distinct()


def offer_id() -> Column:
    """sha2(trigger|customer_key|trigger_key): the same firing gets the same id on every replay."""
    return F.sha2(
        F.concat_ws("|", F.col("trigger"), F.coalesce(F.col("customer_key"), F.lit("")), F.col("trigger_key")), 256
    )


def _per_trigger(triggers: Sequence[Trigger], value, otherwise: Column | None = None) -> Column:
    """CASE trigger WHEN id THEN value(t) ... (the triggers are few: a short expression)."""
    expr = None
    for t in triggers:
        v = value(t)
        v = v if isinstance(v, Column) else F.lit(v)
        cond = F.col("trigger") == F.lit(t.id)
        expr = F.when(cond, v) if expr is None else expr.when(cond, v)
    if expr is None:
        return otherwise if otherwise is not None else F.lit(None)
    return expr.otherwise(otherwise) if otherwise is not None else expr


def _offer_json(t: Trigger) -> Column:
    item = F.lit(t.offer.item) if t.offer.item else F.coalesce(F.col("sku"), F.col("category"))
    return F.to_json(
        F.struct(
            F.lit(t.offer.type).alias("type"),
            F.lit(float(t.offer.discount)).alias("discount"),
            item.alias("item"),
            F.lit(t.name or t.id).alias("name"),
        )
    )


def as_utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def decide(
    candidates: DataFrame,
    gold: Gold,
    earlier_offers: DataFrame | None,
    triggers: Sequence[Trigger],
    conf: Config | None,
    decided_at: datetime,
    query: str,
    batch_id: int,
) -> DataFrame:
    """CANDIDATE rows -> OFFER rows (``OFFER_COLUMNS``), one per new firing, with its decision.

    ``earlier_offers``: gold.realtime_offers as it was before this batch (None: empty); its rows
    of today count towards the caps and its offer ids are never decided again. ``conf`` may be
    None (the gold snapshot already holds the settings decisions need).
    """
    triggers = [t for t in triggers]
    known_ids = {t.id for t in triggers}
    at = F.lit(as_utc(decided_at)).cast("timestamp")
    today = F.to_date(at)
    cands = candidates.where(F.col("trigger").isin(list(known_ids))) if known_ids else candidates.limit(0)
    # One row per offer id (a firing reported twice in a batch), the earliest event kept.
    first = Window.partitionBy("offer_id").orderBy(F.col("event_ts").asc_nulls_last(), F.col("source_event_id"))
    cands = (
        cands.withColumn("offer_id", offer_id())
        .withColumn("_n", F.row_number().over(first))
        .where(F.col("_n") == 1)
        .drop("_n")
    )
    day_counts = None
    if earlier_offers is not None:
        cands = cands.join(earlier_offers.select("offer_id"), on="offer_id", how="left_anti")
        today_rows = earlier_offers.where(
            (F.col("decision_date") == today)
            & F.col("decision").isin(OFFERED, CONTROL)
            & F.col("customer_key").isNotNull()
        )
        day_counts = today_rows.groupBy("customer_key").agg(F.count(F.lit(1)).alias("_earlier_day"))
        per_trigger = today_rows.groupBy("customer_key", "trigger").agg(F.count(F.lit(1)).alias("_earlier_trigger"))
    # Only the batch's customers: a broadcast semi-join the optimiser pushes below the base's own
    # joins (features x segments x customers), so a micro-batch never shuffles the whole base.
    keys = cands.select("customer_key").where(F.col("customer_key").isNotNull()).distinct()
    base = gold.customers.join(F.broadcast(keys), on="customer_key", how="left_semi")
    base_cols = base.columns
    df = cands.join(base.withColumn("_known", F.lit(True)), on="customer_key", how="left").join(
        gold.contacted_today.select("customer_key", F.lit(True).alias("_batch_contact")), on="customer_key", how="left"
    )
    if day_counts is not None:
        df = df.join(day_counts, on="customer_key", how="left").join(
            per_trigger, on=["customer_key", "trigger"], how="left"
        )
    else:
        df = df.withColumn("_earlier_day", F.lit(0)).withColumn("_earlier_trigger", F.lit(0))
    by_key = "reach_by_key" in base_cols
    known = F.coalesce(F.col("_known"), F.lit(False)) & F.col("customer_key").isNotNull()
    eligible = _per_trigger(
        triggers,
        lambda t: (
            eligibility_expr(t.eligibility, base_cols, t.id)
            & (
                F.coalesce(F.col("propensity"), F.lit(0.0)) >= F.lit(t.min_propensity)
                if t.min_propensity > 0
                else F.lit(True)
            )
        ),
        F.lit(False),
    )
    channel = _per_trigger(triggers, lambda t: assigned_channel(t.channels, by_key))
    df = (
        df.withColumn("_known_ok", known)
        .withColumn("_eligible", known & F.coalesce(eligible, F.lit(False)))
        .withColumn("channel", F.when(F.col("_eligible"), channel))
        .withColumn("_priority", _per_trigger(triggers, lambda t: t.priority))
        .withColumn("_max_trigger", _per_trigger(triggers, lambda t: t.max_per_day))
    )
    contactable = F.col("_eligible") & F.col("channel").isNotNull()
    order = [F.col("_priority"), F.col("event_ts").asc_nulls_last(), F.col("offer_id")]
    # Trigger cap first (this trigger's offers today), then the customer's cap over the rest.
    w_trig = Window.partitionBy("customer_key", "trigger", "_contactable").orderBy(*order)
    df = df.withColumn("_contactable", contactable).withColumn(
        "_over_trigger",
        F.col("_contactable")
        & (F.coalesce(F.col("_earlier_trigger"), F.lit(0)) + F.row_number().over(w_trig) > F.col("_max_trigger")),
    )
    w_cust = Window.partitionBy("customer_key", "_contactable", "_over_trigger").orderBy(*order)
    over_day = F.coalesce(F.col("_earlier_day"), F.lit(0)) + F.row_number().over(w_cust) > F.lit(
        gold.max_offers_per_customer_per_day
    )
    capped = F.col("_contactable") & (
        F.coalesce(F.col("_batch_contact"), F.lit(False)) | F.col("_over_trigger") | over_day
    )
    share = _per_trigger(triggers, lambda t: float(t.holdout_share), F.lit(0.0))
    in_holdout = holdout_group(F.col("trigger"), share, gold.holdout_salt) == F.lit("control")
    df = df.withColumn("_capped", capped).withColumn("_holdout", F.when(F.col("_known_ok"), in_holdout))
    decision = (
        F.when(~F.col("_known_ok"), F.lit(UNKNOWN))
        .when(~F.col("_eligible"), F.lit(INELIGIBLE))
        .when(F.col("channel").isNull(), F.lit(NO_CONSENT))
        .when(F.col("_capped"), F.lit(CAPPED))
        .when(F.col("_holdout"), F.lit(CONTROL))
        .otherwise(F.lit(OFFERED))
    )
    expiry = _per_trigger(triggers, lambda t: t.expiry_minutes)
    sends = F.col("decision").isin(OFFERED, CONTROL)
    out = df.withColumn("decision", decision)
    return out.select(
        F.col("offer_id").cast("string"),
        F.col("customer_key").cast("string"),
        F.col("trigger").cast("string"),
        F.col("reason").cast("string"),
        F.col("trigger_key").cast("string"),
        F.col("event_ts").cast("timestamp"),
        at.alias("decided_at"),
        ((F.unix_micros(at) - F.unix_micros(F.col("event_ts").cast("timestamp"))) / F.lit(1e6)).alias("latency_s"),
        F.col("decision"),
        _per_trigger(triggers, _offer_json).alias("offer"),
        F.when(sends, F.col("channel")).cast("string").alias("channel"),
        F.when(sends, at + F.make_dt_interval(mins=expiry)).cast("timestamp").alias("expires_at"),
        F.col("segment_name").cast("string").alias("segment"),
        F.col("value_class").cast("string"),
        F.col("propensity").cast("double"),
        F.col("_holdout").cast("boolean").alias("holdout"),
        F.lit(query).cast("string").alias("query"),
        F.lit(int(batch_id)).cast("long").alias("batch_id"),
        today.alias("decision_date"),
    )
