"""FP-Growth at scale against mlxtend (a dev dependency, pinned: a missing one fails, never skips) on random baskets.

Same frequent itemsets with the same supports, the same single-consequent rules with
the same metrics, to 1e-9. The baskets are random (seeded) with a few planted
dependencies so that itemsets of size 3 and rules with two-item antecedents exist.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from mlxtend.frequent_patterns import association_rules, fpgrowth

from custseg.basket.fpgrowth import mine

N_BASKETS = 3000
N_ITEMS = 25
MIN_SUPPORT = 0.02
# Not a round ratio, so no rule sits exactly on the threshold where the two float
# formulas (u/a here, (u/N)/(a/N) in mlxtend) could round to different sides.
MIN_CONFIDENCE = 0.2837
TOL = 1e-9


def random_baskets(seed: int = 20260630) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 0.3 / (1 + np.arange(N_ITEMS)) ** 0.7
    m = rng.random((N_BASKETS, N_ITEMS)) < p
    m[:, 7] |= m[:, 3] & (rng.random(N_BASKETS) < 0.6)
    m[:, 9] |= m[:, 1] & m[:, 2] & (rng.random(N_BASKETS) < 0.7)
    m[:, 11] |= m[:, 7] & m[:, 0] & (rng.random(N_BASKETS) < 0.5)
    m[m.sum(axis=1) == 0, 0] = True  # mlxtend counts every row as a basket
    return m


@pytest.fixture(scope="module")
def matrix():
    return random_baskets()


def _names(m: np.ndarray) -> list[str]:
    return [f"i{j:02d}" for j in range(m.shape[1])]


@pytest.fixture(scope="module")
def ours(spark, matrix):
    names = _names(matrix)
    rows = [([names[j] for j in np.flatnonzero(r)],) for r in matrix]
    df = spark.createDataFrame(rows, "items array<string>")
    res = mine(df, MIN_SUPPORT, MIN_CONFIDENCE)
    itemsets = {frozenset(r["items"]): r["support"] for r in res.itemsets.collect()}
    rules = {(frozenset(r["antecedent"]), r["consequent"]): r.asDict() for r in res.rules.collect()}
    res.unpersist()
    return res.n_baskets, itemsets, rules


@pytest.fixture(scope="module")
def theirs(matrix):
    df = pd.DataFrame(matrix, columns=_names(matrix))
    freq = fpgrowth(df, min_support=MIN_SUPPORT, use_colnames=True)
    rules = association_rules(freq, num_itemsets=len(df), metric="confidence", min_threshold=MIN_CONFIDENCE)
    rules = rules[rules["consequents"].apply(len) == 1]
    itemsets = {frozenset(s): float(v) for s, v in zip(freq["itemsets"], freq["support"], strict=True)}
    by_rule = {(frozenset(r["antecedents"]), next(iter(r["consequents"]))): r for _, r in rules.iterrows()}
    return itemsets, by_rule


def test_same_frequent_itemsets_and_supports(ours, theirs):
    n, our_sets, _ = ours
    their_sets, _ = theirs
    assert n == N_BASKETS
    assert max(len(s) for s in their_sets) >= 3, "the planted dependencies should give 3-itemsets"
    assert set(our_sets) == set(their_sets)
    for s, support in their_sets.items():
        assert abs(our_sets[s] - support) <= TOL, s


def test_same_single_consequent_rules_and_metrics(ours, theirs):
    n, _, our_rules = ours
    _, their_rules = theirs
    assert any(len(a) >= 2 for a, _ in their_rules), "rules with two-item antecedents should exist"
    assert set(our_rules) == set(their_rules)
    for key, t in their_rules.items():
        o = our_rules[key]
        ours_m = {
            "antecedent support": o["antecedent_count"] / n,
            "consequent support": o["consequent_count"] / n,
            "support": o["support"],
            "confidence": o["confidence"],
            "lift": o["lift"],
            "leverage": o["leverage"],
        }
        for metric, value in ours_m.items():
            assert abs(value - float(t[metric])) <= TOL, (key, metric, value, t[metric])
        conviction = float(t["conviction"])
        if math.isinf(conviction):
            assert o["conviction"] is None, key
        else:
            assert abs(o["conviction"] - conviction) <= TOL * max(1.0, conviction), key
