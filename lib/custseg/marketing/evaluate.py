"""Measured lift: treatment against control, per campaign and per segment, with a significance test.

Spark aggregates the responses into counts and revenue sums per (campaign[, segment],
group): a table whose size is campaigns x segments x 2, whatever the number of
customers. The statistics are then computed on the driver with scipy:
- rates p_t = x_t / n_t and p_c = x_c / n_c; absolute lift p_t - p_c, relative lift (p_t - p_c) / p_c;
- a Wald interval for the absolute lift, p_t - p_c +- z * sqrt(p_t(1-p_t)/n_t + p_c(1-p_c)/n_c),
  and a log (Katz) interval for the relative lift;
- the two-proportion z-test with the pooled rate, two-sided p-value;
- incremental conversions (p_t - p_c) x n_t, incremental revenue
  (revenue_t / n_t - revenue_c / n_c) x n_t, cost n_t x cost per contact, incremental
  margin = incremental revenue x margin rate, incremental profit = margin - cost, ROI = profit / cost.
Beside the incremental figures, the gross ones as the textbook reads table 9.1:
revenue_per_cost = revenue of the contacted / cost (99,540 / 100,000 = 0.995) and
profit = revenue - cost. With designed arms (custseg.marketing.arms) level 'arm' gives one row
per contacted arm, its lift measured against the arm's own control, its cost at the arm's own
cost per contact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy import stats

COUNT_COLUMNS = [
    "campaign_id",
    "segment",
    "n_treatment",
    "n_control",
    "conversions_treatment",
    "conversions_control",
    "revenue_treatment",
    "revenue_control",
    "first_sent",
    "last_sent",
]
RESULTS_SCHEMA = T.StructType(
    [
        T.StructField("campaign_id", T.StringType(), False),
        T.StructField("level", T.StringType(), False),  # campaign | segment
        T.StructField("segment", T.StringType(), True),
        T.StructField("n_treatment", T.LongType(), False),
        T.StructField("n_control", T.LongType(), False),
        T.StructField("conversions_treatment", T.LongType(), False),
        T.StructField("conversions_control", T.LongType(), False),
        T.StructField("rate_treatment", T.DoubleType(), True),
        T.StructField("rate_control", T.DoubleType(), True),
        T.StructField("lift_abs", T.DoubleType(), True),
        T.StructField("lift_abs_ci_low", T.DoubleType(), True),
        T.StructField("lift_abs_ci_high", T.DoubleType(), True),
        T.StructField("lift_rel", T.DoubleType(), True),
        T.StructField("lift_rel_ci_low", T.DoubleType(), True),
        T.StructField("lift_rel_ci_high", T.DoubleType(), True),
        T.StructField("z", T.DoubleType(), True),
        T.StructField("p_value", T.DoubleType(), True),
        T.StructField("significant", T.BooleanType(), True),
        T.StructField("confidence", T.DoubleType(), False),
        T.StructField("revenue_treatment", T.DoubleType(), False),
        T.StructField("revenue_control", T.DoubleType(), False),
        T.StructField("incremental_conversions", T.DoubleType(), True),
        T.StructField("incremental_revenue", T.DoubleType(), True),
        T.StructField("cost", T.DoubleType(), False),
        T.StructField("incremental_margin", T.DoubleType(), True),
        T.StructField("incremental_profit", T.DoubleType(), True),
        T.StructField("roi", T.DoubleType(), True),
        T.StructField("first_sent", T.DateType(), True),
        T.StructField("last_sent", T.DateType(), True),
        T.StructField("outcome_complete", T.BooleanType(), False),
        T.StructField("arm", T.StringType(), True),  # level 'arm': precise | blanket
        T.StructField("revenue_per_cost", T.DoubleType(), True),
        T.StructField("profit", T.DoubleType(), True),
    ]
)


@dataclass(frozen=True)
class LiftTest:
    rate_treatment: float | None
    rate_control: float | None
    lift_abs: float | None
    ci_low: float | None
    ci_high: float | None
    lift_rel: float | None
    rel_ci_low: float | None
    rel_ci_high: float | None
    z: float | None
    p_value: float | None


def two_proportion_test(x_t: int, n_t: int, x_c: int, n_c: int, confidence: float = 0.95) -> LiftTest:
    """Lift of treatment over control with a Wald CI and the pooled two-proportion z-test.

    Undefined pieces are None: no rate without a group, no test when both rates are 0 or 1,
    no relative lift when the control rate is 0.
    """
    if n_t <= 0 or n_c <= 0:
        p_t = x_t / n_t if n_t > 0 else None
        p_c = x_c / n_c if n_c > 0 else None
        return LiftTest(p_t, p_c, None, None, None, None, None, None, None, None)
    p_t, p_c = x_t / n_t, x_c / n_c
    diff = p_t - p_c
    zq = float(stats.norm.ppf(0.5 + confidence / 2))
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    ci_low, ci_high = diff - zq * se, diff + zq * se
    pooled = (x_t + x_c) / (n_t + n_c)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    if se0 > 0:
        z = diff / se0
        p_value = float(2 * stats.norm.sf(abs(z)))
    else:
        z = p_value = None
    rel = rel_low = rel_high = None
    if p_c > 0:
        rel = diff / p_c
        if x_t > 0 and x_c > 0:
            se_log = math.sqrt((1 - p_t) / x_t + (1 - p_c) / x_c)
            log_rr = math.log(p_t / p_c)
            rel_low, rel_high = math.exp(log_rr - zq * se_log) - 1, math.exp(log_rr + zq * se_log) - 1
    return LiftTest(p_t, p_c, diff, ci_low, ci_high, rel, rel_low, rel_high, z, p_value)


def known_by(as_of: date):
    """Responses as they were known at the end of ``as_of``: later sends dropped, later conversions not yet counted.

    A rerun for an old date then gives the same results even after newer responses landed.
    """

    def transform(responses: DataFrame) -> DataFrame:
        late = F.to_date("converted_ts") > F.lit(as_of)
        converted = F.coalesce(F.col("converted"), F.lit(False)) & ~F.coalesce(late, F.lit(False))
        return responses.where(F.to_date("sent_ts") <= F.lit(as_of)).select(
            "campaign_id",
            "customer_key",
            "channel",
            "group",
            "sent_ts",
            "opened_ts",
            "clicked_ts",
            F.when(converted, F.col("converted_ts")).alias("converted_ts"),
            converted.alias("converted"),
            F.when(converted, F.col("revenue"))
            .otherwise(F.lit(0).cast(responses.schema["revenue"].dataType))
            .alias("revenue"),
        )

    return transform


def response_counts(segment_col: str | None = None):
    """campaign_responses (+ a segment column) -> ``COUNT_COLUMNS`` per campaign (and segment).

    One row per campaign and customer first (a customer messaged twice by one campaign
    counts once, converted if any send converted); then sums per group. With a ``contact_cost``
    column (the cost per contact of each row's arm) the output adds ``cost_treatment``, the
    treated customers' cost.
    """

    def transform(responses: DataFrame) -> DataFrame:
        has_cost = "contact_cost" in responses.columns
        seg = F.col(segment_col).cast("string") if segment_col else F.lit(None).cast("string")
        per_customer = (
            responses.where(F.col("customer_key").isNotNull() & F.col("group").isin("treatment", "control"))
            .withColumn("segment", seg)
            .groupBy("campaign_id", "segment", "customer_key", "group")
            .agg(
                F.max(F.coalesce(F.col("converted"), F.lit(False)).cast("int")).alias("conv"),
                F.sum(F.coalesce(F.col("revenue").cast("double"), F.lit(0.0))).alias("rev"),
                F.min(F.to_date("sent_ts")).alias("sent"),
                *([F.max(F.col("contact_cost").cast("double")).alias("cc")] if has_cost else []),
            )
        )
        treat = F.col("group") == "treatment"
        return (
            per_customer.groupBy("campaign_id", "segment")
            .agg(
                F.sum(F.when(treat, 1).otherwise(0)).cast("long").alias("n_treatment"),
                F.sum(F.when(~treat, 1).otherwise(0)).cast("long").alias("n_control"),
                F.sum(F.when(treat, F.col("conv")).otherwise(0)).cast("long").alias("conversions_treatment"),
                F.sum(F.when(~treat, F.col("conv")).otherwise(0)).cast("long").alias("conversions_control"),
                F.sum(F.when(treat, F.col("rev")).otherwise(0.0)).alias("revenue_treatment"),
                F.sum(F.when(~treat, F.col("rev")).otherwise(0.0)).alias("revenue_control"),
                F.min("sent").alias("first_sent"),
                F.max("sent").alias("last_sent"),
                *([F.sum(F.when(treat, F.col("cc")).otherwise(0.0)).alias("cost_treatment")] if has_cost else []),
            )
            .select(*COUNT_COLUMNS, *(["cost_treatment"] if has_cost else []))
        )

    return transform


def lift_row(
    counts: Mapping,
    level: str,
    cost_per_contact: float,
    margin_rate: float,
    confidence: float,
    complete: bool,
) -> tuple:
    """One ``RESULTS_SCHEMA`` row from one row of ``response_counts``.

    The cost is the row's ``cost_treatment`` where the counts carry it (arms at their own cost per
    contact), else treated contacts x ``cost_per_contact``. At level 'arm' the counts' segment
    column holds the arm.
    """
    n_t, n_c = int(counts["n_treatment"]), int(counts["n_control"])
    x_t, x_c = int(counts["conversions_treatment"]), int(counts["conversions_control"])
    rev_t, rev_c = float(counts["revenue_treatment"] or 0.0), float(counts["revenue_control"] or 0.0)
    t = two_proportion_test(x_t, n_t, x_c, n_c, confidence)
    cost = counts.get("cost_treatment")
    cost = float(cost) if cost is not None else n_t * cost_per_contact
    inc_conv = inc_rev = inc_margin = inc_profit = roi = None
    if n_t > 0 and n_c > 0:
        inc_conv = t.lift_abs * n_t
        inc_rev = (rev_t / n_t - rev_c / n_c) * n_t
        inc_margin = inc_rev * margin_rate
        inc_profit = inc_margin - cost
        roi = inc_profit / cost if cost > 0 else None
    significant = None if t.p_value is None else t.p_value < 1 - confidence
    arm = counts["segment"] if level == "arm" else None
    return (
        counts["campaign_id"],
        level,
        None if level == "arm" else counts["segment"],
        n_t,
        n_c,
        x_t,
        x_c,
        t.rate_treatment,
        t.rate_control,
        t.lift_abs,
        t.ci_low,
        t.ci_high,
        t.lift_rel,
        t.rel_ci_low,
        t.rel_ci_high,
        t.z,
        t.p_value,
        significant,
        float(confidence),
        rev_t,
        rev_c,
        inc_conv,
        inc_rev,
        float(cost),
        inc_margin,
        inc_profit,
        roi,
        counts["first_sent"],
        counts["last_sent"],
        bool(complete),
        arm,
        rev_t / cost if cost > 0 else None,
        rev_t - cost,
    )


@dataclass(frozen=True)
class EvaluationParams:
    confidence: float = 0.95
    margin_rate: float = 0.3
    default_cost_per_contact: float = 0.1
    attribution_days: int = 14


def campaign_results(
    spark: SparkSession,
    responses: DataFrame,
    as_of: date,
    params: EvaluationParams,
    costs: Mapping[str, tuple[float, float]] | None = None,
    segment_col: str | None = None,
    arm_costs: Mapping[tuple[str, str], float] | None = None,
) -> DataFrame:
    """``RESULTS_SCHEMA`` rows per campaign (level 'campaign'), with ``segment_col`` per segment,
    and, where responses carry an ``arm`` (``arms.with_arm``), per arm (level 'arm').

    ``responses`` are ``silver.campaign_responses`` sent up to ``as_of`` (joined to the
    segment column when given); ``costs`` maps a campaign id to (cost per contact,
    margin rate) for the campaigns the config knows, others use the defaults;
    ``arm_costs`` maps (campaign id, arm) to the arm's cost per contact (``arms.arm_costs``):
    with it every level costs each treated customer at their arm's price.
    """
    costs = costs or {}
    sent = responses.where(F.to_date("sent_ts") <= F.lit(as_of))
    levels: list[tuple[str, str | None]] = [("campaign", None)]
    if segment_col:
        levels.append(("segment", segment_col))
    if "arm" in sent.columns:
        sent = sent.withColumn("contact_cost", _contact_cost(arm_costs or {}, costs, params.default_cost_per_contact))
        levels.append(("arm", "arm"))
    rows = []
    horizon = as_of - timedelta(days=params.attribution_days)
    for level, col in levels:
        # Bounded: campaigns x segments rows reach the driver.
        for r in sent.transform(response_counts(col)).collect():
            if level == "arm" and r["segment"] is None:
                continue  # responses to no planned arm: counted at the campaign level only
            cost, margin_rate = costs.get(r["campaign_id"], (params.default_cost_per_contact, params.margin_rate))
            complete = r["last_sent"] is not None and r["last_sent"] <= horizon
            rows.append(lift_row(r.asDict(), level, cost, margin_rate, params.confidence, complete))
    return spark.createDataFrame(rows, RESULTS_SCHEMA)


def _contact_cost(arm_costs: Mapping[tuple[str, str], float], costs: Mapping[str, tuple[float, float]], default: float):
    """Each response's cost per contact: its arm's, else its campaign's, else the default (a small literal map)."""
    by_arm = [x for (cid, arm), v in arm_costs.items() for x in (F.lit(f"{cid}|{arm}"), F.lit(float(v)))]
    by_campaign = [x for cid, (v, _) in costs.items() for x in (F.lit(cid), F.lit(float(v)))]
    arm_cost = F.create_map(*by_arm)[F.concat_ws("|", "campaign_id", "arm")] if by_arm else F.lit(None)
    campaign_cost = F.create_map(*by_campaign)[F.col("campaign_id")] if by_campaign else F.lit(None)
    return F.coalesce(arm_cost.cast("double"), campaign_cost.cast("double"), F.lit(float(default)))


def results_columns() -> Sequence[str]:
    return [f.name for f in RESULTS_SCHEMA.fields]
