"""The paper's four criteria for a segmentation (§3.3.1-3.3.2), from bounded Spark aggregates.

Each function takes a frame with an integer ``label`` column (0..k-1) and brings back at
most k rows (or k x 2 counts): nothing that grows with the customers reaches the driver.

- distinctiveness: how much the segment tells about each feature's z band (the entropy-based
  uncertainty coefficient of quality.py); the entropy of the size distribution is reported
  beside it but not scored: random labels of equal shares maximise it;
- stability: the adjusted Rand index (quality.py) between two labelings;
- interpretability: the accuracy of a shallow decision tree that predicts the labels from the
  features (surrogate fidelity), and how many features set each segment apart;
- effectiveness: the chi-square test of response by segment (Cramér's V as the effect size),
  or, without campaign responses, a one-way ANOVA of a value measure (eta squared).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyspark.ml.classification import DecisionTreeClassifier
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy import stats as sps

from custseg.segment.quality import cluster_stats

LABEL = "label"


def size_entropy(counts: Sequence[float]) -> tuple[float, float]:
    """(entropy of the size shares in nats, that entropy / ln k): 1 = equal sizes, 0 = one segment."""
    c = np.asarray([v for v in counts if v > 0], dtype=float)
    if c.size == 0:
        return 0.0, 0.0
    p = c / c.sum()
    h = float(-(p * np.log(p)).sum())
    return h, (h / float(np.log(c.size)) if c.size > 1 else 0.0)


def label_counts(labels: DataFrame, col: str = LABEL) -> dict[int, int]:
    """Customers per label (k rows back)."""
    return {
        int(r["_l"]): int(r["n"])
        for r in labels.groupBy(F.col(col).alias("_l")).count().withColumnRenamed("count", "n").collect()
    }


@dataclass(frozen=True)
class Test:
    """A test of "the segments differ": statistic, degrees of freedom, p-value, effect size in 0..1."""

    statistic: float | None
    dof: float | None
    p_value: float | None
    effect: float | None


NO_TEST = Test(None, None, None, None)


def chi_square(table: np.ndarray) -> Test:
    """Pearson's chi-square of independence on a segments x outcomes table of counts.

    Rows or columns without counts are dropped; effect = Cramér's V = sqrt(chi2 / (n (min(r, c) - 1))).
    """
    t = np.asarray(table, dtype=float)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0] if t.size else t
    if t.ndim != 2 or min(t.shape) < 2:
        return NO_TEST
    n = t.sum()
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / n
    stat = float(((t - expected) ** 2 / expected).sum())
    dof = (t.shape[0] - 1) * (t.shape[1] - 1)
    v = float(np.sqrt(stat / (n * (min(t.shape) - 1))))
    return Test(stat, float(dof), float(sps.chi2.sf(stat, dof)), v)


def anova(counts: Sequence[float], sums: Sequence[float], sumsq: Sequence[float]) -> Test:
    """One-way ANOVA F from per-segment count, sum and sum of squares; effect = eta squared (SSB / SST)."""
    n_s, s, q = (np.asarray(v, dtype=float) for v in (counts, sums, sumsq))
    keep = n_s > 0
    n_s, s, q = n_s[keep], s[keep], q[keep]
    k, n = len(n_s), float(n_s.sum())
    if k < 2 or n <= k:
        return NO_TEST
    grand = s.sum() / n
    ssb = float((n_s * (s / n_s - grand) ** 2).sum())
    ssw = float(max((q - s**2 / n_s).sum(), 0.0))
    sst = ssb + ssw
    if ssw == 0:
        return Test(float("inf") if ssb > 0 else None, float(k - 1), 0.0 if ssb > 0 else None, 1.0 if ssb > 0 else 0.0)
    f = (ssb / (k - 1)) / (ssw / (n - k))
    return Test(float(f), float(k - 1), float(sps.f.sf(f, k - 1, n - k)), ssb / sst if sst > 0 else 0.0)


def surrogate_fidelity(data: DataFrame, features_col: str, depth: int = 3, seed: int = 42, col: str = LABEL) -> float:
    """Share of rows whose label a depth-``depth`` decision tree on ``features_col`` predicts
    correctly (fitted and scored on the same rows: how well the tree explains the labels)."""
    tree = DecisionTreeClassifier(
        featuresCol=features_col,
        labelCol="_surrogate_label",
        predictionCol="_surrogate",
        rawPredictionCol="_surrogate_raw",
        probabilityCol="_surrogate_p",
        maxDepth=depth,
        seed=seed,
    )
    train = data.select(features_col, F.col(col).cast("double").alias("_surrogate_label"))
    model = tree.fit(train)
    hit = (F.col("_surrogate") == F.col("_surrogate_label")).cast("double")
    return float(model.transform(train).agg(F.avg(hit).alias("a")).first()["a"] or 0.0)


def features_per_segment(
    data: DataFrame, dims: int, features_col: str, min_z: float = 0.5, col: str = LABEL
) -> tuple[float, float]:
    """(mean over segments of the features whose segment mean lies at least ``min_z`` overall sds
    from the overall mean, the share of customers in a segment with at least one such feature)."""
    st = cluster_stats(data, dims, col, features_col)
    n = st.counts.sum()
    if n == 0:
        return 0.0, 0.0
    mean = st.sums.sum(axis=0) / n
    sd = np.sqrt(np.maximum(st.sumsq.sum(axis=0) / n - mean**2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (st.means - mean) / sd, 0.0)
    material = (np.abs(z) >= min_z).sum(axis=1)
    return float(material.mean()), float(st.counts[material > 0].sum() / n)


MIN_SPREAD_CONTACTS = 30


def response_test(
    labels: DataFrame, responses: DataFrame, col: str = LABEL, min_contacts: int = MIN_SPREAD_CONTACTS
) -> tuple[Test, dict]:
    """Chi-square of converted vs not among treatment contacts, by segment; and the spreads
    (max - min over segments with at least ``min_contacts`` treatment contacts, and as many
    control contacts for the lift) of the response rate and of the lift over control."""
    treated = F.lower(F.col("group")) == "treatment"
    control = F.lower(F.col("group")) == "control"
    conv = F.coalesce(F.col("converted").cast("boolean"), F.lit(False))
    rows = (
        responses.select("customer_key", "group", "converted")
        .join(labels.select("customer_key", F.col(col).alias("_l")), on="customer_key", how="inner")
        .groupBy("_l")
        .agg(
            F.sum(F.when(treated, 1).otherwise(0)).alias("n"),
            F.sum(F.when(treated & conv, 1).otherwise(0)).alias("y"),
            F.sum(F.when(control, 1).otherwise(0)).alias("cn"),
            F.sum(F.when(control & conv, 1).otherwise(0)).alias("cy"),
        )
        .collect()
    )
    rows = [r for r in rows if (r["n"] or 0) > 0]
    table = np.array([[r["y"], r["n"] - r["y"]] for r in rows], dtype=float).reshape(len(rows), 2)
    # A rate of 1 contact is 0 or 1: the spreads read only segments with enough contacts.
    big = [r for r in rows if r["n"] >= min_contacts]
    rates = [r["y"] / r["n"] for r in big]
    lifts = [r["y"] / r["n"] - r["cy"] / r["cn"] for r in big if (r["cn"] or 0) >= min_contacts]
    spread = {
        "contacts": int(table.sum()),
        "response_rate_spread": (max(rates) - min(rates)) if len(rates) > 1 else None,
        "lift_spread": (max(lifts) - min(lifts)) if len(lifts) > 1 else None,
    }
    return chi_square(table), spread


def value_test(data: DataFrame, value_col: str, col: str = LABEL) -> Test:
    """One-way ANOVA of ``value_col`` across segments (the fallback without campaign responses)."""
    v = F.col(value_col).cast("double")
    rows = (
        data.where(v.isNotNull())
        .groupBy(F.col(col).alias("_l"))
        .agg(F.count(F.lit(1)).alias("n"), F.sum(v).alias("s"), F.sum(v * v).alias("q"))
        .collect()
    )
    return anova([r["n"] for r in rows], [r["s"] for r in rows], [r["q"] for r in rows])


__all__ = [
    "LABEL",
    "NO_TEST",
    "Test",
    "anova",
    "chi_square",
    "features_per_segment",
    "label_counts",
    "response_test",
    "size_entropy",
    "surrogate_fidelity",
    "value_test",
]
