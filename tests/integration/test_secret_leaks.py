"""The PII salt leaks nowhere: a real ingest + conform run with the event log on, searched for every form of it.

A dedicated subprocess (the test session is shared, and the event log is a start-up setting)
runs ``custseg run ingest`` and ``conform`` on small generated data through the job entry point (the local session custseg builds, with its redaction
regex) and a config that also passes the salt to executors as ``spark.executorEnv`` (as a
``worker_env`` deployment does). Then the event log (the plans of the SQL tab and history
server, job and stage properties, the Environment tab), the run's own stdout / stderr at DEBUG,
the plans of keyed frames from ``explain`` (both key deliveries), and gold.job_runs are searched for the salt, its hex
and base64, and the hex / bytes of its HMAC ipad and opad blocks. Nothing may be found, and the
same search finds the salt when it is planted in a log line (the detector works).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from custseg.storage.arrow_read import read_table
from tests.unit.test_pii import secret_forms

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SALT = "leak-test-salt-Qx7Rw2-0123456789-ZYXWVUTSRQ"
RUN_DATE = "2026-06-30"

JOB = r"""
import contextlib, io, sys
from pyspark.sql import SparkSession
from custseg.cli import parse_job_args, run_job
from custseg.config import load_config
from custseg.datagen import generate
from custseg.pii import identity_key, resolve_pii_key
from custseg.storage import StorageSettings, Tables
home, conf, date = sys.argv[1:4]
generate(home, customers=120, days=20, seed=5, end_date=date, bad_share=0.02)
for stage, extra in [("ingest", []), ("conform", [])]:
    argv = [stage, "--date", date, "--conf", conf, "--log-level", "DEBUG", "--set", "ingest.required_sources=[]",
            "--set", "ingest.max_reject_rate=1.0", *extra]
    assert run_job(parse_job_args(None, argv)) == 0, stage
spark = SparkSession.getActiveSession()
bronze = Tables(spark, StorageSettings(root=home + "/tables")).read("bronze.crm_customers")
for delivery in ("closure", "worker_env"):
    key = resolve_pii_key(load_config(conf).with_overrides({"pii.key_delivery": delivery}))
    keyed = bronze.select(identity_key("customer_id", "customer_id", key).alias("k"))
    for mode in ("extended", "formatted", "cost"):
        keyed.explain(mode=mode)
    print("keyed rows", keyed.count())
spark.stop()
"""


def _run_job(tmp_path: Path) -> tuple[Path, str]:
    home, events = tmp_path / "home", tmp_path / "eventlog"
    events.mkdir()
    conf = tmp_path / "leaks.yaml"
    conf.write_text(
        f"extends: {ROOT / 'conf' / 'local.yaml'}\n"
        "spark:\n  master: local[2]\n  shuffle_partitions: 2\n  conf:\n"
        "    spark.eventLog.enabled: 'true'\n"
        f"    spark.eventLog.dir: {events.as_uri()}\n"
        "    spark.eventLog.compress: 'false'\n"
        "    spark.executorEnv.CUSTSEG_PII_SALT: ${CUSTSEG_PII_SALT}\n"
    )
    env = {
        **os.environ,
        "CUSTSEG_PII_SALT": SALT,
        "CUSTSEG_HOME": str(home),
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT / "lib"),
    }
    env.pop("PYSPARK_GATEWAY_PORT", None)
    proc = subprocess.run(
        [sys.executable, "-c", JOB, str(home), str(conf), RUN_DATE],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return home, output


def _needles() -> list[str]:
    raw = SALT.encode()
    b64 = [base64.b64encode(raw[i:]).decode()[4:24] for i in range(3)]  # every alignment
    return [*secret_forms(SALT), *b64]


def _found(text: str) -> list[str]:
    lower = text.lower()
    return [n for n in _needles() if n.lower() in lower]


def test_the_salt_is_in_no_plan_event_log_log_or_job_run(tmp_path):
    home, output = _run_job(tmp_path)
    assert "== Physical Plan ==" in output and "hmac_sha256" in output  # the plans were printed
    assert "effective config" in output and "keyed rows" in output
    assert _found(output) == [], "the salt is in the job's output"

    files = [p for p in (tmp_path / "eventlog").rglob("*") if p.is_file()]
    assert files, "no event log written"
    text = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in files)
    assert "SparkListenerSQLExecutionStart" in text and "hmac_sha256" in text  # plans are in the log
    assert "spark.executorEnv.CUSTSEG_PII_SALT" in text  # the Environment tab lists the key ...
    assert _found(text) == [], "the salt is in the event log"  # ... redacted

    runs = read_table(home / "tables" / "gold" / "job_runs").to_pylist()
    assert {r["job"] for r in runs} >= {"ingest", "conform"}
    assert _found(repr(runs)) == [], "the salt is in gold.job_runs"

    # The detector finds the salt, and its ipad form, where they are.
    assert _found(f"log line {SALT}") and _found(bytes(b ^ 0x36 for b in SALT.encode().ljust(64, b"\0")).hex())
