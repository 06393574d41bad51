"""Single-machine ML baselines on the same data as the pipeline: scikit-learn KMeans and
mlxtend FP-Growth.

Both collect their input to the driver (that is what using them means); the collection
time is reported apart from the fit, so the comparison is fit against fit plus what it
costs to get there. Bench-only: scikit-learn and mlxtend are in the `bench` extra.
"""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta

import numpy as np
from pyspark.sql import functions as F

log = logging.getLogger("bench")


def _chosen_k(tables, run_date: str) -> int | None:
    q = tables.read("gold.segment_quality").where(
        (F.col("snapshot_date") == F.lit(run_date)) & (F.col("kind") == "overall")
    )
    row = q.select("k").first()
    return int(row["k"]) if row else None


def kmeans_vs_sklearn(spark, tables, conf, run_date: str) -> dict:
    """Spark KMeans at the k the segment stage chose against scikit-learn on the same
    scaled matrix (the segment stage's own preparation), same n_init."""
    from sklearn.cluster import KMeans

    from custseg.segment.kmeans import fit_segments
    from custseg.segment.settings import SegmentSettings

    s = SegmentSettings.from_config(conf)
    k = _chosen_k(tables, run_date)
    if k is None:
        return {"skipped": "no segment_quality for the run date"}
    feats = tables.read("gold.customer_features").where(F.col("snapshot_date") == F.lit(run_date))
    t0 = time.perf_counter()
    fit = fit_segments(
        feats,
        s.columns,
        k=k,
        algorithm="kmeans",
        seed=s.seed,
        n_init=s.n_init,
        max_iter=s.max_iter,
        tol=s.tol,
        log1p_cols=s.log1p_columns,
        impute=s.impute,
        impute_max_cols=s.impute_max_columns,
        standardize=s.standardize,
        partition_rows=s.partition_rows,
    )
    spark_seconds = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        pdf = fit.scored.select(F.col("features")).toPandas()
        x = np.vstack([v.toArray() for v in pdf["features"]])
        collect_seconds = time.perf_counter() - t1
        spark_wss = float(fit.quality["wss"])
    finally:
        fit.unpersist()
    t2 = time.perf_counter()
    ref = KMeans(n_clusters=k, n_init=s.n_init, max_iter=s.max_iter, random_state=s.seed).fit(x)
    sk_seconds = time.perf_counter() - t2
    inertia = float(ref.inertia_)
    return {
        "seconds": round(sk_seconds, 2),
        "k": k,
        "rows": int(x.shape[0]),
        "dims": int(x.shape[1]),
        "n_init": s.n_init,
        "collect_seconds": round(collect_seconds, 2),
        "spark_fit_seconds": round(spark_seconds, 2),
        "spark_wss": round(spark_wss, 3),
        "sklearn_inertia": round(inertia, 3),
        # > 0: Spark's clustering is worse than scikit-learn's by this share
        "inertia_rel_diff": round((spark_wss - inertia) / inertia, 6) if inertia else None,
    }


def fpgrowth_vs_mlxtend(spark, tables, conf, run_date: str) -> dict:
    """FP-Growth in Spark (custseg.basket.mine) and in mlxtend on the same baskets, same
    thresholds; the single-consequent rule sets are compared."""
    from mlxtend.frequent_patterns import association_rules, fpgrowth

    from custseg.basket.baskets import baskets
    from custseg.basket.fpgrowth import mine
    from custseg.basket.settings import BasketSettings

    bs = BasketSettings.from_config(conf)
    as_of = F.lit(run_date).cast("date")
    end = date.fromisoformat(run_date)
    lines = tables.read("silver.order_items").where(F.col("order_date") <= as_of)
    products = tables.read("silver.products") if tables.exists("silver.products") else None
    b = lines.transform(baskets(bs.level, bs.statuses, end - timedelta(days=bs.window_days), end, products))
    b = b.select("items").localCheckpoint(eager=True)

    t0 = time.perf_counter()
    mined = mine(
        b,
        bs.min_support,
        bs.min_confidence,
        min_lift=None,
        num_partitions=bs.num_partitions,
        max_itemset_size=bs.max_itemset_size,
        max_itemsets=bs.max_itemsets,
        max_basket_items=bs.max_basket_items,
    )
    ours = {
        (frozenset(r["antecedent"]), r["consequent"]) for r in mined.rules.select("antecedent", "consequent").collect()
    }
    n_itemsets = mined.itemsets.count()
    spark_seconds = time.perf_counter() - t0
    n_baskets = mined.n_baskets
    mined.unpersist()

    t1 = time.perf_counter()
    # One-hot of the baskets, built in Spark and collected as Arrow (mlxtend needs it in memory).
    items = sorted(r["item"] for r in b.select(F.explode("items").alias("item")).distinct().collect())
    onehot = b.select(*[F.array_contains("items", i).alias(i) for i in items]).toPandas()
    collect_seconds = time.perf_counter() - t1
    t2 = time.perf_counter()
    freq = fpgrowth(onehot, min_support=bs.min_support, use_colnames=True, max_len=bs.max_itemset_size)
    rules = association_rules(freq, num_itemsets=len(onehot), metric="confidence", min_threshold=bs.min_confidence)
    mlx_seconds = time.perf_counter() - t2
    rules = rules[rules["consequents"].apply(len) == 1]
    theirs = {(frozenset(a), next(iter(c))) for a, c in zip(rules["antecedents"], rules["consequents"], strict=True)}
    del onehot
    log.info("FP-Growth: spark %.1fs, mlxtend %.1fs (+%.1fs to collect)", spark_seconds, mlx_seconds, collect_seconds)
    return {
        "fpgrowth_spark": {
            "seconds": round(spark_seconds, 2),
            "baskets": n_baskets,
            "itemsets": n_itemsets,
            "rules": len(ours),
        },
        "mlxtend": {
            "seconds": round(mlx_seconds, 2),
            "collect_seconds": round(collect_seconds, 2),
            "itemsets": int(len(freq)),
            "rules": len(theirs),
            "same_rules": ours == theirs,
            "level": bs.level,
            "min_support": bs.min_support,
            "min_confidence": bs.min_confidence,
        },
    }
