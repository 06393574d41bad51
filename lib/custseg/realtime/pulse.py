"""Campaign pulse: running sends, opens, clicks and conversions per campaign, variant and segment,
updated each micro-batch, with a flag on a variant that converts significantly below its control.

``gold.campaign_pulse`` holds one row per campaign, segment (each segment and ``all``) and variant;
the control group is the variant ``control``. Each micro-batch adds its counts to the previous
state (``previous``: the table before the batch), so the work per batch is bounded by the batch
and the number of campaigns x variants x segments, never by the history.

What counts:
- batch campaign responses (silver.campaign_responses_rt rows; each response counted once, as the
  ingest query's cross-batch de-duplication guarantees): a treatment row with a send time is a
  send of its ``variant`` (``default`` without one), with its open, click and conversion; a control
  row is a member of the control, with its conversion;
- real-time offers of the batch: ``offered`` is a send of the trigger (its id is the campaign id,
  variant ``default``), ``control`` a member of its control; their responses, when they land with
  the trigger id as campaign id, add opens, clicks and conversions (their sends came with the offer).
- orders (optional): a real-time offer, and a control member of a trigger alike, converts with
  the customer's first completed order from the decision to the offer's expiry, so each trigger
  is measured against its control even where no response file comes back.

The test is the pooled two-proportion z-test of custseg.marketing.evaluate.two_proportion_test,
one-sided (is the variant's conversion rate below the control's?), in Spark columns; the
normal tail uses the Abramowitz-Stegun erfc approximation (absolute error below 1.5e-7).
``below_control`` is set when both groups have at least ``realtime.pulse.min_sends`` and the
one-sided p-value is below ``realtime.pulse.alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.config import Config
from custseg.realtime.decide import CONTROL, OFFERED, as_utc
from custseg.realtime.triggers import RealtimeSettings, load_triggers

ALL, CONTROL_VARIANT, DEFAULT_VARIANT, UNSEGMENTED = "all", "control", "default", "unsegmented"
COUNT_COLUMNS = ["sends", "opens", "clicks", "conversions"]
PULSE_SCHEMA = T.StructType(
    [
        T.StructField("campaign_id", T.StringType()),
        T.StructField("segment", T.StringType()),
        T.StructField("variant", T.StringType()),
        *[T.StructField(c, T.LongType()) for c in COUNT_COLUMNS],
        T.StructField("revenue", T.DoubleType()),
        T.StructField("open_rate", T.DoubleType()),
        T.StructField("click_rate", T.DoubleType()),
        T.StructField("conversion_rate", T.DoubleType()),
        T.StructField("control_sends", T.LongType()),
        T.StructField("control_conversions", T.LongType()),
        T.StructField("control_rate", T.DoubleType()),
        T.StructField("z", T.DoubleType()),
        T.StructField("p_value", T.DoubleType()),
        T.StructField("below_control", T.BooleanType()),
        T.StructField("updated_at", T.TimestampType()),
    ]
)
PULSE_COLUMNS = [f.name for f in PULSE_SCHEMA.fields]
KEYS = ["campaign_id", "segment", "variant"]


def _num(cols, name: str) -> Column:
    return F.col(name) if name in cols else F.lit(None)


def _response_counts(responses: DataFrame, segments: DataFrame | None, trigger_ids: Sequence[str]) -> DataFrame:
    cols = responses.columns
    # A real-time offer's send was counted with the offer; its response adds only what followed.
    offer_response = F.col("campaign_id").isin(list(trigger_ids)) if trigger_ids else F.lit(False)
    df = responses.where(F.col("campaign_id").isNotNull() & F.col("group").isin("treatment", "control"))
    if segments is not None:
        df = df.join(segments.select("customer_key", F.col("segment").alias("_segment")), on="customer_key", how="left")
    else:
        df = df.withColumn("_segment", F.lit(None).cast("string"))
    treated = F.col("group") == "treatment"
    variant = F.coalesce(_num(cols, "variant").cast("string"), F.lit(DEFAULT_VARIANT)) if "variant" in cols else None
    converted = F.coalesce(F.col("converted").cast("boolean"), F.lit(False)) if "converted" in cols else None
    converted = converted if converted is not None else _num(cols, "converted_ts").isNotNull()
    return df.select(
        "campaign_id",
        F.coalesce(F.col("_segment"), F.lit(UNSEGMENTED)).alias("segment"),
        F.when(treated, variant if variant is not None else F.lit(DEFAULT_VARIANT))
        .otherwise(F.lit(CONTROL_VARIANT))
        .alias("variant"),
        # a control member counts as one "send" (the group's size); a treated row only if it was sent
        F.when(offer_response, F.lit(False))
        .when(treated, _num(cols, "sent_ts").isNotNull())
        .otherwise(F.lit(True))
        .cast("long")
        .alias("sends"),
        (treated & _num(cols, "opened_ts").isNotNull()).cast("long").alias("opens"),
        (treated & _num(cols, "clicked_ts").isNotNull()).cast("long").alias("clicks"),
        converted.cast("long").alias("conversions"),
        F.when(converted, F.coalesce(_num(cols, "revenue").cast("double"), F.lit(0.0))).otherwise(0.0).alias("revenue"),
    )


def _offer_counts(offers: DataFrame) -> DataFrame:
    sent = offers.where(F.col("decision").isin(OFFERED, CONTROL))
    return sent.select(
        F.col("trigger").alias("campaign_id"),
        F.coalesce(F.col("segment"), F.lit(UNSEGMENTED)).alias("segment"),
        F.when(F.col("decision") == OFFERED, F.lit(DEFAULT_VARIANT)).otherwise(F.lit(CONTROL_VARIANT)).alias("variant"),
        F.lit(1).cast("long").alias("sends"),
        *[F.lit(0).cast("long").alias(c) for c in COUNT_COLUMNS[1:]],
        F.lit(0.0).alias("revenue"),
    )


def _offer_conversions(open_offers: DataFrame, orders: DataFrame, all_orders: DataFrame | None) -> DataFrame:
    """Conversions of real-time offers and their controls: the customer's first completed order
    from the decision to the expiry, counted in the micro-batch that brings that order.

    ``all_orders`` (the recent silver.orders_rt, this batch's included) tells whether an earlier
    order already converted the offer; without it only the batch's orders are looked at.
    """

    def completed(df: DataFrame) -> DataFrame:
        df = df.where(F.col("status").isNull() | (F.col("status") == "completed")) if "status" in df.columns else df
        revenue = F.col("net_revenue").cast("double") if "net_revenue" in df.columns else F.lit(0.0)
        return df.where(F.col("customer_key").isNotNull()).select(
            F.col("customer_key").alias("_ock"),
            F.col("order_id").cast("string").alias("_oid"),
            F.col("order_ts").cast("timestamp").alias("_ots"),
            revenue.alias("_rev"),
        )

    pool = completed(all_orders if all_orders is not None else orders)
    batch_ids = completed(orders).select(F.col("_oid").alias("_bid")).distinct()
    held = open_offers.where(F.col("decision").isin(OFFERED, CONTROL) & F.col("expires_at").isNotNull())
    in_window = (
        (F.col("_ock") == F.col("customer_key"))
        & (F.col("_ots") >= F.col("decided_at"))
        & (F.col("_ots") <= F.col("expires_at"))
    )
    first = (
        held.join(pool, on=in_window, how="inner")
        .groupBy("offer_id", "trigger", "segment", "decision")
        .agg(F.min(F.struct("_ots", "_oid", "_rev")).alias("_first"))
    )
    new = first.join(batch_ids, on=F.col("_first._oid") == F.col("_bid"), how="left_semi")
    return new.select(
        F.col("trigger").alias("campaign_id"),
        F.coalesce(F.col("segment"), F.lit(UNSEGMENTED)).alias("segment"),
        F.when(F.col("decision") == OFFERED, F.lit(DEFAULT_VARIANT)).otherwise(F.lit(CONTROL_VARIANT)).alias("variant"),
        F.lit(0).cast("long").alias("sends"),
        F.lit(0).cast("long").alias("opens"),
        F.lit(0).cast("long").alias("clicks"),
        F.lit(1).cast("long").alias("conversions"),
        F.coalesce(F.col("_first._rev"), F.lit(0.0)).alias("revenue"),
    )


def _with_all(counts: DataFrame) -> DataFrame:
    """Per segment and, as segment ``all``, over every segment."""
    per_segment = counts.groupBy(*KEYS).agg(*[F.sum(c).alias(c) for c in [*COUNT_COLUMNS, "revenue"]])
    overall = (
        counts.groupBy("campaign_id", "variant")
        .agg(*[F.sum(c).alias(c) for c in [*COUNT_COLUMNS, "revenue"]])
        .withColumn("segment", F.lit(ALL))
    )
    return per_segment.unionByName(overall)


def normal_cdf(z: Column) -> Column:
    """P(Z <= z) for a standard normal, from the Abramowitz-Stegun 7.1.26 erfc (|error| < 1.5e-7)."""
    x = F.abs(z) / F.lit(math.sqrt(2.0))
    t = F.lit(1.0) / (F.lit(1.0) + F.lit(0.3275911) * x)
    poly = t * (
        F.lit(0.254829592)
        + t * (F.lit(-0.284496736) + t * (F.lit(1.421413741) + t * (F.lit(-1.453152027) + t * F.lit(1.061405429))))
    )
    tail = F.lit(0.5) * poly * F.exp(-x * x)  # P(Z > |z|)
    return F.when(z < 0, tail).otherwise(F.lit(1.0) - tail)


def pulse(
    responses: DataFrame | None,
    offers: DataFrame | None,
    previous: DataFrame | None,
    conf: Config | None,
    segments: DataFrame | None = None,
    updated_at: datetime | None = None,
    trigger_ids: Sequence[str] | None = None,
    orders: DataFrame | None = None,
    open_offers: DataFrame | None = None,
    all_orders: DataFrame | None = None,
) -> DataFrame:
    """The new state of gold.campaign_pulse (``PULSE_COLUMNS``): ``previous`` plus this batch.

    ``responses``: the batch's campaign responses (campaign_id, customer_key, group, sent_ts,
    opened_ts, clicked_ts, converted / converted_ts, revenue[, variant]); ``offers``: the batch's
    OFFER rows; ``segments``: customer_key, segment (e.g. gold.customer_segments' segment_name) for
    the responses' segment; any may be None. ``trigger_ids`` (default: the triggers of ``conf``)
    are the campaign ids of real-time offers. ``orders`` (the batch's order headers: order_id,
    customer_key, order_ts, status, net_revenue) with ``open_offers`` (gold.realtime_offers rows
    that may still convert, e.g. of the last days, this batch's included) add the conversions of
    real-time offers and of their control members (``_offer_conversions``); ``all_orders``: the
    recent orders, so that only an offer's first order converts it.
    """
    settings = RealtimeSettings.from_config(conf) if conf is not None else RealtimeSettings()
    if trigger_ids is None:
        trigger_ids = [t.id for t in load_triggers(conf)] if conf is not None else []
    parts = []
    if responses is not None:
        parts.append(_response_counts(responses, segments, trigger_ids))
    if offers is not None:
        parts.append(_offer_counts(offers))
    if orders is not None and open_offers is not None:
        parts.append(_offer_conversions(open_offers, orders, all_orders))
    increment = None
    for p in parts:
        increment = p if increment is None else increment.unionByName(p)
    totals = _with_all(increment) if increment is not None else None
    if previous is not None:
        prev = previous.select(*KEYS, *[F.col(c).cast("long") for c in COUNT_COLUMNS], F.col("revenue").cast("double"))
        totals = prev if totals is None else prev.unionByName(totals)
    if totals is None:
        raise ValueError("pulse needs responses, offers or a previous state")
    summed = totals.groupBy(*KEYS).agg(
        *[F.sum(c).cast("long").alias(c) for c in COUNT_COLUMNS], F.sum("revenue").cast("double").alias("revenue")
    )
    control = summed.where(F.col("variant") == CONTROL_VARIANT).select(
        F.col("campaign_id").alias("_cid"),
        F.col("segment").alias("_seg"),
        F.col("sends").alias("control_sends"),
        F.col("conversions").alias("control_conversions"),
    )
    joined = summed.join(
        control, on=(F.col("campaign_id") == F.col("_cid")) & (F.col("segment") == F.col("_seg")), how="left"
    )
    rate = lambda x, n: F.when(F.col(n) > 0, F.col(x) / F.col(n))  # noqa: E731
    n_t, n_c = F.col("sends"), F.col("control_sends")
    pooled = (F.col("conversions") + F.col("control_conversions")) / (n_t + n_c)
    se0 = F.sqrt(pooled * (F.lit(1.0) - pooled) * (F.lit(1.0) / n_t + F.lit(1.0) / n_c))
    tested = (F.col("variant") != CONTROL_VARIANT) & (n_t > 0) & (F.coalesce(n_c, F.lit(0)) > 0)
    z = F.when(tested & (se0 > 0), (rate("conversions", "sends") - rate("control_conversions", "control_sends")) / se0)
    enough = (n_t >= settings.pulse_min_sends) & (n_c >= settings.pulse_min_sends)
    at = F.lit(as_utc(updated_at)).cast("timestamp") if updated_at is not None else F.current_timestamp()
    out = joined.withColumn("z", z).withColumn("p_value", normal_cdf(F.col("z")))
    return out.select(
        "campaign_id",
        "segment",
        "variant",
        *COUNT_COLUMNS,
        "revenue",
        rate("opens", "sends").alias("open_rate"),
        rate("clicks", "sends").alias("click_rate"),
        rate("conversions", "sends").alias("conversion_rate"),
        F.when(F.col("variant") != CONTROL_VARIANT, n_c).cast("long").alias("control_sends"),
        F.when(F.col("variant") != CONTROL_VARIANT, F.col("control_conversions"))
        .cast("long")
        .alias("control_conversions"),
        F.when(F.col("variant") != CONTROL_VARIANT, rate("control_conversions", "control_sends")).alias("control_rate"),
        F.col("z"),
        F.col("p_value"),
        F.coalesce(enough & (F.col("p_value") < F.lit(settings.pulse_alpha)), F.lit(False)).alias("below_control"),
        at.alias("updated_at"),
    )
