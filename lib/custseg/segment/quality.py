"""Cluster quality from bounded Spark aggregates.

Every score here is computed from per-cluster sums that Spark aggregates; the driver
sees k rows (or k x k' counts), never a row per customer:

- within-cluster SS, total SS and Calinski-Harabasz from per-cluster count, sum and sum of
  squares of each scaled feature (WSS_c = sum_x2 - sum_x^2 / n);
- entropy-based distinctiveness from per-cluster counts of each feature's z band;
- the adjusted Rand index from the contingency table of two labelings;
- response rate per segment from campaign responses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import comb

import numpy as np
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# z bands for distinctiveness: (-inf,-1.5], (-1.5,-0.5], (-0.5,0.5], (0.5,1.5], (1.5,inf)
Z_CUTS: tuple[float, ...] = (-1.5, -0.5, 0.5, 1.5)


@dataclass(frozen=True)
class ClusterStats:
    """Sufficient statistics per cluster, in scaled units (rows follow ``clusters``)."""

    clusters: tuple[int, ...]
    counts: np.ndarray  # (k,)
    sums: np.ndarray  # (k, d)
    sumsq: np.ndarray  # (k, d)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def k(self) -> int:
        return len(self.clusters)

    @property
    def means(self) -> np.ndarray:
        return self.sums / self.counts[:, None]

    def wss_per_cluster(self) -> np.ndarray:
        return np.maximum((self.sumsq - self.sums**2 / self.counts[:, None]).sum(axis=1), 0.0)

    def wss(self) -> float:
        return float(self.wss_per_cluster().sum())

    def tss(self) -> float:
        tot, totsq = self.sums.sum(axis=0), self.sumsq.sum(axis=0)
        return float(max((totsq - tot**2 / self.n).sum(), 0.0))

    def calinski_harabasz(self) -> float | None:
        """(BSS / (k-1)) / (WSS / (n-k)); None when undefined (k < 2 or n <= k)."""
        k, n = self.k, self.n
        if k < 2 or n <= k:
            return None
        wss = self.wss()
        bss = self.tss() - wss
        return float("inf") if wss == 0 else float((bss / (k - 1)) / (wss / (n - k)))


def _as_array(vec_col: str) -> Column:
    return vector_to_array(F.col(vec_col))


def cluster_stats(df: DataFrame, dims: int, cluster_col: str = "cluster", vec_col: str = "features") -> ClusterStats:
    """Count, sum and sum of squares per cluster and feature: one aggregate, k rows back."""
    x = df.select(F.col(cluster_col).alias("_c"), _as_array(vec_col).alias("_x"))
    aggs = [F.count(F.lit(1)).alias("_n")]
    for i in range(dims):
        v = F.col("_x")[i]
        aggs += [F.sum(v).alias(f"_s{i}"), F.sum(v * v).alias(f"_q{i}")]
    rows = sorted(x.groupBy("_c").agg(*aggs).collect(), key=lambda r: r["_c"])
    return ClusterStats(
        clusters=tuple(int(r["_c"]) for r in rows),
        counts=np.array([float(r["_n"]) for r in rows]),
        sums=np.array([[float(r[f"_s{i}"]) for i in range(dims)] for r in rows]).reshape(len(rows), dims),
        sumsq=np.array([[float(r[f"_q{i}"]) for i in range(dims)] for r in rows]).reshape(len(rows), dims),
    )


def band_counts(
    df: DataFrame, dims: int, cluster_col: str = "cluster", vec_col: str = "features", cuts: Sequence[float] = Z_CUTS
) -> tuple[tuple[int, ...], np.ndarray]:
    """Per cluster, feature and z band, the number of rows: (clusters, counts[k, d, bands])."""
    x = df.select(F.col(cluster_col).alias("_c"), _as_array(vec_col).alias("_x"))
    bands = len(cuts) + 1
    aggs = []
    for i in range(dims):
        band = F.lit(0)
        for cut in cuts:
            band = band + F.when(F.col("_x")[i] > F.lit(float(cut)), 1).otherwise(0)
        for b in range(bands):
            aggs.append(F.sum(F.when(band == b, 1).otherwise(0)).alias(f"_b{i}_{b}"))
    rows = sorted(x.groupBy("_c").agg(*aggs).collect(), key=lambda r: r["_c"])
    counts = np.array([[[float(r[f"_b{i}_{b}"]) for b in range(bands)] for i in range(dims)] for r in rows]).reshape(
        len(rows), dims, bands
    )
    return tuple(int(r["_c"]) for r in rows), counts


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=axis)


def distinctiveness_from_counts(counts: np.ndarray) -> tuple[float, np.ndarray]:
    """Entropy-based distinctiveness from band counts ``[k, d, bands]``.

    Per feature f, the uncertainty coefficient U_f = I(S; B_f) / H(B_f): the share of the
    entropy of f's z band that knowing the segment removes (0: segments look alike on f,
    1: the segment fixes the band). Overall score = mean of U_f over features with
    H(B_f) > 0. Per segment s: mean over features of KL(P(B_f | s) || P(B_f)) in nats, how
    far the segment's profile is from everyone's (sum_s p(s) KL_s,f = I(S; B_f)).
    """
    k, d, _ = counts.shape
    n_s = counts[:, 0, :].sum(axis=1)  # every feature has each row once
    n = n_s.sum()
    if n == 0 or k == 0:
        return 0.0, np.zeros(k)
    p_b = counts.sum(axis=0) / n  # (d, bands)
    p_b_s = counts / np.maximum(n_s, 1)[:, None, None]  # (k, d, bands)
    h_b = _entropy(p_b)  # (d,)
    h_b_s = _entropy(p_b_s)  # (k, d)
    mi = h_b - (n_s[:, None] / n * h_b_s).sum(axis=0)  # (d,)
    informative = h_b > 1e-12
    overall = float(np.mean(mi[informative] / h_b[informative])) if informative.any() else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_terms = np.where(p_b_s > 0, p_b_s * np.log(p_b_s / p_b[None, :, :]), 0.0)
    per_segment = kl_terms.sum(axis=2).mean(axis=1)
    return min(max(overall, 0.0), 1.0), per_segment


def ari_from_contingency(table: np.ndarray) -> float:
    """Adjusted Rand index (Hubert & Arabie) from a contingency table of counts."""
    table = np.asarray(table, dtype=np.int64)
    n = int(table.sum())
    if n < 2:
        return 1.0
    index = sum(comb(int(v), 2) for v in table.ravel())
    a = sum(comb(int(v), 2) for v in table.sum(axis=1))
    b = sum(comb(int(v), 2) for v in table.sum(axis=0))
    expected = a * b / comb(n, 2)
    maximum = (a + b) / 2
    if maximum == expected:  # both labelings trivial (one class, or all singletons)
        return 1.0
    return float((index - expected) / (maximum - expected))


def contingency(df: DataFrame, col_a: str, col_b: str) -> np.ndarray:
    """Counts of (a, b) label pairs over rows where both are set: k x k' numbers back."""
    rows = (
        df.where(F.col(col_a).isNotNull() & F.col(col_b).isNotNull())
        .groupBy(F.col(col_a).alias("a"), F.col(col_b).alias("b"))
        .count()
        .collect()
    )
    a_vals = sorted({r["a"] for r in rows})
    b_vals = sorted({r["b"] for r in rows})
    table = np.zeros((len(a_vals), len(b_vals)), dtype=np.int64)
    ai, bi = {v: i for i, v in enumerate(a_vals)}, {v: i for i, v in enumerate(b_vals)}
    for r in rows:
        table[ai[r["a"]], bi[r["b"]]] = r["count"]
    return table


def adjusted_rand_index(df: DataFrame, col_a: str, col_b: str) -> float:
    """ARI between two label columns of ``df`` (rows with both labels), computed from the
    contingency table Spark aggregates; the same figure as scikit-learn's adjusted_rand_score."""
    return ari_from_contingency(contingency(df, col_a, col_b))


def response_rates(responses: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Segments (customer_key, segment_id) -> response per segment from campaign responses.

    A contact is one (campaign, customer) row; treatment contacts are the campaign's
    audience, control rows the hold-out. response_rate = converted treatment contacts /
    treatment contacts; lift = response_rate - control_rate (null without a control group).
    """

    def transform(segments: DataFrame) -> DataFrame:
        treated = F.lower(F.col("group")) == "treatment"
        control = F.lower(F.col("group")) == "control"
        converted = F.coalesce(F.col("converted").cast("boolean"), F.lit(False))
        joined = responses.select("campaign_id", "customer_key", "group", "converted").join(
            segments.select("customer_key", "segment_id"), on="customer_key", how="inner"
        )
        agg = joined.groupBy("segment_id").agg(
            F.sum(F.when(treated, 1).otherwise(0)).cast("long").alias("contacts"),
            F.sum(F.when(treated & converted, 1).otherwise(0)).cast("long").alias("responders"),
            F.sum(F.when(control, 1).otherwise(0)).cast("long").alias("control_contacts"),
            F.sum(F.when(control & converted, 1).otherwise(0)).cast("long").alias("control_responders"),
        )
        rate = F.col("responders") / F.when(F.col("contacts") > 0, F.col("contacts"))
        control_rate = F.col("control_responders") / F.when(F.col("control_contacts") > 0, F.col("control_contacts"))
        return agg.select(
            F.col("segment_id").cast("int").alias("segment_id"),
            "contacts",
            "responders",
            rate.cast("double").alias("response_rate"),
            "control_contacts",
            control_rate.cast("double").alias("control_rate"),
            (rate - control_rate).cast("double").alias("lift"),
        )

    return transform


__all__ = [
    "ClusterStats",
    "Z_CUTS",
    "adjusted_rand_index",
    "ari_from_contingency",
    "band_counts",
    "cluster_stats",
    "contingency",
    "distinctiveness_from_counts",
    "response_rates",
]
