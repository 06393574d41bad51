"""Targets of issue 9 judged from a result, and the JSON + markdown files."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _stage(result: dict, name: str) -> dict | None:
    return next((s for s in result["stages"] if s["name"] == name), None)


def targets(result: dict) -> list[dict]:
    """Each target: name, figure, limit, met (True/False/None when not measurable here)."""
    out = []
    total = result["pipeline_seconds"]
    peak = max((s["peak_driver_rss_mb"] for s in result["stages"]), default=0)
    failed = sum(s["failed_stages"] for s in result["stages"])
    if result["scale"] == "m":
        out.append({"target": "m-scale pipeline within 20 minutes", "figure": f"{total:.0f} s", "met": total <= 1200})
    out.append(
        {
            "target": "driver at most 4 GiB (heap set by spark.driver.memory; peak RSS of driver JVM + Python measured)",
            "figure": f"{result['machine']['driver_memory']} heap, peak RSS {peak:.0f} MiB",
            "met": None,
        }
    )
    out.append({"target": "no failed Spark stage", "figure": str(failed), "met": failed == 0})
    b = result.get("baselines", {})
    feat = _stage(result, "features")
    if feat and "spark_floor" in b:
        ratio = feat["seconds"] / b["spark_floor"]["seconds"]
        out.append(
            {
                "target": "feature stage within 2x of the bare-scan floor",
                "figure": f"{ratio:.2f}x ({feat['seconds']:.0f} s vs {b['spark_floor']['seconds']:.0f} s)",
                "met": ratio <= 2,
            }
        )
    if "mlxtend" in b and "fpgrowth_spark" in b:
        s, m = b["fpgrowth_spark"]["seconds"], b["mlxtend"]["seconds"]
        out.append(
            {
                "target": "FP-Growth faster than mlxtend" + (" (at m scale)" if result["scale"] == "m" else ""),
                "figure": f"Spark {s:.1f} s vs mlxtend {m:.1f} s; same rules: {b['mlxtend'].get('same_rules')}",
                "met": s < m,
            }
        )
    if "sklearn_kmeans" in b:
        rel = b["sklearn_kmeans"].get("inertia_rel_diff")
        out.append(
            {
                "target": "KMeans inertia within 1% of scikit-learn",
                "figure": f"{rel:+.3%}" if rel is not None else "n/a",
                "met": None if rel is None else rel <= 0.01,
            }
        )
    other = RESULTS / ("s.json" if result["scale"] == "m" else "m.json")
    if other.exists():
        o = json.loads(other.read_text())
        small, large = (o, result) if result["scale"] == "m" else (result, o)
        data_ratio = (large["data"]["customers"] or 1) / (small["data"]["customers"] or 1)
        time_ratio = large["pipeline_seconds"] / max(small["pipeline_seconds"], 1e-9)
        out.append(
            {
                "target": "s -> m: time grows no faster than the data",
                "figure": f"data x{data_ratio:.0f}, time x{time_ratio:.1f}",
                "met": time_ratio <= data_ratio,
            }
        )
    return out


def num(value, scale: float = 1.0, fmt: str = ".0f") -> str:
    """A figure, or '-' where it was not measured (None)."""
    return "-" if value is None else format(value / scale if scale != 1.0 else value, fmt)


def markdown(result: dict) -> str:
    lines = [
        f"### Scale {result['scale']}: {num(result['data'].get('customers'), fmt=',')} customers, {result['machine']['cores']} cores, "
        f"{result['machine']['master']}, driver {result['machine']['driver_memory']}",
        "",
        f"Pipeline: **{result['pipeline_seconds']:.0f} s**"
        + (f" on {result['engine']}" if result.get("engine") else ""),
        "",
        "| stage | seconds | rows in | rows/s | peak driver RSS MiB | shuffle read MiB | shuffle write MiB | spill MiB | failed stages |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    mib = 2**20
    for s in result["stages"]:
        lines.append(
            f"| {s['name']} | {s['seconds']:.1f} | {s['rows_in'] or 0:,} | {num(s['rows_per_s'], fmt=',.0f')} | "
            f"{num(s['peak_driver_rss_mb'])} | {num(s['shuffle_read_bytes'], mib)} | {num(s['shuffle_write_bytes'], mib)} | "
            f"{num(s['spill_disk_bytes'], mib)} | {num(s['failed_stages'], fmt='d')} |"
        )
    engines = result.get("engines") or {}
    if len(engines) > 1:
        names = list(engines)
        lines += [
            "",
            "Storage engines side by side (seconds; the table above is " + names[0] + "):",
            "",
            "| stage | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        by_stage = {e: {s["name"]: s["seconds"] for s in v["stages"]} for e, v in engines.items()}
        for stage in [s["name"] for s in engines[names[0]]["stages"]]:
            cells = " | ".join(num(by_stage[e].get(stage), fmt=".1f") for e in names)
            lines.append(f"| {stage} | {cells} |")
        total = " | ".join(f"**{engines[e]['pipeline_seconds']:.0f}**" for e in names)
        lines.append(f"| pipeline | {total} |")
    if result.get("baselines"):
        lines += ["", "| baseline | seconds | notes |", "|---|---:|---|"]
        for name, b in result["baselines"].items():
            notes = ", ".join(f"{k}={v}" for k, v in b.items() if k != "seconds")
            lines.append(f"| {name} | {b.get('seconds', float('nan')):.1f} | {notes} |")
    lines += ["", "| target | figure | met |", "|---|---|---|"]
    for t in result.get("targets", []):
        met = {True: "yes", False: "**no**", None: "see note"}[t["met"]]
        lines.append(f"| {t['target']} | {t['figure']} | {met} |")
    return "\n".join(lines) + "\n"


def write_results(result: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{result['scale']}.json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    (folder / f"{result['scale']}.md").write_text(md)
    print(md)
