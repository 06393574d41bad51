"""Report section ``strategy``: the 4P of every segment (gold.segment_strategy) and why.

One row per segment, so the table comes to the driver whole (bounded by the segments).
"""

from __future__ import annotations

import pandas as pd

from custseg.report import plots
from custseg.report.sections import Rendered, ReportInputs, Table, Unavailable, bounded, section


def _joined(values) -> str:
    return ", ".join(str(v) for v in values) if values is not None and len(values) else "-"


@section(
    "strategy",
    "Segment strategy (4P)",
    "Per segment (gold.segment_strategy): product (top categories, cross-sell and ALS items, new-product "
    "trial for explorers), price (discount depth from discount sensitivity, never past the margin floor), "
    "place (channel mix by reach x conversion, where and when they buy) and promotion (offer type by goal "
    "and value class), with the figures behind each choice.",
)
def _strategy(inp: ReportInputs, out: Rendered) -> None:
    rows = bounded(
        inp.snapshot(
            "gold.segment_strategy",
            "segment_name",
            "customers",
            "discount_depth",
            "discount_cap",
            "channel_mix",
            "promotion",
        )
    )
    if rows.empty:
        raise Unavailable(f"gold.segment_strategy has no rows for {inp.snapshot_date}")
    rows = rows.sort_values(["customers", "segment_name"], ascending=[False, True]).reset_index(drop=True)
    labels = [str(s) for s in rows["segment_name"]]
    notes = [f"{p} (cap {c:.0%})" for p, c in zip(rows["promotion"], rows["discount_cap"], strict=True)]
    out.figures.append(
        (
            "discount depth per segment",
            plots.hbar(
                labels,
                rows["discount_depth"].astype(float).tolist(),
                "Discount depth per segment (promotion, cap)",
                "discount",
                annotations=notes,
                percent=True,
                dpi=inp.settings.dpi,
            ),
        )
    )
    table = pd.DataFrame(
        {
            "segment_name": rows["segment_name"],
            "customers": rows["customers"],
            "top_categories": [_joined(v) for v in rows.get("top_categories", [None] * len(rows))],
            "cross_sell_items": [_joined(v) for v in rows.get("cross_sell_items", [None] * len(rows))],
            "als_items": [_joined(v) for v in rows.get("als_items", [None] * len(rows))],
            "new_product_trial": rows.get("new_product_trial", pd.Series([None] * len(rows))).map(
                lambda v: "yes" if v is True else "no"
            ),
            "discount_depth": rows["discount_depth"],
            "channel_mix": [_joined(v) for v in rows["channel_mix"]],
            "purchase_channel": rows.get("purchase_channel", pd.Series([None] * len(rows))),
            "daypart": rows.get("daypart", pd.Series([None] * len(rows))),
            "promotion": rows["promotion"],
            "offer_type": rows.get("offer_type", pd.Series([None] * len(rows))),
        }
    )
    formats = {"customers": "int", "discount_depth": "pct"}
    formats.update({c: "text" for c in table.columns if c not in formats})
    out.tables.append(Table("the 4P per segment, largest segment first", table, formats))
    evidence = [c for c in ("product_evidence", "price_evidence", "place_evidence", "promotion_rule") if c in rows]
    if evidence:
        why = rows[["segment_name", *evidence]]
        out.tables.append(Table("why: the figures behind each choice", why, {c: "text" for c in why.columns}))
