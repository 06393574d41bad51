"""`custseg generate`: command-line arguments of the generator."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date

log = logging.getLogger("custseg.datagen")


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"--end-date must be YYYY-MM-DD, got {text!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="custseg generate",
        description="Synthetic customer logs with planted truth. `custseg generate replay --help`: replay them at a rate.",
    )
    p.add_argument("--out", default="data", help="output folder (landing/ and truth/ go under it)")
    p.add_argument("--customers", type=int, default=20000)
    p.add_argument("--days", type=int, default=365, help="length of the period ending at --end-date")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--end-date", type=_iso_date, default="2026-06-30")
    p.add_argument("--bad-share", type=float, default=0.01, help="share of bad records per source")
    p.add_argument("--daily-batches", type=int, default=1, help="split the last N-1 days into daily batches")
    p.add_argument("--chunk-size", type=int, default=50000, help="customers per part file")
    p.add_argument("--products", type=int, default=400)
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["replay"]:  # `custseg generate replay ...`: emit a landing zone at a rate
        from custseg.datagen.replay import main as replay_main

        return replay_main(argv[1:])
    from custseg.datagen.runner import generate

    args = parse_args(argv)
    from custseg.cli import setup_logging

    setup_logging()
    summary = generate(
        args.out,
        customers=args.customers,
        days=args.days,
        seed=args.seed,
        end_date=args.end_date,
        bad_share=args.bad_share,
        daily_batches=args.daily_batches,
        chunk_size=args.chunk_size,
        products=args.products,
        workers=args.workers,
    )
    log.info(
        "wrote %s (batches %s); records: %s",
        summary.out_dir,
        ", ".join(summary.batch_dates),
        summary.counts,
    )
    return 0
