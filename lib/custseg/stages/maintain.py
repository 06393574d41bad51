"""Job ``maintain``: compact small files (OPTIMIZE) and delete files no recent version needs
(VACUUM) in every table, or in those ``maintenance.tables`` names.

Not part of the pipeline: schedule it daily or weekly after the pipeline (Databricks runs
predictive optimization instead where it is on). The VACUUM retention is
``maintenance.vacuum_retention_hours`` (7 days); time travel to any version within it keeps
working. A retention below ``maintenance.min_retention_hours`` is refused unless
``maintenance.force`` is true: readers of older versions and writers still moving files in
could lose them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import functions as F

from custseg.config import Config
from custseg.stages.context import StageContext
from custseg.stages.snapshots import repoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenanceSettings:
    optimize: bool = True
    vacuum_retention_hours: int = 168
    min_retention_hours: int = 168
    force: bool = False
    tables: tuple[str, ...] = ()
    bronze_retention_days: int = 0

    @classmethod
    def from_config(cls, conf: Config) -> MaintenanceSettings:
        m = "maintenance."
        settings = cls(
            optimize=bool(conf.get_path(m + "optimize", True)),
            vacuum_retention_hours=int(conf.get_path(m + "vacuum_retention_hours", 168)),
            min_retention_hours=int(conf.get_path(m + "min_retention_hours", 168)),
            force=bool(conf.get_path(m + "force", False)),
            tables=tuple(conf.get_path(m + "tables", []) or []),
            bronze_retention_days=int(conf.get_path(m + "bronze_retention_days", 0) or 0),
        )
        if settings.bronze_retention_days < 0:
            raise conf.error(
                m + "bronze_retention_days", f"must be >= 0 (0 keeps all), got {settings.bronze_retention_days}"
            )
        if settings.vacuum_retention_hours < 0:
            raise conf.error(m + "vacuum_retention_hours", f"must be >= 0, got {settings.vacuum_retention_hours}")
        if settings.vacuum_retention_hours < settings.min_retention_hours and not settings.force:
            raise conf.error(
                m + "vacuum_retention_hours",
                f"{settings.vacuum_retention_hours}h is below maintenance.min_retention_hours "
                f"({settings.min_retention_hours}h): readers of older versions could lose files; "
                "set maintenance.force=true to vacuum anyway",
            )
        return settings


def expire_bronze(ctx: StageContext, names: list[str], days: int) -> dict[str, int]:
    """Deletes bronze batches older than ``days`` before the run date (``maintenance.bronze_retention_days``);
    the vacuum that follows removes their files once past the vacuum retention."""
    cutoff = ctx.as_of - timedelta(days=days)
    expired = {}
    for name in names:
        if not name.startswith("bronze.") or "_batch_date" not in ctx.tables.schema(name).fieldNames():
            continue
        with ctx.recorder.stage(f"expire {name}"):
            result = ctx.tables.delete_rows(
                name, lambda df: df.where(~F.coalesce(F.col("_batch_date") < F.lit(cutoff), F.lit(False)))
            )
        expired[name] = result["rows"]
        if result["rows"]:
            log.info("expired %d rows of %s (batches before %s)", result["rows"], name, cutoff)
    return expired


def run(ctx: StageContext) -> None:
    rec = ctx.recorder
    settings = MaintenanceSettings.from_config(ctx.conf)
    names = list(settings.tables) or ctx.tables.names()
    rec.rows_in = len(names)
    if settings.bronze_retention_days:
        rec.details["bronze_expired"] = expire_bronze(ctx, names, settings.bronze_retention_days)
    done: dict[str, dict] = {name: {} for name in names}
    if settings.optimize:
        moves = {}
        for name in names:
            before = ctx.tables.version(name)
            with rec.stage(f"optimize {name}"):
                done[name]["optimize"] = ctx.tables.optimize(name)
            after = ctx.tables.version(name)
            if name.startswith("silver.") and after != before:
                moves[name] = (before, after)  # OPTIMIZE keeps the rows: the same snapshot in new files
        # Snapshots of the compacted versions follow them before any vacuum, or the latest date's
        # snapshot would point at files the vacuum deletes once past the retention.
        repoint(ctx.tables, moves)
    for name in names:
        with rec.stage(f"vacuum {name}"):
            ctx.tables.vacuum(name, settings.vacuum_retention_hours)
        done[name]["version"] = ctx.tables.version(name)
    rec.rows_out = len(done)
    rec.details["maintain"] = {"retention_hours": settings.vacuum_retention_hours, "tables": done}
    log.info("maintained %d tables (vacuum retention %dh)", len(done), settings.vacuum_retention_hours)
