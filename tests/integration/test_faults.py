"""Fault injection: a driver killed (SIGKILL) in the middle of every stage, then rerun.

The jobs run as the scheduler runs them, ``python -m custseg.cli run pipeline`` in their own
process, on a small generated data set, with the test hook ``CUSTSEG_FAULT`` (custseg.faults)
killing the process right after the first table (or file) write of a stage: the stage's first
tables are new, the others not, and its ``gold.job_runs`` row says ``started`` with no end.

One chain of runs kills every stage once and each rerun starts at the stage that died:
run 1 dies in ingest; run 2 reruns ingest and dies in conform; ... run 8 reruns report and
ends. A reference home runs the same pipeline once without faults. The two homes must hold
the same tables with the same row counts (rows of the deterministic layers compared whole),
and every killed run must be visible in job_runs, closed as abandoned by its rerun.

No Spark session in this process: the tables are read with deltalake / pyarrow
(custseg.storage.arrow_read), so only the jobs' own JVMs run: the chain's, and the reference
run's beside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from custseg.runs import ABANDONED
from custseg.stages import PIPELINE
from tests.integration.conftest import pipeline_args

pytestmark = [pytest.mark.slow, pytest.mark.extended]

ROOT = Path(__file__).resolve().parents[2]
D = "2026-06-30"
# The smallest data on which every stage has something to do.
CUSTOMERS, DAYS = 150, 60
# Lighter models than the shared run's: the fits are not under test here.
LIGHT = [
    *("--set", "segment.k=3"),  # no k selection
    *("--set", "segment.n_init=1"),
    *("--set", "recommend.als.max_iter=2"),
    *("--set", "recommend.evaluate=false"),
    *("--set", "marketing.propensity.models=[logistic]"),
    *("--set", "marketing.propensity.logistic_max_iter=20"),
    *("--set", "spark.driver_memory=2g"),
    *("--set", "spark.shuffle_partitions=2"),
]
# Tables whose rows are a pure function of the landing files: compared row for row.
WHOLE = ("bronze.", "silver.", "gold.customer_features")
# Columns that differ between two clean runs (times of the run, paths of the home).
VOLATILE = {"_ingested_at", "_source_file", "file", "computed_at", "created_at", "snapshot_at", "model_path"}


def _command(home: Path, stages: list[str], fault: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTSEG_CONF", "CUSTSEG_FAULT", "SPARK_REMOTE")}
    env["CUSTSEG_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "lib"), env.get("PYTHONPATH", "")])
    if fault:
        env["CUSTSEG_FAULT"] = fault
    args = ["run", "pipeline", "--date", D, "--stages", ",".join(stages), *pipeline_args(home), *LIGHT]
    return {"args": [sys.executable, "-m", "custseg.cli", *args], "env": env, "cwd": home, "text": True}


def _cli(home: Path, stages: list[str], fault: str | None, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(**_command(home, stages, fault), capture_output=True, timeout=timeout)


def _tables(home: Path) -> dict[str, pd.DataFrame]:
    from custseg.storage.arrow_read import read_pandas

    root = home / "tables"
    return {
        f"{p.parent.parent.name}.{p.parent.name}": read_pandas(p.parent) for p in sorted(root.glob("*/*/_delta_log"))
    }


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in df.columns if c not in VOLATILE]
    out = df[keep].astype(str)
    return out.sort_values(keep).reset_index(drop=True)


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """(reference home, faulted home, the runs of the faulted chain) on the same generated data."""
    from custseg.datagen import generate

    ref = tmp_path_factory.mktemp("clean")
    faulted = tmp_path_factory.mktemp("killed")
    for home in (ref, faulted):
        generate(home, customers=CUSTOMERS, days=DAYS, seed=31, end_date=D, bad_share=0.02, workers=1)
    # The reference run goes on beside the chain (its output to a file, so that no pipe fills):
    # small-data runs wait on the driver more than on the cores, and the two homes share nothing.
    log = ref / "reference.log"
    with open(log, "w") as out:
        clean = subprocess.Popen(**_command(ref, PIPELINE, None), stdout=out, stderr=subprocess.STDOUT)
    runs = []
    try:
        for i, stage in enumerate(PIPELINE):
            t0 = time.perf_counter()
            # rerun from the stage that died last time; kill this one after its first write
            done = _cli(faulted, PIPELINE[max(i - 1, 0) :], f"{stage}:kill-after-write:1")
            runs.append((stage, done))
            print(f"run {i + 1} (dies in {stage}): rc={done.returncode} {time.perf_counter() - t0:.0f}s")
            assert done.returncode == -signal.SIGKILL, (
                f"expected a kill in {stage}: rc={done.returncode}\n{done.stderr[-3000:]}"
            )
        last = _cli(faulted, PIPELINE[-1:], None)
        assert last.returncode == 0, last.stderr[-3000:]
        assert clean.wait(timeout=1800) == 0, log.read_text()[-3000:]
    finally:
        if clean.poll() is None:  # the chain failed: do not leave the reference running
            clean.kill()
    return ref, faulted, runs


def test_every_stage_killed_mid_write_then_rerun_leaves_the_tables_of_a_clean_run(homes):
    ref, faulted, _ = homes
    want, got = _tables(ref), _tables(faulted)
    want.pop("gold.job_runs"), got.pop("gold.job_runs")
    assert sorted(got) == sorted(want)
    counts = {name: (len(got[name]), len(want[name])) for name in want}
    assert all(g == w for g, w in counts.values()), {n: c for n, c in counts.items() if c[0] != c[1]}
    for name in want:
        if name.startswith(WHOLE):
            g, w = _canonical(got[name]), _canonical(want[name])
            differ = [c for c in w.columns if c not in g.columns or not g[c].equals(w[c])]
            assert not differ, f"{name}: columns {differ} differ from the clean run's"
    # nothing doubled: the date's partitions hold the reference's rows, and only this date's
    assert counts["bronze.orders"][0] > 0 and counts["gold.customer_features"][0] > 0


def test_each_killed_run_is_visible_in_job_runs_and_closed_by_its_rerun(homes):
    from custseg.runs import latest_runs  # noqa: F401 - the reader the docs point to (Spark); pandas here

    _, faulted, runs = homes
    job_runs = _tables(faulted)["gold.job_runs"]
    for stage, done in runs:
        assert "killing this process (SIGKILL)" in done.stderr, stage
        mine = job_runs[job_runs["job"] == stage]
        by_run = mine.groupby("run_id")["status"].apply(set)
        killed = [r for r, s in by_run.items() if s == {"started", "failed"}]
        assert len(killed) == 1, (stage, by_run.to_dict())
        closing = mine[(mine["run_id"] == killed[0]) & (mine["status"] == "failed")].iloc[0]
        assert closing["error"].startswith(ABANDONED), closing["error"]
        assert pd.isna(mine[(mine["run_id"] == killed[0]) & (mine["status"] == "started")].iloc[0]["ended_at"])
        assert (mine["status"] == "succeeded").sum() == 1, (stage, by_run.to_dict())
