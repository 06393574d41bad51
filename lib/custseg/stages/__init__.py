"""Stages of the batch pipeline: each reads tables, calls pure transforms, writes tables.

A stage is a module ``custseg.stages.<name>`` with ``run(ctx: StageContext) -> None``;
it reports counts on ``ctx.recorder``. ``PIPELINE`` is the order ``custseg run pipeline``
runs them in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from custseg.stages.context import StageContext

Stage = Callable[[StageContext], None]

# stage name -> module under custseg.stages (imported only when the stage runs)
STAGES = {
    "ingest": "ingest",
    "conform": "conform",
    "features": "features",
    "segment": "segment",
    "basket": "basket",
    "marketing": "marketing",
    "report": "report",
    "maintain": "maintain",  # OPTIMIZE + VACUUM; scheduled on its own, not in PIPELINE
    "forget": "forget",  # erasure requests (`custseg forget`); on demand, not in PIPELINE
}

PIPELINE = ["ingest", "conform", "features", "segment", "basket", "marketing", "report"]

# Stages that see the tables as they are: they write silver (conform; forget and maintain in
# place) or never read it (ingest). Every other stage, including any added later, reads silver
# as of its run date: the versions that date's conform recorded (custseg.stages.snapshots).
CURRENT_SILVER = frozenset({"ingest", "conform", "forget", "maintain"})


# what to install when a stage's import fails for want of an optional dependency
EXTRAS = {"matplotlib": "custseg[report]"}


class StageImportError(ImportError):
    """A stage cannot be imported in this installation (a dependency is missing)."""


def get_stage(name: str) -> Stage:
    """The stage's ``run``; a stage that cannot be imported fails loudly, naming what is missing.

    Never skipped: a pipeline that silently dropped, say, the report because matplotlib is
    absent on the cluster would look green and publish nothing.
    """
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(STAGES)}, pipeline")
    try:
        module = importlib.import_module(f"custseg.stages.{STAGES[name]}")
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        hint = EXTRAS.get((missing or "").split(".")[0])
        raise StageImportError(
            f"stage {name!r} cannot be imported: {exc}" + (f" (install {hint})" if hint else "")
        ) from exc
    return module.run


def stage_tables(name: str, tables, run_date: str):
    """The tables a stage of ``run_date`` works with: the one place silver is pinned to a date."""
    if name in CURRENT_SILVER:
        return tables
    from custseg.stages.snapshots import SilverAsOf

    return SilverAsOf(tables, run_date)


def pipeline_stages() -> list[str]:
    """The pipeline's stages, in order (all of them: a stage that cannot import fails the run)."""
    return list(PIPELINE)


__all__ = [
    "CURRENT_SILVER",
    "PIPELINE",
    "STAGES",
    "Stage",
    "StageContext",
    "StageImportError",
    "get_stage",
    "pipeline_stages",
    "stage_tables",
]
