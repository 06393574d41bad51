"""Stages of the batch pipeline: each reads tables, calls pure transforms, writes tables.

A stage is ``fn(ctx: StageContext) -> None``; it reports counts on ``ctx.recorder``.
``PIPELINE`` is the order ``custseg run pipeline`` runs them in.
"""

from __future__ import annotations

from collections.abc import Callable

from custseg.stages.context import StageContext

Stage = Callable[[StageContext], None]


def _registry() -> dict[str, Stage]:
    # Imported lazily so that `custseg --help` does not import every model.
    from custseg.stages import conform, features, ingest

    return {
        "ingest": ingest.run,
        "conform": conform.run,
        "features": features.run,
    }


PIPELINE = ["ingest", "conform", "features"]


def get_stage(name: str) -> Stage:
    stages = _registry()
    if name not in stages:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(stages)}, pipeline")
    return stages[name]


def stage_names() -> list[str]:
    return [*_registry(), "pipeline"]


__all__ = ["PIPELINE", "Stage", "StageContext", "get_stage", "stage_names"]
