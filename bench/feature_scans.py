"""How often the feature job scans each silver table, measured from the plans Spark executed.

    .venv/bin/python -m bench.feature_scans --home <CUSTSEG_HOME with silver tables> [--date D]

Runs the ``features`` stage in a fresh local session, then reads Spark's SQL status store
(the data behind the UI's SQL tab, kept even with the UI off): for every SQL execution,
the plan graph with its metrics. A parquet scan node counts as a scan of its table when
it produced rows or listed files in that execution: a scan inside a cached relation shows
in the plan of every query that reads the cache, but only does work in the query that
fills it. The table is read off the scan's location (``.../tables/silver/<name>/...``), so
the session needs ``spark.sql.maxMetadataStringLength`` large enough to show it.
Prints one JSON object: scans per table, the executions, and the stage's seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE_IN_PATH = re.compile(r"/tables/(bronze|silver|gold)/([A-Za-z0-9_]+)")
WORK_METRICS = ("number of output rows", "number of files read")


def _scala_list(seq) -> list:
    it = seq.iterator()
    out = []
    while it.hasNext():
        out.append(it.next())
    return out


def last_execution_id(spark) -> int:
    """The newest SQL execution id so far (-1 for none): pass it as ``since`` to count later ones."""
    ids = [
        int(ex.executionId()) for ex in _scala_list(spark._jsparkSession.sharedState().statusStore().executionsList())
    ]
    return max(ids, default=-1)


def executed_scans(spark, since: int = -1) -> tuple[Counter, list[dict]]:
    """(scans per layer.table, one entry per SQL execution after ``since``) from the SQL status store."""
    store = spark._jsparkSession.sharedState().statusStore()
    scans: Counter = Counter()
    executions = []
    for ex in _scala_list(store.executionsList()):
        eid = ex.executionId()
        if int(eid) <= since:
            continue
        values = store.executionMetrics(eid)  # accumulator id -> rendered value
        graph = store.planGraph(eid)
        found = []
        for node in _scala_list(graph.allNodes()):
            name = node.name()
            if not (name.startswith("Scan") or "FileScan" in name):
                continue
            tables = {".".join(m) for m in TABLE_IN_PATH.findall(node.desc())}
            worked = False
            for metric in _scala_list(node.metrics()):
                if metric.name() in WORK_METRICS and values.contains(metric.accumulatorId()):
                    digits = re.sub(r"[^0-9]", "", str(values.apply(metric.accumulatorId())).split("(")[0])
                    worked = worked or (digits != "" and int(digits) > 0)
            if worked:
                for t in tables:
                    scans[t] += 1
                    found.append(t)
        executions.append({"id": int(eid), "description": str(ex.description())[:80], "scans": sorted(found)})
    return scans, executions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="CUSTSEG_HOME holding tables/silver")
    parser.add_argument("--date", default="2026-06-30")
    parser.add_argument("--driver-memory", default="3g")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "lib"))
    os.environ.setdefault("CUSTSEG_PII_SALT", "bench-salt-not-secret-0123456789abcdefgh")
    os.environ["CUSTSEG_HOME"] = str(Path(args.home).resolve())
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("feature-scans")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.maxMetadataStringLength", "10000")  # scan locations untruncated
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    from custseg.cli import parse_job_args, run_job

    started = time.time()
    rc = run_job(parse_job_args(None, ["features", "--date", args.date]), spark=spark)
    seconds = time.time() - started
    time.sleep(2)  # the status store is fed by the listener bus, asynchronously
    scans, executions = executed_scans(spark)
    silver = {t: n for t, n in sorted(scans.items()) if t.startswith("silver.")}
    print(
        json.dumps(
            {
                "rc": rc,
                "seconds": round(seconds, 1),
                "silver_scans": silver,
                "all_scans": dict(scans),
                "executions": executions,
            },
            indent=1,
        )
    )
    spark.stop()
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
