"""What a user would pick instead, run on the same data in the same benchmark run.

- RFM with DuckDB and with pandas over silver.orders' Parquet files (single machine tools);
- a bare Spark scan-and-aggregate of the feature stage's inputs: the floor for that stage;
- KMeans with scikit-learn at the k Spark chose (time and inertia on the same matrix);
- FP-Growth with mlxtend on the same baskets (time and the same rule set).
Baseline libraries are bench-only extras (`pip install -e .[bench]`).
"""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta
from pathlib import Path

log = logging.getLogger("bench")

FEATURE_INPUTS = [
    "silver.orders",
    "silver.order_items",
    "silver.events",
    "silver.feedback",
    "silver.social",
    "silver.customers",
]


def _files(tables_root: Path, name: str) -> list[str]:
    from deltalake import DeltaTable

    layer, table = name.split(".")
    return DeltaTable(str(tables_root / layer / table)).file_uris()


def spark_floor(spark, tables) -> dict:
    """Each feature input scanned once and aggregated per customer: nothing cheaper does the job."""
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    for name in FEATURE_INPUTS:
        if not tables.exists(name):
            continue
        df = tables.read(name)
        num = next(
            (f.name for f in df.schema.fields if f.dataType.typeName() in ("decimal", "double", "long", "integer")),
            None,
        )
        aggs = [F.count("*").alias("n")] + ([F.sum(num).alias("s")] if num else [])
        df.groupBy("customer_key").agg(*aggs).write.format("noop").mode("overwrite").save()
    return {"seconds": round(time.perf_counter() - t0, 2)}


def rfm_duckdb(files: list[str], as_of: date, window_days: int) -> dict:
    import duckdb

    start = as_of - timedelta(days=window_days)
    t0 = time.perf_counter()
    con = duckdb.connect()
    n = con.execute(
        f"""
        WITH o AS (SELECT * FROM read_parquet({files!r})),
        base AS (
          SELECT customer_key,
                 date_diff('day', max(CASE WHEN status='completed' THEN CAST(order_ts AS DATE) END), DATE '{as_of}') AS recency_days,
                 count(DISTINCT CASE WHEN status='completed' AND CAST(order_ts AS DATE) > DATE '{start}' THEN order_id END) AS frequency,
                 coalesce(sum(CASE WHEN status='completed' AND CAST(order_ts AS DATE) > DATE '{start}' THEN net_revenue END), 0) AS monetary
          FROM o WHERE customer_key IS NOT NULL GROUP BY customer_key)
        SELECT count(*) FROM (
          SELECT *, ntile(5) OVER (ORDER BY -recency_days) AS r, ntile(5) OVER (ORDER BY frequency) AS f,
                 ntile(5) OVER (ORDER BY monetary) AS m FROM base)
        """
    ).fetchone()[0]
    return {"seconds": round(time.perf_counter() - t0, 2), "customers": int(n)}


def rfm_pandas(files: list[str], as_of: date, window_days: int) -> dict:
    import pandas as pd

    start = pd.Timestamp(as_of - timedelta(days=window_days))
    t0 = time.perf_counter()
    o = pd.concat(
        [pd.read_parquet(f, columns=["customer_key", "order_id", "order_ts", "status", "net_revenue"]) for f in files]
    )
    o = o[o["customer_key"].notna() & (o["status"] == "completed")]
    o["net_revenue"] = o["net_revenue"].astype(float)
    if o["order_ts"].dt.tz is not None:  # Spark writes UTC-adjusted timestamps; compare as naive UTC
        o["order_ts"] = o["order_ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    last = o.groupby("customer_key")["order_ts"].max()
    w = o[o["order_ts"] > start]
    g = w.groupby("customer_key").agg(frequency=("order_id", "nunique"), monetary=("net_revenue", "sum"))
    df = (
        pd.DataFrame({"recency_days": (pd.Timestamp(as_of) - last).dt.days})
        .join(g, how="left")
        .fillna({"frequency": 0, "monetary": 0})
    )
    for col, sign in (("recency_days", -1), ("frequency", 1), ("monetary", 1)):
        df[col + "_score"] = pd.qcut((sign * df[col]).rank(method="first"), 5, labels=False) + 1
    return {"seconds": round(time.perf_counter() - t0, 2), "customers": len(df)}


def run_baselines(spark, home: Path, run_date: str, rss, stages: list[str]) -> dict:
    from custseg.config import load_config
    from custseg.storage import StorageSettings, Tables

    conf = load_config()
    tables_root = home / "tables"
    tables = Tables(spark, StorageSettings(root=str(tables_root)))
    as_of = date.fromisoformat(run_date)
    out: dict = {}
    if tables.exists("silver.orders"):
        files = _files(tables_root, "silver.orders")
        out["spark_floor"] = spark_floor(spark, tables)
        out["rfm_duckdb"] = rfm_duckdb(files, as_of, conf.rfm.window_days)
        out["rfm_pandas"] = rfm_pandas(files, as_of, conf.rfm.window_days)
    from bench.baselines_ml import fpgrowth_vs_mlxtend, kmeans_vs_sklearn

    # A baseline that fails is recorded, not fatal: the pipeline figures are what matters.
    if "segment" in stages:
        try:
            out["sklearn_kmeans"] = kmeans_vs_sklearn(spark, tables, conf, run_date)
        except Exception as e:  # noqa: BLE001
            log.exception("scikit-learn baseline failed")
            out["sklearn_kmeans"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    if "basket" in stages:
        try:
            out.update(fpgrowth_vs_mlxtend(spark, tables, conf, run_date))
        except Exception as e:  # noqa: BLE001
            log.exception("mlxtend baseline failed")
            out["mlxtend"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    for name, fig in out.items():
        log.info("baseline %s: %s", name, fig)
    return out
