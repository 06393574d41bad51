"""Report section ``activation``: per campaign, which files went to which tool, and who consent kept out.

Drawn from the export manifest's ``activation`` summaries (``<paths.exports>/<date>/manifest.json``,
written by the marketing stage), not from a table: one row per campaign and tool profile, so
the section is bounded by campaigns x profiles.
"""

from __future__ import annotations

import pandas as pd

from custseg.report.sections import Rendered, ReportInputs, Table, Unavailable, section

CONSENT_FIELDS = ("opt_in_email", "opt_in_sms", "opt_in_ads")


@section(
    "activation",
    "Activation files",
    "Per campaign, the files each marketing tool gets (rows and parts), the treatment contacts each "
    "consent field kept out, and consented contacts without any identifier the tool matches on.",
)
def _activation(inp: ReportInputs, out: Rendered) -> None:
    if inp.activation is None:
        raise Unavailable("no export manifest for this snapshot (the marketing stage has not written one)")
    if not inp.activation:
        raise Unavailable("the export manifest lists no activation files (no profile matches a campaign's channels)")
    rows = []
    for a in inp.activation:
        excluded = a.get("excluded_by_consent_field") or {}
        rows.append(
            {
                "campaign": a.get("campaign_id"),
                "tool profile": a.get("profile"),
                "channels": ", ".join(a.get("channels") or []),
                "files": a.get("files"),
                "rows": a.get("rows"),
                **{f"excluded: no {c}": excluded.get(c) for c in CONSENT_FIELDS},
                "excluded: no identifier": a.get("excluded_no_identifier"),
            }
        )
    frame = pd.DataFrame(rows).sort_values(["campaign", "tool profile"], kind="stable").reset_index(drop=True)
    frame = frame.dropna(axis="columns", how="all")  # a consent field no profile's channels use
    formats = {c: "int" for c in frame.columns if c not in ("campaign", "tool profile", "channels")}
    out.tables.append(Table("activation files per campaign and tool", frame, formats))
    out.notes.append(
        "Rows: treatment customers with consent on their assigned channel and at least one identifier. "
        "Columns and the field behind each are in the manifest; docs/marketing.md lists each tool's format."
    )
