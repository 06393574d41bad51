"""Landing files written by hand and the ingest stage run on them (tests of ingest and flat_transactions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custseg.storage import StorageSettings, Tables

D = "2026-06-30"
FEEDBACK_HEADER = "feedback_id,customer_id,ts,channel,rating,nps,text"


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """CUSTSEG_HOME for one test: landing/ and tables/ under tmp_path, conf/local.yaml."""
    monkeypatch.setenv("CUSTSEG_HOME", str(tmp_path))
    monkeypatch.delenv("CUSTSEG_CONF", raising=False)
    return tmp_path


def land(home: Path, source: str, name: str, content: str | bytes, date: str = D) -> Path:
    path = home / "landing" / source / date / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def run(spark, stage: str, *sets: str, date: str = D) -> int:
    from custseg.cli import parse_job_args, run_job

    args = ["--set", "ingest.required_sources=[]"]
    for s in sets:
        args += ["--set", s]
    return run_job(parse_job_args(None, [stage, "--date", date, *args]), spark=spark)


def tables(spark, home: Path) -> Tables:
    return Tables(spark, StorageSettings(root=str(home / "tables")))


def quarantine(spark, home: Path, source: str):
    """(reason, raw_record, file name) of a source's quarantine rows."""
    from pyspark.sql import functions as F

    return (
        tables(spark, home)
        .read("bronze.quarantine")
        .where(F.col("source") == source)
        .select("reason", "raw_record", F.regexp_extract("_source_file", r"([^/]+)$", 1).alias("file"))
    )


def quarantine_df(spark, rows: list[tuple]):
    return spark.createDataFrame(rows, "reason string, raw_record string, file string")


def reconciliation(spark, home: Path, source: str, date: str = D) -> tuple[int, int, int]:
    """(read, accepted, quarantined) of one batch, checked to add up."""
    from pyspark.sql import functions as F

    rows = (
        tables(spark, home)
        .read("meta.reconciliation")
        .where((F.col("source") == source) & (F.col("batch_date") == F.lit(date).cast("date")))
        .collect()
    )
    assert len(rows) == 1, rows
    r = rows[0]
    counts = (r["records_read"], r["records_accepted"], r["records_quarantined"])
    assert counts[0] == counts[1] + counts[2], f"does not reconcile: {counts}"
    return counts


def csv_json(header: str, line: str) -> str:
    """The raw_record Spark writes for a CSV row: JSON of its non-empty fields, in header order."""
    fields = dict(zip(header.split(","), line.split(","), strict=True))
    return json.dumps({k: v for k, v in fields.items() if v != ""}, separators=(",", ":"))
