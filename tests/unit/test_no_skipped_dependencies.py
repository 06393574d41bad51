"""No test skips for want of a dependency the project pins (issue 28): a broken install must fail.

``make venv`` installs every package of constraints.txt, locally and in CI, so a test that
``pytest.importorskip``-s one, or catches its ``ImportError`` and skips, only turns a broken
install into a green run. Checked on the syntax tree of every file under tests/:
- ``pytest.importorskip("<module>")`` / ``importorskip(...)``;
- ``try: import <module> ... except ImportError | ModuleNotFoundError: ... pytest.skip(...)``;
where ``<module>`` belongs to a distribution pinned in constraints.txt.
"""

from __future__ import annotations

import ast
import re
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> set[str]:
    """Distributions of constraints.txt (``name==version`` lines), normalized."""
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {_norm(m.group(1)) for line in lines if (m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line))}


def is_pinned(module: str, pins: set[str]) -> bool:
    top = module.split(".")[0]
    dists = packages_distributions().get(top, [top])
    return any(_norm(d) in pins for d in dists)


def _skips(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute | ast.Name) and _name(n.func) == "skip"
        for n in ast.walk(node)
    )


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(k, ast.Name) and k.id in IMPORT_ERRORS for k in kinds)


def skipped_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import a test skips on instead of failing."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            if _name(node.func) == "importorskip" and node.args and isinstance(node.args[0], ast.Constant):
                out.append((node.lineno, str(node.args[0].value)))
        elif isinstance(node, ast.Try) and any(_catches_import_error(h) and _skips(h) for h in node.handlers):
            for n in node.body:
                if isinstance(n, ast.Import):
                    out += [(n.lineno, a.name) for a in n.names]
                elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
                    out.append((n.lineno, n.module))
    return out


def test_no_test_skips_for_a_pinned_dependency():
    pins = pinned()
    found = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line, module in skipped_imports(path.read_text())
        if is_pinned(module, pins)
    ]
    assert not found, "import it plainly (a missing pinned dependency must fail): " + "; ".join(found)


def test_the_check_sees_both_forms_and_knows_what_is_pinned():
    pins = pinned()
    assert {"pandas", "mlxtend", "nbclient", "scikit-learn", "pyyaml"} <= pins
    assert is_pinned("mlxtend.frequent_patterns", pins) and is_pinned("sklearn", pins) and is_pinned("yaml", pins)
    assert not is_pinned("a_module_nobody_pins", pins)
    source = (
        "import pytest\n"
        "pd = pytest.importorskip('pandas')\n"
        "def test_x():\n"
        "    try:\n"
        "        from sklearn.cluster import KMeans\n"
        "    except (ModuleNotFoundError, OSError):\n"
        "        pytest.skip('no sklearn')\n"
        "    try:\n"
        "        import json\n"
        "    except ImportError:\n"
        "        raise\n"
    )
    assert sorted(skipped_imports(source)) == [(2, "pandas"), (5, "sklearn.cluster")]
