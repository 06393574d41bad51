"""Stable segment ids across snapshots, and the migration matrix between two snapshots.

KMeans numbers its clusters arbitrarily, so each new snapshot's centres are matched to
the previous snapshot's (read back from ``segment_profiles``: the centre in scaled units,
per feature name) with the Hungarian algorithm on their distance. A matched cluster keeps
the previous segment id (and name); a cluster matched to nothing, or whose centre moved
more than ``max_shift`` (RMS shift per feature, in standard deviations), is a new segment
with a fresh id above every id used before, so an id never changes meaning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window
from scipy.optimize import linear_sum_assignment

from custseg.segment.kmeans import Centre

MIGRATION_COLUMNS = [
    "from_segment_id",
    "from_segment_name",
    "to_segment_id",
    "to_segment_name",
    "customers",
    "share_of_from",
]


@dataclass(frozen=True)
class PreviousSegment:
    """A segment of the previous snapshot: id, name and centre (scaled units) by feature."""

    segment_id: int
    segment_name: str | None
    centre_z: Mapping[str, float]


@dataclass(frozen=True)
class Match:
    """Where a cluster of this fit goes: its segment id, the previous segment it continues
    (None: new) and how far its centre moved (RMS per feature, scaled units)."""

    cluster: int
    segment_id: int
    previous_id: int | None
    shift: float | None
    previous_name: str | None = None


def rms_shift(a: Sequence[float], b: Sequence[float]) -> float:
    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.sqrt(np.mean((a_ - b_) ** 2)))


def match_segments(
    centres: Sequence[Centre],
    feature_cols: Sequence[str],
    previous: Sequence[PreviousSegment] = (),
    max_shift: float = 0.5,
    next_id: int = 1,
) -> list[Match]:
    """Segment ids for this fit's clusters: Hungarian matching to ``previous`` on the RMS
    shift of their centres over the features both have; new segments get ids from
    ``next_id`` up, the largest first. Without common features nothing matches."""
    cols = list(feature_cols)
    prev = [p for p in previous if p.centre_z]
    common = [c for c in cols if prev and all(c in p.centre_z and p.centre_z[c] is not None for p in prev)]
    # Same feature set required: a centre in other coordinates is not the same segment.
    if prev and len(common) != len(cols):
        common = []
    matched: dict[int, tuple[PreviousSegment, float]] = {}
    if prev and common and centres:
        idx = [cols.index(c) for c in common]
        cost = np.array(
            [[rms_shift([cen.z[i] for i in idx], [p.centre_z[c] for c in common]) for p in prev] for cen in centres]
        )
        rows, cols_ = linear_sum_assignment(cost)
        for r, c in zip(rows, cols_, strict=True):
            if cost[r, c] <= max_shift:
                matched[centres[r].cluster] = (prev[c], float(cost[r, c]))
    out: list[Match] = []
    nid = max(next_id, 1 + max((p.segment_id for p in previous), default=0))
    for cen in sorted(centres, key=lambda c: (-c.size, c.cluster)):
        if cen.cluster in matched:
            p, shift = matched[cen.cluster]
            out.append(Match(cen.cluster, p.segment_id, p.segment_id, shift, p.segment_name))
        else:
            out.append(Match(cen.cluster, nid, None, None, None))
            nid += 1
    return sorted(out, key=lambda m: m.segment_id)


def migration_matrix(previous: DataFrame, current: DataFrame) -> DataFrame:
    """Counts of customers by (previous segment, current segment).

    Both inputs: customer_key, segment_id, segment_name. Customers only in the current
    snapshot have a null ``from_segment_id`` (arrivals), those only in the previous one a
    null ``to_segment_id`` (departures). ``share_of_from`` = customers / the from-segment's
    customers (rows of a from-segment sum to 1).
    """
    a = previous.select(
        "customer_key", F.col("segment_id").alias("from_segment_id"), F.col("segment_name").alias("from_segment_name")
    )
    b = current.select(
        "customer_key", F.col("segment_id").alias("to_segment_id"), F.col("segment_name").alias("to_segment_name")
    )
    counts = (
        a.join(b, on="customer_key", how="full")
        .groupBy("from_segment_id", "from_segment_name", "to_segment_id", "to_segment_name")
        .agg(F.count(F.lit(1)).alias("customers"))
    )
    per_from = Window.partitionBy("from_segment_id")
    return counts.select(
        F.col("from_segment_id").cast("int").alias("from_segment_id"),
        F.col("from_segment_name").cast("string").alias("from_segment_name"),
        F.col("to_segment_id").cast("int").alias("to_segment_id"),
        F.col("to_segment_name").cast("string").alias("to_segment_name"),
        F.col("customers").cast("long").alias("customers"),
        (F.col("customers") / F.sum("customers").over(per_from)).cast("double").alias("share_of_from"),
    )


__all__ = ["MIGRATION_COLUMNS", "Match", "PreviousSegment", "match_segments", "migration_matrix", "rms_shift"]
