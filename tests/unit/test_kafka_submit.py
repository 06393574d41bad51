"""spark-submit.sh ships Spark's Kafka connector with the stream job (and only with it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KAFKA_DIR = ROOT / ".venv" / "spark-kafka-jars"


def _pinned(line: str) -> list[str]:
    names = []
    for row in (ROOT / "deploy" / "kafka-jars.txt").read_text().splitlines():
        f = row.split()
        if f[:2] == [line, "connector"]:
            _, artifact, version = f[2].split(":")
            names.append(f"{artifact}-{version}.jar")
    return names


def _submit(tmp_path: Path, job: str, spark_version: str, env: dict | None = None) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "spark" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "spark-submit").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (bin_dir / "spark-submit").chmod(0o755)
    (tmp_path / "spark" / "jars").mkdir(exist_ok=True)
    (tmp_path / "spark" / "jars" / f"spark-core_2.13-{spark_version}.jar").write_bytes(b"")
    base = {k: v for k, v in os.environ.items() if k not in ("CUSTSEG_KAFKA_JARS", "CUSTSEG_DELTA_JARS")}
    proc = subprocess.run(
        [str(ROOT / "spark-submit.sh"), job, "--set", "x=y"],
        cwd=ROOT,
        env={**base, "SPARK_HOME": str(tmp_path / "spark"), "CUSTSEG_DELTA_JARS": "none", **(env or {})},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def _jars(proc) -> list[str]:
    args = proc.stdout.splitlines()
    return [j for i, a in enumerate(args) if a == "--jars" for j in args[i + 1].split(",")]


def test_stream_job_ships_the_pinned_connector(tmp_path):
    wanted = _pinned("4.2")
    assert len(wanted) == 4
    if not all((KAFKA_DIR / j).is_file() for j in wanted):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but make venv did not resolve .venv/spark-kafka-jars")
        pytest.skip("no .venv/spark-kafka-jars (make venv)")
    assert _jars(_submit(tmp_path, "stream", "4.2.0")) == [str(KAFKA_DIR / j) for j in wanted]
    assert _jars(_submit(tmp_path, "ingest", "4.2.0")) == []  # batch jobs go without


def test_other_spark_line_or_none_ships_no_connector(tmp_path):
    proc = _submit(tmp_path, "stream", "3.5.1")
    assert _jars(proc) == []
    assert "no Spark Kafka connector for Spark 3.5" in proc.stderr and "--packages" in proc.stderr
    assert _jars(_submit(tmp_path, "stream", "4.2.0", {"CUSTSEG_KAFKA_JARS": "none"})) == []


def test_kafka_jars_folder_from_environment(tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / "spark-sql-kafka-0-10_2.13-9.9.9.jar").write_bytes(b"")
    assert _jars(_submit(tmp_path, "stream", "4.2.0", {"CUSTSEG_KAFKA_JARS": str(own)})) == [
        str(own / "spark-sql-kafka-0-10_2.13-9.9.9.jar")
    ]
