"""HTML report of a snapshot: ingestion, RFM, segments, k choice, migration, rules, cross-sell, campaigns.

``build_report(ReportInputs(snapshot_date, tables, settings))`` returns the HTML of one
self-contained file (plots embedded as base64 PNG) and the status of every section; the
``report`` stage reads the tables and writes ``<paths.reports>/<date>/report.html``.
"""

from custseg.report import (
    activation,  # noqa: F401  (registers its section, after those of sections.py it imports)
    strategy,  # noqa: F401  (registers the segment strategy section, after activation)
    trends,  # noqa: F401  (registers the kpis and funnel sections, after the strategy)
)
from custseg.report.html import ReportResult, build_report
from custseg.report.sections import REPORT_TABLES, SECTIONS, ReportInputs, Unavailable
from custseg.report.settings import ReportSettings, check_report

__all__ = [
    "REPORT_TABLES",
    "SECTIONS",
    "ReportInputs",
    "ReportResult",
    "ReportSettings",
    "Unavailable",
    "build_report",
    "check_report",
]
