"""The conform stage: one PII key per table (fingerprint checked before writing), no salt, no run."""

from __future__ import annotations

import json

from pyspark.sql import functions as F

from custseg.pii import PiiKey
from custseg.stages.key_guard import FINGERPRINTS
from tests.unit.ingest_helpers import home, land, run, tables  # noqa: F401  (home is a fixture)

SALT_A = "salt-a-for-the-key-guard-test-0123456789"
SALT_B = "salt-b-for-the-key-guard-test-0123456789"
CRM = (
    "customer_id,name,email,phone,gender,birth_date,city,region,signup_date,member_tier,"
    "opt_in_email,opt_in_sms,opt_in_ads,updated_at\n"
    "c1,Ann Lee,ann@example.com,07700900123,F,1990-01-01,Leeds,North,2025-01-01,gold,true,false,true,"
    "2026-06-01 00:00:00\n"
)
ORDER = {
    "order_id": "o1",
    "customer_id": "c1",
    "order_ts": "2026-06-30 10:00:00",
    "channel": "web",
    "status": "completed",
    "items": [{"sku": "s1", "qty": "1", "unit_price": "2.50", "discount": "0"}],
}


def _landed(spark, home):  # noqa: F811
    land(home, "crm_customers", "crm.csv", CRM)
    land(home, "orders", "o.jsonl", json.dumps(ORDER) + "\n")
    assert run(spark, "ingest") == 0


def _errors(spark, home) -> list[str]:  # noqa: F811
    """Errors of the failed conform runs, in gold.job_runs."""
    runs = tables(spark, home).read("gold.job_runs")
    return [r["error"] for r in runs.where((F.col("job") == "conform") & (F.col("status") == "failed")).collect()]


def test_a_run_with_another_salt_fails_before_writing(spark, home, monkeypatch):  # noqa: F811
    _landed(spark, home)
    monkeypatch.setenv("CUSTSEG_PII_SALT", SALT_A)
    assert run(spark, "conform") == 0
    t = tables(spark, home)
    recorded = {r["table"]: r["fingerprint"] for r in t.read(FINGERPRINTS).collect()}
    assert recorded["silver.customers"] == PiiKey(SALT_A).fingerprint
    assert set(recorded.values()) == {PiiKey(SALT_A).fingerprint} and "silver.orders" in recorded
    versions = {name: t.version(name) for name in ("silver.customers", "silver.identity_map", "silver.orders")}

    monkeypatch.setenv("CUSTSEG_PII_SALT", SALT_B)
    assert run(spark, "conform") == 1
    (error,) = _errors(spark, home)
    assert "is not the key that wrote" in error and PiiKey(SALT_B).fingerprint in error and SALT_B not in error
    assert {name: t.version(name) for name in versions} == versions, "nothing may be written"

    monkeypatch.setenv("CUSTSEG_PII_SALT", SALT_A)  # the right salt again: runs
    assert run(spark, "conform") == 0


def test_a_missing_or_short_salt_fails_the_job_at_start_up_and_writes_nothing(spark, home, monkeypatch, caplog):  # noqa: F811
    _landed(spark, home)
    monkeypatch.delenv("CUSTSEG_PII_SALT", raising=False)
    assert run(spark, "conform") == 2  # a start-up error, like a bad config
    monkeypatch.setenv("CUSTSEG_PII_SALT", "short-salt")
    assert run(spark, "conform") == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("CUSTSEG_PII_SALT is not set" in e for e in errors)
    assert any("at least 32" in e for e in errors) and not any("short-salt" in e for e in errors)
    assert not tables(spark, home).exists("silver.customers")


def test_a_stream_with_another_salt_than_the_batch_identity_map_fails_at_start(spark, home, monkeypatch, caplog):  # noqa: F811
    """The stream joins silver.identity_map: with another salt it would resolve nobody (every order
    an unknown customer), so it refuses to start, though its own *_rt tables are new."""
    from custseg.realtime import job

    _landed(spark, home)
    monkeypatch.setenv("CUSTSEG_PII_SALT", SALT_A)
    assert run(spark, "conform") == 0
    monkeypatch.setenv("CUSTSEG_PII_SALT", SALT_B)
    assert job.main(["--trigger", "once"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("is not the key that wrote" in e and "silver.identity_map" in e for e in errors), errors
    t = tables(spark, home)
    assert not t.exists("silver.events_rt") and not t.exists("meta.stream_progress")
    recorded = {r["table"] for r in t.read(FINGERPRINTS).collect()}
    assert not any(name.endswith("_rt") for name in recorded), "nothing recorded for the stream's tables"
