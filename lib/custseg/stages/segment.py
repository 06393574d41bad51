"""Stage ``segment``: gold.customer_features -> customer_segments, segment_profiles,
segment_quality and segment_migration for the snapshot date (and, with
``segment.comparison.enabled`` or ``segment.algorithm: auto``, segmentation_comparison).

Clusters the snapshot's customers (k chosen from the data unless ``segment.k`` is set),
keeps segment ids stable against the latest earlier snapshot in segment_profiles, names
the segments, and scores them. Every table is partitioned by snapshot_date and replaced
for this date only, so a rerun leaves the same tables (the seeds are fixed and the
previous snapshot is always the latest one strictly before the run date).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.features.settings import FeatureSettings
from custseg.segment.comparison import (
    COMPARISON_SCHEMA,
    RFM_COLUMNS,
    clustering_candidate,
    compare_segmentations,
    comparison_frame,
    comparison_rows,
    recommended,
    rfm_candidate,
)
from custseg.segment.features import missing_columns
from custseg.segment.kmeans import SegmentFit, fit_segments
from custseg.segment.naming import name_segments
from custseg.segment.profile import segment_profiles, with_value_class
from custseg.segment.quality import adjusted_rand_index, response_rates
from custseg.segment.settings import ALGORITHMS, AUTO, SegmentSettings
from custseg.segment.stability import Match, PreviousSegment, match_segments, migration_matrix
from custseg.stages.context import StageContext

log = logging.getLogger(__name__)

FEATURES = "gold.customer_features"
SEGMENTS = "gold.customer_segments"
PROFILES = "gold.segment_profiles"
QUALITY = "gold.segment_quality"
MIGRATION = "gold.segment_migration"
COMPARISON = "gold.segmentation_comparison"
ITEMS = "silver.order_items"
RESPONSES = "silver.campaign_responses"

QUALITY_SCHEMA = T.StructType(
    [
        T.StructField("snapshot_date", T.DateType(), False),
        T.StructField("kind", T.StringType(), False),  # k_selection | overall | segment
        T.StructField("k", T.IntegerType(), True),
        T.StructField("segment_id", T.IntegerType(), True),
        T.StructField("metric", T.StringType(), False),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("algorithm", T.StringType(), False),
        T.StructField("feature_set", T.StringType(), False),
    ]
)
CENTRES_SCHEMA = T.StructType(
    [
        T.StructField("segment_id", T.IntegerType(), False),
        T.StructField("centre", T.MapType(T.StringType(), T.DoubleType()), False),
        T.StructField("centre_z", T.MapType(T.StringType(), T.DoubleType()), False),
        T.StructField("distinctiveness", T.DoubleType(), True),
        T.StructField("wss", T.DoubleType(), True),
        T.StructField("is_new", T.BooleanType(), False),
        T.StructField("centre_shift", T.DoubleType(), True),
    ]
)


def _previous(ctx: StageContext) -> tuple[str | None, list[PreviousSegment], int]:
    """(previous snapshot date, its segments, the next unused segment id)."""
    if not ctx.tables.exists(PROFILES):
        return None, [], 1
    earlier = ctx.tables.read(PROFILES).where(F.col("snapshot_date") < F.lit(ctx.as_of))
    row = earlier.agg(F.max("snapshot_date").alias("d"), F.max("segment_id").alias("m")).first()
    if row is None or row["d"] is None:
        return None, [], 1
    rows = (
        earlier.where(F.col("snapshot_date") == F.lit(row["d"]))
        .select("segment_id", "segment_name", "centre_z")
        .collect()
    )
    prev = [PreviousSegment(int(r["segment_id"]), r["segment_name"], dict(r["centre_z"] or {})) for r in rows]
    return row["d"].isoformat(), prev, int(row["m"]) + 1


def _items(ctx: StageContext) -> DataFrame | None:
    """Completed order lines in the RFM window up to the snapshot (revenue, categories)."""
    if not ctx.tables.exists(ITEMS):
        return None
    items = ctx.tables.read(ITEMS)
    day = F.col("order_date") if "order_date" in items.columns else F.to_date("order_ts")
    start = ctx.as_of - timedelta(days=int(ctx.conf.get_path("rfm.window_days", 365)))
    status_ok = F.col("status") == "completed" if "status" in items.columns else F.lit(True)
    return items.where(status_ok & (day > F.lit(start)) & (day <= F.lit(ctx.as_of))).select(
        "customer_key", "net_revenue", "category"
    )


def _responses(ctx: StageContext) -> DataFrame | None:
    if not ctx.tables.exists(RESPONSES):
        return None
    resp = ctx.tables.read(RESPONSES)
    if "sent_ts" in resp.columns:
        resp = resp.where(F.to_date("sent_ts") <= F.lit(ctx.as_of))
    return resp


def _compare(ctx: StageContext, s: SegmentSettings, feats: DataFrame, k: int) -> list[dict]:
    """Every candidate segmentation at ``k`` on this snapshot, scored and ranked (segment/comparison.py)."""
    cols = s.columns
    extra = [c for c in (*RFM_COLUMNS, s.comparison_value_column) if c in feats.columns]

    def frame(df: DataFrame) -> DataFrame:
        return comparison_frame(
            df,
            cols,
            log1p_columns=s.log1p_columns,
            impute=s.impute,
            impute_max_columns=s.impute_max_columns,
            standardize=s.standardize,
            extra_columns=extra,
            sample_rows=s.comparison_sample_rows,
            seed=s.seed,
        )

    previous = None
    if s.comparison_previous:
        earlier = ctx.tables.read(FEATURES).where(F.col("snapshot_date") < F.lit(ctx.as_of))
        d = earlier.agg(F.max("snapshot_date").alias("d")).first()["d"]
        if d is not None:
            prev_feats = earlier.where(F.col("snapshot_date") == F.lit(d))
            if not missing_columns(prev_feats, [*cols, *extra]):
                previous = frame(prev_feats)
    candidates = []
    if all(c in feats.columns for c in RFM_COLUMNS):
        r = FeatureSettings.from_config(ctx.conf).rfm
        candidates.append(rfm_candidate(r.bins, r.segments, r.binning, r.fixed_thresholds))
    candidates += [clustering_candidate(a, k, s.comparison_n_init, s.comparison_max_iter, s.tol) for a in ALGORITHMS]
    return compare_segmentations(
        frame(feats),
        candidates,
        len(cols),
        previous=previous,
        responses=_responses(ctx),
        value_column=s.comparison_value_column if s.comparison_value_column in feats.columns else None,
        bootstrap=s.comparison_bootstrap,
        seed=s.seed,
        tree_depth=s.comparison_tree_depth,
        min_z=s.comparison_min_z,
    )


def _centres_frame(ctx: StageContext, fit: SegmentFit, matches: list[Match]) -> DataFrame:
    by_cluster = {c.cluster: c for c in fit.centres}
    rows = []
    for m in matches:
        c = by_cluster[m.cluster]
        rows.append(
            (
                m.segment_id,
                dict(zip(fit.feature_cols, c.mean, strict=True)),
                dict(zip(fit.feature_cols, c.z, strict=True)),
                c.distinctiveness,
                c.wss,
                m.previous_id is None,
                m.shift,
            )
        )
    return ctx.spark.createDataFrame(rows, CENTRES_SCHEMA)


def _overall(fit: SegmentFit, matches: list[Match], extra: dict) -> dict:
    """The ``overall`` metrics of segment_quality (the same figures go to MLflow)."""
    overall = {
        key: fit.quality[key]
        for key in (
            "rows",
            "silhouette",
            "wss",
            "tss",
            "calinski_harabasz",
            "distinctiveness",
            "elbow_k",
            "sample_rows",
            "seconds_k_selection",
            "seconds_final_fit",
            "seconds_scoring",
        )
    }
    overall.update(extra)
    overall["segments_kept"] = sum(m.previous_id is not None for m in matches)
    overall["segments_new"] = sum(m.previous_id is None for m in matches)
    return overall


def _quality_rows(
    ctx: StageContext, s: SegmentSettings, fit: SegmentFit, matches: list[Match], per_segment: list, overall: dict
) -> DataFrame:
    d, algo, fs = ctx.as_of, fit.algorithm, s.feature_set_label

    def row(kind, k, sid, metric, value):
        return (d, kind, k, sid, metric, None if value is None else float(value), algo, fs)

    rows = []
    chosen = fit.quality["k_requested"]
    for p in fit.k_curve:
        rows += [
            row("k_selection", p.k, None, "silhouette", p.silhouette),
            row("k_selection", p.k, None, "wss", p.wss),
            row("k_selection", p.k, None, "sample_rows", p.rows),
            row("k_selection", p.k, None, "chosen", 1.0 if p.k == chosen else 0.0),
        ]
    rows += [row("overall", fit.k, None, metric, value) for metric, value in overall.items()]
    by_cluster = {c.cluster: c for c in fit.centres}
    for m in matches:
        c = by_cluster[m.cluster]
        rows += [
            row("segment", fit.k, m.segment_id, "distinctiveness", c.distinctiveness),
            row("segment", fit.k, m.segment_id, "wss", c.wss),
            row("segment", fit.k, m.segment_id, "centre_shift", m.shift),
        ]
    for r in per_segment:
        for metric in ("contacts", "responders", "response_rate", "control_contacts", "control_rate", "lift"):
            rows.append(row("segment", fit.k, int(r["segment_id"]), metric, r[metric]))
    return ctx.spark.createDataFrame(rows, QUALITY_SCHEMA)


def _track(
    ctx: StageContext, s: SegmentSettings, fit: SegmentFit, overall: dict, versions: dict, prev_date: str | None
) -> None:
    """The fit in MLflow: settings, the overall and k-selection figures of segment_quality, the model."""
    tr = ctx.tracker
    tr.log_params(
        {
            "run_date": ctx.run_date,
            "algorithm": fit.algorithm,
            "k": fit.k,
            "k_setting": s.k,  # 0: chosen from the data over k_min..k_max
            "k_min": s.k_min,
            "k_max": s.k_max,
            "k_criterion": s.k_criterion,
            "seed": s.seed,
            "n_init": s.n_init,
            "max_iter": s.max_iter,
            "tol": s.tol,
            "sample_rows": s.sample_rows,
            "feature_set": s.feature_set_label,
            "feature_columns": ",".join(fit.feature_cols),
            "log1p_columns": ",".join(c for c in s.log1p_columns if c in fit.feature_cols),
            "impute": s.impute,
            "standardize": s.standardize,
            "previous_snapshot": prev_date,
            **{f"version.{FEATURES}": ctx.tables.version(FEATURES)},
            **{f"version.{name}": v for name, v in versions.items()},
        }
    )
    tr.log_metrics(overall)
    for p in fit.k_curve:
        tr.log_metrics({"k_selection.silhouette": p.silhouette, "k_selection.wss": p.wss}, step=p.k)
    sc = fit.scaling
    tr.log_dict(
        {
            "feature_columns": fit.feature_cols,
            "log1p_columns": [c for c in s.log1p_columns if c in fit.feature_cols],
            "fill": fit.fill,
            "scaling": {"columns": list(sc.columns), "mean": list(sc.mean), "std": list(sc.std)},
            "standardized": sc.standardized,
            "note": "the model clusters the scaled vector: fill, log1p, then (x - mean) / std per column",
        },
        "segment/features.json",
    )
    tr.log_model(fit.algorithm, fit.model)


def run(ctx: StageContext) -> None:
    s = SegmentSettings.from_config(ctx.conf)
    t, rec, spark = ctx.tables, ctx.recorder, ctx.spark
    where = {"snapshot_date": ctx.run_date}
    snapshot = F.lit(ctx.as_of).alias("snapshot_date")
    feats = t.read(FEATURES).where(F.col("snapshot_date") == F.lit(ctx.as_of))
    cols = s.columns
    gone = missing_columns(feats, cols)
    if gone:
        key = "segment.feature_columns" if s.feature_columns else f"segment.feature_sets.{s.feature_set}"
        raise ValueError(f"{key}: columns {gone} are not in {FEATURES} (has: {', '.join(feats.columns)})")
    feats = feats.persist(StorageLevel.MEMORY_AND_DISK)

    def fit_with(algorithm: str, k: int | None) -> SegmentFit:
        return fit_segments(
            feats,
            cols,
            k=k,
            k_range=(s.k_min, s.k_max),
            algorithm=algorithm,
            seed=s.seed,
            n_init=s.n_init,
            max_iter=s.max_iter,
            tol=s.tol,
            sample_rows=s.sample_rows,
            k_criterion=s.k_criterion,
            log1p_cols=s.log1p_columns,
            impute=s.impute,
            impute_max_cols=s.impute_max_columns,
            standardize=s.standardize,
            partition_rows=s.partition_rows,
            parallel=s.parallel_fits,
        )

    auto = s.algorithm == AUTO
    with rec.stage("fit"):
        # auto: k is chosen with kmeans; the comparison then says which algorithm assigns.
        fit = fit_with("kmeans" if auto else s.algorithm, s.k or None)
    comparison_rows_ = None
    if s.comparison or auto:
        with rec.stage("compare"):
            ranked = _compare(ctx, s, feats, fit.k)
            pick = recommended(ranked) or fit.algorithm
            if auto and pick != fit.algorithm:
                log.info("segment.algorithm auto: %s recommended over %s at k=%d", pick, fit.algorithm, fit.k)
                curve = fit.k_curve
                fit.unpersist()
                fit = fit_with(pick, fit.k)
                fit.k_curve = curve  # the k selection that chose k stays in segment_quality
            comparison_rows_ = comparison_rows(ranked, ctx.as_of, s.feature_set_label, fit.algorithm)
    rec.rows_in = fit.quality["rows"]
    with rec.stage("label"):
        prev_date, previous, next_id = _previous(ctx)
        matches = match_segments(fit.centres, cols, previous, s.match_max_shift, next_id)
        ids = spark.createDataFrame([(m.cluster, m.segment_id) for m in matches], "cluster int, segment_id int")
        assigned = (
            fit.assignments.join(F.broadcast(ids), on="cluster", how="inner")
            .select("customer_key", "segment_id", "distance")
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        reserved = {m.segment_id: m.previous_name for m in matches if m.previous_id is not None and m.previous_name}
        profiles = (
            assigned.transform(
                segment_profiles(feats, _items(ctx), s.profile_columns, s.churn_risk_threshold, s.top_categories)
            )
            .transform(name_segments(s.naming_rules, reserved, cols, s.fallback_features))
            .transform(with_value_class(s.value_class_rules, s.value_class_margin, s.value_class_columns))
            .join(F.broadcast(_centres_frame(ctx, fit, matches)), on="segment_id", how="inner")
            .select(
                snapshot,
                "segment_id",
                "segment_name",
                "value_class",
                "customers",
                "customer_share",
                "revenue",
                "revenue_share",
                "centre",
                "centre_z",
                "profile",
                "profile_z",
                "top_categories",
                "preferred_channel",
                "churn_risk_share",
                "avg_churn_risk",
                "avg_clv",
                "distinctiveness",
                "distinguishing",
                "is_new",
                "centre_shift",
                F.lit(s.feature_set_label).alias("feature_set"),
                F.lit(fit.algorithm).alias("algorithm"),
            )
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        labels = profiles.select("segment_id", "segment_name", "value_class")
        churn = (
            (F.lit(1.0) - F.col("p_alive").cast("double")) if "p_alive" in feats.columns else F.lit(None).cast("double")
        )
        extras = feats.select(
            "customer_key",
            (F.col("rfm_segment") if "rfm_segment" in feats.columns else F.lit(None))
            .cast("string")
            .alias("rfm_segment"),
            churn.alias("churn_risk"),
            (F.col("clv") if "clv" in feats.columns else F.lit(None)).cast("double").alias("clv"),
        )
        segments = (
            assigned.join(F.broadcast(labels), on="segment_id", how="left")
            .join(extras, on="customer_key", how="left")
            .select(
                "customer_key",
                snapshot,
                F.col("segment_id").cast("int").alias("segment_id"),
                "segment_name",
                "rfm_segment",
                "value_class",
                F.col("distance").cast("double").alias("distance"),
                "churn_risk",
                "clv",
            )
        )
    with rec.stage("quality"):
        extra: dict = {}
        current = assigned.join(F.broadcast(labels), on="segment_id", how="left").select(
            "customer_key", "segment_id", "segment_name"
        )
        empty = spark.createDataFrame([], "customer_key string, segment_id int, segment_name string")
        prev_segments = empty
        if prev_date is not None and t.exists(SEGMENTS):
            prev_segments = (
                t.read(SEGMENTS)
                .where(F.col("snapshot_date") == F.lit(prev_date))
                .select("customer_key", "segment_id", "segment_name")
            )
            both = (
                prev_segments.select("customer_key", F.col("segment_id").alias("_prev"))
                .join(current.select("customer_key", F.col("segment_id").alias("_cur")), on="customer_key", how="inner")
                .persist(StorageLevel.MEMORY_AND_DISK)
            )
            extra["customers_in_both"] = both.count()
            extra["ari_previous"] = adjusted_rand_index(both, "_prev", "_cur") if extra["customers_in_both"] else None
            both.unpersist()
        responses = _responses(ctx)
        per_segment = (
            [r.asDict() for r in assigned.transform(response_rates(responses)).collect()]
            if responses is not None
            else []
        )
        overall = _overall(fit, matches, {k: v for k, v in extra.items() if v is not None})
        quality = _quality_rows(ctx, s, fit, matches, per_segment, overall)
        migration = (
            migration_matrix(prev_segments, current) if prev_date is not None else migration_matrix(empty, empty)
        ).select(snapshot, F.lit(prev_date).cast("date").alias("previous_snapshot_date"), "*")
    with rec.stage("write"):
        versions = {
            name: t.overwrite(df, name, partition_by=["snapshot_date"], where=where)
            for df, name in ((segments, SEGMENTS), (profiles, PROFILES), (quality, QUALITY), (migration, MIGRATION))
        }
        if comparison_rows_ is not None:
            comparison = spark.createDataFrame(comparison_rows_, COMPARISON_SCHEMA)
            versions[COMPARISON] = t.overwrite(comparison, COMPARISON, partition_by=["snapshot_date"], where=where)
    if ctx.tracker.enabled:
        with rec.stage("tracking"):
            _track(ctx, s, fit, overall, versions, prev_date)
    rec.rows_out = fit.quality["rows"]
    rec.details.update(
        {
            "k": fit.k,
            "algorithm": fit.algorithm,
            "algorithm_setting": s.algorithm,
            "recommended": recommended(ranked) if comparison_rows_ is not None else None,
            "feature_set": s.feature_set_label,
            "silhouette": fit.quality["silhouette"],
            "calinski_harabasz": fit.quality["calinski_harabasz"],
            "previous_snapshot": prev_date,
            "ari_previous": extra.get("ari_previous"),
            "segments": {m.segment_id: ("kept" if m.previous_id is not None else "new") for m in matches},
            "seconds_k_selection": fit.quality["seconds_k_selection"],
            "seconds_final_fit": fit.quality["seconds_final_fit"],
        }
    )
    profiles.unpersist()
    assigned.unpersist()
    fit.unpersist()
    feats.unpersist()
