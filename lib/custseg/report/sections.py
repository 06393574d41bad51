"""The report's sections: each turns a few bounded aggregates of the tables into plots and tables.

A section gets the snapshot's tables as lazy DataFrames (``None`` where a table does not
exist), aggregates in Spark (``custseg.report.aggregates``) and brings only the bounded
result to the driver. A missing table, column or snapshot raises ``Unavailable``, which
the report renders as "not available: <why>" instead of failing.

Columns are looked up by name with a few accepted spellings (``pick``) so that the report
follows the gold tables' contracts (docs/tables.md) without breaking on a renamed metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from custseg.report import aggregates as agg
from custseg.report import plots
from custseg.report.settings import ReportSettings
from custseg.runs import latest_runs

log = logging.getLogger(__name__)

MAX_ROWS = 5000  # upper bound on what any section brings to the driver

REPORT_TABLES = (
    "gold.job_runs",
    "meta.reconciliation",
    "bronze.quarantine",
    "gold.customer_features",
    "gold.customer_segments",
    "gold.segment_profiles",
    "gold.segment_quality",
    "gold.segment_migration",
    "gold.segmentation_comparison",
    "gold.association_rules",
    "gold.cross_sell",
    "gold.campaign_plan",
    "gold.campaign_results",
    "gold.kpi_trends",
    "gold.campaign_funnel",
    "gold.segment_strategy",
    "gold.variant_results",
)


class Unavailable(Exception):
    """The section cannot be drawn from the tables there are; the message says why."""


@dataclass(frozen=True)
class ReportInputs:
    snapshot_date: date
    tables: Mapping[str, DataFrame | None]
    settings: ReportSettings = field(default_factory=ReportSettings)
    # The export manifest's activation summaries (per campaign and tool profile); None: no manifest.
    activation: Sequence[Mapping] | None = None

    def get(self, name: str) -> DataFrame | None:
        return self.tables.get(name)

    def table(self, name: str, *required: str) -> DataFrame:
        """The table (whole), or Unavailable when it or one of ``required`` columns is missing."""
        df = self.tables.get(name)
        if df is None:
            raise Unavailable(f"{name} missing")
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise Unavailable(f"{name} lacks column(s) {', '.join(missing)}")
        return df

    def snapshot(self, name: str, *required: str) -> DataFrame:
        """The table's rows of the report's snapshot."""
        return self.table(name, *required).transform(agg.for_snapshot(self.snapshot_date))


@dataclass
class Table:
    caption: str
    frame: pd.DataFrame
    # column -> int | pct | num | money | text
    formats: dict[str, str] = field(default_factory=dict)


@dataclass
class Rendered:
    key: str
    title: str
    intro: str
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (alt text, png)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | unavailable | failed
    message: str = ""


@dataclass(frozen=True)
class SectionSpec:
    key: str
    title: str
    intro: str
    build: Callable[[ReportInputs, Rendered], None]


SECTIONS: list[SectionSpec] = []


def section(key: str, title: str, intro: str):
    def register(fn: Callable[[ReportInputs, Rendered], None]):
        SECTIONS.append(SectionSpec(key, title, intro, fn))
        return fn

    return register


def render_section(spec: SectionSpec, inputs: ReportInputs) -> Rendered:
    """Build one section; a missing input or an error becomes a note, never a failed report."""
    out = Rendered(spec.key, spec.title, spec.intro)
    try:
        spec.build(inputs, out)
    except Unavailable as exc:
        out.status, out.message = "unavailable", f"not available: {exc}"
        out.figures, out.tables = [], []
        log.info("report section %s %s", spec.key, out.message)
    except Exception as exc:  # a bad table must not cost the other sections
        log.exception("report section %s failed", spec.key)
        out.status, out.message = "failed", f"failed: {type(exc).__name__}: {exc}"[:500]
        out.figures, out.tables = [], []
    return out


# --- helpers -------------------------------------------------------------------------


def bounded(df: DataFrame, limit: int = MAX_ROWS) -> pd.DataFrame:
    """A bounded aggregate on the driver; more than ``limit`` rows means a wrong grain, so cut and warn."""
    pdf = df.limit(limit + 1).toPandas()
    if len(pdf) > limit:
        log.warning("report: aggregate has more than %d rows; showing the first %d", limit, limit)
        pdf = pdf.head(limit)
    return pdf


def pick(columns: Sequence[str], *candidates: str) -> str | None:
    """The first of ``candidates`` present in ``columns`` (case-insensitive), as spelled there."""
    lower = {c.lower(): c for c in columns}
    for cand in candidates:
        if cand.lower() in lower:
            return lower[cand.lower()]
    return None


def _num(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


CAMPAIGN = ("campaign_id", "campaign", "campaign_name")
N_TREATMENT = ("n_treatment", "treatment_n", "treatment_size", "treated", "treatment_contacts")
N_CONTROL = ("n_control", "control_n", "control_size", "control", "control_contacts")
SEGMENT = ("segment_name", "segment", "segment_id")


# --- sections ------------------------------------------------------------------------


@section(
    "runs",
    "Job runs",
    "The runs recorded in gold.job_runs for this date: status, rows and time per job "
    "(a run still going, or one that died before recording its end, shows as started).",
)
def _runs(inp: ReportInputs, out: Rendered) -> None:
    runs = inp.table("gold.job_runs", "job", "run_date", "status")
    if "run_id" in runs.columns:  # started + closing rows of one run -> its latest
        runs = runs.transform(latest_runs)
    cols = [
        c
        for c in (
            "job",
            "status",
            "started_at",
            "seconds",
            "rows_in",
            "rows_out",
            "quarantined",
            "error",
        )
        if c in runs.columns
    ]
    pdf = bounded(
        runs.where(F.col("run_date") == F.lit(inp.snapshot_date))
        .select(*cols)
        .orderBy(*[c for c in ("started_at", "job") if c in cols])
    )
    if pdf.empty:
        raise Unavailable(f"gold.job_runs has no run for {inp.snapshot_date}")
    if "seconds" in pdf:
        labels = [f"{j} ({s})" for j, s in zip(pdf["job"], pdf["status"], strict=True)]
        out.figures.append(
            (
                "seconds per job run",
                plots.hbar(
                    labels,
                    np.nan_to_num(_num(pdf["seconds"])),
                    "Wall time per job run",
                    "seconds",
                    dpi=inp.settings.dpi,
                ),
            )
        )
    if "error" in pdf:
        pdf["error"] = pdf["error"].fillna("").str.slice(0, 160)
    if "started_at" in pdf:
        pdf["started_at"] = pd.to_datetime(pdf["started_at"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    out.tables.append(
        Table(
            "Runs",
            pdf,
            {"seconds": "num", "rows_in": "int", "rows_out": "int", "quarantined": "int"},
        )
    )


@section(
    "ingest",
    "Records read, accepted and quarantined",
    "Every landed record of the snapshot's batch is either accepted into bronze or quarantined with a reason; read = accepted + quarantined.",
)
def _ingest(inp: ReportInputs, out: Rendered) -> None:
    recon = inp.table(
        "meta.reconciliation",
        "source",
        "batch_date",
        "records_read",
        "records_accepted",
        "records_quarantined",
    )
    d = inp.snapshot_date
    by_source = bounded(recon.transform(agg.records_by_source(d)).orderBy("source"))
    if by_source.empty:
        raise Unavailable(f"meta.reconciliation has no batch for {d}")
    by_source["reconciles"] = np.where(
        by_source["records_read"] == by_source["records_accepted"] + by_source["records_quarantined"],
        "yes",
        "NO",
    )
    out.figures.append(
        (
            "records per source",
            plots.stacked_hbar(
                list(by_source["source"]),
                {
                    "accepted": _num(by_source["records_accepted"]),
                    "quarantined": _num(by_source["records_quarantined"]),
                },
                f"Records of batch {d} per source",
                "records",
                annotations=[
                    f"{int(q):,} quarantined ({r:.1%})"
                    for q, r in zip(by_source["records_quarantined"], by_source["reject_rate"], strict=True)
                ],
                dpi=inp.settings.dpi,
            ),
        )
    )
    out.tables.append(
        Table(
            "Per source",
            by_source,
            {
                "records_read": "int",
                "records_accepted": "int",
                "records_quarantined": "int",
                "reject_rate": "pct",
            },
        )
    )
    quarantine = inp.get("bronze.quarantine")
    if quarantine is None:
        out.notes.append("quarantine reasons not available: bronze.quarantine missing")
        return
    reasons = bounded(
        quarantine.transform(agg.quarantine_by_reason(d)).orderBy(F.col("records").desc(), "source", "reason")
    )
    if reasons.empty:
        out.notes.append(f"no record of batch {d} was quarantined")
        return
    top = reasons.head(25)
    out.figures.append(
        (
            "quarantined records per reason",
            plots.hbar(
                [f"{s}: {r}" for s, r in zip(top["source"], top["reason"], strict=True)],
                _num(top["records"]),
                "Quarantined records per source and reason",
                "records",
                annotations=[f"{int(v):,}" for v in top["records"]],
                dpi=inp.settings.dpi,
            ),
        )
    )
    out.tables.append(Table("Quarantine reasons", reasons, {"records": "int"}))


@section(
    "rfm",
    "RFM distribution",
    "Customers per recency score (R) and frequency score (F), 5 = most recent / most frequent, and per named RFM segment.",
)
def _rfm(inp: ReportInputs, out: Rendered) -> None:
    feats = inp.snapshot("gold.customer_features", "r_score", "f_score")
    if "monetary" not in feats.columns:
        feats = feats.withColumn("monetary", F.lit(0.0))
    grid = bounded(feats.transform(agg.rf_grid))
    if grid.empty:
        raise Unavailable(f"gold.customer_features has no rows for {inp.snapshot_date}")
    top = int(max(grid["r_score"].max(), grid["f_score"].max(), 1))
    counts = np.zeros((top, top))
    for r, f, n in zip(grid["r_score"], grid["f_score"], grid["customers"], strict=True):
        if pd.notna(r) and pd.notna(f):
            counts[top - int(r), int(f) - 1] += n
    out.figures.append(
        (
            "R x F heatmap",
            plots.heatmap(
                counts,
                [str(r) for r in range(top, 0, -1)],
                [str(f) for f in range(1, top + 1)],
                "Customers per R and F score",
                "F score (frequency)",
                "R score (recency)",
                colour_label="customers",
                dpi=inp.settings.dpi,
            ),
        )
    )
    if "rfm_segment" in feats.columns:
        sizes = bounded(feats.transform(agg.rfm_segment_sizes).orderBy(F.col("customers").desc(), "rfm_segment"))
        total = max(float(sizes["customers"].sum()), 1.0)
        sizes["share"] = sizes["customers"] / total
        out.figures.append(
            (
                "customers per RFM segment",
                plots.hbar(
                    list(sizes["rfm_segment"]),
                    _num(sizes["customers"]),
                    "Customers per RFM segment",
                    "customers",
                    annotations=[f"{s:.1%}" for s in sizes["share"]],
                    dpi=inp.settings.dpi,
                ),
            )
        )
        out.tables.append(Table("RFM segments", sizes, {"customers": "int", "share": "pct"}))


@section(
    "segments",
    "Segment sizes and revenue shares",
    "Share of customers and of window revenue per segment.",
)
def _segments(inp: ReportInputs, out: Rendered) -> None:
    summary = None
    profiles = _profiles(inp, "customers", "customer_share", "revenue", "revenue_share")
    if profiles is not None:
        summary = bounded(profiles.transform(agg.profile_summary).orderBy(F.col("customers").desc(), "segment_id"))
    if summary is None or summary.empty:
        segs = inp.snapshot("gold.customer_segments", "customer_key", "segment_id")
        feats = inp.get("gold.customer_features")
        if feats is not None:
            feats = feats.transform(agg.for_snapshot(inp.snapshot_date))
        else:
            out.notes.append("revenue not available: gold.customer_features missing")
        summary = bounded(segs.transform(agg.segment_summary(feats)).orderBy(F.col("customers").desc(), "segment_id"))
    if summary.empty:
        raise Unavailable(f"gold.customer_segments has no rows for {inp.snapshot_date}")
    out.figures.append(
        (
            "segment sizes and revenue shares",
            plots.grouped_bars(
                list(summary["segment_name"]),
                {
                    "customers": _num(summary["customer_share"]),
                    "revenue": _num(summary["revenue_share"]),
                },
                "Share of customers and revenue per segment",
                "share",
                percent=True,
                dpi=inp.settings.dpi,
            ),
        )
    )
    out.tables.append(
        Table(
            "Segments",
            summary,
            {
                "customers": "int",
                "customer_share": "pct",
                "revenue": "money",
                "revenue_share": "pct",
            },
        )
    )


def _profiles(inp: ReportInputs, *required: str) -> DataFrame | None:
    """segment_profiles of the snapshot when it has ``required`` columns, else None (the caller computes)."""
    profiles = inp.get("gold.segment_profiles")
    if profiles is None or any(c not in profiles.columns for c in ("segment_id", *required)):
        return None
    return profiles.transform(agg.for_snapshot(inp.snapshot_date))


@section(
    "centres",
    "Segment centres",
    "Each segment's centre as z-scores (0 = the average customer, +1 = one standard deviation above); the table gives the centres in the features' own units.",
)
def _centres(inp: ReportInputs, out: Rendered) -> None:
    long = None
    profiles = _profiles(inp, "centre", "centre_z")
    if profiles is not None:
        long = bounded(profiles.transform(agg.profile_centres))
        source = "the model's centres (gold.segment_profiles), on the features it clustered"
    if long is None or long.empty:
        segs = inp.snapshot("gold.customer_segments", "customer_key", "segment_id")
        feats = inp.snapshot("gold.customer_features", "customer_key")
        cols = [c for c in inp.settings.centre_features if c in feats.columns]
        if not cols:
            raise Unavailable(
                f"gold.customer_features has none of report.centre_features ({', '.join(inp.settings.centre_features)})"
            )
        long = bounded(segs.transform(agg.segment_centres(feats, cols)))
        source = "segment means of report.centre_features, z against all segmented customers"
    if long.empty:
        raise Unavailable(f"no segment centre for {inp.snapshot_date}")
    cols = list(dict.fromkeys(long["feature"]))
    z = long.pivot_table(index="segment_name", columns="feature", values="z", aggfunc="first").reindex(columns=cols)
    means = long.pivot_table(index="segment_name", columns="feature", values="mean", aggfunc="first").reindex(
        columns=cols
    )
    names = list(z.index)
    if len(cols) <= 6:
        png = plots.grouped_bars(
            names,
            {c: z[c].to_numpy(dtype=float) for c in cols},
            "Segment centres (z-scores)",
            "z-score",
            dpi=inp.settings.dpi,
        )
    else:  # many features: a segments x features map reads better than a forest of bars
        values = z.to_numpy(dtype=float)
        png = plots.heatmap(
            values,
            names,
            cols,
            "Segment centres (z-scores)",
            "feature",
            "segment",
            annotations=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:+.1f}")(values),
            colour_label="z",
            dpi=inp.settings.dpi,
        )
    out.figures.append(("segment centres", png))
    out.notes.append(f"source: {source}")
    table = means.reset_index().rename(columns={"segment_name": "segment"})
    out.tables.append(Table("Segment centres in original units", table, {c: "num" for c in cols}))


@section(
    "k_selection",
    "Choosing k: silhouette and within-cluster SS",
    "Silhouette (higher is better) and within-cluster sum of squares (the elbow) for every k tried.",
)
def _k_selection(inp: ReportInputs, out: Rendered) -> None:
    quality = inp.snapshot("gold.segment_quality")
    k_col = pick(quality.columns, "k", "n_clusters", "num_clusters")
    if k_col is None:
        raise Unavailable("gold.segment_quality lacks a k column")
    if "kind" in quality.columns:  # long table of the segment stage: k curve, overall and per-segment rows
        quality = quality.where(F.col("kind") == "k_selection")
    pdf = bounded(quality.where(F.col(k_col).isNotNull()))
    if pdf.empty:
        raise Unavailable(f"gold.segment_quality has no k curve for {inp.snapshot_date}")
    sil_names = ("silhouette", "silhouette_score")
    wss_names = (
        "wss",
        "within_ss",
        "wssse",
        "inertia",
        "within_cluster_ss",
        "training_cost",
        "cost",
    )
    metric_col, value_col = (
        pick(pdf.columns, "metric", "measure", "name"),
        pick(pdf.columns, "value", "score"),
    )
    if pick(pdf.columns, *sil_names, *wss_names) is None and metric_col and value_col:
        pdf = pdf.pivot_table(index=k_col, columns=metric_col, values=value_col, aggfunc="first").reset_index()
    sil, wss = pick(pdf.columns, *sil_names), pick(pdf.columns, *wss_names)
    if sil is None and wss is None:
        raise Unavailable("gold.segment_quality has neither silhouette nor WSS per k")
    chosen = _chosen_k(inp, pdf, k_col)
    keep = [c for c in (sil, wss) if c]
    curve = pdf.groupby(k_col, as_index=False)[keep].first().sort_values(k_col)
    ks = _num(curve[k_col])
    panels = []
    if sil:
        panels.append(("Silhouette", "silhouette", _num(curve[sil])))
    if wss:
        panels.append(("Within-cluster sum of squares", "WSS", _num(curve[wss])))
    out.figures.append(
        (
            "silhouette and WSS over k",
            plots.line_panels(ks, panels, "k", mark_x=chosen, dpi=inp.settings.dpi),
        )
    )
    table = curve.rename(columns={k_col: "k"})
    out.tables.append(Table("Quality per k", table, {"k": "int", **{c: "num" for c in keep}}))
    if chosen is not None:
        out.notes.append(f"chosen k = {chosen:g}")


def _chosen_k(inp: ReportInputs, pdf: pd.DataFrame, k_col: str) -> float | None:
    flag = pick(pdf.columns, "chosen", "selected", "is_chosen", "is_selected")
    if flag is not None:
        hits = pdf.loc[pdf[flag].fillna(False).astype(bool), k_col]
        if len(hits):
            return float(hits.iloc[0])
    value = pick(pdf.columns, "chosen_k", "k_chosen", "best_k", "selected_k")
    if value is not None and pdf[value].notna().any():
        return float(pdf[value].dropna().iloc[0])
    segs = inp.get("gold.customer_segments")
    if segs is not None and "segment_id" in segs.columns:
        n = (
            segs.transform(agg.for_snapshot(inp.snapshot_date))
            .agg(F.count_distinct("segment_id").alias("n"))
            .first()["n"]
        )
        return float(n) if n else None
    return None


COMPARISON_CRITERIA = ("distinctiveness", "stability", "interpretability", "effectiveness")


@section(
    "segmentation_comparison",
    "Segmentation comparison",
    "RFM cells and the clustering algorithms on the same snapshot, scored on the paper's four criteria "
    "(higher is better) and ranked; the recommended candidate has the lowest rank sum (docs/segments.md).",
)
def _comparison(inp: ReportInputs, out: Rendered) -> None:
    table = inp.snapshot("gold.segmentation_comparison", "candidate", *COMPARISON_CRITERIA)
    pdf = bounded(table.orderBy(F.col("rank_sum").asc_nulls_last(), "candidate"))
    if pdf.empty:
        raise Unavailable(f"no segmentation comparison for {inp.snapshot_date} (segment.comparison.enabled is off)")
    out.figures.append(
        (
            "the four criteria per candidate segmentation",
            plots.grouped_bars(
                list(pdf["candidate"]),
                {c: np.nan_to_num(_num(pdf[c])) for c in COMPARISON_CRITERIA},
                "Criteria per candidate (higher is better)",
                "score",
                dpi=inp.settings.dpi,
            ),
        )
    )
    cols = [
        c
        for c in (
            "candidate",
            "k",
            *COMPARISON_CRITERIA,
            "effectiveness_basis",
            "effectiveness_p_value",
            "ari_previous",
            "features_per_segment",
            "rank_sum",
            "recommended",
            "used",
            "note",
        )
        if c in pdf.columns
    ]
    fmt = {
        "k": "int",
        "rank_sum": "int",
        **{c: "num" for c in (*COMPARISON_CRITERIA, "ari_previous", "features_per_segment")},
    }
    out.tables.append(Table("Candidates", pdf[cols], {**fmt, "effectiveness_p_value": "num"}))
    if "recommended" in pdf.columns and pdf["recommended"].fillna(False).astype(bool).any():
        out.notes.append(f"recommended: {pdf.loc[pdf['recommended'].fillna(False).astype(bool), 'candidate'].iloc[0]}")


@section(
    "migration",
    "Segment migration",
    "Customers per segment in the previous snapshot (rows) and in this one (columns); colour is the share of the row.",
)
def _migration(inp: ReportInputs, out: Rendered) -> None:
    pdf = _migration_from_table(inp)
    if pdf is None:
        pdf = _migration_from_segments(inp)
    if pdf.empty:
        raise Unavailable(f"no migration rows for {inp.snapshot_date}")
    special = (agg.NEW_LABEL, agg.LEFT_LABEL)
    rows = sorted({r for r in pdf["from_segment"] if r not in special}) + [
        r for r in special if r in set(pdf["from_segment"])
    ]
    cols = sorted({c for c in pdf["to_segment"] if c not in special}) + [
        c for c in special if c in set(pdf["to_segment"])
    ]
    matrix = np.zeros((len(rows), len(cols)))
    for f, t, n in zip(pdf["from_segment"], pdf["to_segment"], _num(pdf["customers"]), strict=True):
        matrix[rows.index(f), cols.index(t)] += n
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    out.figures.append(
        (
            "migration matrix",
            plots.heatmap(
                matrix,
                rows,
                cols,
                "Customers moving between segments",
                "this snapshot",
                "previous snapshot",
                colour_values=share,
                colour_label="share of row",
                dpi=inp.settings.dpi,
            ),
        )
    )
    stayed = sum(matrix[rows.index(s), cols.index(s)] for s in rows if s in cols and s not in special)
    in_both = sum(
        matrix[i, j] for i, r in enumerate(rows) for j, c in enumerate(cols) if r not in special and c not in special
    )
    if in_both:
        out.notes.append(f"{stayed / in_both:.1%} of the customers present in both snapshots kept their segment")
    out.tables.append(Table("Migration", pdf.sort_values(["from_segment", "to_segment"]), {"customers": "int"}))


def _migration_from_table(inp: ReportInputs) -> pd.DataFrame | None:
    mig = inp.get("gold.segment_migration")
    if mig is None:
        return None
    mig = mig.transform(agg.for_snapshot(inp.snapshot_date))
    src = pick(
        mig.columns,
        "from_segment_name",
        "from_segment",
        "previous_segment",
        "prev_segment",
        "segment_from",
        "from_segment_id",
    )
    dst = pick(
        mig.columns,
        "to_segment_name",
        "to_segment",
        "current_segment",
        "segment_to",
        "to_segment_id",
    )
    n = pick(mig.columns, "customers", "n_customers", "count", "n")
    if not (src and dst and n):
        log.warning(
            "gold.segment_migration has no from/to/count columns (%s); computing from customer_segments",
            mig.columns,
        )
        return None
    pdf = bounded(
        mig.select(
            F.coalesce(F.col(src).cast("string"), F.lit(agg.NEW_LABEL)).alias("from_segment"),
            F.coalesce(F.col(dst).cast("string"), F.lit(agg.LEFT_LABEL)).alias("to_segment"),
            F.col(n).cast("long").alias("customers"),
        )
    )
    return pdf if not pdf.empty else None


def _migration_from_segments(inp: ReportInputs) -> pd.DataFrame:
    if inp.get("gold.customer_segments") is None and inp.get("gold.segment_migration") is None:
        raise Unavailable("gold.segment_migration missing")
    segs = inp.table("gold.customer_segments", "customer_key", "segment_id", "snapshot_date")
    prev_date = (
        segs.where(F.col("snapshot_date") < F.lit(inp.snapshot_date))
        .agg(F.max("snapshot_date").alias("d"))
        .first()["d"]
    )
    if prev_date is None:
        raise Unavailable(f"no snapshot before {inp.snapshot_date} in gold.customer_segments (first run)")
    previous = segs.where(F.col("snapshot_date") == F.lit(prev_date))
    current = segs.transform(agg.for_snapshot(inp.snapshot_date))
    return bounded(current.transform(agg.migration_matrix(previous)))


@section(
    "rules",
    "Top association rules",
    "Rules of highest lift: customers who bought the left side also bought the right side.",
)
def _rules(inp: ReportInputs, out: Rendered) -> None:
    rules = inp.snapshot("gold.association_rules", "antecedent", "consequent", "confidence", "lift")
    if "segment_id" in rules.columns:  # rules mined per segment sit beside the all-customer ones
        rules = rules.where(F.col("segment_id").isNull())
    if "support" not in rules.columns:
        rules = rules.withColumn("support", F.lit(None).cast("double"))
    top = bounded(rules.transform(agg.top_rules(inp.settings.top_rules)))
    if top.empty:
        raise Unavailable(f"gold.association_rules has no rule for {inp.snapshot_date}")
    out.figures.append(
        (
            "top rules by lift",
            plots.hbar(
                [f"{a} \u2192 {c}" for a, c in zip(top["antecedent"], top["consequent"], strict=True)],
                _num(top["lift"]),
                f"Top {len(top)} rules by lift",
                "lift",
                annotations=[f"conf {v:.0%}" for v in _num(top["confidence"])],
                dpi=inp.settings.dpi,
            ),
        )
    )
    out.tables.append(Table("Rules", top, {"support": "pct", "confidence": "pct", "lift": "num"}))


@section(
    "cross_sell",
    "Cross-sell coverage",
    "Share of customers with at least one cross-sell offer, per segment, and the items offered most.",
)
def _cross_sell(inp: ReportInputs, out: Rendered) -> None:
    cs = inp.snapshot("gold.cross_sell", "customer_key")
    segs, feats = inp.get("gold.customer_segments"), inp.get("gold.customer_features")
    if segs is not None and "segment_id" in segs.columns:
        segs = segs.transform(agg.for_snapshot(inp.snapshot_date))
        base = segs.select("customer_key", agg.segment_label(segs).alias("segment"))
    elif feats is not None:
        base = feats.transform(agg.for_snapshot(inp.snapshot_date)).select("customer_key")
    else:
        raise Unavailable("needs gold.customer_segments or gold.customer_features as the customer base")
    cov = bounded(base.transform(agg.cross_sell_coverage(cs)))
    if cov.empty or cov["customers"].sum() == 0:
        raise Unavailable(f"no customers for {inp.snapshot_date}")
    cov["_all"] = cov["segment"] == agg.ALL_LABEL
    cov = cov.sort_values(["_all", "coverage"], ascending=[True, False]).drop(columns="_all")
    out.figures.append(
        (
            "cross-sell coverage per segment",
            plots.hbar(
                list(cov["segment"]),
                _num(cov["coverage"]),
                "Customers with a cross-sell offer",
                "coverage",
                annotations=[
                    f"{int(w):,} / {int(n):,}" for w, n in zip(cov["with_offer"], cov["customers"], strict=True)
                ],
                percent=True,
                dpi=inp.settings.dpi,
            ),
        )
    )
    out.tables.append(Table("Coverage", cov, {"customers": "int", "with_offer": "int", "coverage": "pct"}))
    item = pick(cs.columns, "consequent", "item", "sku", "category", "recommended_item", "offer", "items")
    if item is None:
        out.notes.append("offered items not shown: gold.cross_sell has no item column")
        return
    items = bounded(cs.transform(agg.top_offered_items(item, 15)))
    if not items.empty:
        out.figures.append(
            (
                "items offered most",
                plots.hbar(
                    list(items["item"]),
                    _num(items["customers"]),
                    "Items offered to the most customers",
                    "customers",
                    dpi=inp.settings.dpi,
                ),
            )
        )
        out.tables.append(Table("Items offered most", items, {"customers": "int"}))


PLAN_METRICS = {
    "contacts": ("contacts", "audience_size", "n_contacts"),
    "cost": ("cost", "total_cost"),
    "responses": ("expected_responses", "responses", "exp_responses"),
    "response_rate": ("response_rate", "expected_response_rate"),
    "revenue": ("revenue", "expected_revenue"),
    "profit": ("profit", "expected_profit"),
    "roi": ("roi", "expected_roi"),
}
STRATEGIES = ("precision", "blanket", "random")


@section(
    "plan",
    "Campaign plan against blanket targeting",
    "Expected results of the precision audience beside blanket targeting of every eligible customer (and a random audience of the same size).",
)
def _plan(inp: ReportInputs, out: Rendered) -> None:
    plan = inp.snapshot("gold.campaign_plan")
    pdf = bounded(plan)
    if pdf.empty:
        raise Unavailable(f"gold.campaign_plan has no rows for {inp.snapshot_date}")
    long = plan_long(pdf)
    if long.empty:
        raise Unavailable(f"gold.campaign_plan has no strategy / metric columns ({', '.join(pdf.columns)})")
    if "response_rate" not in long and {"responses", "contacts"} <= set(long):
        long["response_rate"] = _num(long["responses"]) / np.maximum(_num(long["contacts"]), 1)
    if "roi" not in long and {"profit", "cost"} <= set(long):
        long["roi"] = _num(long["profit"]) / np.where(_num(long["cost"]) > 0, _num(long["cost"]), np.nan)
    campaigns = list(dict.fromkeys(long["campaign"]))
    strategies = [s for s in STRATEGIES if s in set(long["strategy"])] + sorted(set(long["strategy"]) - set(STRATEGIES))

    def series(metric: str) -> dict[str, list[float]]:
        table = long.pivot_table(index="campaign", columns="strategy", values=metric, aggfunc="first")
        return {
            s: [float(table.at[c, s]) if c in table.index and s in table.columns else np.nan for c in campaigns]
            for s in strategies
        }

    panels = [m for m in ("response_rate", "roi", "profit") if m in long]
    if not panels:
        raise Unavailable("gold.campaign_plan has no response rate, ROI or profit")
    titles = {
        "response_rate": ("Response rate", "rate", True),
        "roi": ("ROI", "profit / cost", False),
        "profit": ("Expected profit", "profit", False),
    }
    first, *rest = panels
    t, ylab, pct = titles[first]
    out.figures.append(
        (
            "plan against blanket targeting",
            plots.grouped_bars(
                campaigns,
                series(first),
                t,
                ylab,
                percent=pct,
                axes=[(titles[m][0], titles[m][1], series(m), titles[m][2]) for m in rest[:2]],
                dpi=inp.settings.dpi,
            ),
        )
    )
    formats = {
        "contacts": "int",
        "cost": "money",
        "responses": "num",
        "response_rate": "pct",
        "revenue": "money",
        "profit": "money",
        "roi": "num",
    }
    order = ["campaign", "strategy", *[m for m in PLAN_METRICS if m in long]]
    rank = {s: i for i, s in enumerate(strategies)}
    shown = long.assign(_c=long["campaign"].map(campaigns.index), _s=long["strategy"].map(rank)).sort_values(
        ["_c", "_s"]
    )
    out.tables.append(Table("Plan", shown[order], formats))
    _targeting(pdf, out)


TARGETING_COLUMNS = ("model", "auc_validation", "propensity_source", "propensity_label", "consent_basis")


def _targeting(pdf: pd.DataFrame, out: Rendered) -> None:
    """Per campaign: the propensity model, what it predicts and where consent came from."""
    campaign = pick(pdf.columns, *CAMPAIGN)
    cols = [c for c in TARGETING_COLUMNS if c in pdf.columns]
    if campaign is None or not cols:
        return
    table = pdf[[campaign, *cols]].drop_duplicates(subset=[campaign]).rename(columns={campaign: "campaign"})
    out.tables.append(Table("Targeting model and consent", table, {"auc_validation": "num"}))
    if "consent_basis" in table and table["consent_basis"].astype(str).str.startswith("assumed").any():
        out.notes.append(
            "Consent is ASSUMED for customers without recorded consent (marketing.consent.policy: "
            "assume_opted_in): check that it was collected elsewhere before sending."
        )
    if "consent_basis" in table and table["consent_basis"].astype(str).str.startswith("file").any():
        out.notes.append(
            "Consent comes from the retailer's consent export (marketing.consent.policy: from_file): the latest "
            "record per customer and channel; customers absent from it are not contacted."
        )


def plan_long(pdf: pd.DataFrame) -> pd.DataFrame:
    """The plan as rows of (campaign, strategy, metrics...), from a long or a wide table.

    Long: a strategy column (precision / blanket / random) and one column per metric.
    Wide: columns ``<strategy>_<metric>`` (e.g. ``blanket_contacts``).
    """
    campaign = pick(pdf.columns, *CAMPAIGN)
    camp = pdf[campaign].astype(str) if campaign else pd.Series(["campaign"] * len(pdf), index=pdf.index)
    strategy = pick(
        pdf.columns,
        "strategy",
        "targeting",
        "scenario",
        "approach",
        "plan_type",
        "variant",
        "audience_type",
    )
    if strategy is not None:
        out = pd.DataFrame({"campaign": camp, "strategy": pdf[strategy].astype(str).str.lower()})
        for metric, names in PLAN_METRICS.items():
            col = pick(pdf.columns, *names)
            if col is not None:
                out[metric] = _num(pdf[col])
        return out if len(out.columns) > 2 else out.iloc[0:0]
    frames = []
    for strat in STRATEGIES:
        part = pd.DataFrame({"campaign": camp, "strategy": strat})
        for metric, names in PLAN_METRICS.items():
            col = pick(pdf.columns, *[f"{strat}_{n}" for n in names])
            if col is not None:
                part[metric] = _num(pdf[col])
        if len(part.columns) > 2:
            frames.append(part)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["campaign", "strategy"])


@section(
    "lift",
    "Campaign lift",
    "Response rate of the treated group minus that of the holdout, with its 95% confidence interval; green where the interval excludes zero.",
)
def _lift(inp: ReportInputs, out: Rendered) -> None:
    results = inp.snapshot("gold.campaign_results")
    cols = results.columns
    counts = {
        "n_treatment": pick(cols, *N_TREATMENT),
        "responses_treatment": pick(
            cols,
            "responses_treatment",
            "treatment_responses",
            "treatment_conversions",
            "conversions_treatment",
        ),
        "n_control": pick(cols, *N_CONTROL),
        "responses_control": pick(
            cols,
            "responses_control",
            "control_responses",
            "control_conversions",
            "conversions_control",
        ),
    }
    lift = pick(cols, "lift_abs", "abs_lift", "absolute_lift", "lift")
    low = pick(
        cols,
        "lift_abs_ci_low",
        "lift_ci_low",
        "ci_low",
        "ci_lower",
        "lift_ci_lower",
        "lift_low",
        "ci_lo",
    )
    high = pick(
        cols,
        "lift_abs_ci_high",
        "lift_ci_high",
        "ci_high",
        "ci_upper",
        "lift_ci_upper",
        "lift_high",
        "ci_hi",
    )
    if not (lift and low and high):
        if not all(counts.values()):
            raise Unavailable("gold.campaign_results has neither lift with interval nor treatment / control counts")
        results = results.select(
            *[c for c in cols if c not in counts.values()],
            *[F.col(v).alias(k) for k, v in counts.items()],
        ).transform(agg.lift_interval())
        lift, low, high = "lift_abs", "ci_low", "ci_high"
    pdf = bounded(results)
    if pdf.empty:
        raise Unavailable(f"gold.campaign_results has no rows for {inp.snapshot_date}")
    pdf = _campaign_level(pdf)
    campaign = pick(pdf.columns, *CAMPAIGN)
    labels = pdf[campaign].astype(str).tolist() if campaign else [f"row {i + 1}" for i in range(len(pdf))]
    seg = pick(pdf.columns, *SEGMENT)
    if seg is not None and pdf[seg].notna().any():
        labels = [f"{c} / {s}" if pd.notna(s) else c for c, s in zip(labels, pdf[seg], strict=True)]
    out.figures.append(
        (
            "campaign lift with confidence intervals",
            plots.forest(
                labels,
                _num(pdf[lift]),
                _num(pdf[low]),
                _num(pdf[high]),
                "Lift in response rate, treatment vs holdout",
                "absolute lift (95% CI)",
                dpi=inp.settings.dpi,
            ),
        )
    )
    rate_t = pick(pdf.columns, "treatment_rate", "rate_treatment", "response_rate_treatment")
    rate_c = pick(pdf.columns, "control_rate", "rate_control", "response_rate_control")
    n_t, n_c = pick(pdf.columns, *N_TREATMENT), pick(pdf.columns, *N_CONTROL)
    extra = [
        pick(pdf.columns, *names)
        for names in (
            ("lift_rel", "relative_lift", "rel_lift"),
            ("p_value", "pvalue"),
            ("incremental_revenue",),
            ("roi",),
        )
    ]
    shown = [c for c in (campaign, seg, n_t, n_c, rate_t, rate_c, lift, low, high, *extra) if c and c in pdf.columns]
    shown = list(dict.fromkeys(shown))
    formats = {c: "pct" for c in (rate_t, rate_c, lift, low, high) if c}
    formats.update({c: "int" for c in (n_t, n_c) if c})
    formats.update({c: "num" for c in shown if c not in formats and c not in (campaign, seg)})
    out.tables.append(Table("Lift", pdf[shown], formats))


def _campaign_level(pdf: pd.DataFrame) -> pd.DataFrame:
    """Campaign-level rows when results also hold per-segment rows (a level column or a null segment)."""
    level = pick(pdf.columns, "level", "grain", "breakdown")
    if level is not None:
        overall = pdf[pdf[level].astype(str).str.lower().isin(["campaign", "overall", "all", "total"])]
        return overall if len(overall) else pdf
    seg = pick(pdf.columns, *SEGMENT)
    if seg is not None:
        overall = pdf[pdf[seg].isna() | pdf[seg].astype(str).str.lower().isin(["all", "overall", "*", "total"])]
        if len(overall):
            return overall
        return pdf.head(40)
    return pdf
