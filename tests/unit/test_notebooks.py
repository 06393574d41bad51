"""Every notebook in notebooks/ runs top to bottom against a small snapshot (nbclient).

The notebooks read CUSTSEG_CONF / CUSTSEG_HOME / CUSTSEG_DATE, so the test points them at
the hand-made tables of test_report and at a config for a small local session.
"""

from __future__ import annotations

import os
from pathlib import Path

import ipykernel  # noqa: F401 - the kernel nbclient starts; pinned (notebooks extra): missing fails, never skips
import nbclient
import nbformat
import pytest

from custseg.config import DEFAULT_CONF_DIR
from tests.unit.test_report import D, report_home  # noqa: F401 - report_home is a shared fixture

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.slow  # a kernel and a second Spark JVM: ~20-40 s


def test_there_is_a_notebook():
    assert NOTEBOOKS, "notebooks/ has no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_every_cell(path, report_home, tmp_path, monkeypatch):  # noqa: F811
    conf = tmp_path / "notebook.yaml"
    conf.write_text(
        f"extends: {DEFAULT_CONF_DIR / 'base.yaml'}\n"
        "spark:\n  master: local[1]\n  driver_memory: 1g\n  shuffle_partitions: 2\n"
        # A JVM that lives for a few queries: C2 compiling for the main thread's benefit
        # only competes with it on a small machine (same reason as in the cluster test).
        "  conf:\n    spark.driver.extraJavaOptions: -XX:TieredStopAtLevel=1\n"
    )
    monkeypatch.setenv("CUSTSEG_CONF", str(conf))
    monkeypatch.setenv("CUSTSEG_HOME", str(report_home))
    monkeypatch.setenv("CUSTSEG_DATE", D.isoformat())
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")]))

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "notebook ok: snapshot 2026-06-30, 3 segments, 3 rules, 1 campaigns" in text
    assert "win_back: ROI precision 1.22 vs blanket 0.18" in text
    html = "".join(
        o.get("data", {}).get("text/html", "")
        for o in outputs
        if o.get("output_type") in ("display_data", "execute_result")
    )
    assert "High-value loyal" in html and "parmesan" in html
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot was displayed"
