"""Both storage engines over the same generated data.

Two homes share one landing zone. Home "rs-first" runs ingest, conform and features for
day 1 on delta-rs, then for day 2 on spark-delta; home "jvm-first" does the same with the
engines swapped. So each engine continues tables the other wrote (no rewrite), and at the
end the tables must be equal in both homes (rows and schema). These stages are
deterministic; the model stages (segment, basket, marketing) depend on row order through
their seeded samplers, which no engine promises to keep.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tests.integration.conftest import pipeline_args, run_stages

pytestmark = pytest.mark.slow

CUSTOMERS = 400
DAYS = 90
STAGES = ["ingest", "conform", "features"]
# Columns that name the landing path or the clock of the run, not the data.
RUN_COLUMNS = {"_source_file", "_ingested_at", "_batch_id"}
ORDERS = {"jvm-first": ("spark-delta", "delta-rs"), "rs-first": ("delta-rs", "spark-delta")}


@pytest.fixture(scope="module")
def engine_homes(spark, jvm_delta, tmp_path_factory):
    """{home name: path} after day 1 and day 2 ran there, and the two dates."""
    if not jvm_delta:
        pytest.skip("JVM Delta jars not on the class path: nothing to compare delta-rs with")
    from custseg.datagen import generate

    data = tmp_path_factory.mktemp("engines-data")
    summary = generate(data, customers=CUSTOMERS, days=DAYS, seed=11, bad_share=0.01, daily_batches=2)
    day1, day2 = summary.batch_dates[-2:]
    homes = {}
    try:
        for name, (first, second) in ORDERS.items():
            home = tmp_path_factory.mktemp(f"engines-{name}")
            (home / "landing").symlink_to(data / "landing", target_is_directory=True)
            # CRM lands changes only: 400 customers may have none on day 2 (no folder), and the
            # default makes crm_customers a required source.
            args = [*pipeline_args(home), "--set", "ingest.required_sources=[orders]"]
            rc = run_stages(spark, home, day1, STAGES, [*args, "--set", f"storage.engine={first}"])
            assert rc == 0, f"{name}: day 1 on {first} failed"
            rc = run_stages(spark, home, day2, STAGES, [*args, "--set", f"storage.engine={second}"])
            assert rc == 0, f"{name}: day 2 on {second} failed"
            homes[name] = home
    finally:
        os.environ.pop("CUSTSEG_HOME", None)
    homes["data"] = data
    return homes, day1, day2


def _tables(root: Path, layer: str) -> list[str]:
    return sorted(p.parent.name for p in (root / layer).glob("*/_delta_log"))


def _engines(path: Path) -> set[str]:
    from deltalake import DeltaTable

    from custseg.storage import commit_engine

    return {commit_engine(c) for c in DeltaTable(str(path)).history() if c.get("operation") != "VACUUM END"}


def test_each_home_was_written_by_both_engines(engine_homes):
    homes, _, _ = engine_homes
    for home in (homes[h] for h in ORDERS):
        # Day-1 tables of one engine, rewritten (partition overwrite) by the other on day 2.
        for table in ("bronze/orders", "silver/customers", "gold/customer_features", "gold/job_runs"):
            assert _engines(home / "tables" / table) == {"delta-rs", "spark-delta"}, (home, table)


def test_every_table_is_equal_on_both_engines(spark, engine_homes):
    from custseg.storage import StorageSettings, Tables

    homes, _, day2 = engine_homes
    rs, jvm = (
        Tables(spark, StorageSettings(root=str(homes[h] / "tables"), engine="delta-rs"))
        for h in ("rs-first", "jvm-first")
    )
    compared = []
    for layer in ("bronze", "silver", "gold"):
        names = _tables(homes["rs-first"] / "tables", layer)
        assert names == _tables(homes["jvm-first"] / "tables", layer), layer
        for table in names:
            name = f"{layer}.{table}"
            a, b = rs.read(name), jvm.read(name)
            assert a.schema == b.schema, name
            keep = [c for c in a.columns if c not in RUN_COLUMNS]
            if table == "job_runs":  # times and application ids differ by nature: compare what ran
                keep = ["job", "run_date", "status", "rows_in", "rows_out", "quarantined"]
            # Nested values as JSON: chispa sorts rows, and maps cannot be sorted.
            nested = {f.name for f in a.schema.fields if isinstance(f.dataType, (T.ArrayType, T.MapType, T.StructType))}
            cols = [F.to_json(c).alias(c) if c in nested else F.col(c) for c in keep]
            a, b = a.select(*cols), b.select(*cols)
            assert_approx_df_equality(a, b, precision=1e-9, ignore_row_order=True)
            compared.append(name)
    assert {"bronze.orders", "silver.customers", "silver.orders", "gold.customer_features"} <= set(compared)
    # Day 2's features were written by spark-delta in one home and by delta-rs in the other.
    assert rs.read("gold.customer_features").where(f"snapshot_date = '{day2}'").count() > CUSTOMERS / 2


def test_tables_keep_the_plain_protocol_both_engines_read(engine_homes):
    """Pinned: reader 1 / writer 2 and no table features, whichever engine created the table,
    so each engine (and any Delta reader) can take over the other's tables."""
    from deltalake import DeltaTable

    homes, _, _ = engine_homes
    for home in (homes[h] for h in ORDERS):
        for path in sorted(p.parent for p in (home / "tables").glob("*/*/_delta_log")):
            protocol = DeltaTable(str(path)).protocol()
            assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2), path
            assert not protocol.reader_features and not protocol.writer_features, path


def test_catalog_mode_runs_the_pipeline_into_managed_tables(spark, engine_homes, tmp_path):
    """Catalog mode, as on Unity Catalog: day 1's ingest, conform and features into managed
    tables ``spark_catalog.cat_<layer>.<table>``; the features equal the path-mode run's."""
    from custseg.storage import StorageSettings, Tables

    homes, day1, _ = engine_homes
    (tmp_path / "landing").symlink_to(homes["data"] / "landing", target_is_directory=True)
    catalog = ["--set", "storage.engine=spark-delta", "--set", "storage.catalog=spark_catalog"]
    catalog += ["--set", "storage.schema_prefix=cat_"]
    try:
        rc = run_stages(spark, tmp_path, day1, STAGES, [*pipeline_args(tmp_path), *catalog])
        assert rc == 0
        managed = Tables(
            spark,
            StorageSettings(
                root=str(tmp_path / "tables"), engine="spark-delta", catalog="spark_catalog", schema_prefix="cat_"
            ),
        )
        names = managed.names()
        assert {"bronze.orders", "silver.customers", "gold.customer_features", "gold.job_runs"} <= set(names)
        assert not (tmp_path / "tables").exists()  # nothing by path: all in the catalog's warehouse
        detail = spark.sql("DESCRIBE DETAIL spark_catalog.cat_gold.customer_features").head()
        assert detail["format"] == "delta" and detail["partitionColumns"] == ["snapshot_date"]
        path_mode = Tables(spark, StorageSettings(root=str(homes["rs-first"] / "tables"), engine="delta-rs"))
        expected = path_mode.read("gold.customer_features").where(f"snapshot_date = '{day1}'")
        assert_approx_df_equality(
            managed.read("gold.customer_features"), expected, precision=1e-9, ignore_row_order=True
        )
    finally:
        os.environ.pop("CUSTSEG_HOME", None)
        for layer in ("bronze", "silver", "gold", "meta"):
            spark.sql(f"DROP SCHEMA IF EXISTS spark_catalog.cat_{layer} CASCADE")
