"""The storage contract: every engine must pass these tests.

Each test runs once per engine, both on the one test session; "spark-delta" skips where
the JVM Delta jars are not on the class path, and fails instead under CI=true. A second,
independent reader (``custseg.storage.arrow_read``: the log through ``deltalake``, the data
through pyarrow) checks that what an engine writes is a real Delta table, not just
something our own reader understands.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import threading
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.config import DEFAULT_CONF_DIR, load_config
from custseg.session import delta_jars_dir, has_jvm_delta
from custseg.storage import (
    CommitConflictError,
    SchemaMismatchError,
    StorageError,
    StorageSettings,
    Tables,
    WriteId,
)
from custseg.storage.arrow_read import read_table

ENGINES = ["delta-rs", "spark-delta"]
NO_JARS = "JVM Delta jars not on the class path (make venv could not resolve them)"

# Delta stores DataFrame writes with every column nullable, so the declared schemas are too.
ORDERS = T.StructType(
    [
        T.StructField("order_id", T.LongType()),
        T.StructField("customer_id", T.StringType()),
        T.StructField("snapshot_date", T.DateType()),
        T.StructField("ordered_at", T.TimestampType()),
        T.StructField("amount", T.DecimalType(12, 2)),
        T.StructField("skus", T.ArrayType(T.StringType())),
    ]
)
D1, D2, D3 = dt.date(2026, 6, 29), dt.date(2026, 6, 30), dt.date(2026, 7, 1)


def ts(day: dt.date, hour: int, micros: int = 0) -> dt.datetime:
    """UTC instant (the test session's time zone is UTC)."""
    return dt.datetime(day.year, day.month, day.day, hour, 0, 0, micros)


ROWS_1 = [
    (1, "c1", D1, ts(D1, 9, 123456), Decimal("10.50"), ["sku-1", "sku-2"]),
    (2, "c2", D1, None, Decimal("-3.25"), []),
    (3, None, D2, ts(D2, 23, 999999), None, None),
]
ROWS_2 = [
    (4, "c4", D2, ts(D2, 12), Decimal("99999999.99"), ["sku-3", None]),
    (5, "c5", D3, ts(D3, 0), Decimal("0.01"), ["sku-1"]),
]


@pytest.fixture(
    params=[pytest.param(e, marks=[pytest.mark.spark_delta] if e == "spark-delta" else []) for e in ENGINES]
)
def engine(request: pytest.FixtureRequest, jvm_delta: bool) -> str:
    if request.param == "spark-delta" and not jvm_delta:
        pytest.skip(NO_JARS)
    return request.param


@pytest.fixture
def tables(spark: SparkSession, engine: str, tmp_path: Path) -> Tables:
    return Tables(spark, StorageSettings(root=str(tmp_path / "tables"), engine=engine))


@pytest.fixture
def evolving(spark: SparkSession, engine: str, tmp_path: Path) -> Tables:
    settings = StorageSettings(root=str(tmp_path / "tables"), engine=engine, schema_evolution=True)
    return Tables(spark, settings)


def orders(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, ORDERS)


def logged_files(path: str) -> set[str]:
    """The current version's data files, as the Delta log (read by deltalake) names them."""
    actions = pa.table(DeltaTable(path).get_add_actions()).column("path").to_pylist()
    return {os.path.join(path, unquote(p)) for p in actions}


def data_files(path: str) -> set[str]:
    """Every Parquet file in the table folder, whether the log refers to it or not."""
    found = set()
    for folder, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith("_")]
        found |= {os.path.join(folder, n) for n in names if n.endswith(".parquet")}
    return found


# --- round trips ------------------------------------------------------------------------


def test_append_then_read_returns_rows_with_declared_schema(spark, tables):
    df = orders(spark, ROWS_1)

    version = tables.append(df, "silver.orders")

    assert version == 0
    assert tables.exists("silver.orders")
    assert tables.schema("silver.orders") == ORDERS
    assert_df_equality(tables.read("silver.orders"), df, ignore_row_order=True)


def test_nested_and_edge_types_round_trip(spark, tables):
    schema = T.StructType(
        [
            T.StructField("id", T.IntegerType()),
            T.StructField("tiny", T.ByteType()),
            T.StructField("flag", T.BooleanType()),
            T.StructField("score", T.DoubleType()),
            T.StructField("born", T.DateType()),
            T.StructField("big", T.DecimalType(38, 10)),
            T.StructField(
                "addr",
                T.StructType([T.StructField("city", T.StringType()), T.StructField("zip", T.IntegerType())]),
            ),
            T.StructField("attrs", T.MapType(T.StringType(), T.LongType())),
            T.StructField("visits", T.ArrayType(T.StructType([T.StructField("day", T.DateType())]))),
        ]
    )
    rows = [
        (1, 7, True, 1.5, dt.date(1969, 12, 31), Decimal("1234567890123456789012345678.0123456789"),
         ("Zürich", 8001), {"a": 1, "b": None}, [(dt.date(2026, 1, 1),)]),
        (2, None, None, None, None, None, None, None, None),
        (3, -128, False, -0.0, dt.date(2026, 2, 28), Decimal("-0.0000000001"), (None, None), {}, []),
    ]  # fmt: skip
    df = spark.createDataFrame(rows, schema)

    tables.append(df, "silver.profiles")

    # Sorted by id: chispa's row-order-free compare cannot hash map columns.
    assert_df_equality(tables.read("silver.profiles").orderBy("id"), df.orderBy("id"))


def test_append_adds_rows_and_aligns_columns_by_name(spark, tables):
    tables.append(orders(spark, ROWS_1), "silver.orders")
    shuffled = orders(spark, ROWS_2).select("amount", "skus", "order_id", "ordered_at", "snapshot_date", "customer_id")

    version = tables.append(shuffled, "silver.orders")

    assert version == 1
    assert_df_equality(tables.read("silver.orders"), orders(spark, ROWS_1 + ROWS_2), ignore_row_order=True)


def test_read_of_missing_table_names_it(tables):
    assert not tables.exists("gold.nothing_here")
    with pytest.raises(StorageError, match="gold.nothing_here"):
        tables.read("gold.nothing_here")


def test_empty_append_creates_the_table_then_commits_nothing(spark, tables, engine):
    empty = spark.createDataFrame([], ORDERS)

    assert tables.append(empty, "silver.orders", partition_by=["snapshot_date"]) == 0
    assert_df_equality(tables.read("silver.orders"), empty, ignore_row_order=True)
    assert tables.partition_columns("silver.orders") == ["snapshot_date"]

    tables.append(orders(spark, ROWS_1), "silver.orders")
    before = tables.version("silver.orders")
    after = tables.append(empty, "silver.orders")
    # JVM Delta commits an empty version; delta-rs commits nothing.
    assert after == before if engine == "delta-rs" else after in (before, before + 1)
    assert_df_equality(tables.read("silver.orders"), orders(spark, ROWS_1), ignore_row_order=True)


# --- overwrite ----------------------------------------------------------------------------


def test_overwrite_replaces_the_whole_table(spark, tables):
    tables.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"])

    version = tables.overwrite(orders(spark, ROWS_2), "silver.orders")

    assert version == 1
    assert_df_equality(tables.read("silver.orders"), orders(spark, ROWS_2), ignore_row_order=True)


def test_overwrite_where_replaces_only_matching_partitions(spark, tables):
    tables.append(orders(spark, ROWS_1 + ROWS_2), "silver.orders", partition_by=["snapshot_date"])
    new_d2 = [(20, "c20", D2, ts(D2, 1), Decimal("2.00"), ["x"])]

    tables.overwrite(orders(spark, new_d2), "silver.orders", where={"snapshot_date": "2026-06-30"})

    kept = [r for r in ROWS_1 + ROWS_2 if r[2] != D2]
    assert_df_equality(tables.read("silver.orders"), orders(spark, kept + new_d2), ignore_row_order=True)

    # A list of values replaces several partitions at once (D1 and D3 go, D2 stays).
    new_d1 = [(10, "c10", D1, None, Decimal("1.00"), None)]
    tables.overwrite(orders(spark, new_d1), "silver.orders", where={"snapshot_date": [D1, D3]})
    assert_df_equality(tables.read("silver.orders"), orders(spark, new_d2 + new_d1), ignore_row_order=True)


def test_underscore_partition_column_round_trips(spark, tables):
    # Bronze tables partition by _batch_date: "_x=v" folders are partitions, not hidden files.
    df = spark.createDataFrame(
        [("a", dt.date(2026, 6, 30)), ("b", dt.date(2026, 6, 30)), ("c", dt.date(2026, 7, 1))],
        "x string, _batch_date date",
    )
    tables.overwrite(
        df, "bronze.batches", partition_by=["_batch_date"], where={"_batch_date": ["2026-06-30", "2026-07-01"]}
    )
    assert_df_equality(tables.read("bronze.batches"), df, ignore_row_order=True, ignore_nullable=True)


def test_overwrite_where_fails_on_rows_outside_the_partitions(spark, tables):
    tables.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"])
    stray = [(9, "c9", D3, None, None, None)]  # D3 is not the partition being replaced
    files_before = data_files(tables.path("silver.orders"))

    with pytest.raises(StorageError, match="rows outside those partitions.*2026-06-30"):
        tables.overwrite(orders(spark, stray), "silver.orders", where={"snapshot_date": D2})

    assert tables.version("silver.orders") == 0
    assert data_files(tables.path("silver.orders")) == files_before  # nothing left behind
    assert_df_equality(tables.read("silver.orders"), orders(spark, ROWS_1), ignore_row_order=True)


def test_where_must_name_partition_columns_and_valid_values(spark, tables):
    tables.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"])

    with pytest.raises(StorageError, match="customer_id"):
        tables.overwrite(orders(spark, ROWS_1), "silver.orders", where={"customer_id": "c1"})
    with pytest.raises(StorageError, match="not a valid date"):
        tables.overwrite(orders(spark, ROWS_1), "silver.orders", where={"snapshot_date": "June"})


def test_partitioning_cannot_change_after_creation(spark, tables):
    tables.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"])

    with pytest.raises(StorageError, match="partitioned by"):
        tables.append(orders(spark, ROWS_2), "silver.orders", partition_by=["customer_id"])
    assert tables.version("silver.orders") == 0


# --- versions and history -----------------------------------------------------------------


def test_read_older_version_and_history(spark, tables):
    v0 = tables.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"])
    v1 = tables.append(orders(spark, ROWS_2), "silver.orders")
    v2 = tables.overwrite(orders(spark, ROWS_2), "silver.orders", where={"snapshot_date": [D2, D3]})

    assert (v0, v1, v2) == (0, 1, 2)
    assert tables.version("silver.orders") == 2
    assert_df_equality(tables.read("silver.orders", version=0), orders(spark, ROWS_1), ignore_row_order=True)
    assert_df_equality(
        tables.read("silver.orders", version=1),
        orders(spark, ROWS_1 + ROWS_2),
        ignore_row_order=True,
    )
    expected_now = [r for r in ROWS_1 if r[2] == D1] + ROWS_2
    assert_df_equality(tables.read("silver.orders"), orders(spark, expected_now), ignore_row_order=True)

    history = tables.history("silver.orders")
    assert [h["version"] for h in history] == [2, 1, 0]
    assert [h["parameters"]["mode"] for h in history] == ["Overwrite", "Append", "Append"]
    assert all(h["operation"] for h in history)
    stamps = [h["timestamp"] for h in history]
    assert all(s.tzinfo is not None for s in stamps)
    assert stamps == sorted(stamps, reverse=True)
    with pytest.raises(StorageError):
        tables.read("silver.orders", version=7)


# --- schema enforcement and evolution -----------------------------------------------------


def test_append_with_a_changed_type_fails_naming_the_column(spark, tables):
    tables.append(orders(spark, ROWS_1), "silver.orders")
    as_text = orders(spark, ROWS_2).withColumn("amount", F.col("amount").cast("string"))

    with pytest.raises(SchemaMismatchError, match=r"silver\.orders.*amount"):
        tables.append(as_text, "silver.orders")
    assert tables.version("silver.orders") == 0


def test_new_column_fails_without_schema_evolution(spark, tables):
    tables.append(orders(spark, ROWS_1), "silver.orders")
    wider = orders(spark, ROWS_2).selectExpr("*", "'web' AS channel")

    with pytest.raises(SchemaMismatchError, match="channel"):
        tables.append(wider, "silver.orders")
    assert tables.schema("silver.orders") == ORDERS


def test_new_nullable_column_is_added_with_schema_evolution(spark, evolving, engine, jvm_delta):
    evolving.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"])
    wider = orders(spark, ROWS_2).selectExpr("*", "'web' AS channel")

    assert evolving.append(wider, "silver.orders") == 1

    # One commit: the new column and its data land together (no version with one, not the other).
    assert evolving.version("silver.orders") == 1
    expected_schema = T.StructType([*ORDERS.fields, T.StructField("channel", T.StringType())])
    expected = spark.createDataFrame([(*r, None) for r in ROWS_1] + [(*r, "web") for r in ROWS_2], expected_schema)
    assert evolving.schema("silver.orders") == expected_schema
    assert_df_equality(evolving.read("silver.orders"), expected, ignore_row_order=True)
    # Any Delta reader sees the same (the log through deltalake, the data through pyarrow).
    other = read_table(evolving.path("silver.orders")).to_pylist()
    assert sorted((r["order_id"], r["channel"]) for r in other) == [
        (1, None),
        (2, None),
        (3, None),
        (4, "web"),
        (5, "web"),
    ]
    if engine == "delta-rs" and jvm_delta:  # and JVM Delta reads delta-rs's own commit
        jvm = Tables(spark, replace(evolving.settings, engine="spark-delta"))
        assert_df_equality(jvm.read("silver.orders"), expected, ignore_row_order=True)

    # A partition overwrite that adds a column is one commit too.
    wider2 = orders(spark, ROWS_2[:1]).selectExpr("*", "'web' AS channel", "7 AS store")
    assert evolving.overwrite(wider2, "silver.orders", where={"snapshot_date": D2}) == 2
    assert evolving.version("silver.orders") == 2
    assert evolving.schema("silver.orders").fieldNames()[-1] == "store"
    rows = evolving.read("silver.orders").where(F.col("snapshot_date") == D2).select("order_id", "store").collect()
    assert sorted((r["order_id"], r["store"]) for r in rows) == [(4, 7)]

    # Evolution adds columns; it never changes a column's type.
    retyped = wider.withColumn("order_id", F.col("order_id").cast("string"))
    with pytest.raises(SchemaMismatchError, match="order_id"):
        evolving.append(retyped, "silver.orders")


# --- failures, orphans, vacuum ------------------------------------------------------------


def test_failed_commit_leaves_the_previous_version_and_vacuum_removes_orphans(spark, tables, engine, monkeypatch):
    tables.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"])
    path = tables.path("silver.orders")
    committed = logged_files(path)

    if engine == "delta-rs":
        from custseg.storage.delta_rs import DeltaRsEngine

        def crash(self, req, files):
            raise RuntimeError("injected: driver died before the commit")

        monkeypatch.setattr(DeltaRsEngine, "_commit", crash)
        with pytest.raises(RuntimeError, match="injected"):
            tables.append(orders(spark, ROWS_2), "silver.orders")
        monkeypatch.undo()
    else:
        # JVM Delta writes and commits in one call: plant the orphan such a crash leaves.
        src = sorted(committed)[0]
        shutil.copy(src, os.path.join(os.path.dirname(src), f"part-orphan-{uuid.uuid4()}.parquet"))

    orphans = data_files(path) - committed
    assert orphans, "the failed write should have left data files behind"
    assert tables.version("silver.orders") == 0
    assert_df_equality(tables.read("silver.orders"), orders(spark, ROWS_1), ignore_row_order=True)

    # Fresh, they could be a writer's about to commit: kept. Past the orphan retention: gone.
    tables.vacuum("silver.orders", retention_hours=0)
    assert all(os.path.exists(f) for f in orphans)
    _age(orphans, hours=8 * 24)  # past the default orphan retention (7 days)
    tables.vacuum("silver.orders", retention_hours=0)

    assert not any(os.path.exists(f) for f in orphans)
    assert data_files(path) == committed
    assert_df_equality(tables.read("silver.orders"), orders(spark, ROWS_1), ignore_row_order=True)


def _age(files, hours: float) -> None:
    """Set the files' modification time ``hours`` back, as if written that long ago."""
    then = dt.datetime.now().timestamp() - hours * 3600
    for f in files:
        os.utime(f, (then, then))


def test_vacuum_keeps_files_of_an_uncommitted_write_whatever_the_retention(spark, tables, engine):
    """Two clocks: a removed file goes once its removal is older than the retention asked for
    (0 here, as an erasure does); a file no commit refers to goes only once its modification
    time is older than storage.orphan_retention_hours, a concurrent writer's about to commit."""
    tables.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"])
    path = tables.path("silver.orders")
    removed = logged_files(path)
    tables.overwrite(orders(spark, ROWS_2), "silver.orders")
    current = logged_files(path)
    # A concurrent writer's files, moved in just now and not committed yet (delta-rs moves them
    # into place before the commit; JVM Delta writes them there before the commit), and one
    # still in delta-rs's staging folder.
    src = sorted(current)[0]
    in_flight = os.path.join(os.path.dirname(src), f"part-00000-{uuid.uuid4()}.c000.snappy.parquet")
    shutil.copy(src, in_flight)
    staged = os.path.join(path, "_staging", uuid.uuid4().hex, f"part-00000-{uuid.uuid4()}.parquet")
    os.makedirs(os.path.dirname(staged))
    shutil.copy(src, staged)
    # And an old orphan, of a write that died long ago.
    stale = os.path.join(os.path.dirname(src), f"part-00001-{uuid.uuid4()}.c000.snappy.parquet")
    shutil.copy(src, stale)
    _age([stale], hours=8 * 24)  # past the default orphan retention (7 days)

    tables.vacuum("silver.orders", retention_hours=0)

    assert os.path.exists(in_flight) and os.path.exists(staged)
    assert not os.path.exists(stale)
    assert not any(os.path.exists(f) for f in removed)  # retention 0: erased at once
    assert all(os.path.exists(f) for f in current)
    assert_df_equality(tables.read("silver.orders"), orders(spark, ROWS_2), ignore_row_order=True)

    # A routine vacuum (7 days) keeps removed files too: the versions inside it stay readable.
    tables.overwrite(orders(spark, ROWS_1), "silver.orders")
    tables.vacuum("silver.orders")
    assert all(os.path.exists(f) for f in current) and os.path.exists(in_flight)
    assert_df_equality(tables.read("silver.orders", version=1), orders(spark, ROWS_2), ignore_row_order=True)


def test_orphan_retention_must_be_at_least_an_hour(tmp_path):
    with pytest.raises(StorageError, match="orphan_retention_hours"):
        StorageSettings(root=str(tmp_path), orphan_retention_hours=0)


# --- concurrency ------------------------------------------------------------------------------


def test_two_racing_appends_both_land_without_loss_or_duplicates(spark, tables, engine):
    tables.append(orders(spark, ROWS_1), "silver.orders")
    batches = {"a": ROWS_2[:1], "b": ROWS_2[1:]}
    frames = {k: orders(spark, v) for k, v in batches.items()}
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def append(key: str) -> None:
        start.wait()
        try:
            results[key] = tables.append(frames[key], "silver.orders")
        except CommitConflictError as exc:
            results[key] = exc

    threads = [threading.Thread(target=append, args=(k,)) for k in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    landed = [k for k, r in results.items() if isinstance(r, int)]
    assert len(results) == 2 and landed, results
    if engine == "delta-rs":  # it retries lost races itself
        assert sorted(results.values()) == [1, 2]
    # Each write returns its own commit's version, not the latest one.
    assert sorted(r for r in results.values() if isinstance(r, int)) == list(range(1, len(landed) + 1))
    for k in landed:
        added = tables.read("silver.orders", version=results[k]).exceptAll(
            tables.read("silver.orders", version=results[k] - 1)
        )
        assert_df_equality(added, frames[k], ignore_row_order=True)
    expected = ROWS_1 + [row for k in landed for row in batches[k]]
    assert_df_equality(tables.read("silver.orders"), orders(spark, expected), ignore_row_order=True)


# --- idempotent writes ------------------------------------------------------------------------


def test_a_retried_append_with_the_same_write_id_lands_once(spark, tables):
    run7 = WriteId.for_run("ingest", D2, "silver.orders", run=7)
    first = tables.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"], txn=run7)
    other = tables.append(orders(spark, ROWS_2[:1]), "silver.orders")  # an unrelated writer in between

    # The task is retried: same job, run date, table and run, same data.
    retried = tables.append(
        orders(spark, ROWS_1), "silver.orders", txn=WriteId.for_run("ingest", D2, "silver.orders", 7)
    )

    assert (first, other, retried) == (0, 1, 0)  # the retry answers with the first attempt's version
    assert tables.version("silver.orders") == 1
    assert_df_equality(tables.read("silver.orders"), orders(spark, ROWS_1 + ROWS_2[:1]), ignore_row_order=True)

    # The next run of the job appends again; so does the same run for another table or date.
    assert (
        tables.append(orders(spark, ROWS_2[1:]), "silver.orders", txn=WriteId.for_run("ingest", D2, "silver.orders", 8))
        == 2
    )
    assert (
        tables.append(orders(spark, ROWS_2[1:]), "silver.orders", txn=WriteId.for_run("ingest", D3, "silver.orders", 7))
        == 3
    )
    assert tables.read("silver.orders").count() == len(ROWS_1) + 1 + 2
    with pytest.raises(StorageError, match="version"):
        WriteId("custseg/x", -1)


# --- catalog mode (spark-delta only) ----------------------------------------------------------


@pytest.fixture
def catalog_tables(spark: SparkSession, jvm_delta: bool, tmp_path: Path):
    """Managed tables in Spark's session catalog (Delta's catalog, the test warehouse):
    ``spark_catalog.<prefix><layer>.<table>``, as Unity Catalog's ``catalog.schema.table``."""
    if not jvm_delta:
        pytest.skip(NO_JARS)
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    settings = StorageSettings(root=str(tmp_path), engine="spark-delta", catalog="spark_catalog", schema_prefix=prefix)
    yield Tables(spark, settings), prefix
    for layer in ("silver", "gold"):
        spark.sql(f"DROP SCHEMA IF EXISTS spark_catalog.{prefix}{layer} CASCADE")


def test_catalog_mode_creates_overwrites_and_travels_managed_tables(spark, catalog_tables, tmp_path):
    tables, prefix = catalog_tables
    assert not tables.exists("silver.orders")

    v0 = tables.append(orders(spark, ROWS_1 + ROWS_2), "silver.orders", partition_by=["snapshot_date"])
    new_d2 = [(20, "c20", D2, ts(D2, 1), Decimal("2.00"), ["x"])]
    v1 = tables.overwrite(orders(spark, new_d2), "silver.orders", where={"snapshot_date": D2})

    assert (v0, v1) == (0, 1)
    assert tables.identifier("silver.orders") == f"`spark_catalog`.`{prefix}silver`.`orders`"
    kept = [r for r in ROWS_1 + ROWS_2 if r[2] != D2]
    expected = orders(spark, kept + new_d2)
    assert_df_equality(tables.read("silver.orders"), expected, ignore_row_order=True)
    assert_df_equality(spark.table(f"spark_catalog.{prefix}silver.orders"), expected, ignore_row_order=True)
    assert_df_equality(tables.read("silver.orders", version=0), orders(spark, ROWS_1 + ROWS_2), ignore_row_order=True)
    assert [h["version"] for h in tables.history("silver.orders")] == [1, 0]
    assert tables.partition_columns("silver.orders") == ["snapshot_date"]
    assert not os.path.exists(tables.path("silver.orders"))  # managed: in the warehouse, not under root
    retried = WriteId.for_run("ingest", D2, "silver.orders", 1)
    assert tables.append(orders(spark, new_d2), "silver.orders", txn=retried) == 2
    assert tables.append(orders(spark, new_d2), "silver.orders", txn=retried) == 2
    tables.append(orders(spark, ROWS_1), "gold.orders", partition_by=["snapshot_date"])
    assert tables.names() == ["gold.orders", "silver.orders"]

    # exists() says whether a Delta table is there, and refuses another format under the name.
    spark.sql(f"CREATE TABLE spark_catalog.{prefix}silver.plain (a INT) USING parquet")
    with pytest.raises(StorageError, match="not (a )?Delta"):
        tables.exists("silver.plain")


def test_catalog_mode_repeats_partition_overwrites_and_evolves(spark, catalog_tables):
    """A day's ingest overwrites one partition per source: many overwrites of one managed table
    whose partition column is not its last column. Through saveAsTable (REPLACE TABLE) Delta
    4.4 failed the third with "Corrupted table metadata detected"."""
    tables, _ = catalog_tables
    tables.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"])
    rows = {D1: ROWS_1, D2: []}
    for i, day in enumerate([D2, D1, D2, D1], start=1):
        new = [(100 + i, f"c{i}", day, ts(day, i), Decimal(f"{i}.00"), ["y"])]
        tables.overwrite(orders(spark, new), "silver.orders", where={"snapshot_date": day})
        rows[day] = new
    expected = orders(spark, rows[D1] + rows[D2])
    assert_df_equality(tables.read("silver.orders"), expected, ignore_row_order=True)
    assert [h["version"] for h in tables.history("silver.orders")] == [4, 3, 2, 1, 0]

    evolving = Tables(spark, replace(tables.settings, schema_evolution=True))
    wider = orders(spark, rows[D1]).withColumn("channel", F.lit("web"))
    evolving.overwrite(wider, "silver.orders", where={"snapshot_date": D1})
    assert tables.read("silver.orders").where(F.col("channel") == "web").count() == len(rows[D1])
    assert tables.read("silver.orders").where(F.col("channel").isNull()).count() == len(rows[D2])


# --- a real Delta table ---------------------------------------------------------------------


def test_independent_delta_reader_sees_the_same_rows_and_partitions(spark, tables, engine):
    schema = T.StructType([*ORDERS.fields, T.StructField("channel", T.StringType())])
    rows = [
        (*ROWS_1[0], "web"),
        (*ROWS_1[1], "a b/c:d%e"),  # characters Spark escapes in folder names
        (*ROWS_1[2], None),  # null partition value
        (*ROWS_2[0], "007"),  # stays a string, not the number 7
    ]
    df = spark.createDataFrame(rows, schema)
    tables.append(df, "gold.orders", partition_by=["snapshot_date", "channel"])
    path = tables.path("gold.orders")
    assert_df_equality(tables.read("gold.orders"), df, ignore_row_order=True)

    delta = DeltaTable(path)
    assert list(delta.metadata().partition_columns) == ["snapshot_date", "channel"]
    seen = spark.createDataFrame(read_table(path).to_pylist(), schema)
    assert_df_equality(seen, df, ignore_row_order=True)

    # Per-file stats in the log (data skipping for any Delta reader).
    actions = pa.table(delta.get_add_actions(flatten=True)).to_pylist()
    assert sum(a["num_records"] for a in actions) == len(rows)
    assert min(a["min.order_id"] for a in actions) == 1
    assert max(a["max.order_id"] for a in actions) == 4
    assert min(a["min.amount"] for a in actions if a["min.amount"] is not None) == Decimal("-3.25")
    by_channel = {a["partition.channel"] for a in actions}
    assert by_channel == {"web", "a b/c:d%e", None, "007"}
    assert all(a["null_count.ordered_at"] is not None for a in actions)

    # delta-rs: timestamps as INT64 micros, never Spark's default INT96.
    for f in logged_files(path) if engine == "delta-rs" else []:
        column = pq.ParquetFile(f).schema.column(pq.ParquetFile(f).schema.names.index("ordered_at"))
        assert column.physical_type == "INT64"


# --- names, engines, settings ------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "orders",
        "silver.orders.v2",
        "silver.",
        ".orders",
        "1x.orders",
        "silver.or-ders",
        "",
        "silver.orders ",
        "silver.orders\n",
    ],
)
def test_bad_table_names_are_rejected(spark, tmp_path, name):
    tables = Tables(spark, StorageSettings(root=str(tmp_path), engine="auto"))
    with pytest.raises(StorageError, match="layer.table"):
        tables.path(name)


def test_forcing_spark_delta_without_the_jars_is_a_clear_error(spark, tmp_path, monkeypatch):
    # The one session has the jars wherever the set-up resolved them: take them away here.
    monkeypatch.setattr("custseg.session.has_jvm_delta", lambda _spark: False)
    with pytest.raises(StorageError, match="Delta jars are not on the class path"):
        Tables(spark, StorageSettings(root=str(tmp_path), engine="spark-delta"))
    assert Tables(spark, StorageSettings(root=str(tmp_path), engine="auto")).engine_name == "delta-rs"


def test_auto_picks_spark_delta_exactly_when_the_jars_were_resolved(spark, tmp_path):
    resolved = delta_jars_dir() is not None  # what conftest put on the class path

    assert has_jvm_delta(spark) is resolved
    assert Tables(spark, StorageSettings(root=str(tmp_path))).engine_name == ("spark-delta" if resolved else "delta-rs")


def test_catalog_mode_needs_spark_delta(spark, tmp_path):
    settings = StorageSettings(root=str(tmp_path), engine="delta-rs", catalog="main")
    with pytest.raises(StorageError, match="catalog"):
        Tables(spark, settings)


def test_settings_come_from_the_config(spark, tmp_path):
    conf = load_config(DEFAULT_CONF_DIR / "base.yaml", env={"CUSTSEG_HOME": str(tmp_path)})
    conf = conf.with_overrides({"storage.schema_evolution": True, "storage.orphan_retention_hours": 48})

    settings = StorageSettings.from_config(conf)
    tables = Tables(spark, conf)

    assert settings == StorageSettings(root=str(tmp_path / "tables"), schema_evolution=True, orphan_retention_hours=48)
    assert tables.engine_name == ("spark-delta" if has_jvm_delta(spark) else "delta-rs")
    assert tables.path("silver.orders") == str(tmp_path / "tables" / "silver" / "orders")


# --- statistics in the Delta log (erasure) -------------------------------------------------


def _log_stats(path: str) -> list[dict]:
    """The stats of every add action in the table's JSON log, oldest first."""
    out = []
    for name in sorted(os.listdir(os.path.join(path, "_delta_log"))):
        if name.endswith(".json") and not name.startswith("."):
            for line in Path(path, "_delta_log", name).read_text().splitlines():
                add = json.loads(line).get("add") if line.strip() else None
                if add and add.get("stats"):
                    out.append(json.loads(add["stats"]))
    return out


def test_identifier_columns_get_no_statistics_in_the_delta_log(spark, tables):
    """The log keeps removed files' min / max past VACUUM: an erased person's id must not be
    one. Bronze gets no column statistics; other layers none on identifier columns."""
    tables.append(orders(spark, ROWS_1), "bronze.orders", partition_by=["snapshot_date"])
    tables.append(orders(spark, ROWS_1), "silver.orders", partition_by=["snapshot_date"])

    bronze = _log_stats(tables.path("bronze.orders"))
    assert bronze and all(s["numRecords"] >= 1 and not s.get("minValues") and not s.get("maxValues") for s in bronze)
    silver = _log_stats(tables.path("silver.orders"))
    assert silver and all("order_id" in s["minValues"] and "customer_id" not in s["minValues"] for s in silver)
    assert all("customer_id" not in s.get("maxValues", {}) and "customer_id" not in s["nullCount"] for s in silver)
    config = DeltaTable(tables.path("silver.orders")).metadata().configuration
    assert config["delta.dataSkippingStatsColumns"] == "order_id,ordered_at,amount"  # no partition, array or id
    # As a JSON string value (a uuid in the commit may hold the letters c1).
    assert '"c1"' not in Path(tables.path("bronze.orders"), "_delta_log", f"{0:020d}.json").read_text()
    for name in ("bronze.orders", "silver.orders"):  # still the plain protocol every reader reads
        protocol = DeltaTable(tables.path(name)).protocol()
        assert (protocol.min_reader_version, protocol.min_writer_version, protocol.writer_features) == (1, 2, None)


def test_a_table_made_before_gets_the_statistics_property_on_its_next_write(spark, tables):
    path = tables.path("bronze.events")
    write_deltalake(path, pa.table({"event_id": ["e1"], "customer_id": ["c1"]}))  # stats on every column
    assert _log_stats(path)[0]["minValues"] == {"event_id": "e1", "customer_id": "c1"}

    tables.append(spark.createDataFrame([("e2", "c2")], "event_id string, customer_id string"), "bronze.events")

    assert DeltaTable(path).metadata().configuration["delta.dataSkippingNumIndexedCols"] == "0"
    newest = _log_stats(path)[-1]
    assert newest["numRecords"] == 1 and not newest.get("minValues")
    assert sorted(r["customer_id"] for r in tables.read("bronze.events").collect()) == ["c1", "c2"]
    protocol = DeltaTable(path).protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version, protocol.writer_features) == (1, 2, None)


def test_a_table_made_before_gets_the_property_in_the_write_that_adds_a_column(spark, evolving):
    """Set before the write widens the table, the property names only columns the table has:
    Delta refuses one it cannot find (gold.campaign_audiences made before the property, on the
    first marketing run that adds its variant column)."""
    path = evolving.path("gold.visits")
    write_deltalake(path, pa.table({"visit_id": ["v1"], "customer_key": ["k1"], "n": [1]}))
    wider = "visit_id string, customer_key string, n long, channel string"
    evolving.append(spark.createDataFrame([("v2", "k2", 2, "web")], wider), "gold.visits")

    assert DeltaTable(path).metadata().configuration["delta.dataSkippingStatsColumns"] == "visit_id,n"
    newest = _log_stats(path)[-1]
    assert newest["minValues"] == {"visit_id": "v2", "n": 2}  # no key, and the new column not yet
    got = sorted((r["visit_id"], r["channel"]) for r in evolving.read("gold.visits").collect())
    assert got == [("v1", None), ("v2", "web")]


# --- deleting rows (erasure) -------------------------------------------------------------


def _lookup(spark: SparkSession, values: list[str]) -> DataFrame:
    return spark.createDataFrame([(v,) for v in values], "k string")


def test_delete_rows_rewrites_only_touched_partitions_and_keeps_the_rest(spark, tables):
    tables.append(orders(spark, ROWS_1 + ROWS_2), "silver.orders", partition_by=["snapshot_date"])
    gone = _lookup(spark, ["c1", "c5"])

    def keep(df: DataFrame) -> DataFrame:
        return df.join(F.broadcast(gone), df["customer_id"] == gone["k"], "left_anti")

    result = tables.delete_rows("silver.orders", keep)

    assert result == {"rows": 2, "version": 1}  # one commit rewrites D1 and D3
    left = [r for r in ROWS_1 + ROWS_2 if r[1] not in ("c1", "c5")]
    assert_df_equality(tables.read("silver.orders"), orders(spark, left), ignore_row_order=True)
    # The D2 partition was not rewritten: its files are those of version 0.
    d2 = {f for f in logged_files(tables.path("silver.orders")) if "2026-06-30" in f}
    assert d2 and all(os.path.exists(f) for f in d2)
    history = tables.history("silver.orders")
    # As whole words: a commit's parameters may hold ids (a txn app id, file names) with "c1" inside.
    said = [str(h["parameters"]) for h in history]
    assert not [p for p in said if re.search(r"\b(c1|c5)\b", p)], said
    # Nothing left to delete: no new commit.
    assert tables.delete_rows("silver.orders", keep) == {"rows": 0, "version": None}
    assert tables.version("silver.orders") == 1


def test_delete_rows_in_an_unpartitioned_table_then_vacuum_drops_the_old_files(spark, tables):
    tables.append(orders(spark, ROWS_1), "silver.customers")
    old_files = logged_files(tables.path("silver.customers"))

    result = tables.delete_rows("silver.customers", lambda df: df.where(F.col("customer_id") != "c2"))

    # Null customer_id compares null: the filter drops it too (the caller states what it keeps).
    assert result == {"rows": 2, "version": 1}
    assert_df_equality(tables.read("silver.customers"), orders(spark, ROWS_1[:1]), ignore_row_order=True)
    assert all(os.path.exists(f) for f in old_files)  # time travel still has them
    tables.vacuum("silver.customers", retention_hours=0)
    assert not any(os.path.exists(f) for f in old_files)
    assert_df_equality(tables.read("silver.customers"), orders(spark, ROWS_1[:1]), ignore_row_order=True)


def test_delete_rows_with_two_partition_columns(spark, tables):
    df = spark.createDataFrame(
        [("a", "x", "2026-06-30"), ("b", "x", "2026-06-30"), ("a", "y", "2026-07-01"), ("c", "y", "2026-06-30")],
        "who string, source string, _batch_date string",
    )
    tables.append(df, "bronze.quarantine", partition_by=["_batch_date", "source"])

    result = tables.delete_rows("bronze.quarantine", lambda d: d.where(F.col("who") != "a"))

    assert result["rows"] == 2
    assert_df_equality(
        tables.read("bronze.quarantine"), df.where(F.col("who") != "a"), ignore_row_order=True, ignore_nullable=True
    )
