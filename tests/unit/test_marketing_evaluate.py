"""Lift, confidence intervals and the two-proportion z-test against hand computation."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql.types import (
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from custseg.marketing.evaluate import (
    EvaluationParams,
    campaign_results,
    known_by,
    response_counts,
    two_proportion_test,
)

Z95 = 1.959963984540054


def test_two_proportion_test_by_hand():
    t = two_proportion_test(60, 500, 30, 500, 0.95)
    assert t.rate_treatment == pytest.approx(0.12) and t.rate_control == pytest.approx(0.06)
    assert t.lift_abs == pytest.approx(0.06)
    se = math.sqrt(0.12 * 0.88 / 500 + 0.06 * 0.94 / 500)  # = 0.018
    assert se == pytest.approx(0.018)
    assert (t.ci_low, t.ci_high) == pytest.approx((0.06 - Z95 * 0.018, 0.06 + Z95 * 0.018))
    z = 0.06 / math.sqrt(0.09 * 0.91 * (1 / 500 + 1 / 500))  # pooled rate 90/1000
    assert t.z == pytest.approx(z) and z == pytest.approx(3.31497, abs=1e-5)
    assert t.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert t.lift_rel == pytest.approx(1.0)
    se_log = math.sqrt(0.88 / 60 + 0.94 / 30)
    assert (t.rel_ci_low, t.rel_ci_high) == pytest.approx(
        (2 * math.exp(-Z95 * se_log) - 1, 2 * math.exp(Z95 * se_log) - 1)
    )


def test_two_proportion_test_edges():
    none = two_proportion_test(5, 10, 0, 0)
    assert none.rate_treatment == 0.5 and none.rate_control is None and none.lift_abs is None and none.p_value is None
    zero = two_proportion_test(0, 100, 0, 100)
    assert zero.lift_abs == 0 and zero.z is None and zero.p_value is None and zero.lift_rel is None
    no_control_conv = two_proportion_test(10, 100, 0, 100)
    assert no_control_conv.lift_rel is None and no_control_conv.p_value < 0.01
    # 90% intervals are narrower than 95%
    assert two_proportion_test(60, 500, 30, 500, 0.9).ci_low > two_proportion_test(60, 500, 30, 500, 0.95).ci_low


RESP = StructType(
    [
        StructField("campaign_id", StringType()),
        StructField("customer_key", StringType()),
        StructField("channel", StringType()),
        StructField("group", StringType()),
        StructField("sent_ts", TimestampType()),
        StructField("opened_ts", TimestampType()),
        StructField("clicked_ts", TimestampType()),
        StructField("converted_ts", TimestampType()),
        StructField("converted", BooleanType()),
        StructField("revenue", DecimalType(14, 2)),
        StructField("segment", StringType()),
    ]
)


def _responses(spark):
    s1, s2 = datetime(2026, 6, 1, 9), datetime(2026, 6, 25, 9)
    conv = datetime(2026, 6, 3, 9)
    rows = [
        # campaign A: treatment a,b,c,d (a, b convert; b messaged twice counts once), control e, f (e converts)
        ("A", "a", "email", "treatment", s1, None, None, conv, True, Decimal("30.00"), "gold"),
        ("A", "b", "email", "treatment", s1, None, None, None, False, Decimal("0.00"), "gold"),
        ("A", "b", "email", "treatment", s1, None, None, conv, True, Decimal("50.00"), "gold"),
        ("A", "c", "email", "treatment", s1, None, None, None, None, None, "silver"),
        ("A", "d", "email", "treatment", s1, None, None, None, False, Decimal("0.00"), None),
        ("A", "e", "email", "control", s1, None, None, conv, True, Decimal("20.00"), "gold"),
        ("A", "f", "email", "control", s1, None, None, None, False, Decimal("0.00"), "silver"),
        # campaign B, sent 5 days before the snapshot: outcome window still open
        ("B", "a", "sms", "treatment", s2, None, None, None, False, Decimal("0.00"), "gold"),
        ("B", "e", "sms", "control", s2, None, None, None, False, Decimal("0.00"), "gold"),
        (None, None, "sms", "treatment", s2, None, None, None, False, Decimal("0.00"), None),  # unresolved customer
    ]
    return spark.createDataFrame(rows, RESP)


def test_response_counts_per_segment(spark):
    got = _responses(spark).transform(response_counts("segment")).where("campaign_id = 'A'")
    schema = StructType(
        [
            StructField("campaign_id", StringType()),
            StructField("segment", StringType()),
            *[
                StructField(n, LongType())
                for n in ("n_treatment", "n_control", "conversions_treatment", "conversions_control")
            ],
            StructField("revenue_treatment", DoubleType()),
            StructField("revenue_control", DoubleType()),
            StructField("first_sent", DateType()),
            StructField("last_sent", DateType()),
        ]
    )
    d = date(2026, 6, 1)
    expected = spark.createDataFrame(
        [
            ("A", "gold", 2, 1, 2, 1, 80.0, 20.0, d, d),
            ("A", "silver", 1, 1, 0, 0, 0.0, 0.0, d, d),
            ("A", None, 1, 0, 0, 0, 0.0, 0.0, d, d),
        ],
        schema,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_campaign_results_lift_revenue_roi(spark):
    params = EvaluationParams(confidence=0.95, margin_rate=0.3, default_cost_per_contact=0.1, attribution_days=14)
    got = campaign_results(spark, _responses(spark), date(2026, 6, 30), params, {"A": (1.0, 0.5)}, "segment")
    a = got.where("campaign_id = 'A' AND level = 'campaign'").first()
    # treatment 4 customers, 2 conversions, revenue 80; control 2 customers, 1 conversion, revenue 20
    assert (a["n_treatment"], a["n_control"], a["conversions_treatment"], a["conversions_control"]) == (4, 2, 2, 1)
    assert a["rate_treatment"] == 0.5 and a["rate_control"] == 0.5 and a["lift_abs"] == 0.0
    assert a["incremental_revenue"] == pytest.approx((80 / 4 - 20 / 2) * 4)  # 40
    assert a["cost"] == 4.0  # 4 contacts x 1.0 from the campaign's config
    assert a["incremental_margin"] == pytest.approx(20.0)  # margin rate 0.5 from the campaign's config
    assert a["incremental_profit"] == pytest.approx(16.0) and a["roi"] == pytest.approx(4.0)
    assert a["outcome_complete"] is True and a["segment"] is None
    b = got.where("campaign_id = 'B' AND level = 'campaign'").first()
    assert b["outcome_complete"] is False  # last send 5 days ago, attribution window 14 days
    assert b["cost"] == pytest.approx(0.1)  # default cost per contact for a campaign not in config
    segs = {r["segment"]: r for r in got.where("campaign_id = 'A' AND level = 'segment'").collect()}
    assert set(segs) == {"gold", "silver", None}
    assert segs["gold"]["rate_treatment"] == 1.0 and segs["gold"]["rate_control"] == 1.0
    assert segs["silver"]["p_value"] is None  # both rates 0: no test


def test_known_by_ignores_later_sends_and_conversions(spark):
    rows = [
        (
            "A",
            "a",
            "email",
            "treatment",
            datetime(2026, 6, 20),
            None,
            None,
            datetime(2026, 7, 2),
            True,
            Decimal("9.00"),
            None,
        ),
        (
            "A",
            "b",
            "email",
            "treatment",
            datetime(2026, 6, 20),
            None,
            None,
            datetime(2026, 6, 22),
            True,
            Decimal("5.00"),
            None,
        ),
        ("C", "b", "email", "treatment", datetime(2026, 7, 1), None, None, None, False, Decimal("0.00"), None),
    ]
    got = spark.createDataFrame(rows, RESP).drop("segment").transform(known_by(date(2026, 6, 30)))
    out = sorted((r["customer_key"], r["converted"], r["converted_ts"], r["revenue"]) for r in got.collect())
    assert out == [("a", False, None, Decimal("0.00")), ("b", True, datetime(2026, 6, 22), Decimal("5.00"))]
