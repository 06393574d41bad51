"""The whole pipeline over Spark Connect gives the same tables as a classic session.

A real Spark Connect server (the installed pyspark's own spark-connect jar) listens on
loopback; ``custseg run pipeline --remote sc://127.0.0.1:<port>`` runs every stage as a
Connect client in a subprocess, the way Databricks serverless and standard-access compute run
code. The same generated landing files go through the test's classic session; every silver and
gold table must then hold the same rows (run-specific columns aside).

The server shares this machine's filesystem, so the delta-rs engine's commits from the client
process land where the server's writers wrote (both runs use delta-rs: Delta's Connect server
plugin has no release for Spark 4.2 on Maven Central). The server gets the classic session's
partition, time-zone and codegen settings.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import run_stages

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUN_DATE = "2026-06-30"
STARTUP_SECONDS = 120

# Settings the server copies from the classic test session, so both plan and partition alike.
SHARED_CONF = (
    "spark.sql.shuffle.partitions",
    "spark.default.parallelism",
    "spark.sql.adaptive.enabled",
    "spark.sql.session.timeZone",
    "spark.sql.execution.arrow.pyspark.enabled",
    "spark.sql.sources.partitionOverwriteMode",
    "spark.sql.codegen.wholeStage",
    "spark.sql.codegen.factoryMode",
)

# Columns that record the run rather than the data (times, ids, paths of this run's folders).
RUN_COLUMNS = {"run_id", "started_at", "ended_at", "seconds", "stage_seconds", "app_id", "details", "_ingested_at"}
PATH_COLUMNS = {"_source_file", "source_file", "path"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def connect_server(spark, tmp_path_factory):
    """``sc://127.0.0.1:<port>`` of a Spark Connect server started from the installed pyspark."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    jars = list((spark_home / "jars").glob("spark-connect_*.jar"))
    if not jars:
        pytest.fail(f"no spark-connect jar under {spark_home / 'jars'}: pyspark cannot serve Connect")
    work = tmp_path_factory.mktemp("spark-connect")
    port = _free_port()
    conf = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        "spark.driver.memory": "2g",
        "spark.sql.warehouse.dir": str(work / "warehouse"),
        # No C1-only JIT here (the cluster test's speed-up): C1 frames are larger, and ALS's
        # task deserialisation then overflowed the default thread stack and killed the server.
        "spark.log.level": "WARN",
    }
    for key in SHARED_CONF:
        value = spark.conf.get(key, None)
        if value:
            conf[key] = value
    cmd = [str(spark_home / "bin" / "spark-submit"), "--master", "local[2]", "--name", "custseg-connect-test"]
    cmd += ["--class", "org.apache.spark.sql.connect.service.SparkConnectServer"]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd.append("spark-internal")
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        # the server's Python workers (pandas UDFs) import custseg from this checkout, as the client does
        "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")]),
        "SPARK_LOG_DIR": str(work),
    }
    log = open(work / "server.log", "w")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + STARTUP_SECONDS
        while not _port_open(port):
            if server.poll() is not None:
                pytest.fail(
                    f"the Connect server exited ({server.returncode}):\n{(work / 'server.log').read_text()[-3000:]}"
                )
            if time.time() > deadline:
                pytest.fail(f"the Connect server did not listen within {STARTUP_SECONDS} s")
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}", work / "server.log"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()


def _args(home: Path) -> list[str]:
    # Lighter models than the defaults: each fit is a few Spark jobs of fixed overhead.
    return [
        # delta-rs in both runs: Delta's Spark Connect server plugin (delta-connect-server) has no
        # release for Spark 4.2 on Maven Central, so spark-delta's DeltaTable API cannot run over
        # Connect here; delta-rs commits from the client, which shares the server's filesystem.
        "--set",
        "storage.engine=delta-rs",
        "--set",
        "segment.k_max=4",
        "--set",
        "marketing.propensity.gbt_max_iter=5",
        "--set",
        "marketing.propensity.logistic_max_iter=20",
    ]


def _rows(spark, path: Path) -> tuple[list[str], list[tuple]]:
    """(columns, sorted rows) of one Delta table, run-specific columns left out."""
    from custseg.storage import StorageSettings, Tables

    layer, name = path.parent.name, path.name
    tables = Tables(spark, StorageSettings(root=str(path.parent.parent)))
    df = tables.read(f"{layer}.{name}")
    cols = sorted(c for c in df.columns if c not in RUN_COLUMNS and c not in PATH_COLUMNS)
    rows = [tuple(_plain(r[c]) for c in cols) for r in df.select(*cols).collect()]
    # timing metrics (segment_quality's seconds_*) measure the run, not the data
    rows = [r for r in rows if not any(isinstance(v, str) and v.startswith("seconds") for v in r)]
    return cols, sorted(rows, key=lambda row: repr(_rounded(row)))


def _rounded(value):
    """The sort key: floats to 4 places, so last-bit differences do not reorder rows."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, tuple):
        return tuple(_rounded(v) for v in value)
    return value


def _same(a, b) -> bool:
    """Equal, floats within 1e-6 relative (aggregation order may change the last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _plain(value):
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if hasattr(value, "asDict"):
        return _plain(value.asDict())
    return value


def test_pipeline_over_spark_connect_equals_a_classic_run(spark, connect_server, tmp_path):
    from custseg.datagen import generate
    from custseg.stages import pipeline_stages

    url, server_log = connect_server
    classic, remote = tmp_path / "classic", tmp_path / "connect"
    generate(classic, customers=300, days=120, seed=11, end_date=RUN_DATE, bad_share=0.02)
    shutil.copytree(classic / "landing", remote / "landing")

    env = {
        **os.environ,
        "CUSTSEG_HOME": str(remote),
        "CUSTSEG_PII_SALT": os.environ["CUSTSEG_PII_SALT"],
        "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("SPARK_REMOTE", None)
    started = time.time()
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "custseg.cli", "run", "pipeline", "--date", RUN_DATE),
            *("--remote", url, "--run-id", "connect-e2e-1", *_args(remote)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,  # a guard against a hung server, not a speed target
    )
    connect_seconds = time.time() - started
    assert proc.returncode == 0, (
        f"pipeline over Connect failed:\n{proc.stderr[-6000:]}\nserver log:\n{server_log.read_text()[-3000:]}"
    )
    assert "Spark Connect session: sc://127.0.0.1" in proc.stderr

    rc = run_stages(spark, classic, RUN_DATE, pipeline_stages(), _args(classic))
    assert rc == 0, "classic pipeline failed (see the log above)"

    from custseg.storage.arrow_read import read_pandas

    runs = read_pandas(remote / "tables" / "gold" / "job_runs")
    ended = runs[runs["status"] != "started"]  # each run appends a started row, then its outcome
    assert set(ended["job"]) == set(pipeline_stages()) and (ended["status"] == "succeeded").all(), runs
    # The server's application id, read without a SparkContext; the scheduler's run id in details.
    assert runs["app_id"].str.startswith("local-").all(), runs["app_id"]
    assert runs["details"].map(lambda d: json.loads(d).get("external_run_id")).eq("connect-e2e-1").all()

    compared = []
    for layer in ("silver", "gold"):
        names = sorted(p.name for p in (classic / "tables" / layer).iterdir() if (p / "_delta_log").is_dir())
        assert names == sorted(p.name for p in (remote / "tables" / layer).iterdir() if (p / "_delta_log").is_dir()), (
            f"{layer}: the two runs wrote different tables"
        )
        for name in names:
            want_cols, want = _rows(spark, classic / "tables" / layer / name)
            got_cols, got = _rows(spark, remote / "tables" / layer / name)
            assert got_cols == want_cols, f"{layer}.{name}: columns differ"
            assert len(got) == len(want), f"{layer}.{name}: {len(got)} rows over Connect, {len(want)} classic"
            diff = [(g, w) for g, w in zip(got, want, strict=True) if not _same(g, w)]
            assert not diff, f"{layer}.{name}: {len(diff)} rows differ, first: {diff[0]}"
            compared.append(f"{layer}.{name}")
    assert {"gold.customer_features", "gold.customer_segments", "gold.association_rules"} <= set(compared)
    assert (remote / "reports" / RUN_DATE / "report.html").stat().st_size > 10_000
    exports = sorted(p.relative_to(remote / "exports").as_posix() for p in (remote / "exports").rglob("*.*"))
    assert exports == sorted(p.relative_to(classic / "exports").as_posix() for p in (classic / "exports").rglob("*.*"))
    print(f"pipeline over Spark Connect: {connect_seconds:.0f} s; compared {len(compared)} tables")
