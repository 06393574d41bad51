"""Report sections ``kpis`` and ``funnel``: the customer base and the campaigns over time.

Drawn from gold.kpi_trends (periods x segments of the snapshot) and gold.campaign_funnel
(campaigns x variants x groups x segments): both bounded, so they come to the driver whole.
"""

from __future__ import annotations

import pandas as pd

from custseg.report import plots
from custseg.report.sections import Rendered, ReportInputs, Table, Unavailable, bounded, section

ALL = "all"


def _series(pdf: pd.DataFrame, col: str) -> list[float | None]:
    return [None if pd.isna(v) else float(v) for v in pdf[col]]


@section(
    "kpis",
    "Customer KPIs over time",
    "Active, new, retained and churned customers, retention, repeat rate, average order value, "
    "satisfaction, NPS and complaints for the last periods (gold.kpi_trends), overall and per "
    "segment; a segment's line follows the customers in it at this snapshot.",
)
def _kpis(inp: ReportInputs, out: Rendered) -> None:
    kpis = bounded(inp.snapshot("gold.kpi_trends", "period_end", "segment_name", "active"))
    if kpis.empty:
        raise Unavailable(f"gold.kpi_trends has no rows for {inp.snapshot_date}")
    overall = kpis[kpis["segment_name"] == ALL].sort_values("period_end")
    labels = [str(d) for d in overall["period_end"]]
    out.figures.append(
        (
            "customer KPIs by period",
            plots.trend_lines(
                labels,
                [
                    (
                        "Customers",
                        {c: _series(overall, c) for c in ("active", "new", "retained", "churned")},
                        False,
                    ),
                    (
                        "Retention and repeat rate",
                        {c: _series(overall, c) for c in ("retention_rate", "repeat_rate")},
                        True,
                    ),
                    ("Average order value", {"aov": _series(overall, "aov")}, False),
                    (
                        "Satisfaction and NPS",
                        {
                            "satisfaction": _series(overall, "satisfaction"),
                            "NPS / 20": [None if v is None else v / 20 for v in _series(overall, "nps")],
                        },
                        False,
                    ),
                ],
                dpi=inp.settings.dpi,
            ),
        )
    )
    segs = kpis[kpis["segment_name"] != ALL]
    if not segs.empty:
        wide = segs.pivot_table(index="period_end", columns="segment_name", values="retention_rate").sort_index()
        out.figures.append(
            (
                "retention rate per segment by period",
                plots.trend_lines(
                    [str(d) for d in wide.index],
                    [("Retention rate per segment", {str(s): _series(wide, s) for s in wide.columns}, True)],
                    dpi=inp.settings.dpi,
                ),
            )
        )
    latest = kpis[kpis["period"] == kpis["period"].min()].sort_values("segment_name")
    shown = [
        "segment_name",
        "active",
        "new",
        "retained",
        "churned",
        "retention_rate",
        "repeat_rate",
        "revenue",
        "aov",
        "satisfaction",
        "nps",
        "complaint_rate",
    ]
    formats = {c: "int" for c in ("active", "new", "retained", "churned")}
    formats.update({c: "pct" for c in ("retention_rate", "repeat_rate", "complaint_rate")})
    formats.update({"revenue": "money", "aov": "money", "satisfaction": "num", "nps": "num"})
    period = latest["period_end"].iloc[0]
    out.tables.append(Table(f"the latest period (to {period})", latest[shown].reset_index(drop=True), formats))


@section(
    "funnel",
    "Campaign funnel",
    "Per campaign, in the order they were sent: sent, delivered, opened, clicked and converted "
    "(gold.campaign_funnel), treatment against control, all segments.",
)
def _funnel(inp: ReportInputs, out: Rendered) -> None:
    funnel = bounded(inp.snapshot("gold.campaign_funnel", "campaign_id", "group", "segment_name"))
    if funnel.empty:
        raise Unavailable(f"gold.campaign_funnel has no rows for {inp.snapshot_date} (no campaign responses yet)")
    rows = funnel[funnel["segment_name"] == ALL].sort_values(["first_sent", "campaign_id", "variant", "group"])
    treated = rows[rows["group"] == "treatment"]
    if not treated.empty:
        labels = [
            f"{c} / {v}" if v != "default" else str(c)
            for c, v in zip(treated["campaign_id"], treated["variant"], strict=True)
        ]
        control = rows[rows["group"] == "control"].set_index(["campaign_id", "variant"])["conversion_rate"]
        control_rate = [
            None if (c, v) not in control.index else float(control.loc[(c, v)])
            for c, v in zip(treated["campaign_id"], treated["variant"], strict=True)
        ]
        out.figures.append(
            (
                "campaign funnel rates over time",
                plots.trend_lines(
                    labels,
                    [
                        (
                            "Treatment funnel",
                            {c: _series(treated, c) for c in ("open_rate", "click_rate", "conversion_rate")},
                            True,
                        ),
                        (
                            "Conversion: treatment vs control",
                            {"treatment": _series(treated, "conversion_rate"), "control": control_rate},
                            True,
                        ),
                    ],
                    dpi=inp.settings.dpi,
                ),
            )
        )
    shown = [
        "campaign_id",
        "variant",
        "group",
        "first_sent",
        "assigned",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "converted",
        "open_rate",
        "click_rate",
        "conversion_rate",
        "revenue",
    ]
    formats = {c: "int" for c in ("assigned", "sent", "delivered", "opened", "clicked", "converted")}
    formats.update({c: "pct" for c in ("open_rate", "click_rate", "conversion_rate")})
    formats["revenue"] = "money"
    out.tables.append(Table("funnel per campaign (all segments)", rows[shown].reset_index(drop=True), formats))
    out.notes.append(
        "Ads and many SMS are not open-tracked, so a campaign can have more clicks than opens; "
        "delivered = sent where the responses carry no bounce (docs/marketing.md)."
    )


@section(
    "variants",
    "Offer variants",
    "Each offer variant against its campaign's control (gold.variant_results, all customers): "
    "rates, lift with its interval, p-value before and after the correction across the "
    "campaign's variants and segments, and the winner.",
)
def _variants(inp: ReportInputs, out: Rendered) -> None:
    res = bounded(inp.snapshot("gold.variant_results", "campaign_id", "variant"))
    res = res[res["level"] == "campaign"] if not res.empty else res
    if res.empty:
        raise Unavailable(f"gold.variant_results has no rows for {inp.snapshot_date} (no campaign responses yet)")
    shown = [
        "campaign_id",
        "variant",
        "n_variant",
        "n_control",
        "rate_variant",
        "rate_control",
        "lift_abs",
        "lift_abs_ci_low",
        "lift_abs_ci_high",
        "p_value",
        "p_adjusted",
        "significant",
        "best",
    ]
    formats = {c: "int" for c in ("n_variant", "n_control")}
    formats.update(
        {c: "pct" for c in ("rate_variant", "rate_control", "lift_abs", "lift_abs_ci_low", "lift_abs_ci_high")}
    )
    formats.update({c: "num" for c in ("p_value", "p_adjusted")})
    rows = res.sort_values(["campaign_id", "variant"])[shown].reset_index(drop=True)
    out.figures.append(
        (
            "lift per variant",
            plots.forest(
                [f"{c} / {v}" for c, v in zip(rows["campaign_id"], rows["variant"], strict=True)],
                _series(rows, "lift_abs"),
                _series(rows, "lift_abs_ci_low"),
                _series(rows, "lift_abs_ci_high"),
                "Lift in response rate, each variant vs the control",
                "absolute lift (interval unadjusted; significance from the corrected p-value)",
                dpi=inp.settings.dpi,
            ),
        )
    )
    out.tables.append(Table("variants against control (all segments)", rows, formats))
    corrections = sorted(set(res["correction"]))
    out.notes.append(
        f"p_adjusted: {', '.join(corrections)} correction over each campaign's variants in every segment "
        "(family_size tests); significant and best read it. A campaign without variants shows one row, default."
    )
