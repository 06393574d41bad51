"""Silver as of the run date (custseg.stages.snapshots): a backfill cannot change a later date's
inputs, a conform that fails midway is invisible, an erasure re-points or invalidates snapshots,
and a vacuumed version is a clear error. On both storage engines.

Two days of hand-written landing files: on D0 Ann (c1) is opted in to e-mail and Ben (c2) is a
customer; on D1 Ann opts out and Cat (c3) signs up and orders. Keys are computed here with
``hmac``, not with the code under test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

import pytest
from pyspark.sql import functions as F

from custseg.stages import stage_tables
from custseg.stages.snapshots import SNAPSHOTS, SilverSnapshotError, record_snapshot
from custseg.storage import StorageSettings, Tables
from tests.unit.ingest_helpers import home, land, run  # noqa: F401  (home is a fixture)

D0, D1, D2 = "2026-06-29", "2026-06-30", "2026-07-01"
CRM_HEADER = (
    "customer_id,name,email,phone,gender,birth_date,city,region,signup_date,member_tier,"
    "opt_in_email,opt_in_sms,opt_in_ads,updated_at\n"
)
CRM = {
    D0: CRM_HEADER + "c1,Ann Lee,ann@example.com,07700900123,F,1990-01-01,Leeds,North,2025-01-01,gold,true,false,true,"
    "2026-06-01 00:00:00\n"
    + "c2,Ben Ray,ben@example.com,07700900124,M,1985-03-02,York,North,2025-02-01,silver,true,true,true,"
    "2026-06-01 00:00:00\n",
    D1: CRM_HEADER
    # Ann opts out of e-mail between D0 and D1
    + "c1,Ann Lee,ann@example.com,07700900123,F,1990-01-01,Leeds,North,2025-01-01,gold,false,false,true,"
    "2026-06-30 08:00:00\n"
    + "c3,Cat Orr,cat@example.com,07700900125,F,1999-05-05,Hull,North,2026-06-30,bronze,true,true,true,"
    "2026-06-30 08:00:00\n",
}
ORDERS = {
    D0: [("o1", "c1", "2026-06-29 10:00:00"), ("o2", "c2", "2026-06-29 11:00:00")],
    D1: [("o3", "c3", "2026-06-30 10:00:00")],
}


def ckey(customer_id: str) -> str:
    salt = os.environ["CUSTSEG_PII_SALT"]
    return hmac.new(salt.encode(), f"customer_id:{customer_id}".encode(), hashlib.sha256).hexdigest()


ENGINES = ["delta-rs", "spark-delta"]


@pytest.fixture(
    params=[pytest.param(e, marks=[pytest.mark.spark_delta] if e == "spark-delta" else []) for e in ENGINES]
)
def engine(request, jvm_delta) -> str:
    if request.param == "spark-delta" and not jvm_delta:
        pytest.skip("JVM Delta jars not on the class path (make venv could not resolve them)")
    return request.param


def _land_and_ingest(spark, home, engine: str) -> None:  # noqa: F811
    for day in (D0, D1):
        land(home, "crm_customers", "crm.csv", CRM[day], date=day)
        lines = [
            json.dumps(
                {
                    "order_id": o,
                    "customer_id": c,
                    "order_ts": ts,
                    "channel": "web",
                    "status": "completed",
                    "items": [{"sku": "s1", "qty": "1", "unit_price": "12.50", "discount": "0"}],
                }
            )
            for o, c, ts in ORDERS[day]
        ]
        land(home, "orders", "o.jsonl", "\n".join(lines) + "\n", date=day)
        assert run(spark, "ingest", f"storage.engine={engine}", date=day) == 0


def _tables(spark, home, engine: str) -> Tables:  # noqa: F811
    return Tables(spark, StorageSettings(root=str(home / "tables"), engine=engine))


def _customers(t, stage: str, day: str) -> dict[str, bool]:
    """customer_key -> opt_in_email of silver.customers as a stage of ``day`` reads it."""
    rows = stage_tables(stage, t, day).read("silver.customers").select("customer_key", "opt_in_email").collect()
    return {r["customer_key"]: r["opt_in_email"] for r in rows}


def _failed_error(t, job: str) -> str:
    runs = t.read("gold.job_runs").where((F.col("job") == job) & (F.col("status") == "failed"))
    return " | ".join(r["error"] for r in runs.collect())


def test_a_backfill_or_a_failed_conform_cannot_change_what_a_date_reads(spark, home, engine, monkeypatch):  # noqa: F811
    import custseg.stages.conform as conform_stage

    _land_and_ingest(spark, home, engine)
    eng = f"storage.engine={engine}"
    assert run(spark, "conform", eng, date=D1) == 0
    assert run(spark, "conform", eng, date=D0) == 0  # the backfill: the current silver is now D0's
    t = _tables(spark, home, engine)
    assert {r["customer_key"] for r in t.read("silver.customers").collect()} == {ckey("c1"), ckey("c2")}

    # What marketing of D1 reads after the backfill: Ann opted out, Cat exists; D0 reads its own silver.
    assert _customers(t, "marketing", D1) == {ckey("c1"): False, ckey("c2"): True, ckey("c3"): True}
    assert _customers(t, "marketing", D0) == {ckey("c1"): True, ckey("c2"): True}

    # A conform that fails after writing silver.customers: a rerun of D1, then a first run of D2.
    def boom(salt):
        raise RuntimeError("injected failure after silver.customers was written")

    with monkeypatch.context() as m:
        m.setattr(conform_stage, "conform_activation_ids", boom)
        recorded = stage_tables("features", t, D1).version("silver.customers")
        assert run(spark, "conform", eng, date=D1) == 1
        assert t.version("silver.customers") > recorded  # half of silver is new now...
        assert ckey("c3") in {r["customer_key"] for r in t.read("silver.customers").collect()}
        assert run(spark, "conform", eng, date=D2) == 1
    # ... and invisible: D1 keeps its complete snapshot, D0 its own, D2 (never complete) fails, naming the date.
    assert stage_tables("features", t, D1).version("silver.customers") == recorded
    assert _customers(t, "marketing", D0) == {ckey("c1"): True, ckey("c2"): True}
    assert run(spark, "features", eng, date=D2) == 1
    error = _failed_error(t, "features")
    assert f"no silver snapshot for {D2}" in error and f"latest snapshot before it is {D1}" in error, error
    assert f"custseg run conform --date {D2}" in error

    # A real downstream stage of D1 after all that: its features hold Cat, whom only D1's silver knows,
    # and Ann's order resolved through D1's identity map.
    assert run(spark, "features", eng, date=D1) == 0
    feats = t.read("gold.customer_features").where(F.col("snapshot_date") == F.lit(D1))
    keys = {r["customer_key"] for r in feats.select("customer_key").collect()}
    assert keys == {ckey("c1"), ckey("c2"), ckey("c3")}
    snaps = t.read(SNAPSHOTS)
    assert {r["engine"] for r in snaps.collect()} == {engine}
    assert {r["run_date"].isoformat() for r in snaps.collect()} == {D0, D1}


def test_forget_repoints_the_current_snapshot_and_invalidates_older_ones(spark, home, tmp_path):  # noqa: F811
    from custseg.cli import parse_forget_args, run_job

    t = _tables(spark, home, "auto")
    people = spark.createDataFrame(
        [(ckey("c1"), True), (ckey("c2"), True), (ckey("c3"), True)], "customer_key string, opt_in_email boolean"
    )
    v0 = t.overwrite(people.where(F.col("customer_key") != ckey("c3")), "silver.customers")
    record_snapshot(spark, t, D0, {"silver.customers": v0}, "conform-d0")
    v1 = t.overwrite(people, "silver.customers")
    record_snapshot(spark, t, D1, {"silver.customers": v1}, "conform-d1")
    requests = tmp_path / "requests.csv"
    requests.write_text("customer_id\nc1\n")
    assert run_job(parse_forget_args(["--requests", str(requests), "--date", D1]), spark=spark) == 0

    # D1's snapshot was the current silver: it now reads the erased version, without Ann.
    assert t.version("silver.customers") > v1
    assert _customers(t, "marketing", D1) == {ckey("c2"): True, ckey("c3"): True}
    # D0's version still holds Ann (until vacuumed): its snapshot is invalidated, naming the erasure.
    assert t.read("silver.customers", version=v0).where(F.col("customer_key") == ckey("c1")).count() == 1
    with pytest.raises(SilverSnapshotError, match="invalidated .*erasure by forget run"):
        stage_tables("marketing", t, D0).read("silver.customers")

    # A rerun of conform for D0 (here: what it records) replaces D0's record, not adds to it.
    v2 = t.overwrite(people.where(F.col("customer_key") == ckey("c2")), "silver.customers")
    record_snapshot(spark, t, D0, {"silver.customers": v2}, "conform-d0-again")
    rerun = t.read(SNAPSHOTS).where(F.col("run_date") == F.lit(D0)).collect()
    assert [(r["version"], r["run_id"], r["invalidated_by"]) for r in rerun] == [(v2, "conform-d0-again", None)]
    assert _customers(t, "marketing", D0) == {ckey("c2"): True}


def test_a_vacuumed_version_is_a_clear_error_and_maintain_keeps_the_latest_readable(spark, home, engine):  # noqa: F811
    t = _tables(spark, home, engine)
    rows = [(ckey("c1"), True), (ckey("c2"), False)]
    df = spark.createDataFrame(rows, "customer_key string, opt_in_email boolean")
    v0 = t.overwrite(df.limit(1), "silver.customers")
    record_snapshot(spark, t, D0, {"silver.customers": v0}, "conform-d0")
    t.overwrite(df.where(F.col("customer_key") == ckey("c1")), "silver.customers")
    v2 = t.append(df.where(F.col("customer_key") == ckey("c2")), "silver.customers")  # two files: optimize compacts
    record_snapshot(spark, t, D1, {"silver.customers": v2}, "conform-d1")
    assert _customers(t, "basket", D0) == {ckey("c1"): True}

    sets = [f"storage.engine={engine}", "maintenance.vacuum_retention_hours=0", "maintenance.force=true"]
    assert run(spark, "maintain", *sets, date=D1) == 0
    assert t.version("silver.customers") > v2  # compacted: D1's snapshot follows it
    assert _customers(t, "basket", D1) == {ckey("c1"): True, ckey("c2"): False}
    with pytest.raises(SilverSnapshotError, match=f"version {v0}, the silver of {D0}, can no longer be read"):
        stage_tables("basket", t, D0).read("silver.customers")


def test_no_silver_at_all_is_no_table_and_silver_without_a_snapshot_is_an_error(spark, tmp_path):
    t = Tables(spark, StorageSettings(root=str(tmp_path / "tables")))
    view = stage_tables("segment", t, D1)
    assert not view.exists("silver.order_items")  # nothing conformed yet: segment does without it
    t.overwrite(spark.createDataFrame([("k",)], "customer_key string"), "silver.customers")
    with pytest.raises(SilverSnapshotError, match=f"no silver snapshot for {D1}"):
        stage_tables("segment", t, D1).exists("silver.customers")
    with pytest.raises(SilverSnapshotError, match="only conform writes silver"):
        stage_tables("features", t, D1).overwrite(spark.createDataFrame([("k",)], "customer_key string"), "silver.x")
    assert stage_tables("conform", t, D1) is t
