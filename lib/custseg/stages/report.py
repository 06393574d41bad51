"""Stage ``report``: the snapshot's tables -> ``<paths.reports>/<date>/report.html``.

Tables that do not exist yet (a stage not run, a first snapshot) become "not available"
notes in the report rather than a failed job; the sections drawn and those missing are
recorded in the run's details.
"""

from __future__ import annotations

import json
import logging

from pyspark.sql import SparkSession

from custseg import fileio
from custseg.report import REPORT_TABLES, ReportInputs, ReportSettings, build_report
from custseg.stages.context import StageContext, absolute

log = logging.getLogger(__name__)


def report_path(reports_root: str, run_date: str) -> str:
    return f"{absolute(reports_root).rstrip('/')}/{run_date}/report.html"


def run(ctx: StageContext) -> None:
    rec = ctx.recorder
    with rec.stage("read tables"):
        present = {name: ctx.tables.exists(name) for name in REPORT_TABLES}
        tables = {name: (ctx.tables.read(name) if ok else None) for name, ok in present.items()}
    rec.rows_in = sum(present.values())  # tables read
    with rec.stage("render"):
        inputs = ReportInputs(ctx.as_of, tables, ReportSettings.from_config(ctx.conf), _activation(ctx))
        result = build_report(inputs)
    path = report_path(ctx.conf.paths.reports, ctx.run_date)
    with rec.stage("write"):
        write_text(ctx.spark, path, result.html)
    rec.rows_out = sum(s.status == "ok" for s in result.sections)  # sections drawn
    rec.details["report"] = {
        "path": path,
        "bytes": len(result.html.encode("utf-8")),
        "sections": {s.key: s.status for s in result.sections},
        "missing_tables": sorted(n for n, ok in present.items() if not ok),
    }
    log.info("report written: %s (%d of %d sections drawn)", path, rec.rows_out, len(result.sections))


def _activation(ctx: StageContext) -> list[dict] | None:
    """The activation summaries of the date's export manifest (None without a manifest)."""
    path = f"{absolute(ctx.conf.paths.exports).rstrip('/')}/{ctx.run_date}/manifest.json"
    text = fileio.read_text(ctx.spark, path)
    if text is None:
        return None
    try:
        return list(json.loads(text).get("activation", []))
    except (ValueError, AttributeError) as exc:
        log.warning("report: %s is not a readable manifest (%s); activation section left out", path, exc)
        return None


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write the report: locally (also Databricks /Volumes and /dbfs mounts) or to object storage (``custseg.fileio``)."""
    fileio.write_text(path, text)
