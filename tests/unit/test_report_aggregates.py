"""The report's bounded aggregates against hand-computed values, edge rows included."""

from __future__ import annotations

import math
from datetime import date

from chispa import assert_approx_df_equality, assert_df_equality

from custseg.report import aggregates as agg

D = date(2026, 6, 30)
D0 = date(2026, 6, 23)


def test_records_by_source_takes_one_batch_and_survives_an_empty_source(spark):
    recon = spark.createDataFrame(
        [
            ("orders", D, 20, 18, 2),
            ("orders", D0, 99, 50, 49),
            ("events", D, 0, 0, 0),
            ("crm", D, 10, 10, 0),
        ],
        "source string, batch_date date, records_read long, records_accepted long, records_quarantined long",
    )
    expected = spark.createDataFrame(
        [("orders", 20, 18, 2, 0.1), ("events", 0, 0, 0, 0.0), ("crm", 10, 10, 0, 0.0)],
        "source string, records_read long, records_accepted long, records_quarantined long, reject_rate double",
    )
    got = recon.transform(agg.records_by_source(D))
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def test_quarantine_by_reason_counts_first_reasons_of_the_batch(spark):
    q = spark.createDataFrame(
        [
            ("orders", "bad_ts", D),
            ("orders", "bad_ts", D),
            ("orders", None, D),
            ("crm", "dup", D),
            ("crm", "dup", D0),
        ],
        "source string, reason string, _batch_date date",
    )
    expected = spark.createDataFrame(
        [("orders", "bad_ts", 2), ("orders", "unknown", 1), ("crm", "dup", 1)],
        "source string, reason string, records long",
    )
    assert_df_equality(
        q.transform(agg.quarantine_by_reason(D)),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_rf_grid_counts_and_sums_per_cell(spark):
    feats = spark.createDataFrame(
        [("a", 5, 5, 100.0), ("b", 5, 5, 50.0), ("c", 1, 1, None), ("d", 1, 2, 0.0)],
        "customer_key string, r_score int, f_score int, monetary double",
    )
    expected = spark.createDataFrame(
        [(5, 5, 2, 150.0), (1, 1, 1, 0.0), (1, 2, 1, 0.0)],
        "r_score int, f_score int, customers long, monetary double",
    )
    assert_df_equality(feats.transform(agg.rf_grid), expected, ignore_row_order=True, ignore_nullable=True)


def test_segment_summary_shares_and_customers_without_features(spark):
    segs = spark.createDataFrame(
        [("a", 1, "Gold"), ("b", 1, "Gold"), ("c", 2, None), ("d", 2, None)],
        "customer_key string, segment_id int, segment_name string",
    )
    # d has no features
    feats = spark.createDataFrame([("a", 300.0), ("b", 100.0), ("c", 100.0)], "customer_key string, monetary double")
    expected = spark.createDataFrame(
        [("1", "Gold", 2, 0.5, 400.0, 0.8), ("2", "2", 2, 0.5, 100.0, 0.2)],
        "segment_id string, segment_name string, customers long, customer_share double, revenue double, revenue_share double",
    )
    got = segs.transform(agg.segment_summary(feats))
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)
    no_money = segs.transform(agg.segment_summary(None)).where("segment_id = '1'").first()
    assert no_money["revenue"] is None and no_money["revenue_share"] is None and no_money["customers"] == 2


def test_segment_centres_are_z_scores_against_all_segmented_customers(spark):
    segs = spark.createDataFrame(
        [("a", 1), ("b", 1), ("c", 2), ("d", 2), ("x", 3)], "customer_key string, segment_id int"
    )
    feats = spark.createDataFrame(
        [
            ("a", 1.0, 5.0),
            ("b", 3.0, 5.0),
            ("c", 5.0, 5.0),
            ("d", 7.0, 5.0),
            ("zz", 100.0, 1.0),
        ],  # x has no features, zz no segment
        "customer_key string, frequency double, constant double",
    )
    # frequency over a..d: mean 4, population sd sqrt(5); segment 1 mean 2 -> z = -2/sqrt(5); constant has sd 0 -> z 0
    z = 2 / math.sqrt(5)
    expected = spark.createDataFrame(
        [
            ("1", "1", "frequency", 2.0, -z),
            ("1", "1", "constant", 5.0, 0.0),
            ("2", "2", "frequency", 6.0, z),
            ("2", "2", "constant", 5.0, 0.0),
        ],
        "segment_id string, segment_name string, feature string, mean double, z double",
    )
    got = segs.transform(agg.segment_centres(feats, ["frequency", "constant"]))
    assert_approx_df_equality(got, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_migration_matrix_counts_stayers_movers_new_and_left(spark):
    prev = spark.createDataFrame(
        [("a", 1, "Gold"), ("b", 1, "Gold"), ("c", 2, "Silver"), ("gone", 2, "Silver")],
        "customer_key string, segment_id int, segment_name string",
    )
    cur = spark.createDataFrame(
        [("a", 1, "Gold"), ("b", 2, "Silver"), ("c", 2, "Silver"), ("new", 1, "Gold")],
        "customer_key string, segment_id int, segment_name string",
    )
    expected = spark.createDataFrame(
        [
            ("Gold", "Gold", 1),
            ("Gold", "Silver", 1),
            ("Silver", "Silver", 1),
            ("Silver", "(left)", 1),
            ("(new)", "Gold", 1),
        ],
        "from_segment string, to_segment string, customers long",
    )
    assert_df_equality(
        cur.transform(agg.migration_matrix(prev)),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_top_rules_orders_by_lift_then_confidence_and_joins_items(spark):
    rules = spark.createDataFrame(
        [
            (["b", "a"], ["c"], 0.1, 0.5, 2.0),
            (["x"], ["y"], 0.2, 0.9, 2.0),
            (["m"], ["n"], 0.3, 0.3, 1.1),
            (["p"], ["q"], 0.1, 0.2, 3.0),
        ],
        "antecedent array<string>, consequent array<string>, support double, confidence double, lift double",
    )
    got = rules.transform(agg.top_rules(3)).collect()
    assert [(r["antecedent"], r["consequent"], r["lift"], r["confidence"]) for r in got] == [
        ("p", "q", 3.0, 0.2),
        ("x", "y", 2.0, 0.9),
        ("a, b", "c", 2.0, 0.5),  # items sorted within the set
    ]


def test_cross_sell_coverage_per_segment_and_overall(spark):
    customers = spark.createDataFrame(
        [("a", "Gold"), ("b", "Gold"), ("c", "Silver"), ("d", None)],
        "customer_key string, segment string",
    )
    offers = spark.createDataFrame(
        [("a", "x"), ("a", "y"), ("c", "x"), ("stranger", "x")], "customer_key string, item string"
    )
    expected = spark.createDataFrame(
        [
            ("Gold", 2, 1, 0.5),
            ("Silver", 1, 1, 1.0),
            ("(no segment)", 1, 0, 0.0),
            ("All customers", 4, 2, 0.5),
        ],
        "segment string, customers long, with_offer long, coverage double",
    )
    got = customers.transform(agg.cross_sell_coverage(offers))
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)
    overall_only = customers.select("customer_key").transform(agg.cross_sell_coverage(offers)).collect()
    assert [(r["segment"], r["customers"], r["with_offer"], r["coverage"]) for r in overall_only] == [
        ("All customers", 4, 2, 0.5)
    ]


def test_lift_interval_is_the_unpooled_wald_interval(spark):
    df = spark.createDataFrame(
        [("c1", 1000, 120, 1000, 80), ("empty", 0, 0, 10, 1)],
        "campaign_id string, n_treatment long, responses_treatment long, n_control long, responses_control long",
    )
    se = math.sqrt(0.12 * 0.88 / 1000 + 0.08 * 0.92 / 1000)
    z = 1.959963984540054
    expected = spark.createDataFrame(
        [
            ("c1", 1000, 1000, 0.12, 0.08, 0.04, 0.04 - z * se, 0.04 + z * se),
            ("empty", 0, 10, None, None, None, None, None),
        ],
        "campaign_id string, n_treatment long, n_control long, treatment_rate double, control_rate double, lift_abs double, ci_low double, ci_high double",
    )
    assert_approx_df_equality(
        df.transform(agg.lift_interval()),
        expected,
        1e-12,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    # by hand: se = sqrt(0.1056e-3 + 0.0736e-3) = 0.0133866, 0.04 - 1.96 se = 0.013763
    assert abs((0.04 - z * se) - 0.013763) < 1e-6
