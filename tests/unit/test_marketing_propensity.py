"""Propensity: point-in-time features by hand (nothing on or after the cutoff leaks in),
training rows, the model choice by validation AUC, calibration deciles and the fallbacks."""

from __future__ import annotations

import math
import random
from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from custseg.marketing.propensity import (
    FEATURE_COLUMNS,
    PROPENSITY_FEATURES,
    PropensityParams,
    fit_goal,
    fit_propensity,
    point_in_time_features,
    training_sends,
)

ORDERS = StructType(
    [
        StructField("order_id", StringType()),
        StructField("customer_key", StringType()),
        StructField("order_ts", TimestampType()),
        StructField("status", StringType()),
        StructField("net_revenue", DecimalType(16, 2)),
        StructField("discount_amount", DecimalType(16, 2)),
        StructField("gross_revenue", DecimalType(16, 2)),
        StructField("n_lines", IntegerType()),
        StructField("n_units", IntegerType()),
    ]
)
CUSTOMERS = StructType(
    [
        StructField("customer_key", StringType()),
        StructField("signup_date", DateType()),
        StructField("opt_in_email", BooleanType()),
        StructField("member_tier", StringType()),
        StructField("age_band", StringType()),
    ]
)
RESPONSES = StructType(
    [
        StructField("campaign_id", StringType()),
        StructField("customer_key", StringType()),
        StructField("group", StringType()),
        StructField("sent_ts", TimestampType()),
        StructField("converted_ts", TimestampType()),
        StructField("converted", BooleanType()),
    ]
)


def _inputs(spark):
    def o(oid, day, status, rev, disc, lines, units, key="a"):
        gross = Decimal(rev) + Decimal(disc)
        return (
            oid,
            key,
            datetime.combine(day, datetime.min.time()).replace(hour=12),
            status,
            Decimal(rev),
            Decimal(disc),
            gross,
            lines,
            units,
        )

    orders = spark.createDataFrame(
        [
            o("o1", date(2025, 6, 1), "completed", "100", "10", 2, 3),
            o("o2", date(2026, 1, 15), "completed", "50", "0", 1, 1),
            o("o3", date(2026, 2, 20), "returned", "30", "0", 1, 1),
            o("o4", date(2026, 3, 1), "completed", "70", "0", 3, 3),  # on the cutoff day: not yet known
            o("o5", date(2026, 6, 30), "completed", "40", "5", 2, 2),
            o("g1", date(2026, 1, 1), "completed", "10", "0", 1, 1, key=None),  # guest
        ],
        ORDERS,
    )
    customers = spark.createDataFrame(
        [("a", date(2025, 1, 1), True, "Gold", "35-44"), ("b", None, None, None, None)], CUSTOMERS
    )
    responses = spark.createDataFrame(
        [
            ("P1", "a", "treatment", datetime(2026, 2, 1, 9), datetime(2026, 2, 5, 9), True),
            (
                "P2",
                "a",
                "treatment",
                datetime(2026, 2, 25, 9),
                datetime(2026, 3, 3, 9),
                True,
            ),  # converts after the cutoff
            ("P2", "b", "control", datetime(2026, 2, 25, 9), None, False),  # control: not a contact
        ],
        RESPONSES,
    )
    feedback = spark.createDataFrame(
        [
            ("a", datetime(2026, 1, 1, 10), True),
            ("a", datetime(2026, 3, 1, 10), True),
            ("a", datetime(2026, 2, 1, 10), False),
        ],
        "customer_key string, ts timestamp, is_complaint boolean",
    )
    return orders, customers, responses, feedback


def test_point_in_time_features_by_hand(spark):
    orders, customers, responses, feedback = _inputs(spark)
    pop = spark.createDataFrame(
        [("a", date(2026, 3, 1)), ("a", date(2026, 7, 1)), ("b", date(2026, 3, 1))],
        "customer_key string, cutoff_date date",
    )
    got = pop.transform(point_in_time_features(orders, customers, responses, feedback))
    assert got.columns == FEATURE_COLUMNS
    schema = StructType(
        [StructField("customer_key", StringType()), StructField("cutoff_date", DateType())]
        + [StructField(c, DoubleType()) for c in PROPENSITY_FEATURES]
    )
    l1p = math.log1p
    expected = spark.createDataFrame(
        [
            # a as of 2026-03-01: o1, o2 bought in the window (o4 is on the cutoff day), o3 returned;
            # last purchase 2026-01-15 (45 days); o2 in the last 90 days, none in the 90 before;
            # 1 of 2 orders discounted; 1 return of 3 finished orders; tenure 424 days;
            # P1 sent and converted before, P2 sent before but converted after: 2 sends, 1 conversion;
            # one complaint before the cutoff (the one on the cutoff day is not).
            # Discount rate 10 / (110 + 50); lines (2 + 1) / 2, units (3 + 1) / 2.
            (
                "a",
                date(2026, 3, 1),
                1.0,
                l1p(45),
                2.0,
                l1p(2),
                l1p(150),
                1.0,
                0.0,
                l1p(424),
                75.0,
                0.5,
                10 / 160,
                1.5,
                2.0,
                1 / 3,
                1.0,
                2.0,
                1.0,
                0.5,
                1.0,
                2.0,
                3.0,
            ),
            # a as of 2026-07-01: window from 2025-07-01 drops o1; o2, o4, o5 bought (160); last 90 days: o5;
            # the 90 before: o2, o4; o5 discounted; o3 returned of 4 finished; both conversions known now.
            # Discount 5 / (50 + 70 + 45); lines (1 + 3 + 2) / 3, units (1 + 3 + 2) / 3.
            (
                "a",
                date(2026, 7, 1),
                1.0,
                l1p(1),
                3.0,
                l1p(3),
                l1p(160),
                1.0,
                2.0,
                l1p(546),
                160 / 3,
                1 / 3,
                5 / 165,
                2.0,
                2.0,
                0.25,
                2.0,
                2.0,
                2.0,
                1.0,
                1.0,
                2.0,
                3.0,
            ),
            # b never bought, no signup date, unknown tier and age (middle of the scale), no consent
            ("b", date(2026, 3, 1), 0.0, l1p(1000), *[0.0] * 17, 1.0, 3.0),
        ],
        schema,
    )
    assert_approx_df_equality(got, expected, precision=1e-9, ignore_row_order=True, ignore_nullable=True)


def test_training_sends_labels_and_cutoffs(spark):
    responses = spark.createDataFrame(
        [
            ("RET_1", "a", "treatment", datetime(2026, 1, 10, 9), None, False),
            ("RET_1", "a", "treatment", datetime(2026, 1, 12, 9), datetime(2026, 1, 13), True),  # resend converts
            ("RET_1", "b", "treatment", datetime(2026, 1, 11, 9), None, None),
            ("RET_1", "c", "control", datetime(2026, 1, 10, 9), datetime(2026, 1, 11), True),  # control: not training
            ("GRO_1", "a", "treatment", datetime(2026, 2, 1, 9), None, False),
            ("RET_2", "a", "treatment", datetime(2026, 6, 25, 9), None, False),  # outcome not in yet
        ],
        RESPONSES,
    )
    got = responses.transform(training_sends(date(2026, 6, 17), ("RET_*",)))
    rows = sorted(tuple(r) for r in got.collect())
    assert rows == [("RET_1", "a", date(2026, 1, 10), 1.0), ("RET_1", "b", date(2026, 1, 10), 0.0)]
    assert responses.transform(training_sends(date(2026, 6, 17))).count() == 3  # all campaigns


def _synthetic(spark, n=500, seed=3):
    """Labels from a known logistic model on two features: a learnable signal."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        freq, disc = rng.randint(0, 8), rng.random()
        p = 1 / (1 + math.exp(-(-3.0 + 0.5 * freq + 2.5 * disc)))
        feats = {c: 0.0 for c in PROPENSITY_FEATURES} | {"frequency": float(freq), "discount_order_share": disc}
        rows.append((f"k{i:04d}", float(rng.random() < p), *[feats[c] for c in PROPENSITY_FEATURES]))
    return spark.createDataFrame(
        rows, ", ".join(["customer_key string", "label double", *[f"{c} double" for c in PROPENSITY_FEATURES]])
    )


PARAMS = PropensityParams(gbt_max_iter=10, gbt_max_depth=3, min_training_rows=100, min_positives=10, calibration_bins=5)


def test_fit_keeps_the_better_model_and_stores_calibration(spark):
    model = fit_propensity(_synthetic(spark), "retention", PARAMS)
    assert model is not None and model.training_source == "goal"
    assert set(model.auc) == {"logistic", "gbt"}
    assert model.chosen == max(model.auc, key=model.auc.get)
    assert model.auc_chosen >= 0.75, model.auc
    cal = model.calibration[model.chosen]
    assert sum(d["n"] for d in cal) == model.n_validation
    assert [d["decile"] for d in cal] == sorted(d["decile"] for d in cal)
    assert cal[0]["mean_predicted"] > cal[-1]["mean_predicted"]  # decile 1 = highest scores
    assert cal[0]["observed_rate"] > cal[-1]["observed_rate"]
    rows = model.quality_rows()
    assert {r[1] for r in rows} == {"logistic", "gbt"} and sum(r[2] for r in rows) == len(cal)
    scored = model.score(_synthetic(spark, n=20, seed=9))
    assert scored.columns == ["customer_key", "p_response"]
    assert (
        scored.where((F.col("p_response") < 0) | (F.col("p_response") > 1) | F.col("p_response").isNull()).count() == 0
    )


def test_thin_history_falls_back_to_a_constant_rate(spark):
    assert fit_propensity(_synthetic(spark, n=40), "growth", PARAMS) is None
    orders, customers, responses, feedback = _inputs(spark)
    features_at = point_in_time_features(orders, customers, responses, feedback)
    model = fit_goal("growth", responses, features_at, date(2026, 6, 30), PARAMS, history=("GRO_*",))
    assert model.chosen == "constant" and model.model is None
    assert model.base_rate == pytest.approx(1.0)  # the only two treatment sends (P1, P2) both converted
    assert {r["p_response"] for r in model.score(customers).collect()} == {1.0}
    none = fit_goal("acquisition", None, features_at, date(2026, 6, 30), PARAMS)
    assert none.chosen == "constant" and none.base_rate == PARAMS.fallback_response_rate
    assert none.quality_rows()[0][:4] == ("acquisition", "constant", True, "fallback")
