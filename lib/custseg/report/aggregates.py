"""Bounded aggregates behind the report: every function here is ``DataFrame -> DataFrame``.

Each output has a size bounded by the model, not by the number of customers (sources x
reasons, bins x bins, segments x features, segments x segments, top-N rules), so the
report may bring it to the driver. Customer-grain tables are only ever aggregated here,
in Spark.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

Transform = Callable[[DataFrame], DataFrame]

NEW_LABEL = "(new)"
LEFT_LABEL = "(left)"
ALL_LABEL = "All customers"
NO_SEGMENT = "(no segment)"


def for_snapshot(as_of: date) -> Transform:
    """Rows of one snapshot; a table without ``snapshot_date`` is taken whole."""

    def transform(df: DataFrame) -> DataFrame:
        if "snapshot_date" not in df.columns:
            return df
        return df.where(F.col("snapshot_date") == F.lit(as_of))

    return transform


def segment_label(df: DataFrame) -> Column:
    """A segment's display label: its name when the table has one, else its id."""
    if "segment_name" in df.columns:
        return F.coalesce(F.col("segment_name").cast("string"), F.col("segment_id").cast("string"))
    return F.col("segment_id").cast("string")


def as_text(df: DataFrame, name: str) -> Column:
    """An item-set column as text: arrays sorted and joined with ", ", anything else cast."""
    dtype = df.schema[name].dataType
    if isinstance(dtype, T.ArrayType):
        return F.array_join(F.array_sort(F.col(name).cast("array<string>")), ", ")
    return F.col(name).cast("string")


# --- ingestion ---------------------------------------------------------------------


def records_by_source(batch_date: date) -> Transform:
    """meta.reconciliation -> per source: read, accepted, quarantined and reject rate of one batch."""

    def transform(recon: DataFrame) -> DataFrame:
        sums = (
            recon.where(F.col("batch_date") == F.lit(batch_date))
            .groupBy("source")
            .agg(
                F.sum("records_read").alias("records_read"),
                F.sum("records_accepted").alias("records_accepted"),
                F.sum("records_quarantined").alias("records_quarantined"),
            )
        )
        return sums.select(
            F.col("source").cast("string").alias("source"),
            F.col("records_read").cast("long").alias("records_read"),
            F.col("records_accepted").cast("long").alias("records_accepted"),
            F.col("records_quarantined").cast("long").alias("records_quarantined"),
            F.when(F.col("records_read") > 0, F.col("records_quarantined") / F.col("records_read"))
            .otherwise(F.lit(0.0))
            .cast("double")
            .alias("reject_rate"),
        )

    return transform


def quarantine_by_reason(batch_date: date) -> Transform:
    """bronze.quarantine -> records per (source, first reason) of one batch; they sum to quarantined."""

    def transform(quarantine: DataFrame) -> DataFrame:
        return (
            quarantine.where(F.col("_batch_date") == F.lit(batch_date))
            .groupBy(
                F.col("source").cast("string").alias("source"),
                F.coalesce(F.col("reason"), F.lit("unknown")).alias("reason"),
            )
            .agg(F.count(F.lit(1)).alias("records"))
            .select("source", "reason", F.col("records").cast("long").alias("records"))
        )

    return transform


# --- RFM -----------------------------------------------------------------------------


def rf_grid(features: DataFrame) -> DataFrame:
    """customer_features of one snapshot -> customers and revenue per (r_score, f_score) cell."""
    return (
        features.groupBy("r_score", "f_score")
        .agg(F.count(F.lit(1)).alias("customers"), F.sum("monetary").alias("monetary"))
        .select(
            F.col("r_score").cast("int").alias("r_score"),
            F.col("f_score").cast("int").alias("f_score"),
            F.col("customers").cast("long").alias("customers"),
            F.coalesce(F.col("monetary"), F.lit(0)).cast("double").alias("monetary"),
        )
    )


def rfm_segment_sizes(features: DataFrame) -> DataFrame:
    """customer_features of one snapshot -> customers per named RFM segment."""
    return (
        features.groupBy(F.coalesce(F.col("rfm_segment"), F.lit("Other")).alias("rfm_segment"))
        .agg(F.count(F.lit(1)).alias("customers"))
        .select("rfm_segment", F.col("customers").cast("long").alias("customers"))
    )


# --- segments ------------------------------------------------------------------------


def segment_summary(features: DataFrame | None) -> Transform:
    """customer_segments -> size, customer share, revenue and revenue share per segment.

    Revenue is the customers' ``monetary`` from ``features`` (same snapshot); without
    features it is null.
    """

    def transform(segments: DataFrame) -> DataFrame:
        seg = segments.select(
            "customer_key",
            F.col("segment_id").cast("string").alias("segment_id"),
            segment_label(segments).alias("segment_name"),
        )
        if features is not None and "monetary" in features.columns:
            money = features.select("customer_key", F.col("monetary").cast("double").alias("monetary"))
            seg = seg.join(money, on="customer_key", how="left")
        else:
            seg = seg.withColumn("monetary", F.lit(None).cast("double"))
        per = seg.groupBy("segment_id", "segment_name").agg(
            F.count(F.lit(1)).alias("customers"), F.sum("monetary").alias("revenue")
        )
        totals = per.agg(F.sum("customers").alias("_all_customers"), F.sum("revenue").alias("_all_revenue"))
        return per.crossJoin(totals).select(
            "segment_id",
            "segment_name",
            F.col("customers").cast("long").alias("customers"),
            (F.col("customers") / F.col("_all_customers")).cast("double").alias("customer_share"),
            F.col("revenue").cast("double").alias("revenue"),
            F.when(F.col("_all_revenue") != 0, F.col("revenue") / F.col("_all_revenue"))
            .cast("double")
            .alias("revenue_share"),
        )

    return transform


def segment_centres(features: DataFrame, columns: Sequence[str]) -> Transform:
    """customer_segments -> per segment and feature: the mean and its z against all segmented customers.

    z = (segment mean - overall mean) / overall standard deviation, so features in days,
    counts and money share one axis.
    """
    cols = list(columns)

    def transform(segments: DataFrame) -> DataFrame:
        seg = segments.select(
            "customer_key",
            F.col("segment_id").cast("string").alias("segment_id"),
            segment_label(segments).alias("segment_name"),
        )
        joined = seg.join(
            features.select("customer_key", *[F.col(c).cast("double").alias(c) for c in cols]),
            on="customer_key",
            how="inner",
        )
        means = joined.groupBy("segment_id", "segment_name").agg(
            *[F.avg(c).alias(f"m_{i}") for i, c in enumerate(cols)]
        )
        overall = joined.agg(
            *[F.avg(c).alias(f"a_{i}") for i, c in enumerate(cols)],
            *[F.stddev_pop(c).alias(f"s_{i}") for i, c in enumerate(cols)],
        )
        rows = F.array(
            *[
                F.struct(
                    F.lit(c).alias("feature"),
                    F.col(f"m_{i}").alias("mean"),
                    F.when(F.col(f"s_{i}") > 0, (F.col(f"m_{i}") - F.col(f"a_{i}")) / F.col(f"s_{i}"))
                    .otherwise(F.lit(0.0))
                    .alias("z"),
                )
                for i, c in enumerate(cols)
            ]
        )
        long = means.crossJoin(overall).select("segment_id", "segment_name", F.explode(rows).alias("c"))
        return long.select(
            "segment_id",
            "segment_name",
            F.col("c.feature").alias("feature"),
            F.col("c.mean").cast("double").alias("mean"),
            F.col("c.z").cast("double").alias("z"),
        )

    return transform


def profile_summary(profiles: DataFrame) -> DataFrame:
    """segment_profiles of one snapshot -> the columns of ``segment_summary`` (the segment stage's own figures)."""
    return profiles.select(
        F.col("segment_id").cast("string").alias("segment_id"),
        segment_label(profiles).alias("segment_name"),
        F.col("customers").cast("long").alias("customers"),
        F.col("customer_share").cast("double").alias("customer_share"),
        F.col("revenue").cast("double").alias("revenue"),
        F.col("revenue_share").cast("double").alias("revenue_share"),
    )


def profile_centres(profiles: DataFrame) -> DataFrame:
    """segment_profiles of one snapshot (``centre``, ``centre_z`` maps) -> segment, feature, mean, z.

    These are the model's own centres: the features it clustered on, z in its scaled space.
    """
    z = profiles.select(
        F.col("segment_id").cast("string").alias("segment_id"),
        segment_label(profiles).alias("segment_name"),
        F.explode("centre_z").alias("feature", "z"),
    )
    means = profiles.select(
        F.col("segment_id").cast("string").alias("segment_id"),
        F.explode("centre").alias("feature", "mean"),
    )
    return z.join(means, on=["segment_id", "feature"], how="left").select(
        "segment_id",
        "segment_name",
        F.col("feature").cast("string").alias("feature"),
        F.col("mean").cast("double").alias("mean"),
        F.col("z").cast("double").alias("z"),
    )


def migration_matrix(previous: DataFrame) -> Transform:
    """customer_segments (current snapshot) -> customers per (from, to) segment since ``previous``.

    A full outer join on customer_key, so customers who appear are counted from "(new)"
    and customers who disappear to "(left)".
    """

    def transform(current: DataFrame) -> DataFrame:
        prev = previous.select("customer_key", segment_label(previous).alias("from_segment"))
        cur = current.select("customer_key", segment_label(current).alias("to_segment"))
        both = prev.join(cur, on="customer_key", how="full")
        return (
            both.groupBy(
                F.coalesce(F.col("from_segment"), F.lit(NEW_LABEL)).alias("from_segment"),
                F.coalesce(F.col("to_segment"), F.lit(LEFT_LABEL)).alias("to_segment"),
            )
            .agg(F.count(F.lit(1)).alias("customers"))
            .select("from_segment", "to_segment", F.col("customers").cast("long").alias("customers"))
        )

    return transform


# --- basket --------------------------------------------------------------------------


def top_rules(n: int) -> Transform:
    """association_rules -> the ``n`` rules of highest lift (then confidence), items as text."""

    def transform(rules: DataFrame) -> DataFrame:
        return (
            rules.select(
                as_text(rules, "antecedent").alias("antecedent"),
                as_text(rules, "consequent").alias("consequent"),
                F.col("support").cast("double").alias("support"),
                F.col("confidence").cast("double").alias("confidence"),
                F.col("lift").cast("double").alias("lift"),
            )
            .orderBy(
                F.col("lift").desc_nulls_last(),
                F.col("confidence").desc_nulls_last(),
                "antecedent",
                "consequent",
            )
            .limit(n)
        )

    return transform


def cross_sell_coverage(cross_sell: DataFrame) -> Transform:
    """customers (customer_key[, segment]) -> per segment and overall: customers, with an offer, coverage.

    Without a ``segment`` column only the overall row is produced; customers with a null
    segment are counted under "(no segment)".
    """

    def transform(customers: DataFrame) -> DataFrame:
        offered = cross_sell.select("customer_key").distinct().select("customer_key", F.lit(1).alias("_offer"))
        by_segment = "segment" in customers.columns
        seg = F.coalesce(F.col("segment").cast("string"), F.lit(NO_SEGMENT)) if by_segment else F.lit(ALL_LABEL)
        base = customers.select("customer_key", seg.alias("segment")).join(offered, on="customer_key", how="left")
        has_offer = F.when(F.col("_offer").isNotNull(), 1).otherwise(0)
        per = base.groupBy("segment").agg(F.count(F.lit(1)).alias("customers"), F.sum(has_offer).alias("with_offer"))
        if by_segment:
            overall = base.agg(F.count(F.lit(1)).alias("customers"), F.sum(has_offer).alias("with_offer"))
            per = per.unionByName(overall.select(F.lit(ALL_LABEL).alias("segment"), "customers", "with_offer"))
        return per.select(
            "segment",
            F.col("customers").cast("long").alias("customers"),
            F.coalesce(F.col("with_offer"), F.lit(0)).cast("long").alias("with_offer"),
            F.when(
                F.col("customers") > 0,
                F.coalesce(F.col("with_offer"), F.lit(0)) / F.col("customers"),
            )
            .otherwise(F.lit(0.0))
            .cast("double")
            .alias("coverage"),
        )

    return transform


def top_offered_items(item_col: str, n: int) -> Transform:
    """cross_sell -> the ``n`` items offered to the most customers."""

    def transform(cross_sell: DataFrame) -> DataFrame:
        return (
            cross_sell.select("customer_key", as_text(cross_sell, item_col).alias("item"))
            .groupBy("item")
            .agg(F.count_distinct("customer_key").alias("customers"))
            .select("item", F.col("customers").cast("long").alias("customers"))
            .orderBy(F.col("customers").desc(), "item")
            .limit(n)
        )

    return transform


# --- campaigns -----------------------------------------------------------------------


def lift_interval(z: float = 1.959963984540054) -> Transform:
    """Counts -> response rates, absolute lift and its Wald interval (unpooled standard error).

    Input columns: ``n_treatment``, ``responses_treatment``, ``n_control``, ``responses_control``.
    Used when campaign_results carries counts but no interval of its own.
    """

    def transform(df: DataFrame) -> DataFrame:
        pt = F.col("responses_treatment") / F.col("n_treatment")
        pc = F.col("responses_control") / F.col("n_control")
        se = F.sqrt(pt * (1 - pt) / F.col("n_treatment") + pc * (1 - pc) / F.col("n_control"))
        valid = (F.col("n_treatment") > 0) & (F.col("n_control") > 0)
        keep = [
            c for c in df.columns if c not in ("n_treatment", "responses_treatment", "n_control", "responses_control")
        ]
        return df.select(
            *keep,
            F.col("n_treatment").cast("long").alias("n_treatment"),
            F.col("n_control").cast("long").alias("n_control"),
            F.when(valid, pt).cast("double").alias("treatment_rate"),
            F.when(valid, pc).cast("double").alias("control_rate"),
            F.when(valid, pt - pc).cast("double").alias("lift_abs"),
            F.when(valid, pt - pc - F.lit(z) * se).cast("double").alias("ci_low"),
            F.when(valid, pt - pc + F.lit(z) * se).cast("double").alias("ci_high"),
        )

    return transform
