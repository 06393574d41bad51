"""Naming rules: parsing, first-rule priority, widest margin wins a contested name,
names kept by surviving segments, descriptive fallback and its de-duplication."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql.types import DoubleType, IntegerType, MapType, StringType, StructField, StructType

from custseg.segment.naming import assign_names, fallback_name, name_segments, parse_rules

RULES = {
    "High-value loyal": {"monetary": "> 0.5", "frequency": "> 0.5"},
    "Bargain hunters": {"discount_order_share": ">= 1"},
    "Big share": {"customer_share": "> 0.4"},
}


def _p(sid, share=0.1, **z):
    return {"segment_id": sid, "customer_share": share, "profile_z": z}


def test_parse_rules_and_errors():
    rules = parse_rules({"A": {"x": "> 0.5", "y": "<=-1e-1"}})
    assert [(c.key, c.op, c.value) for c in rules[0].conditions] == [("x", ">", 0.5), ("y", "<=", -0.1)]
    with pytest.raises(ValueError, match="rule 'A': condition x: 'high' must look like"):
        parse_rules({"A": {"x": "high"}})
    with pytest.raises(ValueError, match="rule 'B' must map keys"):
        parse_rules({"B": {}})


def test_contested_rule_goes_to_widest_margin_and_loser_moves_on():
    profiles = [
        _p(1, monetary=0.9, frequency=0.6, discount_order_share=1.5),  # margin 0.1 on rule 1
        _p(2, monetary=2.0, frequency=1.5, discount_order_share=0.0),  # margin 1.0: wins rule 1
        _p(3, share=0.5, monetary=-1.0, frequency=-1.0, discount_order_share=-0.5),
    ]
    names = assign_names(profiles, parse_rules(RULES))
    assert names == {2: "High-value loyal", 1: "Bargain hunters", 3: "Big share"}


def test_boundaries_missing_values_and_reserved_names():
    profiles = [
        _p(1, monetary=0.5, frequency=3.0),  # "> 0.5" is strict: no match
        _p(2, discount_order_share=1.0),  # ">= 1" holds at 1
        _p(3, monetary=3.0, frequency=3.0),
    ]
    # segment 3 survives from last week as "Champions"; nobody else may take that name
    names = assign_names(profiles, parse_rules(RULES), reserved={3: "Champions", 9: "Gone"})
    assert names[3] == "Champions"
    assert names[2] == "Bargain hunters"
    assert names[1] == "Frequent, high-spend"  # fallback: largest |z| first (frequency 3.0)
    assert "Gone" not in names.values()


def test_fallback_words_and_duplicates():
    assert fallback_name({"recency_days": 1.2, "monetary": -0.8, "sessions": 0.1}) == "Lapsed, low-spend"
    assert fallback_name({"weird_metric": -2.0}) == "Low weird metric"
    assert fallback_name({}) == "Average"
    profiles = [_p(1, recency_days=2.0, monetary=-1.0), _p(2, recency_days=1.5, monetary=-0.5)]
    assert assign_names(profiles, []) == {1: "Lapsed, low-spend", 2: "Lapsed, low-spend #2"}


PROFILE_SCHEMA = StructType(
    [
        StructField("segment_id", IntegerType(), False),
        StructField("customer_share", DoubleType(), True),
        StructField("profile_z", MapType(StringType(), DoubleType()), True),
    ]
)


def test_name_segments_on_profiles(spark):
    profiles = spark.createDataFrame(
        [
            (1, 0.2, {"monetary": 1.0, "frequency": 2.0}),
            (2, 0.5, {"monetary": -0.25, "frequency": -0.5}),
            (3, 0.3, {"monetary": 0.0, "frequency": None}),
        ],
        PROFILE_SCHEMA,
    )
    out = profiles.transform(name_segments(RULES, fallback_columns=["monetary", "frequency"]))
    expected = spark.createDataFrame(
        [
            (1, 0.2, {"monetary": 1.0, "frequency": 2.0}, "High-value loyal", "frequency +2.00, monetary +1.00"),
            (2, 0.5, {"monetary": -0.25, "frequency": -0.5}, "Big share", "frequency -0.50, monetary -0.25"),
            (3, 0.3, {"monetary": 0.0, "frequency": None}, "Low-spend", "monetary +0.00"),
        ],
        StructType(
            [
                *PROFILE_SCHEMA.fields,
                StructField("segment_name", StringType()),
                StructField("distinguishing", StringType()),
            ]
        ),
    )
    # maps cannot be sorted by Spark, so order both sides by id instead of ignore_row_order
    assert_df_equality(out.orderBy("segment_id"), expected.orderBy("segment_id"), ignore_nullable=True)
