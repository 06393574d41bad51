"""Popularity: the baseline every recommender must beat, and the cold-start fallback.

An item's popularity is the number of distinct customers who bought it (one heavy
buyer does not make an item popular), overall or within a segment. A customer is
offered the most popular items they have not bought yet: the top ``candidates`` items
of their scope are crossed with the customers (a bounded list, broadcast), their own
purchases are removed and the first ``top_n`` kept. A customer who bought more than
``candidates - top_n`` of those gets fewer than ``top_n``.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

RECO_COLUMNS = ["customer_key", "rank", "item", "score", "source"]
GLOBAL = "*"


def item_popularity(by: str | None = None) -> Callable[[DataFrame], DataFrame]:
    """purchases (customer_key, item[, by]) -> [by,] item, buyers, share, pop_rank.

    ``share`` is buyers over the customers who bought anything (in the scope);
    ``pop_rank`` orders items by buyers, ties by item name.
    """

    def transform(purchases: DataFrame) -> DataFrame:
        keys = [by] if by else []
        counts = purchases.groupBy(*keys, "item").agg(F.count_distinct("customer_key").alias("buyers"))
        totals = purchases.groupBy(*keys).agg(F.count_distinct("customer_key").alias("_customers"))
        ranked = (
            Window.partitionBy(*keys).orderBy(F.desc("buyers"), F.col("item"))
            if keys
            else Window.orderBy(F.desc("buyers"), F.col("item"))
        )
        joined = counts.crossJoin(totals) if not keys else counts.join(totals, on=keys, how="inner")
        return joined.select(
            *keys,
            "item",
            F.col("buyers").cast("long").alias("buyers"),
            (F.col("buyers") / F.col("_customers")).alias("share"),
            F.row_number().over(ranked).cast("int").alias("pop_rank"),
        )

    return transform


def recommend_popular(
    popularity: DataFrame,
    top_n: int,
    bought: DataFrame | None = None,
    candidates: int | None = None,
    source: str = "popular",
) -> Callable[[DataFrame], DataFrame]:
    """targets (customer_key) -> the ``top_n`` most popular items each has not bought.

    ``popularity`` is ``item_popularity()`` output (global); ``bought`` is (customer_key, item).
    """
    limit = candidates or top_n + 50

    def transform(targets: DataFrame) -> DataFrame:
        top = popularity.where(F.col("pop_rank") <= limit).select("item", "share", "pop_rank")
        offers = targets.select("customer_key").distinct().crossJoin(F.broadcast(top))
        return _rank_offers(offers, bought, top_n, source)

    return transform


def recommend_popular_by_segment(
    purchases: DataFrame,
    segments: DataFrame | None,
    top_n: int,
    bought: DataFrame | None = None,
    candidates: int | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """targets (customer_key[, segment_id]) -> popular items of their segment, else overall.

    Segment popularity comes from ``purchases`` of the customers in ``segments``
    (customer_key, segment_id). A customer without a segment, or whose segment bought
    nothing, gets the overall list (source ``popular``; ``segment_popular`` otherwise).
    """
    limit = candidates or top_n + 50

    def transform(targets: DataFrame) -> DataFrame:
        overall = purchases.transform(item_popularity()).where(F.col("pop_rank") <= limit)
        pools = overall.select(
            F.lit(GLOBAL).alias("_scope"), "item", "share", "pop_rank", F.lit("popular").alias("source")
        )
        t = targets.select("customer_key").distinct()
        if segments is not None:
            seg = segments.select("customer_key", F.col("segment_id").cast("string").alias("segment_id"))
            by_seg = (
                purchases.join(seg, on="customer_key", how="inner")
                .where(F.col("segment_id").isNotNull())
                .transform(item_popularity(by="segment_id"))
                .where(F.col("pop_rank") <= limit)
            )
            pools = pools.unionByName(
                by_seg.select(
                    F.col("segment_id").alias("_scope"),
                    "item",
                    "share",
                    "pop_rank",
                    F.lit("segment_popular").alias("source"),
                )
            )
            known = by_seg.select(F.col("segment_id").alias("_known")).distinct()
            t = (
                t.join(seg, on="customer_key", how="left")
                .join(F.broadcast(known), F.col("segment_id") == F.col("_known"), how="left")
                .select("customer_key", F.coalesce(F.col("_known"), F.lit(GLOBAL)).alias("_scope"))
            )
        else:
            t = t.withColumn("_scope", F.lit(GLOBAL))
        offers = t.join(F.broadcast(pools), on="_scope", how="inner").drop("_scope")
        return _rank_offers(offers, bought, top_n, None)

    return transform


def top_unbought(offers: DataFrame, bought: DataFrame | None, top_n: int, *order: Column) -> DataFrame:
    """Candidate offers less what the customer already bought, ranked per customer by ``order``
    (ties by item), the first ``top_n`` kept with their ``rank``. Shared by every recommender."""
    if bought is not None:
        offers = offers.join(bought.select("customer_key", "item"), on=["customer_key", "item"], how="left_anti")
    by_customer = Window.partitionBy("customer_key").orderBy(*order, F.col("item"))
    return offers.withColumn("rank", F.row_number().over(by_customer)).where(F.col("rank") <= top_n)


def _rank_offers(offers: DataFrame, bought: DataFrame | None, top_n: int, source: str | None) -> DataFrame:
    return top_unbought(offers, bought, top_n, F.col("pop_rank")).select(
        "customer_key",
        F.col("rank").cast("int").alias("rank"),
        "item",
        F.col("share").cast("double").alias("score"),
        (F.lit(source) if source is not None else F.col("source")).alias("source"),
    )
