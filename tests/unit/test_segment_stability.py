"""Stable labels (Hungarian matching of centres, max-shift rule, fresh ids), the migration
matrix on a hand-made pair of snapshots, and a two-snapshot drift run of the whole chain."""

from __future__ import annotations

import pytest
from chispa import assert_approx_df_equality

from custseg.segment.kmeans import Centre
from custseg.segment.stability import (
    MIGRATION_COLUMNS,
    PreviousSegment,
    match_segments,
    migration_matrix,
)

COLS = ["a", "b"]


def _c(cluster, size, a, b):
    return Centre(cluster, size, (a, b), (a, b), 0.0, 0.0)


def test_first_snapshot_numbers_segments_by_size():
    matches = match_segments([_c(0, 10, 0, 0), _c(1, 30, 5, 5), _c(2, 20, -5, 5)], COLS)
    assert [(m.cluster, m.segment_id, m.previous_id) for m in matches] == [(1, 1, None), (2, 2, None), (0, 3, None)]


def test_permuted_clusters_keep_their_ids_and_far_ones_are_new():
    previous = [
        PreviousSegment(4, "Loyal", {"a": 0.0, "b": 0.0}),
        PreviousSegment(7, "Dormant", {"a": 5.0, "b": 5.0}),
        PreviousSegment(9, "Gone", {"a": -5.0, "b": -5.0}),
    ]
    centres = [
        _c(0, 50, 5.2, 4.9),  # Dormant, moved a little
        _c(1, 40, 0.1, -0.1),  # Loyal
        _c(2, 30, -5.0, 6.0),  # nothing close: 'Gone' is at RMS distance ~7.8 > 0.5
    ]
    matches = {m.cluster: m for m in match_segments(centres, COLS, previous, max_shift=0.5, next_id=12)}
    assert (matches[0].segment_id, matches[0].previous_name) == (7, "Dormant")
    assert matches[0].shift == pytest.approx(((0.2**2 + 0.1**2) / 2) ** 0.5)
    assert (matches[1].segment_id, matches[1].previous_name) == (4, "Loyal")
    assert (matches[2].segment_id, matches[2].previous_id, matches[2].shift) == (12, None, None)


def test_other_feature_set_matches_nothing():
    previous = [PreviousSegment(1, "X", {"a": 0.0, "z": 0.0})]
    matches = match_segments([_c(0, 5, 0, 0)], COLS, previous, next_id=2)
    assert (matches[0].segment_id, matches[0].previous_id) == (2, None)


def test_migration_matrix_with_arrivals_and_departures(spark):
    schema = "customer_key string, segment_id int, segment_name string"
    prev = spark.createDataFrame(
        [("a", 1, "Loyal"), ("b", 1, "Loyal"), ("c", 1, "Loyal"), ("d", 2, "New"), ("e", 2, "New")], schema
    )
    cur = spark.createDataFrame(
        [("a", 1, "Loyal"), ("b", 1, "Loyal"), ("c", 3, "Dormant"), ("d", 1, "Loyal"), ("f", 2, "New")], schema
    )
    out = migration_matrix(prev, cur)
    assert out.columns == MIGRATION_COLUMNS
    expected = spark.createDataFrame(
        [
            (1, "Loyal", 1, "Loyal", 2, 2 / 3),
            (1, "Loyal", 3, "Dormant", 1, 1 / 3),
            (2, "New", 1, "Loyal", 1, 0.5),
            (2, "New", None, None, 1, 0.5),  # e left
            (None, None, 2, "New", 1, 1.0),  # f arrived
        ],
        "from_segment_id int, from_segment_name string, to_segment_id int, to_segment_name string, customers long, share_of_from double",
    )
    assert_approx_df_equality(out, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def test_two_snapshots_with_small_drift_keep_ids_and_names(spark):
    """Week 2: centres drift by 0.15 sd, 10% of customers leave and 10% arrive."""
    from custseg.segment.kmeans import fit_segments
    from custseg.segment.naming import assign_names
    from custseg.segment.quality import adjusted_rand_index
    from custseg.segment.synthetic import gaussian_blobs

    centres = [[0, 0, 0], [6, 0, 0], [0, 6, 0], [0, 0, 6]]
    cols = ["x0", "x1", "x2"]
    week1 = gaussian_blobs(spark, 800, centres, seed=5, partitions=1)
    week2 = gaussian_blobs(
        spark, 800, [[v + 0.15 for v in c] for c in centres], seed=5, first_id=80, partitions=1, noise_seed=6
    )
    kw = {"k": 4, "n_init": 2, "max_iter": 30, "parallel": 1}

    def label(fit, previous, next_id):
        matches = match_segments(fit.centres, cols, previous, 0.5, next_id)
        z = {m.segment_id: dict(zip(cols, fit.centre(m.cluster).z, strict=True)) for m in matches}
        profiles = [{"segment_id": m.segment_id, "profile_z": z[m.segment_id]} for m in matches]
        names = assign_names(profiles, [], {m.segment_id: m.previous_name for m in matches if m.previous_name})
        ids = spark.createDataFrame([(m.cluster, m.segment_id) for m in matches], "cluster int, segment_id int")
        labelled = fit.assignments.join(ids, "cluster", how="inner").select("customer_key", "segment_id")
        return matches, names, z, labelled

    fit1 = fit_segments(week1, cols, seed=1, **kw)
    m1, names1, z1, seg1 = label(fit1, [], 1)
    previous = [PreviousSegment(sid, names1[sid], z1[sid]) for sid in names1]
    fit2 = fit_segments(week2, cols, seed=1, **kw)
    m2, names2, _, seg2 = label(fit2, previous, 5)
    assert all(m.previous_id == m.segment_id for m in m2)
    assert names2 == names1
    both = seg1.withColumnRenamed("segment_id", "s1").join(
        seg2.withColumnRenamed("segment_id", "s2"), "customer_key", how="inner"
    )
    assert both.count() == 720
    assert adjusted_rand_index(both, "s1", "s2") >= 0.9
    fit1.unpersist()
    fit2.unpersist()
