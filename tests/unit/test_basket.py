"""Baskets, FP-Growth rules and cross-sell on hand-made data with hand-computed answers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from custseg.basket.baskets import baskets, customer_purchases, item_prices, with_item
from custseg.basket.cross_sell import cross_sell, popular_fill
from custseg.basket.fpgrowth import (
    ITEMSET_SCHEMA,
    RULE_COLUMNS,
    RULE_SCHEMA,
    ItemsetExplosionError,
    derive_num_partitions,
    min_count_for,
    mine,
    mine_by_segment,
)
from custseg.basket.metrics import with_rule_metrics

LINES_SCHEMA = (
    "order_id string, customer_key string, order_date date, status string, sku string, category string, "
    "qty int, net_revenue decimal(14,2)"
)
D = date.fromisoformat


@pytest.fixture(scope="module")
def lines(spark):
    rows = [
        ("O1", "c1", D("2026-06-01"), "completed", "A", "x", 1, 10),
        ("O1", "c1", D("2026-06-01"), "completed", "B", "y", 1, 4),
        ("O1", "c1", D("2026-06-01"), "completed", "A", "x", 2, 6),  # repeated item: once per basket
        ("O2", "c1", D("2026-06-02"), "returned", "C", "z", 1, 3),  # returned: not a basket
        ("O3", None, D("2026-06-03"), "completed", "B", "y", 1, 4),  # guest: a basket, no customer
        ("O3", None, D("2026-06-03"), "completed", None, None, 1, 1),  # no item
        ("O3", None, D("2026-06-03"), "completed", "D", "w", 0, 0),  # zero quantity
        ("O4", "c2", D("2026-01-01"), "completed", "A", "x", 1, 5),  # before the window
        ("O5", "c2", D("2026-06-30"), "completed", "C", None, 1, 3),  # no category
    ]
    return spark.createDataFrame([(*r[:7], Decimal(r[7])) for r in rows], LINES_SCHEMA)


def _baskets(spark, rows):
    return spark.createDataFrame([(r,) for r in rows], "items array<string>")


# --- baskets --------------------------------------------------------------------------


def test_baskets_at_sku_level_drop_returns_and_repeats(spark, lines):
    got = lines.transform(baskets("sku", ("completed",), D("2026-03-01"), D("2026-06-30")))
    expected = spark.createDataFrame(
        [
            ("O1", "c1", D("2026-06-01"), ["A", "B"]),
            ("O3", None, D("2026-06-03"), ["B"]),
            ("O5", "c2", D("2026-06-30"), ["C"]),
        ],
        "order_id string, customer_key string, order_date date, items array<string>",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_baskets_at_category_level_lose_items_without_category(spark, lines):
    got = lines.transform(baskets("category", ("completed",), D("2026-03-01"), D("2026-06-30")))
    expected = spark.createDataFrame(
        [("O1", "c1", D("2026-06-01"), ["x", "y"]), ("O3", None, D("2026-06-03"), ["y"])],
        "order_id string, customer_key string, order_date date, items array<string>",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_customer_purchases_leave_guests_out(spark, lines):
    got = lines.transform(customer_purchases("sku", ("completed",), D("2026-03-01"), D("2026-06-30")))
    expected = spark.createDataFrame([("c1", "A"), ("c1", "B"), ("c2", "C")], "customer_key string, item string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_item_prices_are_net_revenue_per_unit(spark, lines):
    got = lines.transform(item_prices("sku", ("completed",), D("2026-03-01"), D("2026-06-30")))
    # A: (10 + 6) / 3 units; B: 8 / 2; C: 3 / 1; D has zero units (and zero-qty lines are dropped)
    expected = spark.createDataFrame([("A", 16 / 3), ("B", 4.0), ("C", 3.0)], "item string, unit_price double")
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def test_with_item_maps_sku_through_products_when_the_column_is_missing(spark, lines):
    products = spark.createDataFrame([("A", "pasta"), ("B", "sauces")], "sku string, subcategory string")
    got = (
        lines.where(F.col("order_id") == "O1")
        .transform(with_item("subcategory", products))
        .select("sku", "item")
        .distinct()
    )
    expected = spark.createDataFrame([("A", "pasta"), ("B", "sauces")], "sku string, item string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    with pytest.raises(ValueError, match="no products"):
        lines.transform(with_item("subcategory"))


# --- FP-Growth -----------------------------------------------------------------------

# 8 baskets; min_support 0.25 -> min count 2; d (1 basket) is pruned.
# counts: a 6, b 5, c 5; ab 4, ac 4, bc 4; abc 3.
EXAMPLE = [["a", "b", "c"], ["a", "b", "c"], ["c", "b", "a"], ["a", "b"], ["a", "c"], ["b", "c"], ["a"], ["d"]]


@pytest.fixture(scope="module")
def example(spark):
    itemsets, rules = _mine_example(spark, 0.7)
    return itemsets.cache(), rules.cache()


def test_itemsets_have_exact_counts_and_supports(spark, example):
    itemsets, _ = example
    expected = spark.createDataFrame(
        [
            (["a"], 1, 6, 6 / 8),
            (["b"], 1, 5, 5 / 8),
            (["c"], 1, 5, 5 / 8),
            (["a", "b"], 2, 4, 4 / 8),
            (["a", "c"], 2, 4, 4 / 8),
            (["b", "c"], 2, 4, 4 / 8),
            (["a", "b", "c"], 3, 3, 3 / 8),
        ],
        ITEMSET_SCHEMA,
    )
    assert_approx_df_equality(itemsets, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def _mine_example(spark, min_confidence, **options):
    rows = [*EXAMPLE, None, []]  # a null basket and an empty one do not count
    df = spark.createDataFrame([(r,) for r in rows], "items array<string>")
    res = mine(df, 0.25, min_confidence, **options)
    assert res.n_baskets == 8 and res.min_count == 2 and res.n_items == 3
    return res.itemsets, res.rules


def test_rules_metrics_from_exact_counts(spark, example):
    _, rules = example
    # Hand-computed over N = 8: lift = u N / (a c); leverage = u/N - a c / N^2;
    # conviction = (N - c) a / (N (a - u)); standardised lift = (lift - L) / (U - L) with
    # L = max(sA + sC - 1, 1/N) / (sA sC) and U = 1 / max(sA, sC).
    expected = spark.createDataFrame(
        [
            (["b"], "a", 5, 6, 4, 0.5, 0.8, 32 / 30, 0.03125, 1.25, 0.5),
            (["c"], "a", 5, 6, 4, 0.5, 0.8, 32 / 30, 0.03125, 1.25, 0.5),
            (["b"], "c", 5, 5, 4, 0.5, 0.8, 1.28, 0.109375, 1.875, 2 / 3),
            (["c"], "b", 5, 5, 4, 0.5, 0.8, 1.28, 0.109375, 1.875, 2 / 3),
            (["a", "b"], "c", 4, 5, 3, 0.375, 0.75, 1.2, 0.0625, 1.5, 2 / 3),
            (["a", "c"], "b", 4, 5, 3, 0.375, 0.75, 1.2, 0.0625, 1.5, 2 / 3),
            (["b", "c"], "a", 4, 6, 3, 0.375, 0.75, 1.0, 0.0, 1.0, 0.5),
        ],
        RULE_SCHEMA,
    )
    assert_approx_df_equality(rules, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def test_min_lift_and_max_itemset_size_filter_rules(spark):
    _, rules = _mine_example(spark, 0.7, min_lift=1.1, max_itemset_size=2)
    got = rules.select("antecedent", "consequent")
    expected = spark.createDataFrame([(["b"], "c"), (["c"], "b")], "antecedent array<string>, consequent string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_itemset_guard_fails_clearly(spark):
    with pytest.raises(ItemsetExplosionError, match="basket.max_itemsets=5"):
        _mine_example(spark, 0.7, max_itemsets=5)


def test_confidence_one_gives_null_conviction_or_the_cap(spark):
    counts = spark.createDataFrame(
        [("r1", 3, 5, 3), ("r2", 5, 4, 3)],
        "rule string, antecedent_count long, consequent_count long, union_count long",
    )
    got = counts.transform(with_rule_metrics(7)).select("rule", "confidence", "conviction", "normalized_lift")
    expected = spark.createDataFrame(
        [("r1", 1.0, None, 1.0), ("r2", 0.6, 15 / 14, 0.5)],
        "rule string, confidence double, conviction double, normalized_lift double",
    )
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)
    capped = counts.transform(with_rule_metrics(F.lit(7), conviction_cap=1e6)).where(F.col("rule") == "r1")
    assert capped.first()["conviction"] == 1e6


def test_long_baskets_are_left_out_before_counting_and_counted(spark):
    """A basket over max_basket_items (a wholesale invoice) is set aside before anything is
    counted: supports are over the other baskets, exactly as without it."""
    wholesale = ["a", "b", "c", *[f"x{i:03d}" for i in range(150)]]
    df = spark.createDataFrame([(r,) for r in [*EXAMPLE, wholesale]], "items array<string>")
    res = mine(df, 0.25, 0.7, max_basket_items=100)
    assert (res.n_baskets, res.n_long_baskets, res.min_count) == (8, 1, 2)
    assert res.summary()["long_baskets"] == 1 and res.summary()["max_basket_items"] == 100
    example_sets, example_rules = _mine_example(spark, 0.7)
    assert_df_equality(res.itemsets, example_sets, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(res.rules, example_rules, ignore_row_order=True, ignore_nullable=True)
    kept = mine(df, 0.25, 0.7, max_basket_items=153)  # at the bound: mined
    assert (kept.n_baskets, kept.n_long_baskets) == (9, 0)
    assert kept.itemsets.where(F.col("items") == F.array(F.lit("a"))).first()["count"] == 7
    with pytest.raises(ValueError, match="max_basket_items"):
        mine(df, 0.25, 0.7, max_basket_items=1)


def test_no_baskets_give_empty_frames_with_the_schema(spark):
    res = mine(spark.createDataFrame([([],), (None,)], "items array<string>"), 0.1, 0.5)
    assert res.n_baskets == 0
    assert_df_equality(res.itemsets, spark.createDataFrame([], ITEMSET_SCHEMA))
    assert_df_equality(res.rules, spark.createDataFrame([], RULE_SCHEMA))


def test_no_frequent_pair_gives_single_itemsets_and_no_rules(spark):
    res = mine(_baskets(spark, [["a"], ["a", "b"], ["b"], ["c"]]), 0.5, 0.1)
    expected = spark.createDataFrame([(["a"], 1, 2, 0.5), (["b"], 1, 2, 0.5)], ITEMSET_SCHEMA)
    assert_approx_df_equality(res.itemsets, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)
    assert res.rules.columns == RULE_COLUMNS
    assert res.rules.count() == 0


def test_min_count_matches_the_floating_point_test():
    assert min_count_for(0.25, 8) == 2
    assert min_count_for(0.3, 7) == 3  # 2.1 -> 3
    assert min_count_for(0.01, 300) == 3  # 0.01 * 300 is 3.0000000000000004 in floating point
    assert min_count_for(1.0, 5) == 5
    assert min_count_for(1e-9, 5) == 1
    with pytest.raises(ValueError):
        min_count_for(0.0, 5)


def test_derived_partitions_follow_cores_data_and_items():
    assert derive_num_partitions(2, 500, 10_000) == 4
    assert derive_num_partitions(2, 500, 3_000_000) == 12
    assert derive_num_partitions(8, 3, 10_000) == 3
    assert derive_num_partitions(2, 0, 0) == 1


def test_mining_by_segment_uses_each_segments_own_thresholds(spark):
    df = spark.createDataFrame(
        [(1, ["a", "b"]), (1, ["a", "b"]), (1, ["a"]), (2, ["c", "d"]), (2, ["c"]), (2, ["c"])],
        "segment_id int, items array<string>",
    )
    itemsets, rules, results = mine_by_segment(df, "segment_id", 0.5, 0.9)
    got = rules.select("segment_id", "antecedent", "consequent", "confidence")
    expected = spark.createDataFrame(
        [(1, ["b"], "a", 1.0)], "segment_id int, antecedent array<string>, consequent string, confidence double"
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    sets = itemsets.select("segment_id", "items", "count")
    expected_sets = spark.createDataFrame(
        [(1, ["a"], 3), (1, ["b"], 2), (1, ["a", "b"], 2), (2, ["c"], 3)],
        "segment_id int, items array<string>, count long",
    )
    assert_df_equality(sets, expected_sets, ignore_row_order=True, ignore_nullable=True)
    for r in results:
        r.unpersist()


# --- cross-sell ----------------------------------------------------------------------

RULES_SCHEMA = "antecedent array<string>, consequent string, confidence double, lift double"
XS_SCHEMA = (
    "customer_key string, rank int, item string, score double, antecedent array<string>, confidence double, lift double"
)


@pytest.fixture(scope="module")
def xs_rules(spark):
    return spark.createDataFrame(
        [(["a"], "b", 0.6, 1.5), (["a", "c"], "d", 0.5, 3.0), (["c"], "b", 0.9, 1.1), (["e"], "a", 0.5, 2.0)],
        RULES_SCHEMA,
    )


@pytest.fixture(scope="module")
def bought(spark):
    rows = [("u1", "a"), ("u1", "c"), ("u2", "a"), ("u3", "a"), ("u3", "b"), ("u4", "e"), ("u4", "a"), ("u5", "c")]
    return spark.createDataFrame(rows, "customer_key string, item string")


def test_cross_sell_needs_the_whole_antecedent_and_skips_owned_items(spark, xs_rules, bought):
    got = bought.transform(cross_sell(xs_rules, top_n=2)).drop("reason")
    # u1 (a, c): d by {a, c} 1.5; b by c (0.99) beats b by a (0.9). u3 owns b. u4 owns a, so e -> a
    # is out; a -> b remains. u5 (c) lacks a for {a, c} -> d.
    expected = spark.createDataFrame(
        [
            ("u1", 1, "d", 1.5, ["a", "c"], 0.5, 3.0),
            ("u1", 2, "b", 0.99, ["c"], 0.9, 1.1),
            ("u2", 1, "b", 0.9, ["a"], 0.6, 1.5),
            ("u4", 1, "b", 0.9, ["a"], 0.6, 1.5),
            ("u5", 1, "b", 0.99, ["c"], 0.9, 1.1),
        ],
        XS_SCHEMA,
    )
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def test_cross_sell_top_n_reason_and_exclusions(spark, xs_rules, bought):
    exclude = bought.unionByName(spark.createDataFrame([("u2", "b")], "customer_key string, item string"))
    got = bought.transform(cross_sell(xs_rules, top_n=1, exclude=exclude)).select("customer_key", "item", "reason")
    expected = spark.createDataFrame(
        [
            ("u1", "d", "bought a + c; 50% of baskets with that also hold d (lift 3.00)"),
            ("u4", "b", "bought a; 60% of baskets with that also hold b (lift 1.50)"),
            ("u5", "b", "bought c; 90% of baskets with that also hold b (lift 1.10)"),
        ],
        "customer_key string, item string, reason string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_cross_sell_expected_margin_uses_prices(spark, xs_rules, bought):
    prices = spark.createDataFrame([("b", 10.0), ("d", 2.0)], "item string, unit_price double")
    got = (
        bought.where(F.col("customer_key") == "u1")
        .transform(cross_sell(xs_rules, 5, "expected_margin", prices, margin_rate=0.5))
        .select("customer_key", "rank", "item", "score")
    )
    # b: best of 0.6 x 10 x 0.5 = 3.0 and 0.9 x 10 x 0.5 = 4.5; d: 0.5 x 2 x 0.5 = 0.5
    expected = spark.createDataFrame(
        [("u1", 1, "b", 4.5), ("u1", 2, "d", 0.5)], "customer_key string, rank int, item string, score double"
    )
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)
    with pytest.raises(ValueError, match="needs prices"):
        cross_sell(xs_rules, 5, "expected_margin")


def test_fill_completes_lists_with_the_empty_antecedent_rules(spark, xs_rules, bought):
    # Supports of the single items (as FP-Growth's itemsets give them); f is the most frequent.
    itemsets = spark.createDataFrame(
        [(["f"], 1, 8, 0.8), (["b"], 1, 5, 0.5), (["d"], 1, 2, 0.2), (["a"], 1, 6, 0.6), (["a", "b"], 2, 4, 0.4)],
        "items array<string>, size int, count long, support double",
    )
    fill = popular_fill(itemsets, limit=3)  # f, a, b: d is the fourth single item
    assert [r["item"] for r in fill.collect()] == ["f", "a", "b"]
    targets = spark.createDataFrame([("u1",), ("u3",), ("u9",)], "customer_key string")
    got = (
        bought.where(F.col("customer_key").isin("u1", "u3"))
        .transform(cross_sell(xs_rules, 3, "confidence", fill=fill, targets=targets))
        .select("customer_key", "rank", "item", "score", "antecedent", "reason")
    )
    # u1 (a, c): f 0.8 (nothing -> f), b 0.9 by c -> b, d 0.5 by a + c -> d; b's fill 0.5 loses to its rule.
    # u3 (a, b): only f is left to fill. u9 bought nothing in the window: f, a, b by popularity.
    expected = spark.createDataFrame(
        [
            ("u1", 1, "b", 0.9, ["c"], "bought c; 90% of baskets with that also hold b (lift 1.10)"),
            ("u1", 2, "f", 0.8, [], "popular: 80% of baskets hold f"),
            ("u1", 3, "d", 0.5, ["a", "c"], "bought a + c; 50% of baskets with that also hold d (lift 3.00)"),
            ("u3", 1, "f", 0.8, [], "popular: 80% of baskets hold f"),
            ("u9", 1, "f", 0.8, [], "popular: 80% of baskets hold f"),
            ("u9", 2, "a", 0.6, [], "popular: 60% of baskets hold a"),
            ("u9", 3, "b", 0.5, [], "popular: 50% of baskets hold b"),
        ],
        "customer_key string, rank int, item string, score double, antecedent array<string>, reason string",
    )
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def test_segment_rules_fire_only_in_their_segment(spark, xs_rules, bought):
    scoped = xs_rules.withColumn("segment_id", F.lit(None).cast("int")).unionByName(
        spark.createDataFrame([(["a"], "z", 0.5, 4.0, 1)], RULES_SCHEMA + ", segment_id int")
    )
    segments = spark.createDataFrame([("u2", 1), ("u4", 2)], "customer_key string, segment_id int")
    got = (
        bought.where(F.col("customer_key").isin("u2", "u4"))
        .transform(cross_sell(scoped, 5, segments=segments))
        .select("customer_key", "rank", "item")
    )
    expected = spark.createDataFrame(
        [("u2", 1, "z"), ("u2", 2, "b"), ("u4", 1, "b")], "customer_key string, rank int, item string"
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_summed_scores_reward_items_many_rules_point_to(spark, xs_rules, bought):
    got = (
        bought.where(F.col("customer_key") == "u1")
        .transform(cross_sell(xs_rules, 5, aggregate="sum"))
        .select("customer_key", "rank", "item", "score", "antecedent")
    )
    # b: 0.6 x 1.5 + 0.9 x 1.1 = 1.89 (reason: the better rule, c -> b) now beats d: 1.5
    expected = spark.createDataFrame(
        [("u1", 1, "b", 1.89, ["c"]), ("u1", 2, "d", 1.5, ["a", "c"])],
        "customer_key string, rank int, item string, score double, antecedent array<string>",
    )
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)
