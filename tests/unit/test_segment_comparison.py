"""gold.segmentation_comparison: the criteria hand-computed on tiny inputs, the ranking rule, and
the acceptance check on planted personas (issue 24 item 5): the planted clustering ranks above
random labels on every criterion."""

from __future__ import annotations

import math

import pytest
from pyspark.ml.functions import array_to_vector
from pyspark.sql import functions as F

from custseg.segment.comparison import (
    CRITERIA,
    Candidate,
    _ari,
    clustering_candidate,
    compare_segmentations,
    comparison_frame,
    index_labels,
    rank,
    recommended,
    rfm_candidate,
)
from custseg.segment.criteria import (
    LABEL,
    anova,
    chi_square,
    features_per_segment,
    size_entropy,
    surrogate_fidelity,
)
from custseg.segment.synthetic import gaussian_blobs


def test_size_entropy_hand_computed():
    assert size_entropy([2, 2]) == pytest.approx((math.log(2), 1.0))
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))  # 0.5623
    assert size_entropy([30, 10]) == pytest.approx((h, h / math.log(2)))
    assert size_entropy([7, 0]) == (0.0, 0.0)  # one segment holds everyone


def test_chi_square_hand_computed():
    # expected [[13.33, 6.67], [26.67, 13.33]]; each cell is 3.33 off: 11.11 * (3/40 + 3/20 + 3/80 + 3/40) = 3.75
    t = chi_square([[10, 10], [30, 10], [0, 0]])  # the empty segment is dropped
    assert t.statistic == pytest.approx(3.75)
    assert t.dof == 1
    assert t.p_value == pytest.approx(math.erfc(math.sqrt(3.75 / 2)))  # chi2 sf with 1 dof
    assert t.effect == pytest.approx(math.sqrt(3.75 / 60))  # Cramér's V = 0.25
    assert chi_square([[3, 1]]).statistic is None  # one segment: no test


def test_anova_hand_computed():
    # groups {1,2,3} and {4,5,6}: means 2 and 5, grand 3.5; SSB = 2 * 3 * 1.5^2 = 13.5, SSW = 2 + 2
    t = anova([3, 3], [6, 15], [14, 77])
    assert t.statistic == pytest.approx(13.5 / (4 / 4))
    assert t.dof == 1
    assert t.effect == pytest.approx(13.5 / 17.5)
    assert 0 < t.p_value < 0.05


def test_ari_tiny_example_by_hand(spark):
    # a = 000111, b = 001122: pairs together in both = C(2,2) + C(2,2) = 2; in a: 2 C(3,2) = 6;
    # in b: 3 C(2,2) = 3; expected 6 * 3 / C(6,2) = 1.2; max (6 + 3) / 2 = 4.5; ARI = 0.8 / 3.3
    a = spark.createDataFrame(
        [(str(i), v) for i, v in enumerate([0, 0, 0, 1, 1, 1])], f"customer_key string, {LABEL} int"
    )
    b = spark.createDataFrame(
        [(str(i), v) for i, v in enumerate([0, 0, 1, 1, 2, 2])], f"customer_key string, {LABEL} int"
    )
    ari, n = _ari(a, b)
    assert n == 6
    assert ari == pytest.approx(0.8 / 3.3)
    assert _ari(a, a)[0] == pytest.approx(1.0)


def _vectors(spark, rows):
    df = spark.createDataFrame(rows, f"customer_key string, x array<double>, {LABEL} int")
    return df.select("customer_key", array_to_vector("x").alias("features"), LABEL)


def test_surrogate_fidelity_separable_and_not(spark):
    separable = _vectors(spark, [(str(i), [float(i), 0.0], int(i >= 5)) for i in range(10)])
    assert surrogate_fidelity(separable, "features") == pytest.approx(1.0)
    # identical features, labels 0 0 0 1: no split helps, the tree says 0 for all: 3 of 4 right
    same = _vectors(spark, [(str(i), [1.0, 1.0], int(i == 3)) for i in range(4)])
    assert surrogate_fidelity(same, "features") == pytest.approx(0.75)


def test_features_per_segment_hand_computed(spark):
    # x: seg0 -1 -1, seg1 1 1, seg2 0 0; y constant. mean 0, sd sqrt(4/6) = 0.816: seg0 and
    # seg1 lie 1.22 sd out on x (material), seg2 on nothing; y never (sd 0).
    rows = [("a", [-1.0, 5.0], 0), ("b", [-1.0, 5.0], 0), ("c", [1.0, 5.0], 1), ("d", [1.0, 5.0], 1)]
    rows += [("e", [0.0, 5.0], 2), ("f", [0.0, 5.0], 2)]
    per_segment, described = features_per_segment(_vectors(spark, rows), 2, "features", min_z=0.5)
    assert per_segment == pytest.approx(2 / 3)
    assert described == pytest.approx(4 / 6)


def test_index_labels_maps_sorted_values(spark):
    df = spark.createDataFrame(
        [("a", "Lost"), ("b", "Champions"), ("c", "Lost"), ("d", None)], f"customer_key string, {LABEL} string"
    )
    got = {r["customer_key"]: r[LABEL] for r in index_labels(df).collect()}
    assert got == {"a": 1, "b": 0, "c": 1}


def test_rank_rule_rank_sum_and_tie_breaks():
    rows = [
        {
            "candidate": "rfm_cells",
            "pickable": False,
            "distinctiveness": 0.9,
            "stability": 1.0,
            "interpretability": 1.0,
            "effectiveness": 0.5,
        },
        {
            "candidate": "gmm",
            "pickable": True,
            "distinctiveness": 0.5,
            "stability": 0.9,
            "interpretability": 0.8,
            "effectiveness": None,
        },
        {
            "candidate": "kmeans",
            "pickable": True,
            "distinctiveness": 0.6,
            "stability": 0.8,
            "interpretability": 0.8,
            "effectiveness": 0.2,
        },
        {
            "candidate": "bisecting",
            "pickable": True,
            "distinctiveness": 0.6,
            "stability": 0.7,
            "interpretability": 0.9,
            "effectiveness": 0.1,
        },
    ]
    out = {r["candidate"]: r for r in rank(rows)}
    assert [out["kmeans"][f"rank_{c}"] for c in CRITERIA] == [2, 3, 3, 2]  # ties share the better rank
    assert out["gmm"]["rank_effectiveness"] == 4  # a missing score ranks last
    assert {n: r["rank_sum"] for n, r in out.items()} == {"rfm_cells": 4, "gmm": 13, "kmeans": 10, "bisecting": 11}
    # rfm_cells ranks best but cannot assign segments: the best pickable one is recommended
    assert recommended(list(out.values())) == "kmeans"
    assert [r["candidate"] for r in out.values() if r["recommended"]] == ["kmeans"]


def test_rank_ties_go_to_stability_then_to_the_cheaper_algorithm():
    scores = {"interpretability": 0.8, "effectiveness": 0.1}
    tied = [
        {"candidate": "bisecting", "pickable": True, "distinctiveness": 0.6, "stability": 0.8, **scores},
        {"candidate": "gmm", "pickable": True, "distinctiveness": 0.5, "stability": 0.9, **scores},
    ]
    assert [r["rank_sum"] for r in rank(tied)] == [5, 5]
    assert recommended(rank(tied)) == "gmm"  # the same rank sum, the higher stability
    same = [dict(tied[0], candidate=name) for name in ("gmm", "bisecting", "kmeans")]
    assert recommended(rank(same)) == "kmeans"  # all equal: kmeans, bisecting, gmm in that order
    failed = [*tied, {"candidate": "kmeans", "pickable": True, "note": "failed: boom"}]
    out = rank(failed)
    assert out[2]["rank_sum"] == 12 and recommended(out) == "gmm"  # a failed candidate ranks last, never picked


# --- acceptance: planted personas against random labels ------------------------------------------

COLS = ["recency_days", "frequency", "monetary", "tenure_days"]
PERSONAS = [[10.0, 12.0, 900.0, 700.0], [200.0, 2.0, 80.0, 300.0], [60.0, 6.0, 300.0, 60.0]]


def _snapshot(spark, first_id):
    # The persona is a hash of the customer id: customers in both snapshots keep theirs.
    return gaussian_blobs(
        spark,
        600,
        PERSONAS,
        sd=[4.0, 15.0, 8.0],
        seed=5,
        columns=COLS,
        first_id=first_id,
        partitions=2,
        noise_seed=first_id + 1,
    ).select("customer_key", "truth", *[F.abs(F.col(c)).alias(c) for c in COLS])


def _responses(spark, snapshot):
    """Persona 0 converts at 40% when contacted, the others at 5%; a third are held out (3% convert)."""
    u, g = F.rand(11), F.abs(F.xxhash64("customer_key")) % 3
    treatment = g != 0
    p = F.when(~treatment, 0.03).when(F.col("truth") == 0, 0.4).otherwise(0.05)
    return snapshot.select(
        F.lit("c1").alias("campaign_id"),
        "customer_key",
        F.when(treatment, "treatment").otherwise("control").alias("group"),
        (u < p).alias("converted"),
    )


def _planted(train, apply, seed):
    return apply.select("customer_key", F.col("truth").cast("int").alias(LABEL))


def _random(train, apply, seed):
    # learns nothing: a fresh draw at every fit
    return apply.select("customer_key", F.floor(F.rand(seed) * 3).cast("int").alias(LABEL))


@pytest.fixture(scope="module")
def compared(spark):
    current, previous = _snapshot(spark, 100).persist(), _snapshot(spark, 0).persist()
    frame = comparison_frame(current, COLS, log1p_columns=["monetary"], extra_columns=["truth"])
    prev = comparison_frame(previous, COLS, log1p_columns=["monetary"], extra_columns=["truth"])
    candidates = [
        Candidate("planted", _planted),
        Candidate("random", _random),
        clustering_candidate("kmeans", 3, n_init=2, max_iter=10),
        rfm_candidate(),
    ]
    rows = compare_segmentations(
        frame, candidates, len(COLS), previous=prev, responses=_responses(spark, current), bootstrap=2, seed=3
    )
    current.unpersist()
    previous.unpersist()
    return {r["candidate"]: r for r in rows}


def test_planted_personas_rank_above_random_labels_on_every_criterion(compared):
    planted, rand = compared["planted"], compared["random"]
    for crit in CRITERIA:
        assert planted[crit] > rand[crit], crit
        assert planted[f"rank_{crit}"] < rand[f"rank_{crit}"], crit
    assert planted["rank_sum"] < rand["rank_sum"]
    # the planted figures themselves, and random labels near their floor
    assert planted["distinctiveness"] > 0.5 and rand["distinctiveness"] < 0.05
    assert planted["bootstrap_ari"] == pytest.approx(1.0) and abs(rand["bootstrap_ari"]) < 0.05
    assert planted["ari_previous"] == pytest.approx(1.0) and abs(rand["ari_previous"]) < 0.05
    assert planted["customers_in_both"] == 500
    assert planted["surrogate_fidelity"] > 0.95 and rand["surrogate_fidelity"] < 0.5
    assert planted["described_share"] == pytest.approx(1.0)
    assert planted["effectiveness_basis"] == "response" and planted["effectiveness_p_value"] < 1e-6
    assert rand["effectiveness_p_value"] > 1e-3
    assert planted["response_rate_spread"] > 0.25
    assert planted["lift_spread"] > 0.25  # about 0.40 - 0.05 between persona 0 and the others
    assert compared["rfm_cells"]["response_rate_spread"] < 1.0  # cells of a few contacts are left out


def test_kmeans_finds_the_personas_and_is_recommended(compared):
    km = compared["kmeans"]
    assert km["k"] == 3
    for crit in CRITERIA:
        assert km[crit] > compared["random"][crit], crit
    assert km["bootstrap_ari"] > 0.9 and km["ari_previous"] > 0.9
    assert recommended(list(compared.values())) == "kmeans"  # the only pickable candidate
    rfm = compared["rfm_cells"]
    assert rfm["k"] >= 2 and all(rfm[c] is not None for c in CRITERIA)


def test_report_section_ranks_the_candidates(spark):
    from datetime import date

    from custseg.report.sections import SECTIONS, ReportInputs, render_section
    from custseg.segment.comparison import COMPARISON_SCHEMA, comparison_rows

    d = date(2026, 6, 30)
    base = {"distinctiveness": 0.5, "stability": 0.9, "interpretability": 0.8, "effectiveness": 0.1}
    rows = rank(
        [
            {"candidate": "gmm", "pickable": True, **base, "distinctiveness": 0.2},
            {"candidate": "kmeans", "pickable": True, **base},
            {"candidate": "rfm_cells", "pickable": False, **base, "stability": None},
        ]
    )
    table = spark.createDataFrame(comparison_rows(rows, d, "persona", "kmeans"), COMPARISON_SCHEMA)
    spec = next(s for s in SECTIONS if s.key == "segmentation_comparison")
    out = render_section(spec, ReportInputs(d, {"gold.segmentation_comparison": table}))
    assert out.status == "ok", out.message
    assert len(out.figures) == 1
    shown = out.tables[0].frame
    assert list(shown["candidate"]) == ["kmeans", "gmm", "rfm_cells"]  # rank sums 4, 6, 6
    assert list(shown["rank_sum"]) == [4, 6, 6]
    assert out.notes == ["recommended: kmeans"]
    missing = render_section(spec, ReportInputs(d, {}))
    assert missing.status == "unavailable"
