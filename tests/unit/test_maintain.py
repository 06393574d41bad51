"""``custseg run maintain``: OPTIMIZE compacts, VACUUM keeps every version inside the
retention readable, and a retention below the floor is refused unless forced. Both engines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chispa import assert_df_equality

from custseg.storage import StorageError, StorageSettings, Tables

RUN_DATE = "2026-06-30"


@pytest.fixture(params=["delta-rs", "spark-delta"])
def engine(request, jvm_delta) -> str:
    if request.param == "spark-delta" and not jvm_delta:
        pytest.skip("JVM Delta jars not on the class path")
    return request.param


def _maintain(spark, home: Path, engine: str, *sets: str) -> int:
    from custseg.cli import parse_job_args, run_job

    args = ["maintain", "--date", RUN_DATE, "--set", f"storage.engine={engine}"]
    for s in sets:
        args += ["--set", s]
    os.environ["CUSTSEG_HOME"] = str(home)
    try:
        return run_job(parse_job_args(None, args), spark=spark)
    finally:
        os.environ.pop("CUSTSEG_HOME", None)


def _files(path: str) -> set[str]:
    return {str(p) for p in Path(path).rglob("*.parquet") if "_delta_log" not in p.parts}


def test_maintain_compacts_and_vacuum_keeps_time_travel_inside_the_retention(spark, engine, tmp_path):
    tables = Tables(spark, StorageSettings(root=str(tmp_path / "tables"), engine=engine, optimize_write=False))
    many = spark.range(0, 40, numPartitions=8).selectExpr("id", "id % 2 AS p")
    v0 = tables.append(many, "silver.nums", partition_by=["p"])
    v1 = tables.overwrite(many.where("id < 30"), "silver.nums")
    path = tables.path("silver.nums")
    assert len(_files(path)) == 16 + 12  # a file per task and partition: 8 x 2, then 6 x 2

    assert _maintain(spark, tmp_path, engine) == 0

    from deltalake import DeltaTable

    current = DeltaTable(path)
    assert len(current.file_uris()) == 2  # one file per partition
    assert_df_equality(tables.read("silver.nums"), many.where("id < 30"), ignore_row_order=True, ignore_nullable=True)
    # The versions of the last 7 days survive VACUUM: time travel still works.
    assert_df_equality(tables.read("silver.nums", version=v0), many, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(
        tables.read("silver.nums", version=v1), many.where("id < 30"), ignore_row_order=True, ignore_nullable=True
    )
    assert len(_files(path)) == 28 + 2
    runs = tables.read("gold.job_runs").where("job = 'maintain' AND status != 'started'").collect()
    assert [r["status"] for r in runs] == ["succeeded"]

    # A retention under the floor is a config error naming the key; nothing is deleted.
    assert _maintain(spark, tmp_path, engine, "maintenance.vacuum_retention_hours=0") == 2
    assert len(_files(path)) == 28 + 2

    # Forced: only the current version's files stay; older versions are gone.
    assert _maintain(spark, tmp_path, engine, "maintenance.vacuum_retention_hours=0", "maintenance.force=true") == 0
    assert len(_files(path)) == 2
    assert_df_equality(tables.read("silver.nums"), many.where("id < 30"), ignore_row_order=True, ignore_nullable=True)
    with pytest.raises(Exception):  # noqa: B017 - each engine names the missing files its own way
        tables.read("silver.nums", version=v0).collect()


def test_optimized_writes_make_one_file_per_partition(spark, engine, tmp_path):
    tables = Tables(spark, StorageSettings(root=str(tmp_path / "tables"), engine=engine))
    scattered = spark.range(0, 396, numPartitions=16).selectExpr("id", "id % 3 AS p")

    tables.overwrite(scattered, "silver.products", partition_by=["p"])
    tables.overwrite(scattered.drop("p"), "silver.flat")

    assert len(_files(tables.path("silver.products"))) == 3
    assert len(_files(tables.path("silver.flat"))) == 1
    assert_df_equality(tables.read("silver.products"), scattered, ignore_row_order=True, ignore_nullable=True)


def test_maintain_without_a_listable_root_needs_the_table_names(spark, jvm_delta):
    if not jvm_delta:
        pytest.skip("JVM Delta jars not on the class path")
    tables = Tables(spark, StorageSettings(root="s3://bucket/tables", engine="spark-delta"))
    with pytest.raises(StorageError, match="maintenance.tables"):
        tables.names()


def test_bronze_retention_deletes_old_batches_only_in_bronze(spark, jvm_delta, tmp_path):
    import datetime as dt

    tables = Tables(spark, StorageSettings(root=str(tmp_path / "tables")))
    old, recent = dt.date(2026, 5, 1), dt.date(2026, 6, 29)  # 60 and 1 days before the run date
    raw = spark.createDataFrame(
        [("C1", "a@example.com", old), ("C2", "b@example.com", recent), ("C3", None, None)],
        "customer_id string, email string, _batch_date date",
    )
    tables.append(raw, "bronze.crm_customers", partition_by=["_batch_date"])
    quarantine = spark.createDataFrame(
        [("x", "crm", old), ("y", "crm", recent)], "raw_record string, source string, _batch_date date"
    )
    tables.append(quarantine, "bronze.quarantine", partition_by=["_batch_date", "source"])
    silver = spark.createDataFrame([("k1", old)], "customer_key string, _batch_date date")
    tables.append(silver, "silver.orders")

    assert _maintain(spark, tmp_path, tables.engine_name, "maintenance.bronze_retention_days=30") == 0

    assert sorted(r["customer_id"] for r in tables.read("bronze.crm_customers").collect()) == ["C2", "C3"]
    assert [r["raw_record"] for r in tables.read("bronze.quarantine").collect()] == ["y"]
    assert tables.read("silver.orders").count() == 1  # only bronze expires
