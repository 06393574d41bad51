"""`generate`: chunks of customers (in worker processes), then the truth files and the manifest."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from custseg.datagen import personas as P
from custseg.datagen.blocks import (
    BAD_COLUMNS,
    SOURCES,
    ChunkResult,
    block_range,
    run_chunk,
    write_products,
)
from custseg.datagen.campaigns import STATS, plan_campaigns
from custseg.datagen.catalog import CATEGORY_NAMES, JOURNEY_DELAY_DAYS, JOURNEYS, build_catalog
from custseg.datagen.context import DAY, Context
from custseg.datagen.orders import rule_rows

log = logging.getLogger("custseg.datagen")
GENERATOR_VERSION = 1
GLOBAL_STREAM = 2**31  # block-independent random streams: catalog, campaigns, products


@dataclass
class GenerateSummary:
    """What `generate` wrote: record counts (bad records included) per source, files, batch dates."""

    out_dir: str
    landing_dir: str
    truth_dir: str
    end_date: str
    batch_dates: list[str]
    customers: int
    counts: dict[str, int]
    bad_counts: dict[str, int]
    files: dict[str, list[str]]
    elapsed_s: float


def generate(
    out_dir: str | os.PathLike,
    customers: int = 20000,
    days: int = 365,
    seed: int = 7,
    end_date: str = "2026-06-30",
    bad_share: float = 0.01,
    daily_batches: int = 1,
    chunk_size: int = 50000,
    products: int = 400,
    *,
    personas: Mapping[str, float] | None = None,
    campaigns: int = 6,
    workers: int | None = None,
) -> GenerateSummary:
    """Write landing files for every source and the planted truth under `out_dir`.

    Same arguments give byte-identical files, whatever `workers`; `chunk_size` only sets
    how many customers go into one part file (rounded up to whole blocks of 1000), so a
    different chunk size splits the same lines differently across parts. More than one
    chunk runs in `workers` spawned processes (default: CPU count), so a script calling
    this needs the usual ``if __name__ == "__main__":`` guard. Existing
    `landing/<source>` folders of the seven sources and `truth/` are replaced.
    """
    t0 = time.perf_counter()
    _validate(customers, days, bad_share, daily_batches, chunk_size, campaigns)
    end = date.fromisoformat(end_date)
    end_day = (end - date(1970, 1, 1)).days
    shares = P.persona_shares(personas)
    g = np.random.default_rng([seed, GLOBAL_STREAM, 0])
    catalog = build_catalog(products, g)
    ctx = Context(
        customers,
        days,
        seed,
        bad_share,
        end_day,
        daily_batches,
        shares,
        catalog,
        plan_campaigns(campaigns, end_day - days, days, g),
    )
    out = Path(out_dir)
    landing, truth = out / "landing", out / "truth"
    for path in [landing / s for s in SOURCES] + [truth]:
        shutil.rmtree(path, ignore_errors=True)
    truth.mkdir(parents=True)

    bad_frames, files = [], {}
    products_bad, product_files = write_products(ctx, out, seed)
    bad_frames.append(products_bad)
    files.update(product_files)
    chunks = block_range(customers, chunk_size)
    n_workers = min(workers or os.cpu_count() or 1, len(chunks))
    log.info(
        "generating %d customers in %d chunk(s) with %d worker(s) -> %s",
        customers,
        len(chunks),
        n_workers,
        out,
    )
    rule_counts = np.zeros((len(rule_rows(catalog)), 4), dtype=np.int64)
    campaign_stats = np.zeros((len(ctx.campaigns), len(STATS)))
    done = 0
    for res in _results(ctx, out, chunks, n_workers):
        _append_csv(res.customers, truth / "customers.csv")
        _append_csv(res.identities, truth / "identities.csv")
        rule_counts += res.rule_counts
        campaign_stats += res.campaign_stats
        bad_frames.append(res.bad)
        files.update(res.files)
        done += res.customers.num_rows
        log.info(
            "chunk %d/%d: %d/%d customers, %.1fs",
            res.chunk + 1,
            len(chunks),
            done,
            customers,
            time.perf_counter() - t0,
        )

    listed = [b for b in bad_frames if len(b)]
    bad = pd.concat(listed, ignore_index=True) if listed else pd.DataFrame(columns=BAD_COLUMNS)
    bad.to_csv(truth / "bad_records.csv", index=False)
    _rules_frame(catalog, rule_counts).to_csv(truth / "rules.csv", index=False)
    _campaigns_frame(ctx, campaign_stats).to_csv(truth / "campaigns.csv", index=False)
    _journeys_frame().to_csv(truth / "journeys.csv", index=False)
    summary = _summary(out, ctx, files, bad, time.perf_counter() - t0)
    manifest = _manifest(ctx, summary, files, bad, chunk_size, products, end_date)
    (truth / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("done in %.1fs: %s", summary.elapsed_s, summary.counts)
    return summary


def _validate(customers: int, days: int, bad_share: float, batches: int, chunk_size: int, campaigns: int) -> None:
    if customers < 1:
        raise ValueError(f"customers must be >= 1, got {customers}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if not 0 <= bad_share < 0.5:
        raise ValueError(f"bad_share must be in [0, 0.5), got {bad_share}")
    if not 1 <= batches <= days:
        raise ValueError(f"daily_batches must be in [1, days], got {batches}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if campaigns < 0:
        raise ValueError(f"campaigns must be >= 0, got {campaigns}")


def _results(ctx: Context, out: Path, chunks: list[tuple[int, int]], workers: int):
    """Chunk results in chunk order (so truth files do not depend on the worker count)."""
    if workers <= 1:
        for i, blocks in enumerate(chunks):
            yield run_chunk(ctx, str(out), i, blocks)
        return
    spawn = multiprocessing.get_context("spawn")  # fork is unsafe once Arrow's threads exist
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        futures = [pool.submit(run_chunk, ctx, str(out), i, b) for i, b in enumerate(chunks)]
        for f in futures:
            res: ChunkResult = f.result()
            yield res


def _append_csv(table: pa.Table, path: Path) -> None:
    table.to_pandas().to_csv(path, mode="a", header=not path.exists(), index=False)


def _journeys_frame() -> pd.DataFrame:
    """The planted cross-order journeys (catalog.JOURNEYS), at category level."""
    lo, hi = JOURNEY_DELAY_DAYS
    return pd.DataFrame(
        [
            {
                "level": "category",
                "trigger": a,
                "follow_up": b,
                "probability": p,
                "min_delay_days": lo,
                "max_delay_days": hi,
            }
            for a, b, p in JOURNEYS
        ]
    )


def _rules_frame(catalog, counts: np.ndarray) -> pd.DataFrame:
    rows = []
    for (level, ante, cons, prob), (n, a, b, ab) in zip(rule_rows(catalog), counts, strict=True):
        if level == "sku":
            ante_s, cons_s = "|".join(catalog.sku_id(ante)), catalog.sku_id([cons])[0]
            names = "|".join(catalog.name[i] for i in ante), catalog.name[cons]
        else:
            ante_s, cons_s = "|".join(CATEGORY_NAMES[i] for i in ante), CATEGORY_NAMES[cons]
            names = ante_s, cons_s
        support = ab / n if n else 0.0
        confidence = ab / a if a else 0.0
        lift = confidence / (b / n) if b and n else 0.0
        rows.append(
            {
                "level": level,
                "antecedent": ante_s,
                "consequent": cons_s,
                "support": support,
                "confidence": confidence,
                "lift": lift,
                "planted_probability": prob,
                "baskets": int(n),
                "antecedent_count": int(a),
                "consequent_count": int(b),
                "both_count": int(ab),
                "antecedent_name": names[0],
                "consequent_name": names[1],
            }
        )
    return pd.DataFrame(rows)


def _campaigns_frame(ctx: Context, stats: np.ndarray) -> pd.DataFrame:
    rows = []
    for camp, s in zip(ctx.campaigns, stats, strict=True):
        st = dict(zip(STATS, s, strict=True))
        nt, nc = st["n_treatment"], st["n_control"]
        treat = st["sum_treatment_prob"] / nt if nt else 0.0
        obs_t = st["conv_treatment"] / nt if nt else 0.0
        obs_c = st["conv_control"] / nc if nc else 0.0
        rows.append(
            {
                "campaign_id": camp.campaign_id,
                "channel": camp.channel,
                "sent_date": str(np.datetime64(camp.send_day, "D")),
                "target_share": camp.target_share,
                "control_share": camp.control_share,
                "treatment_rate": round(treat, 6),
                "control_rate": camp.control_rate,
                "treatment_effect": round(treat - camp.control_rate, 6),
                "uplift_multiplier": camp.multiplier,
                "n_treatment": int(nt),
                "n_control": int(nc),
                "observed_treatment_rate": round(obs_t, 6),
                "observed_control_rate": round(obs_c, 6),
                "observed_uplift": round(obs_t - obs_c, 6),
                "revenue_treatment": round(st["revenue_treatment"] / 100, 2),
                "revenue_control": round(st["revenue_control"] / 100, 2),
            }
        )
    return pd.DataFrame(rows)


def _summary(out: Path, ctx: Context, files: dict, bad: pd.DataFrame, elapsed: float) -> GenerateSummary:
    counts = {s: 0 for s in SOURCES}
    paths: dict[str, list[str]] = {s: [] for s in SOURCES}
    for (source, _, _), (rel, n) in sorted(files.items(), key=lambda kv: kv[1][0]):
        counts[source] += n
        paths[source].append(str(out / rel))
    bad_counts = {s: int((bad["source"] == s).sum()) for s in SOURCES}
    return GenerateSummary(
        str(out),
        str(out / "landing"),
        str(out / "truth"),
        str(np.datetime64(ctx.end_day, "D")),
        ctx.batch_dates,
        ctx.n_customers,
        counts,
        bad_counts,
        paths,
        round(elapsed, 3),
    )


def _manifest(
    ctx: Context,
    summary: GenerateSummary,
    files: dict,
    bad: pd.DataFrame,
    chunk_size: int,
    products: int,
    end_date: str,
) -> dict:
    sources = {}
    for name, (fmt, fields, key) in SOURCES.items():
        per_batch = {d: 0 for d in ctx.batch_dates}
        rels = []
        for (source, b, _), (rel, n) in sorted(files.items(), key=lambda kv: kv[1][0]):
            if source == name:
                per_batch[ctx.batch_dates[b]] += n
                rels.append(rel)
        bad_by = bad[bad["source"] == name].groupby("batch_date").size()
        sources[name] = {
            "format": fmt,
            "columns": [f.name for f in fields],
            "key": list(key),
            "files": rels,
            "records": per_batch,
            "bad_records": {d: int(bad_by.get(d, 0)) for d in ctx.batch_dates},
        }
    return {
        "generator": "custseg.datagen",
        "version": GENERATOR_VERSION,
        "parameters": {
            "customers": ctx.n_customers,
            "days": ctx.days,
            "seed": ctx.seed,
            "end_date": end_date,
            "bad_share": ctx.bad_share,
            "daily_batches": ctx.n_batches,
            "chunk_size": chunk_size,
            "products": products,
            "campaigns": len(ctx.campaigns),
        },
        "end_date": summary.end_date,
        "start_date": str(np.datetime64(ctx.start_day, "D")),
        "period": {
            "first_ts": f"{np.datetime64(ctx.start_day, 'D')} 00:00:00",
            "last_ts": str(np.datetime64(ctx.end_day * DAY + DAY - 1, "s")).replace("T", " "),
        },
        "batch_dates": ctx.batch_dates,
        "personas": dict(zip(P.PERSONAS, [round(float(s), 6) for s in ctx.shares], strict=True)),
        "campaigns": [asdict(c) | {"send_date": str(np.datetime64(c.send_day, "D"))} for c in ctx.campaigns],
        "counts": summary.counts,
        "bad_counts": summary.bad_counts,
        "sources": sources,
        "truth": [
            "customers.csv",
            "identities.csv",
            "rules.csv",
            "journeys.csv",
            "campaigns.csv",
            "bad_records.csv",
        ],
    }
