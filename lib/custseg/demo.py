"""``custseg demo``: generate demo data if absent, run the pipeline, print where results are.

Everything lands under ``$CUSTSEG_HOME`` (default ``./data``): ``landing/``, ``truth/``,
``tables/<layer>/<table>`` (Delta), ``exports/`` and ``reports/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path

log = logging.getLogger("custseg.demo")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="custseg demo")
    p.add_argument("--home", default=os.environ.get("CUSTSEG_HOME", "./data"), help="where data and tables go")
    p.add_argument("--customers", type=int, default=20000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--conf", default=None)
    p.add_argument("--regenerate", action="store_true", help="generate the demo data again")
    p.add_argument("--no-ui", dest="ui", action="store_false", help="run without the local Spark UI")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from custseg.cli import parse_job_args, run_job, setup_logging

    args = parse_args(argv)
    setup_logging()
    home = Path(args.home).resolve()
    os.environ["CUSTSEG_HOME"] = str(home)
    refusal = _salt_refusal(args.conf)
    if refusal:
        log.error("%s", refusal)
        return 2
    manifest = home / "truth" / "manifest.json"
    if args.regenerate or not manifest.exists():
        from custseg.datagen import generate

        log.info("generating demo data: %d customers, %d days -> %s", args.customers, args.days, home)
        generate(home, customers=args.customers, days=args.days, seed=args.seed)
    info = json.loads(manifest.read_text())
    run_date = info.get("end_date") or info["batch_dates"][-1]
    job_argv = ["pipeline", "--date", run_date] + (["--conf", args.conf] if args.conf else [])
    if args.ui and not os.environ.get("SPARK_REMOTE"):
        port = ui_port()
        job_argv += ["--set", "spark.ui=true", "--set", f"spark.conf={{'spark.ui.port': '{port}'}}"]
        print(f"Spark UI while the pipeline runs: http://localhost:{port}")
    rc = run_job(parse_job_args(None, job_argv), demo=True)
    if rc != 0:
        log.error("pipeline failed (exit %d); see the log above and gold.job_runs", rc)
        return rc
    print_summary(home, run_date)
    return 0


def _salt_refusal(conf_path: str | None) -> str | None:
    """Why the demo must not run with this config's salt (before any data is generated), or None.

    The demo salt is public: only a config that allows it (conf/local.yaml) may fall back to
    it, so ``custseg demo --conf <production conf>`` without CUSTSEG_PII_SALT never writes
    demo-salted keys into production tables.
    """
    from custseg.config import ConfigError, load_config
    from custseg.pii import MissingSaltError, resolve_pii_key

    try:
        resolve_pii_key(load_config(conf_path), demo=True)
    except (ConfigError, MissingSaltError) as exc:
        return str(exc)
    return None


def ui_port(preferred: int = 4040) -> int:
    """``preferred`` when it is free on this machine, else any free port (Spark would pick another
    one silently, and the printed address would be wrong)."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port for the Spark UI")


def print_summary(home: Path, run_date: str) -> None:
    from deltalake import DeltaTable

    from custseg.storage import commit_engine
    from custseg.storage.arrow_read import read_pandas

    tables_root = home / "tables"
    lines, engines = [], set()
    for layer_dir in sorted(p for p in tables_root.iterdir() if p.is_dir()):
        for table_dir in sorted(p for p in layer_dir.iterdir() if (p / "_delta_log").is_dir()):
            dt = DeltaTable(str(table_dir))
            rows = sum(a["num_records"] for a in _adds(dt))
            engine = commit_engine(dt.history(1)[0])  # the engine of the latest commit
            engines.add(engine)
            lines.append(f"  {layer_dir.name}.{table_dir.name:<24} v{dt.version():<3} {rows:>10,} rows  {table_dir}")
    print(f"\ncustseg demo for {run_date}: Delta tables under {tables_root}, written by {', '.join(sorted(engines))}")
    print("\n".join(lines))
    df = read_pandas(
        tables_root / "gold" / "customer_features",
        partitions=[("snapshot_date", "=", run_date)],
        columns=["rfm_segment", "r_score", "f_score", "m_score"],
    )
    print("\nRFM segments:")
    for name, n in df["rfm_segment"].value_counts().items():
        print(f"  {name:<20} {n:>8,}")
    for col in ("r_score", "f_score", "m_score"):
        dist = " ".join(f"{k}:{v}" for k, v in sorted(df[col].value_counts().items()))
        print(f"  {col}: {dist}")
    print(
        f"\nRead them with Spark (custseg.storage.Tables) or, without Spark, "
        f"custseg.storage.arrow_read.read_pandas('{tables_root}/gold/customer_features')."
    )
    exports = home / "exports" / run_date / "manifest.json"
    if exports.exists():
        print(f"Campaign export files (CRM, e-mail, ads) and their manifest: {exports}")
    report = home / "reports" / run_date / "report.html"
    if report.exists():
        print(f"Report: {report}")
    else:
        print("Report: not written (the report stage did not run; see gold.job_runs)")


def _adds(dt):
    """Per-file record counts from the Delta log (no data is read)."""
    actions = dt.get_add_actions(flatten=True)
    try:
        counts = actions.column("num_records").to_pylist()
    except Exception:
        counts = [0]
    return [{"num_records": c or 0} for c in counts]


if __name__ == "__main__":
    sys.exit(main())
