"""No deltalake data scan outside ``custseg.storage.arrow_read`` (issue 29).

deltalake's scan (``to_pandas``, ``to_pyarrow_table``, ``to_pyarrow_dataset``, ``scan``)
can leave a process that aborts at exit; the project reads through ``arrow_read`` instead.
Checked in lib/, jobs/, tests/, bench/ and the notebooks' code cells:
- ``to_pyarrow_table(`` / ``to_pyarrow_dataset(`` anywhere (no other library the project
  uses has them), strings included;
- ``to_pandas(`` / ``scan(`` called on ``DeltaTable(...)`` or on a name bound to one
  (pyarrow's ``Table.to_pandas`` stays allowed).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIRS = ("lib", "jobs", "tests", "bench", "notebooks")
ALLOWED = {
    "lib/custseg/storage/arrow_read.py": "the one reader",
    "bench/exit_codes.py": "runs deltalake's scan in child processes on purpose, to count its aborts",
    "tests/unit/test_arrow_read.py": "deltalake's scan as the reference, in a child process",
    "tests/unit/test_no_deltalake_scan.py": "this file",
}
ANYWHERE = re.compile(r"\bto_pyarrow_(table|dataset)\s*\(")
ON_DELTA_TABLE = {"to_pandas", "to_pyarrow_table", "to_pyarrow_dataset", "scan"}


def _delta_names(tree: ast.AST) -> set[str]:
    """Names assigned from ``DeltaTable(...)`` anywhere in the module."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_delta_table(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif (
            isinstance(node, ast.withitem)
            and _is_delta_table(node.context_expr)
            and isinstance(node.optional_vars, ast.Name)
        ):
            names.add(node.optional_vars.id)
    return names


def _is_delta_table(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id == "DeltaTable") or (
        isinstance(f, ast.Attribute) and f.attr == "DeltaTable"
    )


def violations(source: str) -> list[str]:
    """Where ``source`` (Python) scans data through deltalake: ``line N: text``."""
    found = [f"line {source.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in ANYWHERE.finditer(source)]
    tree = ast.parse(source)
    names = _delta_names(tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ON_DELTA_TABLE:
            continue
        target = node.func.value
        if _is_delta_table(target) or (isinstance(target, ast.Name) and target.id in names):
            found.append(f"line {node.lineno}: .{node.func.attr}() on a DeltaTable")
    return found


def _notebook_source(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    # IPython magics and shell lines are not Python: blank them, keeping line numbers.
    lines = "\n".join(code).splitlines()
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)


def _sources() -> list[tuple[str, str]]:
    out = []
    for d in DIRS:
        for path in sorted((ROOT / d).rglob("*.py")) + sorted((ROOT / d).rglob("*.ipynb")):
            if ".ipynb_checkpoints" in path.parts or "egg-info" in str(path):
                continue
            rel = path.relative_to(ROOT).as_posix()
            if rel in ALLOWED:
                continue
            out.append((rel, _notebook_source(path) if path.suffix == ".ipynb" else path.read_text()))
    return out


def test_no_deltalake_scan_outside_the_reader():
    sources = _sources()
    assert any(rel.endswith(".ipynb") for rel, _ in sources)  # the notebooks are looked at
    assert any(rel == "lib/custseg/demo.py" for rel, _ in sources)
    bad = {rel: v for rel, src in sources if (v := violations(src))}
    assert not bad, f"read Delta data through custseg.storage.arrow_read, not deltalake's scan: {bad}"


@pytest.mark.parametrize(
    "code",
    [
        # The calls this replaced (demo summary, PII scan, standalone test), and variants.
        'feats = DeltaTable(p)\ndf = feats.to_pandas(partitions=[("d", "=", x)], columns=["a"])',
        "t = DeltaTable(str(home / 'x')).to_pyarrow_table()",
        "from deltalake import DeltaTable\nDeltaTable(p).to_pandas()",
        "import deltalake\nd = deltalake.DeltaTable(p)\nr = d.scan(columns=['a'])",
        "ds = table.to_pyarrow_dataset()",
        "code = 'DeltaTable(p).to_pyarrow_table()'",
    ],
)
def test_the_check_finds_deltalake_scans(code):
    assert violations(code)


@pytest.mark.parametrize(
    "code",
    [
        "import pyarrow as pa\nt = pa.table({'a': [1]})\ndf = t.to_pandas()",
        "d = DeltaTable(p)\nn = d.version()\nfiles = d.file_uris()\nacts = d.get_add_actions(flatten=True)",
        "df = spark.read.parquet(p).toPandas()",
    ],
)
def test_the_check_leaves_other_reads_alone(code):
    assert not violations(code)
