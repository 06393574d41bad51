"""Frequent itemsets and association rules with MLlib FP-Growth, made to hold at scale.

What keeps it bounded on millions of baskets:

- **exact minimum count**: ``min_count`` is the smallest integer c with c / N >= min_support
  (N = baskets with at least one item), the same test mlxtend and the textbook use;
- **items pruned before mining**: item counts come from one aggregation; items below
  ``min_count`` cannot be in a frequent itemset, so they are dropped from every basket
  first, and baskets left with fewer than two frequent items are not sent to FP-Growth
  at all (their single items are already counted). FP-Growth then runs with a support
  threshold rescaled to the smaller input so that its own ``ceil(minSupport x rows)``
  is exactly ``min_count``;
- **integer items**: items become ints through a dictionary built from the item
  counts (bounded by the catalogue, so it is a broadcast join), which keeps the
  FP-trees and the shuffled conditional transactions small;
- **numPartitions**: from conf, or derived (``derive_num_partitions``);
- **long baskets set aside**: MLlib ships its FP-trees between stages with Java
  serialisation, which recurses once per tree level (about 24 stack frames per item of a
  basket). A basket of a few hundred items (a wholesale invoice) overflows a 1 MiB thread
  stack (the JVM default, on executors as on a local driver), and in local mode the
  StackOverflowError takes the JVM down. Baskets with more than ``max_basket_items``
  distinct items are therefore left out *before* anything is counted (supports are over
  the baskets mined), and their number is reported (``long_baskets``);
- **a guard** on the output: itemsets longer than ``max_itemset_size`` are dropped, and
  mining fails with ``ItemsetExplosionError`` when FP-Growth returns more than
  ``max_itemsets`` itemsets (lower thresholds on dense data grow combinatorially;
  raise ``basket.min_support`` then).

Rules are single-consequent (what MLlib and cross-sell use): for each frequent itemset
S with |S| >= 2 and each c in S, A = S - {c} -> c. Their metrics are recomputed from
exact counts joined from the itemsets (see ``custseg.basket.metrics``), never taken
from FP-Growth's own rule output.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from custseg.basket.metrics import with_rule_metrics
from custseg.runtime import default_parallelism

log = logging.getLogger(__name__)

ITEMSET_COLUMNS = ["items", "size", "count", "support"]
RULE_COLUMNS = [
    "antecedent",
    "consequent",
    "antecedent_count",
    "consequent_count",
    "union_count",
    "support",
    "confidence",
    "lift",
    "leverage",
    "conviction",
    "normalized_lift",
]
ITEMSET_SCHEMA = T.StructType(
    [
        T.StructField("items", T.ArrayType(T.StringType())),
        T.StructField("size", T.IntegerType()),
        T.StructField("count", T.LongType()),
        T.StructField("support", T.DoubleType()),
    ]
)
RULE_SCHEMA = T.StructType(
    [
        T.StructField("antecedent", T.ArrayType(T.StringType())),
        T.StructField("consequent", T.StringType()),
        T.StructField("antecedent_count", T.LongType()),
        T.StructField("consequent_count", T.LongType()),
        T.StructField("union_count", T.LongType()),
        *[T.StructField(c, T.DoubleType()) for c in RULE_COLUMNS[5:]],
    ]
)
_ENCODED_SCHEMA = T.StructType(
    [T.StructField("items", T.ArrayType(T.IntegerType())), T.StructField("count", T.LongType())]
)


# Deepest FP-tree path (distinct items of a basket) that MLlib's Java serialisation of the tree
# survives with room on a 1 MiB thread stack (overflow measured at about 210 items).
DEFAULT_MAX_BASKET_ITEMS = 100


class ItemsetExplosionError(RuntimeError):
    """FP-Growth found more itemsets than the configured guard allows."""


def min_count_for(min_support: float, n_baskets: int) -> int:
    """Smallest count c with c / n >= min_support, evaluated in floating point as mlxtend does."""
    if not 0 < min_support <= 1:
        raise ValueError(f"min_support must be in (0, 1]; got {min_support!r}")
    c = max(1, math.ceil(min_support * n_baskets))
    while c > 1 and (c - 1) / n_baskets >= min_support:
        c -= 1
    while n_baskets and c / n_baskets < min_support:
        c += 1
    return c


def derive_num_partitions(default_parallelism: int, n_items: int, n_transactions: int) -> int:
    """FP-Growth partitions when conf says 0.

    Each partition grows the conditional FP-trees of the items hashed to it, and each
    transaction is copied once per partition its items fall in: more partitions buy
    parallelism with duplicated prefixes. Two per core keeps every core busy with
    room for skew; one per 250k transactions keeps a single tree's memory bounded;
    more partitions than frequent items would sit empty.
    """
    wanted = max(2 * max(default_parallelism, 1), math.ceil(n_transactions / 250_000))
    return max(1, min(wanted, max(n_items, 1)))


@dataclass
class Mined:
    """FP-Growth output: itemsets and rules (lazy over cached, bounded frames)."""

    itemsets: DataFrame
    rules: DataFrame
    n_baskets: int
    min_count: int
    n_items: int
    n_mined_baskets: int
    num_partitions: int
    n_itemsets_mined: int
    n_long_baskets: int = 0
    max_basket_items: int | None = None
    _cached: list[DataFrame] = field(default_factory=list, repr=False)

    def unpersist(self) -> None:
        for df in self._cached:
            df.unpersist()
        self._cached.clear()

    def summary(self) -> dict:
        return {
            "n_baskets": self.n_baskets,
            "min_count": self.min_count,
            "frequent_items": self.n_items,
            "mined_baskets": self.n_mined_baskets,
            "num_partitions": self.num_partitions,
            "itemsets_mined": self.n_itemsets_mined,
            "long_baskets": self.n_long_baskets,
            "max_basket_items": self.max_basket_items,
        }


def mine(
    baskets: DataFrame,
    min_support: float,
    min_confidence: float,
    items_col: str = "items",
    *,
    min_lift: float | None = None,
    num_partitions: int = 0,
    max_itemset_size: int | None = None,
    max_itemsets: int | None = None,
    conviction_cap: float | None = None,
    max_basket_items: int | None = DEFAULT_MAX_BASKET_ITEMS,
) -> Mined:
    """Frequent itemsets (support >= min_support) and single-consequent rules
    (confidence >= min_confidence, lift >= min_lift) of the baskets in ``items_col``.

    Nulls in a basket are ignored and repeated items count once. Baskets with more than
    ``max_basket_items`` distinct items are left out (counted in ``n_long_baskets``; None: no
    bound, only safe with a larger thread stack). A few
    scalars reach the driver (basket and item counts); the data stays in Spark.
    """
    spark = baskets.sparkSession
    if not 0 <= min_confidence <= 1:
        raise ValueError(f"min_confidence must be in [0, 1]; got {min_confidence!r}")
    if max_basket_items is not None and max_basket_items < 2:
        raise ValueError(f"max_basket_items must be at least 2; got {max_basket_items!r}")
    distinct = baskets.select(F.array_distinct(F.filter(F.col(items_col), lambda x: x.isNotNull())).alias("items"))
    is_long = F.size("items") > F.lit(max_basket_items) if max_basket_items else F.lit(False)
    cached = (
        distinct.where(F.size("items") > 0)
        .withColumn("_long", is_long)
        .withColumn("_bid", F.monotonically_increasing_id())
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    sizes = cached.agg(F.count("*").alias("n"), F.sum(F.col("_long").cast("int")).alias("long")).first()
    n_long = int(sizes["long"] or 0)
    n = int(sizes["n"]) - n_long
    if n_long:
        log.warning(
            "fp-growth: %d of %d baskets have more than basket.max_basket_items=%d distinct items; "
            "left out of the mining (supports are over the other %d)",
            n_long,
            n + n_long,
            max_basket_items,
            n,
        )
    clean = cached.where(~F.col("_long")) if n_long else cached
    if n == 0:
        cached.unpersist()
        empty_sets = spark.createDataFrame([], ITEMSET_SCHEMA)
        return Mined(empty_sets, spark.createDataFrame([], RULE_SCHEMA), 0, 0, 0, 0, 0, 0, n_long, max_basket_items)
    min_count = min_count_for(min_support, n)

    # The item dictionary: frequent items only, ids by descending count (bounded by the catalogue).
    dictionary = (
        clean.select(F.explode("items").alias("item"))
        .groupBy("item")
        .agg(F.count("*").alias("count"))
        .where(F.col("count") >= min_count)
        .withColumn("item_id", (F.row_number().over(Window.orderBy(F.desc("count"), "item")) - 1).cast("int"))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    n_items = dictionary.count()

    encoded = (
        clean.select("_bid", F.explode("items").alias("item"))
        .join(F.broadcast(dictionary.select("item", "item_id")), on="item", how="inner")
        .groupBy("_bid")
        .agg(F.array_sort(F.collect_list("item_id")).alias("items"))
        .where(F.size("items") >= 2)
        .select("items")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    m = encoded.count()
    cached.unpersist()

    parts = num_partitions or derive_num_partitions(default_parallelism(spark), n_items, m)
    if m > 0 and min_count <= m:
        from pyspark.ml.fpm import FPGrowth

        # FP-Growth keeps itemsets with freq >= ceil(minSupport x m): make that min_count exactly.
        fp = FPGrowth(itemsCol="items", minSupport=(min_count - 0.5) / m, minConfidence=0.0, numPartitions=parts)
        mined = (
            fp.fit(encoded)
            .freqItemsets.select(F.array_sort("items").alias("items"), F.col("freq").cast("long").alias("count"))
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
    else:
        mined = spark.createDataFrame([], _ENCODED_SCHEMA).persist()
    n_mined = mined.count()
    encoded.unpersist()
    log.info(
        "fp-growth: %d baskets, min_count %d, %d frequent items, %d baskets mined on %d partitions -> %d itemsets",
        n,
        min_count,
        n_items,
        m,
        parts,
        n_mined,
    )
    if max_itemsets is not None and n_mined > max_itemsets:
        mined.unpersist()
        dictionary.unpersist()
        raise ItemsetExplosionError(
            f"FP-Growth found {n_mined} itemsets over {n} baskets at min_support={min_support} "
            f"(min count {min_count}), more than basket.max_itemsets={max_itemsets}: "
            "raise basket.min_support (or basket.max_itemsets if the memory allows)"
        )

    multi = mined.where(F.size("items") >= 2)
    if max_itemset_size is not None:
        multi = multi.where(F.size("items") <= max_itemset_size)
    singles = dictionary.select(F.array(F.col("item_id")).alias("items"), F.col("count").cast("long").alias("count"))
    int_sets = singles.unionByName(multi)

    # Decode once; rules reuse the decoded itemsets for their antecedents.
    names = dictionary.select("item_id", "item")
    decoded = (
        int_sets.select(F.col("items").alias("int_items"), F.explode("items").alias("item_id"))
        .join(F.broadcast(names), on="item_id", how="inner")
        .groupBy("int_items")
        .agg(F.array_sort(F.collect_list("item")).alias("items"))
    )
    itemsets = int_sets.join(decoded, int_sets["items"] == decoded["int_items"], how="inner").select(
        decoded["items"],
        F.size(decoded["items"]).alias("size"),
        int_sets["count"],
        (int_sets["count"] / F.lit(float(n))).alias("support"),
    )

    union = int_sets.where(F.size("items") >= 2).select(
        F.col("items").alias("_union"), F.col("count").alias("union_count"), F.explode("items").alias("_c")
    )
    antecedents = int_sets.select(F.col("items").alias("_a"), F.col("count").alias("antecedent_count"))
    consequents = dictionary.select(
        F.col("item_id").alias("_c"),
        F.col("item").alias("consequent"),
        F.col("count").cast("long").alias("consequent_count"),
    )
    rules = (
        union.withColumn("_a", F.array_remove("_union", F.col("_c")))
        .join(antecedents, on="_a", how="inner")
        .join(F.broadcast(consequents), on="_c", how="inner")
        .transform(with_rule_metrics(n, conviction_cap))
        .where(F.col("confidence") >= F.lit(float(min_confidence)))
    )
    if min_lift is not None:
        rules = rules.where(F.col("lift") >= F.lit(float(min_lift)))
    rules = rules.join(
        decoded.select(F.col("int_items").alias("_a"), F.col("items").alias("antecedent")), on="_a", how="inner"
    )
    rules = rules.select(
        "antecedent",
        "consequent",
        F.col("antecedent_count").cast("long").alias("antecedent_count"),
        F.col("consequent_count").cast("long").alias("consequent_count"),
        F.col("union_count").cast("long").alias("union_count"),
        *RULE_COLUMNS[5:],
    )
    return Mined(
        itemsets, rules, n, min_count, n_items, m, parts, n_mined, n_long, max_basket_items, [mined, dictionary]
    )


def mine_rules(
    baskets: DataFrame,
    min_support: float,
    min_confidence: float,
    items_col: str = "items",
    **options,
) -> tuple[DataFrame, DataFrame]:
    """(itemsets, rules) of ``baskets``; ``options`` as for ``mine`` (min_lift, num_partitions,
    max_itemset_size, max_itemsets, conviction_cap).

    itemsets: items (sorted array of strings), size, count, support.
    rules: antecedent (sorted array), consequent, antecedent_count, consequent_count,
    union_count, support, confidence, lift, leverage, conviction (null when infinite),
    normalized_lift.
    """
    result = mine(baskets, min_support, min_confidence, items_col, **options)
    return result.itemsets, result.rules


def mine_by_segment(
    baskets: DataFrame,
    segment_col: str,
    min_support: float,
    min_confidence: float,
    items_col: str = "items",
    **options,
) -> tuple[DataFrame, DataFrame, list[Mined]]:
    """Rules mined separately in each segment (a bounded list of ids reaches the driver).

    Thresholds are relative to each segment's own basket count. Returns itemsets and rules
    with ``segment_col`` first, and the per-segment results (call ``unpersist`` on them
    once the frames are written).
    """
    ids = [r[0] for r in baskets.select(segment_col).where(F.col(segment_col).isNotNull()).distinct().collect()]
    results: list[Mined] = []
    itemsets, rules = None, None
    for seg in sorted(ids):
        res = mine(baskets.where(F.col(segment_col) == F.lit(seg)), min_support, min_confidence, items_col, **options)
        results.append(res)
        s = res.itemsets.select(F.lit(seg).alias(segment_col), *ITEMSET_COLUMNS)
        r = res.rules.select(F.lit(seg).alias(segment_col), *RULE_COLUMNS)
        itemsets = s if itemsets is None else itemsets.unionByName(s)
        rules = r if rules is None else rules.unionByName(r)
    seg_type = baskets.schema[segment_col].dataType
    if itemsets is None:
        spark = baskets.sparkSession
        itemsets = spark.createDataFrame(
            [], T.StructType([T.StructField(segment_col, seg_type), *ITEMSET_SCHEMA.fields])
        )
        rules = spark.createDataFrame([], T.StructType([T.StructField(segment_col, seg_type), *RULE_SCHEMA.fields]))
    return itemsets, rules, results
