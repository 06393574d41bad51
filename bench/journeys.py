"""Journey rules and cross-sell at scale, on synthetic category-level order lines.

    .venv/bin/python -m bench.journeys [--customers 1000000] [--orders 2000000] [--cores 2]

Builds ``--orders`` orders of 1 to 4 lines over 12 categories for ``--customers``
customers in Spark (no landing files, no ingest). Then it times each step on the same
frames: FP-Growth (``mine``), journey mining (``journey_inputs``), and the cross-sell lists
with basket rules, fill and journeys. Prints the figures and writes them to
``bench/results/journeys.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

CATEGORIES = 12


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=2_000_000)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "journeys.json"))
    args = ap.parse_args(argv)

    from pyspark import StorageLevel
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from custseg.basket.baskets import baskets, customer_purchases
    from custseg.basket.cross_sell import cross_sell, popular_fill
    from custseg.basket.fpgrowth import mine
    from custseg.basket.journeys import journey_inputs
    from custseg.basket.settings import BasketSettings

    spark = (
        SparkSession.builder.master(f"local[{args.cores}]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "6g")
        .config("spark.sql.shuffle.partitions", str(8 * args.cores))
        .config("spark.sql.adaptive.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    as_of = date(2026, 6, 30)
    orders = spark.range(args.orders).select(
        F.col("id").alias("order_id"),
        (F.abs(F.xxhash64("id", F.lit(1))) % args.customers).cast("string").alias("customer_key"),
        F.date_sub(F.lit(as_of), (F.abs(F.xxhash64("id", F.lit(2))) % 365).cast("int")).alias("order_date"),
        (1 + F.abs(F.xxhash64("id", F.lit(3))) % 4).cast("int").alias("_lines"),
    )
    lines = (
        orders.select("*", F.explode(F.sequence(F.lit(1), F.col("_lines"))).alias("_n"))
        .select(
            F.col("order_id").cast("string").alias("order_id"),
            "customer_key",
            "order_date",
            F.lit("completed").alias("status"),
            F.lit(1).alias("qty"),
            F.concat(F.lit("cat"), (F.abs(F.xxhash64("order_id", "_n")) % CATEGORIES).cast("string")).alias("category"),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    figures: dict = {"customers": args.customers, "orders": args.orders, "cores": args.cores, "lines": lines.count()}
    bs = BasketSettings()
    t = time.perf_counter()
    mined = mine(lines.transform(baskets("category", ("completed",), None, as_of)), bs.min_support, bs.min_confidence)
    figures["fp_growth_s"] = round(time.perf_counter() - t, 1)
    figures["baskets"] = mined.n_baskets
    t = time.perf_counter()
    j_rules, recent = journey_inputs(lines, bs, as_of)
    j_rules = j_rules.persist(StorageLevel.MEMORY_AND_DISK)
    figures["journey_rules"] = j_rules.count()
    figures["journeys_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    purchases = lines.transform(customer_purchases("category", ("completed",), None, as_of))
    offers = purchases.transform(
        cross_sell(
            mined.rules,
            bs.cross_sell.top_n,
            fill=popular_fill(mined.itemsets, bs.cross_sell.fill_candidates),
            journeys=j_rules,
            recent=recent,
            horizon_days=bs.journeys.horizon_days,
        )
    )
    row = offers.agg(F.countDistinct("customer_key").alias("c"), F.count("*").alias("n")).first()
    figures["cross_sell_s"] = round(time.perf_counter() - t, 1)
    figures["cross_sell_customers"], figures["cross_sell_rows"] = row["c"], row["n"]
    print(json.dumps(figures, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    spark.stop()
    return figures


if __name__ == "__main__":
    main()
