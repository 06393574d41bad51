"""``custseg forget``: two planted people erased from bronze, quarantine, silver, gold and the
export files; the third untouched; the request logged by key; a rerun deletes nothing; after a
vacuum with retention 0 no data file on disk and no file of a Delta log holds them (both engines).

The keys are computed here with ``hmac`` (not with the code under test), and every table is
scanned outside Spark (``custseg.storage.arrow_read``) for every value of the forgotten people.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from custseg.erasure import CUSTOMER_FREE, PERSONAL_TABLES, ErasureCoverageError, check_coverage
from custseg.storage import StorageSettings, Tables
from custseg.storage.arrow_read import read_table

SALT = "salt-for-the-erasure-test-0123456789abcdef"
RUN_DATE = "2026-06-30"
D1, D2 = dt.date(2026, 6, 29), dt.date(2026, 6, 30)


def key(kind: str, value: str) -> str:
    return hmac.new(SALT.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# Alice and Bob are forgotten, Carol stays.
A, B, C = "C001", "C002", "C003"
KA, KB, KC = key("customer_id", A), key("customer_id", B), key("customer_id", C)
NEEDLES = {
    A,
    B,
    KA,
    KB,
    "alice@example.com",
    "bob@example.com",
    "07700 900001",
    "+447700900001",
    "dev-a",
    key("email", "alice@example.com"),
    key("email", "bob@example.com"),
    key("device", "dev-a"),
    sha("alice@example.com"),
    sha("bob@example.com"),
}
NEEDLES = {n.lower() for n in NEEDLES}


def _plant(spark, root: Path, engine: str = "auto") -> Tables:
    t = Tables(spark, StorageSettings(root=str(root / "tables"), engine=engine))
    crm = spark.createDataFrame(
        [
            (A, "Alice Able", "alice@example.com", "07700 900001", D1),
            (B, "Bob Baker", "bob@example.com", None, D1),
            (C, "Carol Cole", "carol@example.com", "07700 900003", D1),
            (A, "Alice Able", " ALICE@Example.com ", "07700 900001", D2),
        ],
        "customer_id string, name string, email string, phone string, _batch_date date",
    )
    t.append(crm, "bronze.crm_customers", partition_by=["_batch_date"])
    events = spark.createDataFrame(
        [
            ("e1", "dev-a", A, D1),
            ("e2", "dev-a", None, D2),  # browsing before login on Alice's device
            ("e3", "dev-shared", None, D2),  # a device resolved to nobody: stays
            ("e4", "dev-c", C, D2),
        ],
        "event_id string, device_id string, customer_id string, _batch_date date",
    )
    t.append(events, "bronze.events", partition_by=["_batch_date"])
    social = spark.createDataFrame(
        [("x", "@al", "Alice@Example.com", D2), ("x", "@ca", "carol@example.com", D2)],
        "platform string, handle string, email string, _batch_date date",
    )
    t.append(social, "bronze.social", partition_by=["_batch_date"])
    quarantine = spark.createDataFrame(
        [
            ("orders", "bad_ts", json.dumps({"customer_id": A, "order_ts": "x"}), D1),
            ("crm_customers", "bad_csv", "C002,Bob Baker,bob@example.com,07700", D2),  # not JSON: tokens
            ("orders", "bad_ts", json.dumps({"customer_id": C, "order_ts": "y"}), D2),
            ("crm_customers", "bad_csv", "C0010,Someone Else", D2),  # C001 is not a token of it
        ],
        "source string, reason string, raw_record string, _batch_date date",
    )
    t.append(quarantine, "bronze.quarantine", partition_by=["_batch_date", "source"])
    customers = spark.createDataFrame(
        [
            (KA, key("email", "alice@example.com"), sha("alice@example.com"), "Leeds"),
            (KB, key("email", "bob@example.com"), sha("bob@example.com"), "York"),
            (KC, key("email", "carol@example.com"), sha("carol@example.com"), "Hull"),
        ],
        "customer_key string, email_key string, email_sha256 string, city string",
    )
    t.append(customers, "silver.customers")
    id_map = spark.createDataFrame(
        [
            ("customer_id", KA, KA),
            ("email", key("email", "alice@example.com"), KA),
            ("device", key("device", "dev-a"), KA),
            ("customer_id", KB, KB),
            ("customer_id", KC, KC),
            ("device", key("device", "dev-c"), KC),
        ],
        "id_type string, id_key string, customer_key string",
    )
    t.append(id_map, "silver.identity_map")
    t.append(
        spark.createDataFrame(
            [(KA, "crm", A), (KB, "crm", B), (KC, "crm", C)], "customer_key string, source string, customer_id string"
        ),
        "silver.activation_ids",
    )
    t.append(
        spark.createDataFrame(
            [
                ("e1", KA, key("device", "dev-a")),
                ("e2", None, key("device", "dev-a")),
                ("e4", KC, key("device", "dev-c")),
            ],
            "event_id string, customer_key string, device_key string",
        ),
        "silver.events",
    )
    segments = spark.createDataFrame(
        [(KA, 1, D1), (KB, 2, D1), (KC, 1, D1), (KA, 1, D2), (KC, 2, D2)],
        "customer_key string, segment_id int, snapshot_date date",
    )
    t.append(segments, "gold.customer_segments", partition_by=["snapshot_date"])
    t.append(spark.createDataFrame([(1, 2), (2, 1)], "segment_id int, size int"), "gold.segment_profiles")
    # An export folder: a CSV and a Parquet file, and the manifest that vouches for them.
    folder = root / "exports" / RUN_DATE / "camp1"
    folder.mkdir(parents=True)
    (folder / "crm.csv").write_text("external_id,email,segment\nC001,alice@example.com,1\nC003,carol@example.com,1\n")
    pq.write_table(
        pa.table({"email_sha256": [sha("bob@example.com"), sha("carol@example.com")], "seg": [2, 1]}),
        folder / "ads.parquet",
    )
    manifest = {
        "snapshot_date": RUN_DATE,
        "files": [
            {"campaign_id": "camp1", "export": "crm", "format": "csv", "file": "camp1/crm.csv", "rows": 2},
            {"campaign_id": "camp1", "export": "ads", "format": "parquet", "file": "camp1/ads.parquet", "rows": 2},
        ],
        "rows_by_campaign": {"camp1": {"crm": 2, "ads": 2}},
    }
    (root / "exports" / RUN_DATE / "manifest.json").write_text(json.dumps(manifest))
    return t


def _forget(spark, home: Path, requests: str, *sets: str) -> int:
    from custseg.cli import parse_forget_args, run_job

    args = ["--requests", requests, "--date", RUN_DATE]
    for s in sets:
        args += ["--set", s]
    os.environ["CUSTSEG_HOME"] = str(home)
    try:
        return run_job(parse_forget_args(args), spark=spark)
    finally:
        os.environ.pop("CUSTSEG_HOME", None)


def _cells(table: pa.Table) -> list[str]:
    out = []
    for column in table.columns:
        for v in column.to_pylist():
            if v is not None:
                out.append(str(v).strip().lower())
    return out


def _found(cells: list[str]) -> set[str]:
    hits = set()
    for cell in cells:
        for n in NEEDLES:
            if cell == n or re.search(rf"(^|[^a-z0-9]){re.escape(n)}($|[^a-z0-9])", cell):
                hits.add(n)
    return hits


def _parquet_files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*.parquet") if "_delta_log" not in p.parts]


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _log_hits(table_path: Path) -> dict[str, set[str]]:
    """Needles found in any file of the table's Delta log: commits (per-file min / max
    statistics, commit info), checkpoints and checksums."""
    hits = {}
    for f in (table_path / "_delta_log").rglob("*"):
        if not f.is_file():
            continue
        if f.suffix == ".parquet":
            cells = _cells(pq.ParquetFile(f).read())
        else:
            cells = [line.lower() for line in f.read_text(errors="replace").splitlines()]
        # File names and table ids hold uuids, whose 4-digit groups could read as "c001".
        found = _found([_UUID.sub("<uuid>", c) for c in cells])
        if found:
            hits[f.name] = found
    return hits


@pytest.fixture
def planted(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSEG_PII_SALT", SALT)
    t = _plant(spark, tmp_path)
    requests = tmp_path / "requests.csv"
    requests.write_text(f"customer_id,requested_at\n{A},2026-06-28T10:00:00\n {B} ,\n")
    return t, tmp_path, str(requests)


@pytest.fixture(params=["delta-rs", pytest.param("spark-delta", marks=pytest.mark.spark_delta)])
def planted_on(request, spark, tmp_path, monkeypatch, jvm_delta):
    """``planted`` on each engine (the job's writes too: ``--set storage.engine``)."""
    if request.param == "spark-delta" and not jvm_delta:
        pytest.skip("JVM Delta jars not on the class path")
    monkeypatch.setenv("CUSTSEG_PII_SALT", SALT)
    t = _plant(spark, tmp_path, engine=request.param)
    requests = tmp_path / "requests.csv"
    requests.write_text(f"customer_id,requested_at\n{A},2026-06-28T10:00:00\n {B} ,\n")
    return t, tmp_path, str(requests), f"storage.engine={request.param}"


def test_forget_erases_two_people_everywhere_and_a_rerun_deletes_nothing(spark, planted_on):
    t, home, requests, engine = planted_on
    names = ["bronze.crm_customers", "bronze.events", "bronze.social", "bronze.quarantine", "silver.customers",
             "silver.identity_map", "silver.activation_ids", "silver.events", "gold.customer_segments",
             "gold.segment_profiles"]  # fmt: skip
    before = {n: read_table(t.path(n)) for n in names}
    assert _found(_cells(before["bronze.quarantine"])) >= {A.lower(), B.lower()}  # the scan sees them

    assert _forget(spark, home, requests, engine) == 0

    after = {n: read_table(t.path(n)) for n in names}
    for n in names:
        assert _found(_cells(after[n])) == set(), n
    # Everyone else's rows are all there (exact rows left per table).
    left = {n: after[n].num_rows for n in names}
    assert left == {
        "bronze.crm_customers": 1,
        "bronze.events": 2,  # e3 (a device resolved to nobody) and Carol's e4
        "bronze.social": 1,
        "bronze.quarantine": 2,  # Carol's record and the C0010 line
        "silver.customers": 1,
        "silver.identity_map": 2,
        "silver.activation_ids": 1,
        "silver.events": 1,
        "gold.customer_segments": 2,
        "gold.segment_profiles": 2,
    }
    assert sorted(after["bronze.events"].column("event_id").to_pylist()) == ["e3", "e4"]
    assert "c0010,someone else" in _cells(after["bronze.quarantine"])
    assert set(after["gold.customer_segments"].column("customer_key").to_pylist()) == {KC}
    # The Delta history names partitions, never a deleted value.
    for n in names:
        assert _found([json.dumps(h, default=str).lower() for h in t.history(n)]) == set(), n

    # Exports: their rows cut out, Carol's kept, the manifest true to the files.
    folder = home / "exports" / RUN_DATE
    rows = list(csv.reader(io.StringIO((folder / "camp1" / "crm.csv").read_text())))
    assert rows == [["external_id", "email", "segment"], ["C003", "carol@example.com", "1"]]
    assert pq.read_table(folder / "camp1" / "ads.parquet").column("email_sha256").to_pylist() == [
        sha("carol@example.com")
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        data = (folder / entry["file"]).read_bytes()
        assert entry["rows"] == 1 and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert sum(e["rows_deleted"] for e in manifest["erasures"]) == 2

    # The request log: keys only, when, rows per table.
    log = read_table(t.path("meta.erasure_requests")).to_pylist()
    assert sorted(r["request_key"] for r in log) == sorted([KA, KB])
    assert not any(r["already_erased"] for r in log)
    by_key = {r["request_key"]: r for r in log}
    assert (
        by_key[KA]["requested_at"] == dt.datetime(2026, 6, 28, 10, 0, tzinfo=dt.timezone.utc)
        and by_key[KB]["requested_at"] is None
    )
    assert dict(log[0]["run_rows_deleted"])["bronze.crm_customers"] == 3
    assert log[0]["run_export_rows_deleted"] == 2
    assert _found(_cells(read_table(t.path("meta.erasure_requests")).drop(["request_key"]))) == set()

    # Inside the retention (7 days) the old versions still hold them (time travel works).
    assert any(_found(_cells(pq.ParquetFile(f).read())) for f in _parquet_files(Path(t.path("bronze.crm_customers"))))

    # Rerun, with a retention of 0 (tests only): nothing more deleted, no table rewritten, the
    # rerun logged as such; and the vacuum leaves no data file of any table holding them.
    versions = {n: t.version(n) for n in names}
    assert _forget(spark, home, requests, engine, "erasure.retention_hours=0") == 0
    rewritten = {n: [h["operation"] for h in t.history(n) if h["version"] > versions[n]] for n in names}
    assert {n: [op for op in ops if "VACUUM" not in op.upper()] for n, ops in rewritten.items()} == {
        n: [] for n in names
    }
    log = read_table(t.path("meta.erasure_requests")).to_pylist()
    rerun = [r for r in log if r["already_erased"]]
    assert len(log) == 4 and len(rerun) == 2
    assert all(sum(dict(r["run_rows_deleted"]).values()) == 0 and r["run_export_rows_deleted"] == 0 for r in rerun)
    for n in names:
        for f in _parquet_files(Path(t.path(n))):
            assert _found(_cells(pq.ParquetFile(f).read())) == set(), f
    # Nor does any file of their Delta logs: no identifier gets per-file min / max statistics,
    # which the log keeps for removed files beyond VACUUM (delta.logRetentionDuration).
    assert {n: _log_hits(Path(t.path(n))) for n in names} == {n: {} for n in names}


def test_a_table_neither_covered_nor_declared_stops_the_erasure(spark, planted):
    t, home, requests = planted
    t.append(spark.createDataFrame([(1, "x")], "n int, note string"), "gold.mystery")
    before = t.version("bronze.crm_customers")

    assert _forget(spark, home, requests) == 1

    assert t.version("bronze.crm_customers") == before  # nothing deleted
    assert not t.exists("meta.erasure_requests")


def test_coverage_check_names_the_uncovered_tables():
    from pyspark.sql import types as T

    schemas = {
        "silver.x": T.StructType([T.StructField("customer_key", T.StringType())]),
        "gold.segment_profiles": T.StructType([T.StructField("segment_id", T.IntegerType())]),
        "gold.new_table": T.StructType([T.StructField("n", T.IntegerType())]),
    }
    with pytest.raises(ErasureCoverageError, match=r"gold\.new_table"):
        check_coverage(schemas)
    del schemas["gold.new_table"]
    assert check_coverage(schemas) == {"silver.x": ["customer_key"]}
    # A personal table whose identifier column was renamed is refused too.
    schemas["silver.customers"] = T.StructType([T.StructField("cust_key", T.StringType())])
    with pytest.raises(ErasureCoverageError, match=r"silver\.customers"):
        check_coverage(schemas)


def test_every_table_the_pipeline_writes_is_covered_or_declared_customer_free():
    """Every ``layer.table`` named in lib/ (and each source's bronze and silver table) is in the
    erasure registry: a new table cannot silently keep a forgotten person."""
    from custseg.sources.catalog import SOURCES
    from custseg.stages.conform import ACTIVITY_TABLES

    lib = Path(__file__).parents[2] / "lib" / "custseg"
    named = set()
    for path in lib.rglob("*.py"):
        named |= set(re.findall(r"\"((?:bronze|silver|gold|meta)\.[a-z_]+)\"", path.read_text()))
    named |= {f"bronze.{s}" for s in SOURCES} | {f"silver.{s}" for s in ACTIVITY_TABLES}
    assert len(named) > 30
    assert set(PERSONAL_TABLES) & set(CUSTOMER_FREE) == set()
    assert sorted(named - set(PERSONAL_TABLES) - set(CUSTOMER_FREE)) == []
