"""Offline evaluation on a time split: precision@K, recall@K and MAP@K, computed in Spark.

The last ``holdout_days`` before the snapshot are held out. Every method is trained on
what happened up to the cut-off and asked for its top K items for the *evaluation
users*: customers who bought something in the training window and bought, in the
held-out days, at least one item they had not bought in the training window (the
*relevant* items; items already bought are excluded from every method's list, so
re-purchases cannot be hit and do not count).

For a user with relevant set R and list L (rank 1..K):
- precision@K = |L[:K] & R| / K   (a short list is not padded: missing slots are misses)
- recall@K = |L[:K] & R| / |R|
- AP@K = sum over hit ranks i <= K of precision@i, divided by min(K, |R|)
and each is averaged over all evaluation users, those with an empty list included
(they score 0). These are the definitions of Spark's ``RankingMetrics``
(precisionAt, recallAt, meanAveragePrecisionAt), which the unit tests check against.
``coverage`` is the share of evaluation users who got at least one item.

The blend is weighted reciprocal-rank fusion (Cormack, Clarke & Buettcher 2009,
"Reciprocal rank fusion outperforms Condorcet and individual rank learning methods",
SIGIR): score = w / (k0 + rank_rules) + (1 - w) / (k0 + rank_als), a missing rank adding 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from custseg.basket.baskets import baskets, customer_purchases, item_prices
from custseg.basket.cross_sell import cross_sell, popular_fill
from custseg.basket.fpgrowth import mine
from custseg.basket.journeys import journey_inputs
from custseg.basket.settings import BasketSettings
from custseg.recommend.als import fit_als, interactions, recommend_als
from custseg.recommend.popularity import item_popularity, recommend_popular
from custseg.recommend.settings import RecommendSettings
from custseg.runtime import keep

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["k", "users", "precision", "recall", "map", "coverage"]
QUALITY_COLUMNS = [
    "method",
    "k",
    "users",
    "precision",
    "recall",
    "map",
    "coverage",
    "level",
    "train_end",
    "holdout_days",
]


def ranking_metrics(relevant: DataFrame, ks: Sequence[int]) -> Callable[[DataFrame], DataFrame]:
    """recs (customer_key, rank, item) -> one row per K: k, users, precision, recall, map, coverage.

    ``relevant`` (customer_key, item) defines the evaluation users; recommendations for
    anyone else are ignored. Only the per-K means reach the output.
    """
    ks = sorted({int(k) for k in ks})
    kmax = ks[-1]

    def transform(recs: DataFrame) -> DataFrame:
        rel = relevant.select("customer_key", "item").distinct()
        users = rel.groupBy("customer_key").agg(F.count("*").alias("_n_rel"))
        listed = (
            recs.where(F.col("rank") <= kmax)
            .select("customer_key", "rank", "item")
            .join(users.select("customer_key"), on="customer_key", how="left_semi")
            .join(rel.withColumn("_hit", F.lit(1)), on=["customer_key", "item"], how="left")
            .withColumn("_hit", F.coalesce(F.col("_hit"), F.lit(0)))
        )
        upto = (
            Window.partitionBy("customer_key").orderBy("rank").rowsBetween(Window.unboundedPreceding, Window.currentRow)
        )
        listed = listed.withColumn("_prec_at", F.when(F.col("_hit") == 1, F.sum("_hit").over(upto) / F.col("rank")))
        aggs = []
        for k in ks:
            in_k = F.col("rank") <= k
            aggs += [
                F.sum(F.when(in_k, F.col("_hit"))).alias(f"_h{k}"),
                F.sum(F.when(in_k, F.col("_prec_at"))).alias(f"_ap{k}"),
                F.max(F.when(in_k, F.lit(1))).alias(f"_c{k}"),
            ]
        per_user = listed.groupBy("customer_key").agg(*aggs)
        full = users.join(per_user, on="customer_key", how="left")
        means = []
        for k in ks:
            h = F.coalesce(F.col(f"_h{k}"), F.lit(0)).cast("double")
            means += [
                F.avg(h / F.lit(float(k))).alias(f"p{k}"),
                F.avg(h / F.col("_n_rel")).alias(f"r{k}"),
                F.avg(F.coalesce(F.col(f"_ap{k}"), F.lit(0.0)) / F.least(F.lit(k), F.col("_n_rel"))).alias(f"m{k}"),
                F.avg(F.coalesce(F.col(f"_c{k}"), F.lit(0)).cast("double")).alias(f"c{k}"),
            ]
        overall = full.agg(F.count("*").alias("users"), *means)
        rows = F.explode(
            F.array(
                *[
                    F.struct(
                        F.lit(k).alias("k"),
                        F.col(f"p{k}").alias("precision"),
                        F.col(f"r{k}").alias("recall"),
                        F.col(f"m{k}").alias("map"),
                        F.col(f"c{k}").alias("coverage"),
                    )
                    for k in ks
                ]
            )
        )
        return overall.select("users", rows.alias("m")).select(
            F.col("m.k").cast("int").alias("k"),
            F.col("users").cast("long").alias("users"),
            F.coalesce(F.col("m.precision"), F.lit(0.0)).alias("precision"),
            F.coalesce(F.col("m.recall"), F.lit(0.0)).alias("recall"),
            F.coalesce(F.col("m.map"), F.lit(0.0)).alias("map"),
            F.coalesce(F.col("m.coverage"), F.lit(0.0)).alias("coverage"),
        )

    return transform


def blend(
    als_recs: DataFrame, top_n: int, rules_weight: float = 0.5, rrf_k: int = 60
) -> Callable[[DataFrame], DataFrame]:
    """rules recs -> reciprocal-rank fusion with ``als_recs`` (both customer_key, rank, item)."""

    def transform(rules_recs: DataFrame) -> DataFrame:
        r = rules_recs.select(
            "customer_key", "item", (F.lit(float(rules_weight)) / (F.lit(rrf_k) + F.col("rank"))).alias("_r")
        )
        a = als_recs.select(
            "customer_key", "item", (F.lit(1.0 - float(rules_weight)) / (F.lit(rrf_k) + F.col("rank"))).alias("_a")
        )
        fused = r.join(a, on=["customer_key", "item"], how="full").select(
            "customer_key", "item", (F.coalesce("_r", F.lit(0.0)) + F.coalesce("_a", F.lit(0.0))).alias("score")
        )
        by_customer = Window.partitionBy("customer_key").orderBy(F.desc("score"), F.col("item"))
        return (
            fused.withColumn("rank", F.row_number().over(by_customer))
            .where(F.col("rank") <= top_n)
            .select(
                "customer_key", F.col("rank").cast("int").alias("rank"), "item", "score", F.lit("blend").alias("source")
            )
        )

    return transform


@dataclass
class HoldoutSplit:
    """The time split of an evaluation: what each method may learn from, and what it is scored on.

    ``owned``: (customer_key, item) bought in the training window, up to ``cutoff``;
    ``relevant``: (customer_key, item) first bought after ``cutoff`` (up to the snapshot) by a
    customer who bought something before it: the held-out truth, never shown to a method.
    """

    cutoff: date
    owned: DataFrame
    relevant: DataFrame
    users: DataFrame

    def unpersist(self) -> None:
        for df in (self.owned, self.relevant):
            df.unpersist()


def holdout_split(
    order_items: DataFrame,
    as_of: date,
    basket: BasketSettings,
    reco: RecommendSettings,
    products: DataFrame | None = None,
) -> HoldoutSplit:
    """The last ``reco.holdout_days`` before ``as_of`` held out (``owned`` and ``relevant`` cached)."""
    cutoff = as_of - timedelta(days=reco.holdout_days)
    level, statuses = basket.level, basket.statuses
    history = max(reco.window_days, basket.cross_sell.window_days)
    owned = order_items.transform(
        customer_purchases(level, statuses, cutoff - timedelta(days=history), cutoff, products)
    ).cache()
    later = order_items.transform(customer_purchases(level, statuses, cutoff, as_of, products))
    relevant = (
        later.join(owned, on=["customer_key", "item"], how="left_anti")
        .join(owned.select("customer_key").distinct(), on="customer_key", how="left_semi")
        .cache()
    )
    return HoldoutSplit(cutoff, owned, relevant, relevant.select("customer_key").distinct())


@dataclass
class HoldoutRecommendations:
    """Each method's top-K lists for the evaluation users, trained on data up to the cut-off only."""

    methods: dict[str, DataFrame]
    _release: list = field(default_factory=list, repr=False)

    def unpersist(self) -> None:
        for x in self._release:
            x.unpersist()


def holdout_recommendations(
    order_items: DataFrame,
    events: DataFrame | None,
    split: HoldoutSplit,
    basket: BasketSettings,
    reco: RecommendSettings,
    products: DataFrame | None = None,
) -> HoldoutRecommendations:
    """rules, als, blend and popularity lists (customer_key, rank, item) for ``split.users``.

    Every input is cut at ``split.cutoff``: no method sees a purchase or event after it.
    """
    cutoff, owned, users = split.cutoff, split.owned, split.users
    level, statuses = basket.level, basket.statuses
    kmax = max(reco.k)
    train_baskets = order_items.transform(
        baskets(level, statuses, cutoff - timedelta(days=basket.window_days), cutoff, products)
    )
    mined = mine(
        train_baskets,
        basket.min_support,
        basket.min_confidence,
        min_lift=basket.min_lift,
        num_partitions=basket.num_partitions,
        max_itemset_size=basket.max_itemset_size,
        max_itemsets=basket.max_itemsets,
        max_basket_items=basket.max_basket_items,
    )
    triggers = order_items.transform(
        customer_purchases(level, statuses, cutoff - timedelta(days=basket.cross_sell.window_days), cutoff, products)
    ).join(users, on="customer_key", how="left_semi")
    xs = basket.cross_sell
    prices = (
        order_items.transform(
            item_prices(level, statuses, cutoff - timedelta(days=basket.window_days), cutoff, products)
        )
        if xs.score == "expected_margin"
        else None
    )
    fill = popular_fill(mined.itemsets, xs.fill_candidates) if xs.fill == "popular" else None
    journeys = journey_inputs(order_items, basket, cutoff, products)
    if journeys:
        journeys = (journeys[0].cache(), journeys[1].join(users, on="customer_key", how="left_semi"))
    offers = cross_sell(
        mined.rules,
        kmax,
        xs.score,
        prices,
        xs.margin_rate,
        exclude=owned,
        aggregate=xs.aggregate,
        fill=fill,
        targets=users,
        journeys=journeys[0] if journeys else None,
        recent=journeys[1] if journeys else None,
        horizon_days=basket.journeys.horizon_days,
    )
    rules_recs = keep(triggers.transform(offers))

    inter = interactions(
        order_items, events, reco.weights, level, cutoff - timedelta(days=reco.window_days), cutoff, statuses, products
    )
    fit = fit_als(inter, reco.als)
    als_recs = keep(users.transform(recommend_als(fit, kmax, owned, reco.max_candidates)))
    blended = rules_recs.transform(blend(als_recs, kmax, reco.blend_rules_weight, reco.blend_rrf_k))
    popular = users.transform(
        recommend_popular(owned.transform(item_popularity()), kmax, owned, candidates=reco.max_candidates)
    )
    methods = {"rules": rules_recs, "als": als_recs, "blend": blended, "popularity": popular}
    return HoldoutRecommendations(methods, [rules_recs, als_recs, *(journeys[:1] if journeys else ()), fit, mined])


def holdout_quality(
    order_items: DataFrame,
    events: DataFrame | None,
    as_of: date,
    basket: BasketSettings,
    reco: RecommendSettings,
    products: DataFrame | None = None,
) -> DataFrame:
    """reco_quality rows (``QUALITY_COLUMNS``) for rules, als, blend and popularity.

    Trains every method on data up to ``as_of - holdout_days`` and scores it on the
    held-out days. The result is a handful of rows; it is checkpointed so the models'
    cached data can be released before it is written.
    """
    split = holdout_split(order_items, as_of, basket, reco, products)
    log.info(
        "evaluation: train up to %s, %d users with new purchases in the last %d days",
        split.cutoff,
        split.users.count(),
        reco.holdout_days,
    )
    recs = holdout_recommendations(order_items, events, split, basket, reco, products)
    result = None
    for name, method_recs in recs.methods.items():
        m = method_recs.transform(ranking_metrics(split.relevant, reco.k)).select(
            F.lit(name).alias("method"), *METRIC_COLUMNS
        )
        result = m if result is None else result.unionByName(m)
    result = result.select(
        *["method", *METRIC_COLUMNS],
        F.lit(basket.level).alias("level"),
        F.lit(split.cutoff).alias("train_end"),
        F.lit(reco.holdout_days).cast("int").alias("holdout_days"),
    ).localCheckpoint(eager=True)
    recs.unpersist()
    split.unpersist()
    return result.select(*QUALITY_COLUMNS)
