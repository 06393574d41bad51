"""Segmentations of one snapshot side by side on the paper's four criteria (gold.segmentation_comparison).

A candidate is a way to label customers, refitted on whatever rows it is given: RFM cells
(quantile cuts of the rows, then the named R x F segments), KMeans, bisecting KMeans and
a Gaussian mixture at the k the segment stage chose. Each is scored (criteria.py):

- distinctiveness: the entropy-based uncertainty coefficient of the features' z bands given
  the segment (0..1, higher is better); the size entropy is reported, not scored;
- stability: the mean of the bootstrap ARI (refit on a resample with replacement and its own
  seed, labels of every row compared with the full fit's) and, when there is a previous
  snapshot, the ARI against the candidate refitted on that snapshot (customers in both);
- interpretability: the fidelity of a depth-3 surrogate tree (accuracy on the labels);
- effectiveness: Cramér's V of response by segment (chi-square test, treatment contacts of
  silver.campaign_responses), or eta squared of a value measure when there are no responses.

The rule (``rank``): per criterion, candidates are ranked best = 1 (ties share the better
rank, a missing score ranks last); the recommended candidate is the pickable one (a clustering
algorithm the stage can assign with, whose scoring did not fail) with the lowest rank sum, ties going to the higher
stability, then to the order kmeans, bisecting, gmm (the cheapest first).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.features.rfm import DEFAULT_SEGMENTS, rfm_cuts, rfm_score_columns
from custseg.segment.criteria import (
    LABEL,
    NO_TEST,
    features_per_segment,
    label_counts,
    response_test,
    size_entropy,
    surrogate_fidelity,
    value_test,
)
from custseg.segment.features import VECTOR, fill_values, prepare_features, scale_features
from custseg.segment.kmeans import CLUSTER, SEED_STEP, _predict, fit_best
from custseg.segment.quality import adjusted_rand_index, band_counts, distinctiveness_from_counts
from custseg.segment.settings import ALGORITHMS

log = logging.getLogger(__name__)

ID = "customer_key"
CRITERIA = ("distinctiveness", "stability", "interpretability", "effectiveness")
RFM_COLUMNS = ("recency_days", "frequency", "monetary")
MAX_LABELS = 1000  # a labeling with more distinct labels is not a segmentation
Labeller = Callable[[DataFrame, DataFrame, int], DataFrame]

COMPARISON_SCHEMA = T.StructType(
    [
        T.StructField("snapshot_date", T.DateType(), False),
        T.StructField("candidate", T.StringType(), False),
        T.StructField("feature_set", T.StringType(), True),
        T.StructField("k", T.IntegerType(), True),
        T.StructField("customers", T.LongType(), True),
        T.StructField("size_entropy", T.DoubleType(), True),
        T.StructField("size_entropy_norm", T.DoubleType(), True),
        T.StructField("distinctiveness", T.DoubleType(), True),
        T.StructField("bootstrap_ari", T.DoubleType(), True),
        T.StructField("bootstrap_ari_min", T.DoubleType(), True),
        T.StructField("ari_previous", T.DoubleType(), True),
        T.StructField("customers_in_both", T.LongType(), True),
        T.StructField("stability", T.DoubleType(), True),
        T.StructField("surrogate_fidelity", T.DoubleType(), True),
        T.StructField("features_per_segment", T.DoubleType(), True),
        T.StructField("described_share", T.DoubleType(), True),
        T.StructField("interpretability", T.DoubleType(), True),
        T.StructField("effectiveness_basis", T.StringType(), True),
        T.StructField("effectiveness_statistic", T.DoubleType(), True),
        T.StructField("effectiveness_dof", T.DoubleType(), True),
        T.StructField("effectiveness_p_value", T.DoubleType(), True),
        T.StructField("response_rate_spread", T.DoubleType(), True),
        T.StructField("lift_spread", T.DoubleType(), True),
        T.StructField("effectiveness", T.DoubleType(), True),
        T.StructField("rank_distinctiveness", T.IntegerType(), True),
        T.StructField("rank_stability", T.IntegerType(), True),
        T.StructField("rank_interpretability", T.IntegerType(), True),
        T.StructField("rank_effectiveness", T.IntegerType(), True),
        T.StructField("rank_sum", T.IntegerType(), True),
        T.StructField("pickable", T.BooleanType(), False),
        T.StructField("recommended", T.BooleanType(), False),
        T.StructField("used", T.BooleanType(), False),
        T.StructField("seconds", T.DoubleType(), True),
        T.StructField("note", T.StringType(), True),
    ]
)


@dataclass(frozen=True)
class Candidate:
    """A labeling method: ``labels(train, apply, seed)`` fits on ``train`` and returns
    ``customer_key, label`` for every row of ``apply`` (both comparison frames)."""

    name: str
    labels: Labeller
    pickable: bool = False  # the segment stage can assign segments with it


def clustering_candidate(algorithm: str, k: int, n_init: int = 1, max_iter: int = 20, tol: float = 1e-4) -> Candidate:
    """An MLlib clustering (kmeans | bisecting | gmm) at ``k`` on the scaled feature vector."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")

    def labels(train: DataFrame, apply: DataFrame, seed: int) -> DataFrame:
        model, _ = fit_best(train.select(VECTOR), algorithm, k, seed, n_init, max_iter, tol)
        return _predict(model, apply.select(ID, VECTOR), algorithm).select(ID, F.col(CLUSTER).cast("int").alias(LABEL))

    return Candidate(algorithm, labels, pickable=True)


def rfm_candidate(
    bins: int = 5, segments: Sequence[dict] = DEFAULT_SEGMENTS, binning: str = "quantile", fixed: dict | None = None
) -> Candidate:
    """The named RFM segments (features/rfm.py) with quantile cuts taken from ``train``."""

    def labels(train: DataFrame, apply: DataFrame, seed: int) -> DataFrame:
        cuts = rfm_cuts(train.select(*RFM_COLUMNS), bins, binning, fixed)
        return apply.select(ID, rfm_score_columns(cuts, segments)[-1].alias(LABEL))

    return Candidate("rfm_cells", labels)


def comparison_frame(
    features: DataFrame,
    columns: Sequence[str],
    *,
    log1p_columns: Sequence[str] = (),
    impute: str = "median",
    impute_max_columns: Sequence[str] = (),
    standardize: bool = True,
    extra_columns: Sequence[str] = (),
    sample_rows: int | None = None,
    seed: int = 42,
) -> DataFrame:
    """customer_key, the filled feature columns, ``extra_columns`` (nulls as 0) and the scaled
    ``features`` vector, prepared as fit_segments prepares them. With ``sample_rows`` at most
    about that many customers, chosen by a hash of the key: the same customers on every snapshot."""
    cols = list(columns)
    if sample_rows:
        n = features.count()
        if n > sample_rows:
            keep = F.abs(F.xxhash64(F.col(ID).cast("string"), F.lit(seed))) % F.lit(1_000_000)
            features = features.where(keep < F.lit(int(1_000_000 * sample_rows / n)))
    extras = [c for c in extra_columns if c not in cols and c in features.columns]
    fill = fill_values(features, cols, impute, [c for c in impute_max_columns if c in cols])
    prepared = features.transform(prepare_features([*cols, *extras], [c for c in log1p_columns if c in cols], fill))
    scaled, _ = scale_features(prepared, cols, standardize)
    return scaled.select(ID, *cols, *extras, VECTOR)


def index_labels(labels: DataFrame) -> DataFrame:
    """customer_key, label as 0..k-1 in the sort order of the labels (a literal map of k entries)."""
    values = sorted(
        r[0] for r in labels.select(LABEL).where(F.col(LABEL).isNotNull()).distinct().limit(MAX_LABELS + 1).collect()
    )
    if len(values) > MAX_LABELS:
        raise ValueError(f"more than {MAX_LABELS} distinct labels: not a segmentation")
    if not values:
        raise ValueError("no labels")
    mapping = F.create_map(*[x for i, v in enumerate(values) for x in (F.lit(v), F.lit(i))])
    return labels.where(F.col(LABEL).isNotNull()).select(
        ID, F.element_at(mapping, F.col(LABEL)).cast("int").alias(LABEL)
    )


def _ari(a: DataFrame, b: DataFrame) -> tuple[float | None, int]:
    both = a.select(ID, F.col(LABEL).alias("_a")).join(b.select(ID, F.col(LABEL).alias("_b")), on=ID, how="inner")
    both = both.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n = both.count()
        return (adjusted_rand_index(both, "_a", "_b") if n else None), n
    finally:
        both.unpersist()


def score_candidate(
    candidate: Candidate,
    frame: DataFrame,
    dims: int,
    *,
    previous: DataFrame | None = None,
    responses: DataFrame | None = None,
    value_column: str | None = "monetary",
    bootstrap: int = 2,
    seed: int = 42,
    tree_depth: int = 3,
    min_z: float = 0.5,
) -> dict:
    """One candidate's figures (the columns of COMPARISON_SCHEMA before the ranks)."""
    t0 = time.perf_counter()
    lab = index_labels(candidate.labels(frame, frame, seed)).persist(StorageLevel.MEMORY_AND_DISK)
    keep = [ID, VECTOR, *([value_column] if value_column and value_column in frame.columns else [])]
    data = frame.select(*keep).join(lab, on=ID, how="inner").persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = label_counts(lab)
        h, h_norm = size_entropy(list(counts.values()))
        _, bands = band_counts(data, dims, LABEL, VECTOR)
        distinct, _ = distinctiveness_from_counts(bands)
        fidelity = surrogate_fidelity(data, VECTOR, tree_depth, seed)
        per_segment, described = features_per_segment(data, dims, VECTOR, min_z)
        boot = []
        for b in range(bootstrap):
            s_b = seed + SEED_STEP * (b + 1)
            resample = frame.sample(True, 1.0, s_b)
            boot.append(_ari(lab, candidate.labels(resample, frame, s_b))[0])
        boot = [v for v in boot if v is not None]
        ari_prev, in_both = None, None
        if previous is not None:
            ari_prev, in_both = _ari(lab, candidate.labels(previous, previous, seed))
        basis, test, spread = None, NO_TEST, {}
        if responses is not None:
            test, spread = response_test(lab, responses)
            basis = "response" if test.effect is not None else None
        if basis is None and value_column and value_column in frame.columns:
            test, basis = value_test(data, value_column), f"value:{value_column}"
        parts = [v for v in (sum(boot) / len(boot) if boot else None, ari_prev) if v is not None]
        row = {
            "candidate": candidate.name,
            "k": len(counts),
            "customers": sum(counts.values()),
            "size_entropy": h,
            "size_entropy_norm": h_norm,
            "distinctiveness": distinct,
            "bootstrap_ari": sum(boot) / len(boot) if boot else None,
            "bootstrap_ari_min": min(boot) if boot else None,
            "ari_previous": ari_prev,
            "customers_in_both": in_both,
            "stability": sum(parts) / len(parts) if parts else None,
            "surrogate_fidelity": fidelity,
            "features_per_segment": per_segment,
            "described_share": described,
            "interpretability": fidelity,
            "effectiveness_basis": basis,
            "effectiveness_statistic": test.statistic,
            "effectiveness_dof": test.dof,
            "effectiveness_p_value": test.p_value,
            "response_rate_spread": spread.get("response_rate_spread"),
            "lift_spread": spread.get("lift_spread"),
            "effectiveness": test.effect,
            "pickable": candidate.pickable,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    finally:
        data.unpersist()
        lab.unpersist()
    log.info("segmentation comparison %s: %s", candidate.name, row)
    return row


def rank(rows: Sequence[Mapping], order: Sequence[str] = (*ALGORITHMS, "rfm_cells")) -> list[dict]:
    """The rows with rank_<criterion>, rank_sum and recommended (see the module docstring)."""
    out = [dict(r) for r in rows]
    for crit in CRITERIA:
        scores = [None if r.get(crit) is None else round(float(r[crit]), 6) for r in out]
        if all(v is None for v in scores):
            for r in out:
                r[f"rank_{crit}"] = None
            continue
        for r, v in zip(out, scores, strict=True):
            r[f"rank_{crit}"] = len(out) if v is None else 1 + sum(1 for w in scores if w is not None and w > v)
    for r in out:
        r["rank_sum"] = sum(r[f"rank_{c}"] for c in CRITERIA if r[f"rank_{c}"] is not None)
        r["recommended"] = False
    pickable = [r for r in out if r.get("pickable") and not r.get("note")]  # a failed fit is never picked
    if pickable:
        pos = {name: i for i, name in enumerate(order)}
        best = min(
            pickable,
            key=lambda r: (
                r["rank_sum"],
                -(r.get("stability") or 0.0),
                pos.get(r["candidate"], len(pos)),
                r["candidate"],
            ),
        )
        best["recommended"] = True
    return out


def compare_segmentations(
    frame: DataFrame,
    candidates: Sequence[Candidate],
    dims: int,
    *,
    previous: DataFrame | None = None,
    responses: DataFrame | None = None,
    value_column: str | None = "monetary",
    bootstrap: int = 2,
    seed: int = 42,
    tree_depth: int = 3,
    min_z: float = 0.5,
) -> list[dict]:
    """Every candidate scored on ``frame`` (a comparison_frame) and ranked; ``previous`` is the
    previous snapshot's comparison frame, ``responses`` silver.campaign_responses up to the snapshot."""
    if not candidates:
        raise ValueError("no candidates to compare")
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    prev = previous.persist(StorageLevel.MEMORY_AND_DISK) if previous is not None else None
    try:
        rows = []
        for c in candidates:
            try:
                rows.append(
                    score_candidate(
                        c,
                        frame,
                        dims,
                        previous=prev,
                        responses=responses,
                        value_column=value_column,
                        bootstrap=bootstrap,
                        seed=seed,
                        tree_depth=tree_depth,
                        min_z=min_z,
                    )
                )
            except Exception as exc:  # one failing method must not cost the comparison of the others
                log.warning("segmentation comparison: %s failed: %s", c.name, exc)
                rows.append(
                    {"candidate": c.name, "pickable": c.pickable, "note": f"failed: {type(exc).__name__}: {exc}"[:500]}
                )
    finally:
        frame.unpersist()
        if prev is not None:
            prev.unpersist()
    return rank(rows)


def recommended(rows: Sequence[Mapping]) -> str | None:
    """The recommended candidate's name (None when no candidate is pickable)."""
    return next((r["candidate"] for r in rows if r.get("recommended")), None)


def comparison_rows(rows: Sequence[Mapping], snapshot_date, feature_set: str, used: str | None) -> list[tuple]:
    """Rows for COMPARISON_SCHEMA; ``used`` is the candidate the segment stage assigned with."""
    fixed = {"snapshot_date": snapshot_date, "feature_set": feature_set}
    out = []
    for r in rows:
        values = {**r, **fixed, "used": r["candidate"] == used}
        out.append(tuple(values.get(f.name) for f in COMPARISON_SCHEMA.fields))
    return out


__all__ = [
    "COMPARISON_SCHEMA",
    "CRITERIA",
    "Candidate",
    "clustering_candidate",
    "compare_segmentations",
    "comparison_frame",
    "comparison_rows",
    "index_labels",
    "rank",
    "recommended",
    "rfm_candidate",
    "score_candidate",
]
