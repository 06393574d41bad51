"""Segment profiles on a hand-made snapshot (sizes, revenue, means and z, top categories,
channel, churn risk, CLV) and the LRFMC value-class rules on the airline-study centres."""

from __future__ import annotations

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from custseg.segment.profile import (
    PROFILE_COLUMNS,
    segment_profiles,
    value_class_of,
    with_value_class,
)

FEATURES = StructType(
    [
        StructField("customer_key", StringType()),
        StructField("x", DoubleType()),
        StructField("y", DoubleType()),
        StructField("p_alive", DoubleType()),
        StructField("clv", DoubleType()),
        StructField("preferred_channel", StringType()),
    ]
)
DMAP = MapType(StringType(), DoubleType())
TOP = ArrayType(StructType([StructField("category", StringType()), StructField("share", DoubleType())]))
EXPECTED = StructType(
    [
        StructField("segment_id", IntegerType()),
        StructField("customers", LongType()),
        StructField("customer_share", DoubleType()),
        StructField("revenue", DoubleType()),
        StructField("revenue_share", DoubleType()),
        StructField("profile", DMAP),
        StructField("profile_z", DMAP),
        StructField("top_categories", TOP),
        StructField("preferred_channel", StringType()),
        StructField("churn_risk_share", DoubleType()),
        StructField("avg_churn_risk", DoubleType()),
        StructField("avg_clv", DoubleType()),
    ]
)


def test_segment_profiles_hand_computed(spark):
    segments = spark.createDataFrame(
        [("c1", 1), ("c2", 1), ("c3", 2), ("c4", 2), ("c5", 2), ("c6", 2)], "customer_key string, segment_id int"
    )
    features = spark.createDataFrame(
        [
            ("c1", 1.0, 5.0, 0.875, 100.0, "web"),
            ("c2", 1.0, 5.0, 0.25, 200.0, "store"),  # channel tie in segment 1: smallest value wins
            ("c3", 3.0, 5.0, 0.75, 60.0, "app"),
            ("c4", 3.0, 5.0, None, None, "app"),
            ("c5", None, 5.0, 0.25, 30.0, "web"),
            # c6 has no feature row: counted in the size, absent from the means
        ],
        FEATURES,
    )
    items = spark.createDataFrame(
        [
            ("c1", 10.0, "food"),
            ("c1", 30.0, "toys"),
            ("c2", 20.0, "food"),
            ("c3", 100.0, "tv"),
            ("c5", 50.0, "toys"),
            ("c5", 50.0, "food"),
            ("zz", 999.0, "tv"),  # not in any segment
        ],
        "customer_key string, net_revenue double, category string",
    )
    out = segments.transform(
        segment_profiles(features, items, ["x", "y", "missing_col"], churn_risk_threshold=0.5, top_categories=2)
    )
    assert out.columns == PROFILE_COLUMNS
    expected = spark.createDataFrame(
        [
            # x: population mean 2, sd 1 -> z -1 / +1; y is constant -> z 0
            (
                1,
                2,
                1 / 3,
                60.0,
                60 / 260,
                {"x": 1.0, "y": 5.0},
                {"x": -1.0, "y": 0.0},
                [("food", 0.5), ("toys", 0.5)],
                "store",
                0.5,
                0.4375,
                150.0,
            ),
            (
                2,
                4,
                2 / 3,
                200.0,
                200 / 260,
                {"x": 3.0, "y": 5.0},
                {"x": 1.0, "y": 0.0},
                [("tv", 0.5), ("food", 0.25)],
                "app",
                0.5,
                0.5,
                45.0,
            ),
        ],
        EXPECTED,
    )
    scalars = [c for c in PROFILE_COLUMNS if c not in ("profile", "profile_z", "top_categories")]
    assert_approx_df_equality(
        out.select(scalars), expected.select(scalars), 1e-12, ignore_row_order=True, ignore_nullable=True
    )
    nested = ["segment_id", "profile", "profile_z", "top_categories"]
    assert_df_equality(
        out.select(nested).orderBy("segment_id"), expected.select(nested).orderBy("segment_id"), ignore_nullable=True
    )


def test_segment_profiles_without_items_or_optional_columns(spark):
    segments = spark.createDataFrame([("a", 7), ("b", 7)], "customer_key string, segment_id int")
    features = spark.createDataFrame([("a", 2.0), ("b", 4.0)], "customer_key string, x double")
    row = segments.transform(segment_profiles(features, None, ["x"])).first()
    assert (row["customers"], row["customer_share"], row["revenue"], row["revenue_share"]) == (2, 1.0, 0.0, None)
    assert (row["profile"], row["profile_z"], row["top_categories"]) == ({"x": 3.0}, {"x": 0.0}, [])
    assert (row["preferred_channel"], row["churn_risk_share"], row["avg_clv"]) == (None, None, None)


# Centres of KMeans k=5 on the airline LRFMC matrix (scikit-learn, n_init=10), the classic study.
AIRLINE = {
    "low-value": {"L": -0.313, "R": 1.687, "F": -0.574, "M": -0.537, "C": -0.175},
    "important-retain": {"L": 0.484, "R": -0.799, "F": 2.483, "M": 2.424, "C": 0.309},
    "important-develop": {"L": 0.047, "R": -0.002, "F": -0.230, "M": -0.235, "C": 2.178},
    "general": {"L": -0.700, "R": -0.415, "F": -0.161, "M": -0.161, "C": -0.257},
    "important-win-back": {"L": 1.161, "R": -0.377, "F": -0.087, "M": -0.095, "C": -0.157},
}


@pytest.mark.parametrize("expected", sorted(AIRLINE))
def test_value_class_of_airline_centres(expected):
    assert value_class_of(AIRLINE[expected]) == expected


def test_value_class_edge_patterns():
    assert value_class_of({"L": 0.1, "R": 0.9, "F": 1.0, "M": 0.5, "C": 0.0}) == "important-win-back"  # lapsed VIP
    assert value_class_of({"L": 0.1, "R": None, "F": 1.0, "M": 0.5, "C": 0.0}) is None
    # inside the margin a sign does not count: F +0.05 is not "high" with margin 0.1
    assert value_class_of({"L": 0, "R": -1, "F": 0.05, "M": 1, "C": 0}, margin=0.1) == "general"


def test_with_value_class_matches_python_rules(spark):
    cols = {"L": "l_z", "R": "r_z", "F": "f_z", "M": "m_z", "C": "c_z"}
    rows = [(i, {cols[a]: v for a, v in c.items()}) for i, c in enumerate(AIRLINE.values())]
    rows.append((99, {"l_z": 1.0}))  # lacks R, F, M, C
    profiles = spark.createDataFrame(
        rows, StructType([StructField("segment_id", IntegerType()), StructField("profile", DMAP)])
    )
    out = profiles.transform(with_value_class()).select("segment_id", "value_class")
    expected = spark.createDataFrame(
        [(i, name) for i, name in enumerate(AIRLINE)] + [(99, None)], "segment_id int, value_class string"
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    assert out.where(F.col("value_class").isNotNull()).select("value_class").distinct().count() == 5
