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
}

PIPELINE = ["ingest", "conform", "features", "segment", "basket", "marketing", "report"]


def available(name: str) -> bool:
    try:
        importlib.import_module(f"custseg.stages.{STAGES[name]}")
        return True
    except ModuleNotFoundError:
        return False


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(STAGES)}, pipeline")
    return importlib.import_module(f"custseg.stages.{STAGES[name]}").run


def pipeline_stages() -> list[str]:
    """The pipeline's stages that this installation has."""
    return [s for s in PIPELINE if available(s)]


__all__ = ["PIPELINE", "STAGES", "Stage", "StageContext", "get_stage", "pipeline_stages"]
