"""Feature-set assembly: feature sets from names or lists, null fills, sign-preserving
log1p, and MLlib standard scaling (sample sd), against hand-computed values."""

from __future__ import annotations

import math

import pytest
from chispa import assert_approx_df_equality
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from custseg.segment.features import (
    fill_values,
    prepare_features,
    resolve_feature_columns,
    scale_features,
)

SCHEMA = "customer_key string, recency_days int, monetary double, share double"


def _df(spark):
    return spark.createDataFrame(
        [("a", 10, 0.0, 0.5), ("b", 30, 9.0, None), ("c", None, 99.0, 0.1), ("d", 20, -3.0, 0.3)], SCHEMA
    )


def test_resolve_feature_columns():
    assert resolve_feature_columns("rfm") == ["recency_days", "frequency", "monetary"]
    assert resolve_feature_columns("rfm", ["x", "y"]) == ["x", "y"]
    assert resolve_feature_columns("mine", feature_sets={"mine": ["z"]}) == ["z"]
    with pytest.raises(ValueError, match="unknown feature set 'nope'"):
        resolve_feature_columns("nope")


def test_fill_values_max_median_and_all_null(spark):
    df = _df(spark).withColumn("empty", F.lit(None).cast("double"))
    fill = fill_values(df, ["recency_days", "share", "empty"], "median", ["recency_days"])
    assert fill == {"recency_days": 30.0, "share": 0.3, "empty": 0.0}
    assert fill_values(df, ["share"], "zero") == {"share": 0.0}


def test_prepare_features_fills_then_logs(spark):
    out = _df(spark).transform(
        prepare_features(
            ["recency_days", "monetary", "share"], ["recency_days", "monetary"], {"recency_days": 30.0, "share": 0.3}
        )
    )
    expected = spark.createDataFrame(
        [
            ("a", 10.0, 0.0, 0.5, math.log1p(10), 0.0, 0.5),
            ("b", 30.0, 9.0, 0.3, math.log1p(30), math.log(10), 0.3),
            ("c", 30.0, 99.0, 0.1, math.log1p(30), math.log(100), 0.1),
            ("d", 20.0, -3.0, 0.3, math.log1p(20), -math.log(4), 0.3),  # sign kept
        ],
        "customer_key string, recency_days double, monetary double, share double, "
        "_t_recency_days double, _t_monetary double, _t_share double",
    )
    assert_approx_df_equality(out, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def test_scale_features_standardises_with_sample_sd(spark):
    df = spark.createDataFrame(
        [("a", 1.0, 5.0), ("b", 3.0, 5.0), ("c", 5.0, 5.0)], "customer_key string, _t_x double, _t_y double"
    )
    scaled, scaling = scale_features(df, ["x", "y"])
    assert scaling.mean == (3.0, 5.0)
    assert scaling.std == (2.0, 0.0)
    out = scaled.select("customer_key", vector_to_array("features").alias("z"))
    expected = spark.createDataFrame(
        [("a", [-1.0, 0.0]), ("b", [0.0, 0.0]), ("c", [1.0, 0.0])], "customer_key string, z array<double>"
    )
    assert_approx_df_equality(out, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)
    raw, same = scale_features(df, ["x", "y"], standardize=False)
    assert not same.standardized
    assert raw.select(vector_to_array("features")[0].alias("x")).orderBy("x").collect()[0]["x"] == 1.0
