"""Clustering with k chosen from the data: MLlib KMeans, BisectingKMeans or GaussianMixture.

``fit_segments`` fills, log-scales and standardises the feature columns (features.py),
then, unless k is given, fits every k of ``k_range`` on a bounded sample and scores it
with the silhouette (MLlib ``ClusteringEvaluator``) and the within-cluster SS; the k with
the best silhouette (or the elbow of the WSS curve) is then fitted on all rows. Every fit
runs ``n_init`` initialisations (seeds ``seed + 7919 i``) and keeps the lowest WSS
(highest log-likelihood for GaussianMixture, which optimises that and not the WSS).
Centres are the members' means (scaled and original units), so WSS, Calinski-Harabasz,
distances and profiles all refer to the same points whichever algorithm assigned them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from pyspark import StorageLevel
from pyspark.ml.clustering import BisectingKMeans, GaussianMixture, KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from custseg.runtime import default_parallelism, is_connect
from custseg.segment.features import (
    VECTOR,
    Scaling,
    fill_values,
    missing_columns,
    prepare_features,
    scale_features,
)
from custseg.segment.quality import (
    ClusterStats,
    band_counts,
    cluster_stats,
    distinctiveness_from_counts,
)
from custseg.segment.settings import ALGORITHMS, K_CRITERIA

log = logging.getLogger(__name__)

CLUSTER = "cluster"
SEED_STEP = 7919


@dataclass(frozen=True)
class Centre:
    """One cluster: members' mean in scaled units (``z``) and in original units (``mean``)."""

    cluster: int
    size: int
    z: tuple[float, ...]
    mean: tuple[float, ...]
    wss: float
    distinctiveness: float


@dataclass(frozen=True)
class KPoint:
    """One point of the k-selection curves (computed on ``rows`` sampled rows)."""

    k: int
    silhouette: float | None
    wss: float
    rows: int


@dataclass
class SegmentFit:
    """What ``fit_segments`` returns. ``scored`` is persisted: call ``unpersist()`` when done."""

    k: int
    algorithm: str
    feature_cols: list[str]
    assignments: DataFrame  # id, cluster, distance
    scored: DataFrame  # id, cluster, distance, features (scaled vector), the filled input columns
    centres: list[Centre]
    k_curve: list[KPoint]
    quality: dict
    scaling: Scaling
    model: object
    fill: dict = field(default_factory=dict)

    def centre(self, cluster: int) -> Centre:
        return next(c for c in self.centres if c.cluster == cluster)

    def unpersist(self) -> None:
        self.scored.unpersist()


# BisectingKMeans splits a cluster by nudging its centre by 1e-4 x its norm: a centre at
# the origin (the root of standardised data) never splits and every row ends in one
# cluster. Translating the points changes no distance, so it clusters them shifted.
BISECTING_INPUT = "_bisecting_features"
BISECTING_SHIFT = 10.0


def model_input(data: DataFrame, algorithm: str) -> DataFrame:
    """``data`` as the estimator reads it (bisecting: with the shifted vector column)."""
    if algorithm != "bisecting":
        return data
    shifted = F.transform(vector_to_array(F.col(VECTOR)), lambda x: x + F.lit(BISECTING_SHIFT))
    return data.withColumn(BISECTING_INPUT, array_to_vector(shifted))


def make_estimator(algorithm: str, k: int, seed: int, max_iter: int = 50, tol: float = 1e-4):
    """The MLlib estimator for ``algorithm`` with its parameters and seed."""
    if algorithm == "kmeans":
        return KMeans(
            k=k, seed=seed, maxIter=max_iter, tol=tol, initMode="k-means||", featuresCol=VECTOR, predictionCol=CLUSTER
        )
    if algorithm == "bisecting":
        return BisectingKMeans(k=k, seed=seed, maxIter=max_iter, featuresCol=BISECTING_INPUT, predictionCol=CLUSTER)
    if algorithm == "gmm":
        return GaussianMixture(
            k=k,
            seed=seed,
            maxIter=max_iter,
            tol=tol,
            featuresCol=VECTOR,
            predictionCol=CLUSTER,
            probabilityCol="_gmm_probability",
        )
    raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")


def _objective(model, algorithm: str) -> float:
    """Lower is better: WSS for the k-means family, minus log-likelihood for the mixture."""
    if algorithm == "gmm":
        return -float(model.summary.logLikelihood)
    return float(model.summary.trainingCost)


def fit_best(data: DataFrame, algorithm: str, k: int, seed: int, n_init: int, max_iter: int, tol: float):
    """Fit ``n_init`` initialisations and keep the best; (model, objective)."""
    best, best_obj = None, float("inf")
    data = model_input(data, algorithm)
    for i in range(max(1, n_init)):
        model = make_estimator(algorithm, k, seed + SEED_STEP * i, max_iter, tol).fit(data)
        obj = _objective(model, algorithm)
        if best is None or obj < best_obj:
            best, best_obj = model, obj
    return best, best_obj


def _predict(model, data: DataFrame, algorithm: str) -> DataFrame:
    out = model.transform(model_input(data, algorithm))
    return out.drop("_gmm_probability", BISECTING_INPUT)


def silhouette(predictions: DataFrame) -> float | None:
    """Squared-Euclidean silhouette (MLlib); None when fewer than two clusters are used."""
    if predictions.select(CLUSTER).distinct().limit(2).count() < 2:
        return None
    evaluator = ClusteringEvaluator(
        featuresCol=VECTOR, predictionCol=CLUSTER, metricName="silhouette", distanceMeasure="squaredEuclidean"
    )
    return float(evaluator.evaluate(predictions))


def elbow_k(ks: Sequence[int], wss: Sequence[float]) -> int:
    """Kneedle on the WSS curve: the k farthest below the chord from the first to the last point."""
    ks_a, w = np.asarray(ks, dtype=float), np.asarray(wss, dtype=float)
    if len(ks_a) < 3 or w.max() == w.min():
        return int(ks_a[0])
    x = (ks_a - ks_a[0]) / (ks_a[-1] - ks_a[0])
    y = (w - w.min()) / (w.max() - w.min())
    return int(ks_a[int(np.argmax((1.0 - x) - y))])


def choose_k(curve: Sequence[KPoint], criterion: str = "silhouette") -> int:
    """Best silhouette (ties: the smaller k), or the WSS elbow."""
    if criterion not in K_CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(K_CRITERIA)}; got {criterion!r}")
    scored = [p for p in curve if p.silhouette is not None]
    if criterion == "elbow" or not scored:
        return elbow_k([p.k for p in curve], [p.wss for p in curve])
    return max(scored, key=lambda p: (round(p.silhouette, 9), -p.k)).k


def distance_to_centre(centres: Sequence[Centre]) -> Column:
    """Euclidean distance (scaled units) of ``features`` to its cluster's centre, in SQL
    functions: the centres travel as a literal array indexed by cluster id."""
    dims = len(centres[0].z)
    by_id = {c.cluster: c.z for c in centres}
    table = F.array(*[F.array(*[F.lit(float(v)) for v in by_id.get(i, (0.0,) * dims)]) for i in range(max(by_id) + 1)])
    centre = F.element_at(table, F.col(CLUSTER) + 1)
    sq = F.zip_with(vector_to_array(F.col(VECTOR)), centre, lambda a, b: (a - b) * (a - b))
    return F.sqrt(F.aggregate(sq, F.lit(0.0), lambda acc, v: acc + v))


# Below this many rows per partition a second partition costs more than it saves.
MIN_SPLIT_ROWS = 5_000


def _fewer_partitions(df: DataFrame, rows: int, partition_rows: int) -> DataFrame:
    """At most one partition per ``partition_rows`` rows: MLlib runs a Spark job per
    iteration, and on small data the per-task overhead, not the arithmetic, sets the pace.
    But no fewer than one per core once each would still hold ``MIN_SPLIT_ROWS`` rows, so a
    mid-sized matrix (say 60k rows) is not fitted on one core while the others idle."""
    cores = default_parallelism(df.sparkSession)
    target = max(1, -(-rows // max(1, partition_rows)), min(cores, rows // MIN_SPLIT_ROWS))
    # coalesce never adds partitions: a frame with fewer than ``target`` keeps its own
    return df.coalesce(target)


def _select_k(
    scaled: DataFrame,
    n: int,
    k_range: tuple[int, int],
    algorithm: str,
    seed: int,
    n_init: int,
    max_iter: int,
    tol: float,
    sample_rows: int,
    partition_rows: int,
    parallel: int = 1,
) -> tuple[list[KPoint], dict[int, object]]:
    """The k-selection curve, and the best model of each k when the sample is every row
    (then the final fit would repeat the same seeded fits on the same partitions)."""
    frac = min(1.0, sample_rows / n) if n else 1.0
    sample = scaled.select(VECTOR) if frac >= 1.0 else scaled.select(VECTOR).sample(False, frac, seed)
    sample = _fewer_partitions(sample, min(n, sample_rows), partition_rows)
    sample = sample.persist(StorageLevel.MEMORY_AND_DISK)
    models: dict[int, object] = {}
    try:
        rows = sample.count()
        lo, hi = k_range[0], min(k_range[1], rows - 1)
        if hi < lo:
            raise ValueError(f"{rows} rows cannot be split into {k_range[0]}..{k_range[1]} clusters")

        def point(k: int) -> KPoint:
            model, _ = fit_best(sample, algorithm, k, seed, n_init, max_iter, tol)
            pred = _predict(model, sample, algorithm).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                if algorithm == "gmm":
                    wss = cluster_stats(pred, len(model.gaussians[0].mean), CLUSTER, VECTOR).wss()
                else:
                    wss = _objective(model, algorithm)
                p = KPoint(k, silhouette(pred), float(wss), rows)
            finally:
                pred.unpersist()
            if frac >= 1.0:
                models[k] = model
            log.info("k=%d silhouette=%s wss=%.1f", k, p.silhouette, p.wss)
            return p

        ks = list(range(lo, hi + 1))
        # Over Spark Connect the fits run one after the other: a Connect client's active
        # session is per thread (MLlib's remote calls find none in a pool thread), and one
        # gRPC channel serialises the calls anyway.
        if parallel <= 1 or is_connect(scaled.sparkSession):
            curve = [point(k) for k in ks]
        else:
            # Each fit is seeded and independent, so running them side by side changes
            # nothing but the wall time: on a sample, MLlib waits on job scheduling more
            # than it computes, and concurrent jobs fill those gaps.
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                curve = list(pool.map(point, ks))
        return curve, models
    finally:
        sample.unpersist()


def fit_segments(
    df: DataFrame,
    feature_cols: Sequence[str],
    k: int | None = None,
    k_range: tuple[int, int] = (2, 10),
    algorithm: str = "kmeans",
    seed: int = 42,
    *,
    n_init: int = 5,
    max_iter: int = 50,
    tol: float = 1e-4,
    sample_rows: int = 200_000,
    k_criterion: str = "silhouette",
    log1p_cols: Sequence[str] = (),
    impute: str = "median",
    impute_max_cols: Sequence[str] = (),
    standardize: bool = True,
    partition_rows: int = 100_000,
    parallel: int = 1,
    id_col: str = "customer_key",
) -> SegmentFit:
    """Cluster the rows of ``df`` (one per ``id_col``) on ``feature_cols``.

    Returns assignments (id, cluster, distance), centres in scaled and original units, the
    k-selection curves and quality figures (silhouette, WSS, Calinski-Harabasz,
    distinctiveness, elbow k). Only bounded aggregates reach the driver.
    """
    cols = list(feature_cols)
    if not cols:
        raise ValueError("feature_cols is empty")
    gone = missing_columns(df, [id_col, *cols])
    if gone:
        raise ValueError(f"columns {gone} are not in the input (has: {', '.join(df.columns)})")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    logged = [c for c in log1p_cols if c in cols]
    fill = fill_values(df, cols, impute, [c for c in impute_max_cols if c in cols])
    prepared = df.transform(prepare_features(cols, logged, fill, id_col))
    scaled, scaling = scale_features(prepared, cols, standardize)
    n = scaled.count()
    scaled = _fewer_partitions(scaled, n, partition_rows).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        t0 = time.perf_counter()
        curve: list[KPoint] = []
        fitted: dict[int, object] = {}
        if k is None:
            curve, fitted = _select_k(
                scaled, n, k_range, algorithm, seed, n_init, max_iter, tol, sample_rows, partition_rows, parallel
            )
            k = choose_k(curve, k_criterion)
        elif k < 1 or k > n:
            raise ValueError(f"k={k} is not within 1..{n} rows")
        t1 = time.perf_counter()
        # A sample of every row is the data itself, partitioned alike: its seeded fit is the final fit.
        model = fitted.get(k) or fit_best(scaled, algorithm, k, seed, n_init, max_iter, tol)[0]
        pred = (
            _predict(model, scaled, algorithm)
            .select(id_col, F.col(CLUSTER).cast("int").alias(CLUSTER), VECTOR, *cols)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        stats: ClusterStats = cluster_stats(pred, len(cols), CLUSTER, VECTOR)
        t2 = time.perf_counter()
    finally:
        scaled.unpersist()

    raw_means = {int(r[CLUSTER]): r for r in pred.groupBy(CLUSTER).agg(*[F.avg(c).alias(c) for c in cols]).collect()}
    band_ids, bands = band_counts(pred, len(cols), CLUSTER, VECTOR)
    overall_distinct, per_cluster_distinct = distinctiveness_from_counts(bands)
    distinct_by_id = dict(zip(band_ids, per_cluster_distinct, strict=True))
    wss_c = stats.wss_per_cluster()
    centres = [
        Centre(
            cluster=c,
            size=int(stats.counts[i]),
            z=tuple(float(v) for v in stats.means[i]),
            mean=tuple(float(raw_means[c][col]) for col in cols),
            wss=float(wss_c[i]),
            distinctiveness=float(distinct_by_id.get(c, 0.0)),
        )
        for i, c in enumerate(stats.clusters)
    ]
    scored = pred.select(id_col, CLUSTER, distance_to_centre(centres).alias("distance"), VECTOR, *cols)
    scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
    sil = silhouette(scored)
    pred.unpersist()
    t3 = time.perf_counter()
    quality = {
        "rows": n,
        "k": len(centres),
        "k_requested": k,
        "silhouette": sil,
        "wss": stats.wss(),
        "tss": stats.tss(),
        "calinski_harabasz": stats.calinski_harabasz(),
        "distinctiveness": overall_distinct,
        "elbow_k": elbow_k([p.k for p in curve], [p.wss for p in curve]) if curve else None,
        "sample_rows": curve[0].rows if curve else None,
        "seconds_k_selection": round(t1 - t0, 3),
        "seconds_final_fit": round(t2 - t1, 3),
        "seconds_scoring": round(t3 - t2, 3),
    }
    log.info("fit %s k=%d on %d rows: %s", algorithm, len(centres), n, quality)
    return SegmentFit(
        k=len(centres),
        algorithm=algorithm,
        feature_cols=cols,
        assignments=scored.select(id_col, CLUSTER, "distance"),
        scored=scored,
        centres=centres,
        k_curve=curve,
        quality=quality,
        scaling=scaling,
        model=model,
        fill=fill,
    )


__all__ = [
    "CLUSTER",
    "Centre",
    "KPoint",
    "SegmentFit",
    "choose_k",
    "distance_to_centre",
    "elbow_k",
    "fit_best",
    "fit_segments",
    "make_estimator",
    "silhouette",
]
