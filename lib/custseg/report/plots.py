"""matplotlib plots rendered to PNG bytes, headless.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state, no GUI backend),
and the Agg backend is forced for anyone importing pyplot afterwards, so the report
renders the same on a laptop, a cluster driver or CI.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg", force=True)

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

PALETTE = ["#2f6690", "#d1495b", "#edae49", "#66a182", "#8e6c8a", "#00798c", "#3a3a3a", "#f28f3b"]


def to_png(fig: Figure, dpi: int = 96) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _height(n: int, per: float = 0.38, base: float = 1.6) -> float:
    return max(2.6, base + per * n)


def stacked_hbar(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    xlabel: str,
    annotations: Sequence[str] | None = None,
    dpi: int = 96,
) -> bytes:
    """One horizontal bar per label, split into the series (e.g. accepted / quarantined)."""
    fig = Figure(figsize=(8, _height(len(labels))))
    ax = fig.add_subplot()
    left = np.zeros(len(labels))
    for i, (name, values) in enumerate(series.items()):
        vals = np.asarray(values, dtype=float)
        ax.barh(labels, vals, left=left, label=name, color=PALETTE[i % len(PALETTE)])
        left += vals
    if annotations is not None:
        for i, text in enumerate(annotations):
            ax.text(left[i], i, f" {text}", va="center", fontsize=8)
        ax.set_xlim(0, (left.max() if len(left) else 1) * 1.35 or 1)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=len(series), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return to_png(fig, dpi)


def hbar(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    xlabel: str,
    annotations: Sequence[str] | None = None,
    percent: bool = False,
    dpi: int = 96,
) -> bytes:
    """Horizontal bars, first label on top, optional text at the end of each bar."""
    fig = Figure(figsize=(8, _height(len(labels))))
    ax = fig.add_subplot()
    vals = np.asarray(values, dtype=float)
    ax.barh(range(len(labels)), vals, color=PALETTE[0])
    ax.set_yticks(range(len(labels)), labels=list(labels))
    ax.invert_yaxis()
    if annotations is not None:
        for i, (v, text) in enumerate(zip(vals, annotations, strict=True)):
            ax.text(v, i, f" {text}", va="center", fontsize=8)
        ax.set_xlim(0, (np.nanmax(vals) if len(vals) else 1) * 1.3 or 1)
    if percent:
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return to_png(fig, dpi)


def grouped_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    ylabel: str,
    percent: bool = False,
    axes: Sequence[tuple[str, str, Mapping[str, Sequence[float]], bool]] | None = None,
    dpi: int = 96,
) -> bytes:
    """Bars grouped by category, one colour per series; ``axes`` adds more panels side by side.

    Each panel of ``axes`` is (title, ylabel, series, percent).
    """
    panels = [(title, ylabel, series, percent), *(axes or [])]
    per_panel = max(6.0, 1.1 * len(categories) + 3) if len(panels) == 1 else max(4.5, 0.9 * len(categories) + 2.5)
    fig = Figure(figsize=(min(per_panel * len(panels), 16.0), 4.2))
    for p, (ptitle, plabel, pseries, ppct) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), p + 1)
        n = max(len(pseries), 1)
        width = 0.8 / n
        x = np.arange(len(categories))
        for i, (name, values) in enumerate(pseries.items()):
            vals = np.asarray([np.nan if v is None else v for v in values], dtype=float)
            ax.bar(
                x + (i - (n - 1) / 2) * width,
                vals,
                width,
                label=name,
                color=PALETTE[i % len(PALETTE)],
            )
        ax.set_xticks(
            x,
            labels=list(categories),
            rotation=30 if len(categories) > 4 else 0,
            ha="right" if len(categories) > 4 else "center",
        )
        ax.axhline(0, color="#555", linewidth=0.6)
        if ppct:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(ptitle)
        ax.set_ylabel(plabel)
        ax.grid(axis="y", alpha=0.3)
        if len(pseries) > 1:
            ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return to_png(fig, dpi)


def heatmap(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    xlabel: str,
    ylabel: str,
    annotations: np.ndarray | None = None,
    colour_values: np.ndarray | None = None,
    colour_label: str = "",
    dpi: int = 96,
) -> bytes:
    """A matrix with a colour bar; cells annotated with ``annotations`` (default: the values)."""
    colours = matrix if colour_values is None else colour_values
    rows, cols = matrix.shape
    fig = Figure(figsize=(max(5.0, 0.9 * cols + 3), max(3.5, 0.55 * rows + 1.8)))
    ax = fig.add_subplot()
    im = ax.imshow(colours, cmap="viridis", aspect="auto")
    ax.set_xticks(
        range(cols),
        labels=list(col_labels),
        rotation=30 if cols > 5 else 0,
        ha="right" if cols > 5 else "center",
    )
    ax.set_yticks(range(rows), labels=list(row_labels))
    finite = colours[np.isfinite(colours)]
    mid = (np.nanmax(finite) + np.nanmin(finite)) / 2 if finite.size else 0
    text = annotations if annotations is not None else matrix
    for i in range(rows):
        for j in range(cols):
            value = text[i, j]
            label = value if isinstance(value, str) else (f"{value:,.0f}" if np.isfinite(value) else "")
            colour = "white" if np.isfinite(colours[i, j]) and colours[i, j] < mid else "black"
            ax.text(j, i, label, ha="center", va="center", fontsize=8, color=colour)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    bar = fig.colorbar(im, ax=ax)
    if colour_label:
        bar.set_label(colour_label)
    return to_png(fig, dpi)


def line_panels(
    x: Sequence[float],
    panels: Sequence[tuple[str, str, Sequence[float]]],
    xlabel: str,
    mark_x: float | None = None,
    dpi: int = 96,
) -> bytes:
    """One line plot per (title, ylabel, y) side by side over the same x, with x = mark_x highlighted."""
    fig = Figure(figsize=(5.2 * len(panels), 3.8))
    for p, (title, ylabel, y) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), p + 1)
        ys = np.asarray([np.nan if v is None else v for v in y], dtype=float)
        ax.plot(x, ys, marker="o", color=PALETTE[p % len(PALETTE)])
        if mark_x is not None:
            ax.axvline(mark_x, color="#d1495b", linestyle="--", linewidth=1, label=f"chosen k = {mark_x:g}")
            ax.legend(frameon=False, fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xticks(list(x))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return to_png(fig, dpi)


def forest(
    labels: Sequence[str],
    estimates: Sequence[float],
    low: Sequence[float],
    high: Sequence[float],
    title: str,
    xlabel: str,
    percent: bool = True,
    dpi: int = 96,
) -> bytes:
    """Point estimates with their intervals, one row per label, zero marked."""
    est = np.asarray(estimates, dtype=float)
    lo = np.asarray(low, dtype=float)
    hi = np.asarray(high, dtype=float)
    fig = Figure(figsize=(8, _height(len(labels), per=0.45)))
    ax = fig.add_subplot()
    y = np.arange(len(labels))
    err = np.vstack([np.where(np.isfinite(lo), est - lo, 0), np.where(np.isfinite(hi), hi - est, 0)])
    significant = np.isfinite(lo) & ((lo > 0) | (hi < 0))
    colours = [PALETTE[3] if s else PALETTE[6] for s in significant]
    ax.errorbar(est, y, xerr=err, fmt="none", ecolor="#777", capsize=4)
    ax.scatter(est, y, color=colours, zorder=3)
    ax.axvline(0, color="#d1495b", linewidth=1)
    ax.set_yticks(y, labels=list(labels))
    ax.invert_yaxis()
    if percent:
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return to_png(fig, dpi)


def trend_lines(
    labels: Sequence[str],
    panels: Sequence[tuple[str, Mapping[str, Sequence[float | None]], bool]],
    dpi: int = 96,
) -> bytes:
    """Panels side by side over the same ordered labels (e.g. period ends); each panel is
    (title, {series: values}, percent). A missing value breaks its line."""
    fig = Figure(figsize=(min(4.8 * len(panels), 16.0), 3.8))
    x = np.arange(len(labels))
    step = max(1, len(labels) // 8)  # at most ~8 tick labels
    for p, (title, series, percent) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), p + 1)
        for i, (name, values) in enumerate(series.items()):
            ys = np.asarray([np.nan if v is None else v for v in values], dtype=float)
            ax.plot(x, ys, marker="o", markersize=3, label=name, color=PALETTE[i % len(PALETTE)])
        ax.set_xticks(x[::step], labels=list(labels)[::step], rotation=30, ha="right")
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return to_png(fig, dpi)
