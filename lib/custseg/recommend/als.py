"""Implicit-feedback ALS (MLlib) recommendations with a popularity fallback for cold start.

Interactions: every completed order line counts ``weights["purchase"]``, every event of
a weighted type with a sku counts its weight (add_to_cart, product_view, ...); the
weights of a (customer, item) pair are summed into a strength r. ALS is fitted with
``implicitPrefs=True`` on rating = log(1 + r): Hu, Koren & Volinsky (2008),
"Collaborative Filtering for Implicit Feedback Datasets", ICDM, sec. 4, suggest the
confidence 1 + alpha log(1 + r / eps) so that a few very active pairs do not swamp the
fit; Spark forms 1 + alpha x rating itself.

Customers and items need int ids: ``dense_ids`` numbers them in Spark (per-partition
row numbers plus partition offsets, a bounded list), so no key list reaches the driver.

Recommendations exclude items the customer already bought: ALS is asked for
``top_n + (most items any target bought)`` candidates (at most ``max_candidates`` and
the catalogue), bought items are removed, and the first ``top_n`` kept. Customers ALS
has never seen (no interactions in the window) get their segment's most popular items.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from custseg.basket.baskets import customer_purchases, with_item
from custseg.recommend.popularity import RECO_COLUMNS, recommend_popular_by_segment, top_unbought
from custseg.recommend.settings import AlsParams
from custseg.runtime import default_parallelism

log = logging.getLogger(__name__)

INTERACTION_COLUMNS = ["customer_key", "item", "strength"]


def interactions(
    order_items: DataFrame,
    events: DataFrame | None,
    weights: Mapping[str, float],
    level: str,
    start: date | None,
    end: date | None,
    statuses: Sequence[str] = ("completed",),
    products: DataFrame | None = None,
) -> DataFrame:
    """customer_key, item, strength: summed interaction weights in (start, end]."""
    w_purchase = float(weights.get("purchase", 0.0))
    lines = (
        order_items.where(F.col("customer_key").isNotNull() & F.col("status").isin(list(statuses)))
        .where(_window("order_date", start, end))
        .transform(with_item(level, products))
        .where(F.col("item").isNotNull())
        .select("customer_key", "item", F.lit(w_purchase).alias("w"))
    )
    parts = [lines] if w_purchase > 0 else []
    event_weights = {k: float(v) for k, v in weights.items() if k != "purchase" and float(v) > 0}
    if events is not None and event_weights:
        weight = F.lit(None).cast("double")
        for name, w in event_weights.items():
            weight = F.when(F.col("event_type") == name, F.lit(w)).otherwise(weight)
        ev = (
            events.where(F.col("customer_key").isNotNull() & F.col("event_type").isin(list(event_weights)))
            .where(_window(F.to_date("ts"), start, end))
            .where(F.col("sku").isNotNull() | (F.lit(level == "category") & F.col("category").isNotNull()))
        )
        if level == "category" and "category" in ev.columns:
            ev = ev.withColumn("item", F.col("category"))
        else:
            ev = ev.drop("category", "subcategory").transform(with_item(level, products))
        parts.append(ev.where(F.col("item").isNotNull()).select("customer_key", "item", weight.alias("w")))
    if not parts:
        raise ValueError("no interaction has a positive weight (recommend.weights)")
    union = parts[0]
    for p in parts[1:]:
        union = union.unionByName(p)
    return union.groupBy("customer_key", "item").agg(F.sum("w").alias("strength")).select(*INTERACTION_COLUMNS)


def _window(col, start: date | None, end: date | None):
    c = F.col(col) if isinstance(col, str) else col
    cond = F.lit(True)
    if start is not None:
        cond = cond & (c > F.lit(start))
    if end is not None:
        cond = cond & (c <= F.lit(end))
    return cond


def dense_ids(key: str, id_col: str) -> Callable[[DataFrame], DataFrame]:
    """df -> key, id_col: the distinct non-null keys numbered 0..n-1 in Spark.

    Row numbers within each partition plus the sizes of the partitions before it (one
    row per partition). The distinct keys are checkpointed first so that partition
    membership cannot change between the two passes.
    """

    def transform(df: DataFrame) -> DataFrame:
        keys = (
            df.select(key)
            .where(F.col(key).isNotNull())
            .distinct()
            .withColumn("_p", F.spark_partition_id())
            .localCheckpoint(eager=True)
        )
        before = Window.orderBy("_p").rowsBetween(Window.unboundedPreceding, -1)
        offsets = (
            keys.groupBy("_p")
            .agg(F.count("*").alias("_n"))
            .select("_p", F.coalesce(F.sum("_n").over(before), F.lit(0)).alias("_offset"))
        )
        within = Window.partitionBy("_p").orderBy(key)
        return keys.join(F.broadcast(offsets), on="_p", how="inner").select(
            key, (F.col("_offset") + F.row_number().over(within) - 1).cast("int").alias(id_col)
        )

    return transform


@dataclass
class AlsFit:
    model: object  # pyspark.ml.recommendation.ALSModel
    users: DataFrame  # customer_key, user_id
    items: DataFrame  # item, item_id
    n_items: int

    def unpersist(self) -> None:
        self.users.unpersist()
        self.items.unpersist()


def fit_als(inter: DataFrame, params: AlsParams) -> AlsFit:
    """Fit implicit ALS on ``interactions`` output (rating = log1p(strength))."""
    from pyspark.ml.recommendation import ALS

    users = inter.transform(dense_ids("customer_key", "user_id")).cache()
    items = inter.transform(dense_ids("item", "item_id")).cache()
    n_items = items.count()
    ratings = (
        inter.join(users, on="customer_key", how="inner")
        .join(F.broadcast(items), on="item", how="inner")
        .select("user_id", "item_id", F.log1p("strength").cast("float").alias("rating"))
    )
    blocks = params.num_blocks or default_parallelism(inter.sparkSession)
    als = ALS(
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg_param,
        alpha=params.alpha,
        seed=params.seed,
        implicitPrefs=True,
        userCol="user_id",
        itemCol="item_id",
        ratingCol="rating",
        coldStartStrategy="drop",
        numUserBlocks=blocks,
        numItemBlocks=blocks,
    )
    model = als.fit(ratings)
    return AlsFit(model, users, items, n_items)


def recommend_als(
    fit: AlsFit, top_n: int, bought: DataFrame | None = None, max_candidates: int = 100
) -> Callable[[DataFrame], DataFrame]:
    """targets (customer_key) -> top ``top_n`` ALS items per target ALS knows, bought items excluded."""

    def transform(targets: DataFrame) -> DataFrame:
        known = targets.select("customer_key").distinct().join(fit.users, on="customer_key", how="inner")
        extra = 0
        if bought is not None:
            row = (
                bought.join(known.select("customer_key"), on="customer_key", how="left_semi")
                .groupBy("customer_key")
                .count()
                .agg(F.max("count"))
                .first()
            )
            extra = int(row[0] or 0)
        k = max(1, min(fit.n_items, max(top_n, min(top_n + extra, max_candidates))))
        recs = fit.model.recommendForUserSubset(known.select("user_id"), k)
        offers = (
            recs.select("user_id", F.explode("recommendations").alias("r"))
            .select("user_id", F.col("r.item_id").alias("item_id"), F.col("r.rating").cast("double").alias("score"))
            .join(known, on="user_id", how="inner")
            .join(F.broadcast(fit.items), on="item_id", how="inner")
        )
        return top_unbought(offers, bought, top_n, F.desc("score")).select(
            "customer_key",
            F.col("rank").cast("int").alias("rank"),
            "item",
            "score",
            F.lit("als").alias("source"),
        )

    return transform


def recommend(
    fit: AlsFit,
    purchases: DataFrame,
    segments: DataFrame | None,
    top_n: int,
    max_candidates: int = 100,
) -> Callable[[DataFrame], DataFrame]:
    """targets (customer_key) -> ALS top N, or for customers ALS never saw, popular items
    of their segment (overall when there is no segment). ``purchases`` (customer_key, item)
    are both what is excluded and what popularity is counted on."""

    def transform(targets: DataFrame) -> DataFrame:
        t = targets.select("customer_key").distinct()
        warm = t.transform(recommend_als(fit, top_n, purchases, max_candidates))
        cold = t.join(fit.users, on="customer_key", how="left_anti")
        fallback = cold.transform(
            recommend_popular_by_segment(purchases, segments, top_n, bought=purchases, candidates=max_candidates)
        )
        return warm.unionByName(fallback).select(*RECO_COLUMNS)

    return transform


def purchases_between(
    order_items: DataFrame, level: str, as_of: date, days: int, statuses: Sequence[str], products: DataFrame | None
) -> DataFrame:
    """Distinct (customer_key, item) bought in (as_of - days, as_of]."""
    return order_items.transform(customer_purchases(level, statuses, as_of - timedelta(days=days), as_of, products))
