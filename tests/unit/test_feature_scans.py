"""bench.feature_scans counts the scans a query really ran, not those it only shows."""

import time

import pytest
from bench.feature_scans import executed_scans, last_execution_id


def _settled(spark, since):
    time.sleep(1.5)  # the SQL status store is fed asynchronously by the listener bus
    return executed_scans(spark, since)[0]


@pytest.fixture()
def full_locations(spark):
    spark.conf.set("spark.sql.maxMetadataStringLength", "10000")  # the table path must show in the plan
    yield
    spark.conf.unset("spark.sql.maxMetadataStringLength")


def test_counts_repeated_scans_and_not_cached_ones(spark, tmp_path, full_locations):
    path = tmp_path / "tables" / "silver" / "things"
    spark.range(10).write.parquet(str(path))
    df = spark.read.parquet(str(path))

    since = last_execution_id(spark)
    df.count()
    df.where("id > 3").count()
    assert _settled(spark, since)["silver.things"] == 2  # no cache: each action scans

    cached = df.cache()
    since = last_execution_id(spark)
    cached.count()  # fills the cache: one scan
    cached.where("id > 3").count()  # the scan shows in this plan, but reads the cache
    cached.agg({"id": "max"}).collect()
    cached.unpersist()
    assert _settled(spark, since)["silver.things"] == 1
