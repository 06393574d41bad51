"""The wheel leaves a runtime alone: installed into an environment that already holds another
pyspark (4.0.x, as Databricks Runtime 17.3 and EMR carry), it keeps that pyspark, and its
console scripts and default configs (shipped inside the package) run a stage.

The environment is built with uv from PyPI (pyspark 4.0.1 plus the runtime's usual Python
libraries at the lock's versions); its first build downloads pyspark once into uv's cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PYSPARK = "4.0.1"
# What a runtime brings besides Spark (Databricks and EMR images carry these libraries).
RUNTIME_LIBS = ("pyarrow", "pandas", "numpy", "scipy", "pyyaml", "deltalake")


def _uv() -> str:
    uv = Path(sys.executable).parent / "uv"
    # make venv installs uv (UV_VERSION in the Makefile): a missing one is a broken set-up, not a skip
    assert uv.exists(), f"{uv} is missing: make venv installs it (UV_VERSION in the Makefile)"
    return str(uv)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


def _locked(names: tuple[str, ...]) -> list[str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return [f"{n}=={pins[n]}" for n in names]


def test_wheel_keeps_the_runtime_pyspark_and_runs_a_stage(tmp_path):
    uv = _uv()
    dist, runtime, home = tmp_path / "dist", tmp_path / "runtime", tmp_path / "home"
    _run([uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], timeout=600)
    (wheel,) = dist.glob("custseg-*.whl")

    _run([uv, "venv", "--python", sys.executable, str(runtime)], timeout=120)
    py = runtime / "bin" / "python"
    _run(
        [uv, "pip", "install", "--python", str(py), f"pyspark=={RUNTIME_PYSPARK}", *_locked(RUNTIME_LIBS)], timeout=900
    )
    version = [str(py), "-c", "import pyspark; print(pyspark.__version__)"]
    assert _run(version).stdout.strip() == RUNTIME_PYSPARK

    _run([uv, "pip", "install", "--python", str(py), str(wheel)], timeout=600)
    assert _run(version).stdout.strip() == RUNTIME_PYSPARK, "installing the wheel replaced the runtime's pyspark"
    freeze = _run([uv, "pip", "freeze", "--python", str(py)]).stdout.lower()
    assert "delta-spark" not in freeze, "the wheel pulled in delta-spark"

    help_text = _run([str(runtime / "bin" / "custseg"), "--help"], cwd=tmp_path).stdout
    assert "custseg run <stage>" in help_text

    # One stage from the installed wheel alone: outside the checkout (cwd and config from the
    # package), on landing files this test generates.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYSPARK", "SPARK_", "CUSTSEG_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        {
            "CUSTSEG_HOME": str(home),
            "CUSTSEG_PII_SALT": "wheel-test-salt-of-at-least-32-bytes-0123456789",
            "PYSPARK_PYTHON": str(py),
        }
    )
    gen = [str(runtime / "bin" / "custseg"), "generate", "--customers", "60", "--days", "10", "--out", str(home)]
    gen += ["--end-date", "2026-06-30", "--bad-share", "0"]  # tiny sources: no reject-rate gate
    _run(gen, cwd=tmp_path, env=env, timeout=300)
    stage = [str(runtime / "bin" / "custseg-ingest"), "--date", "2026-06-30", "--conf", "local.yaml"]
    proc = _run(stage, cwd=tmp_path, env=env, timeout=600)
    assert f"{runtime}/lib" in proc.stderr and "custseg/conf/local.yaml" in proc.stderr, "config from the package"

    from custseg.storage.arrow_read import read_pandas

    customers = read_pandas(home / "tables" / "bronze" / "crm_customers")
    assert len(customers) > 0 and customers["_batch_date"].astype(str).eq("2026-06-30").any()
