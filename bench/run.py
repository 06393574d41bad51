"""Benchmark the whole pipeline at a scale, side by side with the alternatives a user would pick.

    make bench SCALE=s        # ~20k customers (minutes)
    make bench SCALE=m        # ~1M customers, ~10M order lines, ~30M events (an hour or more here)
    .venv/bin/python -m bench.run --scale s --skip-baselines --stages ingest,conform,features
    .venv/bin/python -m bench.run --scale m --resume          # go on after an interrupted run
    .venv/bin/python -m bench.run --scale s --baselines-only  # baselines again, same tables

Generated data is cached under bench/cache/<scale>/ (generation time is reported once, not
counted in the pipeline). Tables are rebuilt from scratch on every run. Results go to
bench/results/<scale>.json and bench/results/<scale>.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.metrics import PeakRss, SparkStages, measured

log = logging.getLogger("bench")
HERE = Path(__file__).resolve().parent
SCALES = {
    "xs": {"customers": 2000, "days": 365},
    "s": {"customers": 20000, "days": 365},
    # 1M customers over 45 days: ~10M order lines as issue 9 sizes m (a full year of this
    # generator is ~83M lines and ~44M events, 19 GB of landing files: hours on 2 cores).
    "m": {"customers": 1000000, "days": 45},
}


def ensure_data(scale: str, cache: Path) -> dict:
    manifest = cache / "truth" / "manifest.json"
    if manifest.exists():
        return json.loads(manifest.read_text())
    from custseg.datagen import generate

    log.info("generating %s-scale data into %s", scale, cache)
    t0 = time.perf_counter()
    generate(cache, seed=2026, **SCALES[scale])
    info = json.loads(manifest.read_text())
    info["generate_seconds"] = round(time.perf_counter() - t0, 1)
    manifest.write_text(json.dumps(info, indent=1))
    return info


def bench_session(cores: str, driver_memory: str, shuffle_partitions: int = 0):
    from pyspark.sql import SparkSession

    from custseg.session import default_shuffle_partitions, delta_conf

    n = os.cpu_count() if cores == "*" else int(cores)
    shuffle = shuffle_partitions or default_shuffle_partitions(n)
    # Python workers (the PII HMAC is a pandas UDF) must run this interpreter, which has pandas
    # and pyarrow; PySpark's default `python3` may not (custseg.session.local_session does the same).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in delta_conf(snapshot_partitions=shuffle).items():  # JVM Delta, when resolved
        builder = builder.config(key, value)
    return (
        builder.master(f"local[{cores}]")
        .appName("custseg-bench")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "true")
        .config("spark.ui.port", "4050")
        .config("spark.ui.retainedStages", "100000")
        .config("spark.ui.retainedJobs", "100000")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )


def run_pipeline(
    spark,
    home: Path,
    run_date: str,
    stages: list[str],
    rss: PeakRss,
    done: list[dict] | None = None,
    on_stage=None,
    engine: str = "auto",
) -> list[dict]:
    """Run ``stages`` in turn; ``done`` are figures of stages already run on these tables
    (``--resume``): those are kept and skipped. ``on_stage(figures)`` after each stage, so
    a long run that dies keeps what it measured."""
    from custseg.cli import parse_job_args, run_job
    from custseg.storage import StorageSettings, Tables

    os.environ["CUSTSEG_HOME"] = str(home)
    if not done:
        shutil.rmtree(home / "tables", ignore_errors=True)
    spark_stages = SparkStages(spark)
    tables = Tables(spark, StorageSettings(root=str(home / "tables"), engine=engine))
    out = list(done or [])
    for stage in stages:
        if any(f["name"] == stage for f in out):
            log.info("%s: measured in the run being resumed, skipped", stage)
            continue
        with measured(stage, rss, spark_stages) as fig:
            rc = run_job(
                parse_job_args(None, [stage, "--date", run_date, "--set", f"storage.engine={engine}"]), spark=spark
            )
        if rc != 0:
            raise SystemExit(f"stage {stage} failed (exit {rc}); see the log")
        runs = (
            tables.read("gold.job_runs")
            .where(f"job = '{stage}' AND status != 'started'")
            .orderBy("started_at", ascending=False)
            .first()
        )
        fig.rows_in, fig.rows_out = int(runs["rows_in"] or 0), int(runs["rows_out"] or 0)
        fig.extra["stage_seconds"] = json.loads(runs["stage_seconds"] or "{}")
        log.info("%s: %.1fs rows_in=%s rows_out=%s", stage, fig.seconds, fig.rows_in, fig.rows_out)
        out.append(fig.to_dict())
        if on_stage:
            on_stage(out)
    return out


def main(argv: list[str] | None = None) -> int:
    from custseg.cli import setup_logging
    from custseg.stages import pipeline_stages

    p = argparse.ArgumentParser(prog="bench.run")
    p.add_argument("--scale", choices=sorted(SCALES), default="s")
    p.add_argument("--cores", default="*", help="local[N] cores (default all)")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument(
        "--shuffle-partitions",
        type=int,
        default=None,
        help="spark.sql.shuffle.partitions (default: 2 x cores at s, 64 at m, AQE coalesces)",
    )
    p.add_argument("--stages", default=None, help="comma-separated (default: the whole pipeline)")
    p.add_argument("--skip-baselines", action="store_true")
    p.add_argument(
        "--baselines-only",
        action="store_true",
        help="keep results/<scale>.json's pipeline figures and tables; run the baselines again",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the tables and the stages measured by an interrupted run (results/<scale>.partial.json)",
    )
    p.add_argument("--cache", default=str(HERE / "cache"))
    p.add_argument(
        "--engines",
        default=None,
        help="storage engines to run the pipeline on, in turn (default: spark-delta,delta-rs where "
        "the JVM Delta jars are resolved, else delta-rs); the first one's tables feed the baselines",
    )
    args = p.parse_args(argv)
    setup_logging()
    os.environ.setdefault("CUSTSEG_PII_SALT", "bench-salt-not-secret-0123456789abcdefgh")

    home = Path(args.cache) / args.scale
    info = ensure_data(args.scale, home)
    run_date = info.get("end_date") or info["batch_dates"][-1]
    shuffle = args.shuffle_partitions if args.shuffle_partitions is not None else (64 if args.scale == "m" else 0)
    spark = bench_session(args.cores, args.driver_memory, shuffle)
    rss = PeakRss().start()
    stages = args.stages.split(",") if args.stages else pipeline_stages()
    partial = HERE / "results" / f"{args.scale}.partial.json"
    done = json.loads(partial.read_text())["stages"] if args.resume and partial.exists() else []

    def save_partial(figs: list[dict]) -> None:
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"scale": args.scale, "stages": figs}, indent=1))

    by_engine: dict[str, list[dict]] = {}
    if args.baselines_only:
        previous = json.loads((HERE / "results" / f"{args.scale}.json").read_text())
        figures = previous["stages"]
        stages = [f["name"] for f in figures]
    else:
        from custseg.session import has_jvm_delta

        engines = (args.engines or ("spark-delta,delta-rs" if has_jvm_delta(spark) else "delta-rs")).split(",")
        # The first engine runs last, so its tables are there for the baselines; --resume
        # continues the first engine's run only.
        for engine in engines[1:]:
            log.info("pipeline on %s (for the side-by-side figures)", engine)
            by_engine[engine] = run_pipeline(spark, home, run_date, stages, rss, None, None, engine)
        log.info("pipeline on %s", engines[0])
        figures = run_pipeline(spark, home, run_date, stages, rss, done, save_partial, engines[0])
        by_engine = {engines[0]: figures, **by_engine}
    # Stage by stage, so a resumed run adds up the same as one that ran through.
    total = round(sum(f["seconds"] for f in figures), 1)

    baselines = {}
    if not args.skip_baselines:
        from bench.baselines import run_baselines

        baselines = run_baselines(spark, home, run_date, rss, stages)
    rss.stop()
    result = {
        "scale": args.scale,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "spark": spark.version,
            "master": spark.sparkContext.master,
            "driver_memory": args.driver_memory,
            "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
        },
        "data": {
            **{k: info.get(k) for k in ("days", "counts", "generate_seconds")},
            "customers": info.get("customers") or SCALES[args.scale]["customers"],
        },
        "pipeline_seconds": total,
        "stages": figures,
        "engine": next(iter(by_engine), None),
        "engines": {
            e: {"pipeline_seconds": round(sum(f["seconds"] for f in figs), 1), "stages": figs}
            for e, figs in by_engine.items()
        },
        "baselines": baselines,
    }
    from bench.report import targets, write_results

    result["targets"] = targets(result)
    write_results(result, HERE / "results")
    partial.unlink(missing_ok=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
