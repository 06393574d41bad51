"""A small pipeline end to end on the Spark 4.0 line, on JVM Delta (spark-delta): landing
files through bronze and silver to the customer features (the stages that hold the storage
work; the model stages run the same Spark SQL and MLlib calls on either line)."""

from __future__ import annotations

import os

import pyspark
import pytest

from tests.integration.conftest import pipeline_args, run_stages

pytestmark = pytest.mark.slow
STAGES = ["ingest", "conform", "features"]


def test_landing_to_features_on_spark_40_with_jvm_delta(spark, jvm_delta, tmp_path):
    from deltalake import DeltaTable

    from custseg.datagen import generate
    from custseg.storage import commit_engine
    from custseg.storage.arrow_read import read_pandas

    assert pyspark.__version__.startswith("4.0.")
    if not jvm_delta:
        pytest.skip("JVM Delta jars for Spark 4.0 not on the class path")
    summary = generate(tmp_path, customers=300, days=90, seed=19, bad_share=0.01)
    run_date = summary.batch_dates[-1]
    try:
        rc = run_stages(spark, tmp_path, run_date, STAGES, pipeline_args(tmp_path))
    finally:
        os.environ.pop("CUSTSEG_HOME", None)
    assert rc == 0

    tables = tmp_path / "tables"
    written = sorted(p.parent for p in tables.glob("*/*/_delta_log"))
    names = {f"{p.parent.name}.{p.name}" for p in written}
    assert {
        "bronze.orders",
        "bronze.quarantine",
        "silver.customers",
        "silver.orders",
        "gold.customer_features",
    } <= names
    for path in written:
        assert commit_engine(DeltaTable(str(path)).history(1)[0]) == "spark-delta", path
    customers = read_pandas(tables / "silver" / "customers", columns=["customer_key"])
    features = read_pandas(tables / "gold" / "customer_features", columns=["customer_key"])
    assert set(features["customer_key"]) == set(customers["customer_key"])
    runs = read_pandas(tables / "gold" / "job_runs")
    ended = runs[runs["status"] != "started"]  # each run appends a started row, then its outcome
    assert set(ended["job"]) == set(STAGES)
    assert (ended["status"] == "succeeded").all()
