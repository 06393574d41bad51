"""Exit codes of fresh processes that read Delta tables without Spark (issue 29).

deltalake's own scan (``DeltaTable.to_pandas`` / ``to_pyarrow_table``) leaves processes that
abort at exit (SIGABRT, exit 134, "terminate called without an active exception") in a
share of runs; ``custseg.storage.arrow_read`` must exit 0 every time. This counts both ways,
measured the same way: N fresh Python processes, each reads and exits, exit codes counted.

    # a small partitioned table (built once: 4 dates x 20 files), one reader or several
    # (custseg / deltalake-pandas: one partition, 4 columns; custseg-arrow / deltalake-arrow: all):
    python -m bench.exit_codes tables --runs 40 --reader custseg-arrow --reader deltalake-arrow
    # the demo's summary (what `make demo` prints after the pipeline) over one demo's data:
    python -m bench.exit_codes summary --home ./data --runs 10
    # the same, with the summary code of another checkout (e.g. before the fix):
    python -m bench.exit_codes summary --home ./data --runs 10 --lib /path/to/old/lib

Results are printed and appended to ``bench/results/exit_codes.jsonl``.
Deliberately, the deltalake readers below call deltalake's scan (in child processes only):
that is what is measured. Nothing else in the project may (tests/unit/test_no_deltalake_scan.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "exit_codes.jsonl"
FILTER_DATE = "2026-01-02"  # the partition the readers select
COLUMNS = ["rfm_segment", "r_score", "f_score", "m_score"]

# Child programs: argv[1] is the table path. Each prints the rows it read.
READERS = {
    "custseg": (
        "import sys\n"
        "from custseg.storage.arrow_read import read_pandas\n"
        f"df = read_pandas(sys.argv[1], partitions=[('snapshot_date', '=', '{FILTER_DATE}')], columns={COLUMNS!r})\n"
        "print(len(df), int(df['r_score'].sum()))\n"
    ),
    "custseg-arrow": (
        "import sys\nfrom custseg.storage.arrow_read import read_table\nprint(read_table(sys.argv[1]).num_rows)\n"
    ),
    "deltalake-pandas": (
        "import sys\n"
        "from deltalake import DeltaTable\n"
        "df = DeltaTable(sys.argv[1]).to_pandas("
        f"partitions=[('snapshot_date', '=', '{FILTER_DATE}')], columns={COLUMNS!r})\n"
        "print(len(df), int(df['r_score'].sum()))\n"
    ),
    "deltalake-arrow": (
        "import sys\nfrom deltalake import DeltaTable\nprint(DeltaTable(sys.argv[1]).to_pyarrow_table().num_rows)\n"
    ),
}

SUMMARY = "import sys\nfrom pathlib import Path\nfrom custseg.demo import print_summary\nprint_summary(Path(sys.argv[1]), sys.argv[2])\n"


def build_table(path: str | Path, dates: int = 4, files_per_date: int = 20, rows_per_file: int = 1000) -> int:
    """A table shaped like gold.customer_features (partitioned by a date, many small files).

    Returns the number of rows in the ``FILTER_DATE`` partition. One commit per file, as a
    job that appends in batches leaves it; aborts grow with the files a scan opens.
    """
    import pyarrow as pa
    from deltalake import write_deltalake

    segments = ["Champions", "Loyal", "At Risk", "Hibernating", None]
    for d in range(dates):
        day = dt.date(2026, 1, 1) + dt.timedelta(days=d)
        for f in range(files_per_date):
            ids = range(f * rows_per_file, (f + 1) * rows_per_file)
            batch = pa.table(
                {
                    "customer_key": [f"c{d}-{i}" for i in ids],
                    "monetary": [float(i % 97) * 1.5 for i in ids],
                    "rfm_segment": [segments[i % len(segments)] for i in ids],
                    "r_score": pa.array([1 + i % 5 for i in ids], pa.int32()),
                    "f_score": pa.array([1 + (i // 5) % 5 for i in ids], pa.int32()),
                    "m_score": pa.array([1 + (i // 25) % 5 for i in ids], pa.int32()),
                    "snapshot_date": pa.array([day] * rows_per_file, pa.date32()),
                }
            )
            write_deltalake(str(path), batch, mode="append", partition_by=["snapshot_date"])
    return files_per_date * rows_per_file


def run_children(program: str, args: list[str], runs: int, jobs: int = 2, env: dict | None = None) -> list[dict]:
    """``runs`` fresh interpreters running ``program``: exit code, stdout tail, stderr tail."""

    def one(_: int) -> dict:
        proc = subprocess.run(
            [sys.executable, "-c", program, *args], capture_output=True, text=True, env=env, timeout=300
        )
        return {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr[-300:]}

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, range(runs)))


def _report(kind: str, reader: str, results: list[dict], seconds: float, extra: dict) -> dict:
    codes = Counter(r["rc"] for r in results)
    aborts = sum(1 for r in results if r["rc"] in (134, -6))
    record = {
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "kind": kind,
        "reader": reader,
        "runs": len(results),
        "exit_codes": {str(k): v for k, v in sorted(codes.items())},
        "aborts": aborts,
        "seconds": round(seconds, 1),
        **extra,
    }
    print(json.dumps(record))
    for r in results:
        if r["rc"] != 0:
            print(f"  rc={r['rc']} stderr: {r['err'].strip()[-160:]}")
            break
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.exit_codes")
    sub = p.add_subparsers(dest="kind", required=True)
    t = sub.add_parser("tables", help="readers over a small partitioned table")
    t.add_argument("--reader", action="append", choices=sorted(READERS), help="repeatable; default custseg")
    t.add_argument("--table", help="an existing table (partitioned by snapshot_date); default: build one")
    s = sub.add_parser("summary", help="the demo summary (custseg.demo.print_summary) over one demo's data")
    s.add_argument("--home", required=True, help="CUSTSEG_HOME of a finished demo run")
    s.add_argument("--date", help="run date; default: the demo manifest's end date")
    s.add_argument("--lib", help="PYTHONPATH for the children (another checkout's lib/)")
    for q in (t, s):
        q.add_argument("--runs", type=int, default=20)
        q.add_argument("--jobs", type=int, default=2, help="children at a time")
    args = p.parse_args(argv)

    failed = 0
    if args.kind == "tables":
        with tempfile.TemporaryDirectory(prefix="exit-codes-") as tmp:
            table = args.table or os.path.join(tmp, "features")
            if not args.table:
                build_table(table)
            for reader in args.reader or ["custseg"]:
                t0 = time.perf_counter()
                results = run_children(READERS[reader], [table], args.runs, args.jobs)
                rec = _report("tables", reader, results, time.perf_counter() - t0, {"table": args.table or "built"})
                failed += rec["runs"] - rec["exit_codes"].get("0", 0)
    else:
        home = Path(args.home).resolve()
        date = args.date or _demo_date(home)
        env = {**os.environ, "PYTHONPATH": args.lib} if args.lib else None
        t0 = time.perf_counter()
        results = run_children(SUMMARY, [str(home), date], args.runs, args.jobs, env)
        bad = [r for r in results if r["rc"] == 0 and "RFM segments" not in r["out"]]
        if bad:
            print("a summary exited 0 without printing the RFM segments", file=sys.stderr)
            return 2
        lib = args.lib or "installed custseg"
        rec = _report("summary", lib, results, time.perf_counter() - t0, {"home": str(home), "date": date})
        failed = rec["runs"] - rec["exit_codes"].get("0", 0)
    return 1 if failed else 0


def _demo_date(home: Path) -> str:
    info = json.loads((home / "truth" / "manifest.json").read_text())
    return info.get("end_date") or info["batch_dates"][-1]


if __name__ == "__main__":
    sys.exit(main())
