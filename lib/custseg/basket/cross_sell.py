"""Per-customer cross-sell: rules whose antecedent a customer bought and whose consequent they have not.

All joins and windows, no per-customer Python:

1. each customer's distinct purchased items become one array; the rules (a bounded list)
   are broadcast and a rule fires for a customer when its antecedent is contained in that
   array;
2. rules whose consequent the customer already bought are removed (anti join);
3. each fired rule is scored: ``confidence_lift`` = confidence x lift, or
   ``expected_margin`` = confidence x the consequent's net unit price x margin_rate
   (the expected margin of one offer, when prices are known);
4. per (customer, consequent) the best rule is kept as the reason, and per customer
   the top N consequents by score (ties: higher confidence, then item name).

``fill`` adds the empty-antecedent rules (nothing -> item, confidence = the item's support,
lift 1): they fire for every customer, so a customer whom no mined rule reaches still gets
a full list of the most common items, and a mined rule (lift > 1, so confidence above the
consequent's support) ranks its consequent above where popularity alone would put it.
Their reason says so ("popular: ..."). The fill list is a bounded, broadcast list of the
most frequent single items (``popular_fill``).

``journeys`` (``custseg.basket.journeys``: "first bought A, then B within H days") fire for
customers who bought A within the last H days (``recent``) and do not own B. Their offers
rank above those of basket rules and the fill: they say what this customer is likely to buy
next, and only while the window is open, where a basket rule or the fill holds at any time.
Among themselves they rank by confidence (the probability of buying B within the horizon).

Rules may carry a ``segment_id`` (mined per segment): such a rule fires only for
customers of that segment; rules with a null ``segment_id`` fire for everyone.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

CROSS_SELL_COLUMNS = ["customer_key", "rank", "item", "score", "antecedent", "confidence", "lift", "reason"]
_ALL = "*"


def rule_score(score: str, margin_rate: float = 1.0) -> Column:
    """The score of a rule offer: confidence x lift, or confidence x unit price x margin rate."""
    if score == "confidence_lift":
        return F.col("confidence") * F.col("lift")
    if score == "confidence":
        return F.col("confidence")
    if score == "expected_margin":
        return F.col("confidence") * F.coalesce(F.col("unit_price"), F.lit(0.0)) * F.lit(float(margin_rate))
    raise ValueError(f"score must be confidence_lift, confidence or expected_margin; got {score!r}")


def reason_text(horizon_days: int | None = None) -> Column:
    journey = F.format_string(
        "bought %s recently; %.0f%% of first buyers of it bought %s within %d days (lift %.2f)",
        F.array_join("antecedent", " + "),
        F.col("confidence") * 100,
        F.col("item"),
        F.lit(int(horizon_days or 0)),
        F.col("lift"),
    )
    return (
        F.when(F.col("_tier") == 0, journey)
        .when(
            F.size("antecedent") == 0,
            F.format_string("popular: %.0f%% of baskets hold %s", F.col("confidence") * 100, F.col("item")),
        )
        .otherwise(
            F.format_string(
                "bought %s; %.0f%% of baskets with that also hold %s (lift %.2f)",
                F.array_join("antecedent", " + "),
                F.col("confidence") * 100,
                F.col("item"),
                F.col("lift"),
            )
        )
    )


def popular_fill(itemsets: DataFrame, limit: int) -> DataFrame:
    """item, support of the ``limit`` most frequent single items of FP-Growth's itemsets
    (``mine(...).itemsets``; rows with a segment_id, mined per segment, are left out)."""
    singles = itemsets.where(F.col("size") == 1)
    if "segment_id" in itemsets.columns:
        singles = singles.where(F.col("segment_id").isNull())
    return (
        singles.select(F.col("items")[0].alias("item"), F.col("support").cast("double").alias("support"))
        .orderBy(F.desc("support"), F.col("item"))
        .limit(limit)
    )


def cross_sell(
    rules: DataFrame,
    top_n: int,
    score: str = "confidence_lift",
    prices: DataFrame | None = None,
    margin_rate: float = 1.0,
    segments: DataFrame | None = None,
    exclude: DataFrame | None = None,
    aggregate: str = "max",
    fill: DataFrame | None = None,
    targets: DataFrame | None = None,
    journeys: DataFrame | None = None,
    recent: DataFrame | None = None,
    horizon_days: int | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """purchases (customer_key, item) -> top ``top_n`` cross-sell offers per customer.

    ``prices`` (item, unit_price) is needed for ``expected_margin``; ``segments``
    (customer_key, segment_id) only when some rules carry a segment_id. ``exclude``
    (customer_key, item) are the items not to offer (default: the purchases themselves;
    pass a longer history when "not yet bought" should reach further back than the
    window that triggers rules). ``aggregate``: an item offered by several fired rules
    scores the best rule's score (``max``) or the sum over them (``sum``: every rule that
    fires is evidence); the best rule is the reason either way. ``fill`` (item, support;
    see ``popular_fill``) adds the empty-antecedent rules for every customer in
    ``targets`` (customer_key; default: the customers in ``purchases``). ``journeys``
    (``mine_journeys`` rules) fire on ``recent`` (customer_key, item: purchases within
    their ``horizon_days``) and rank first.
    """
    if aggregate not in ("max", "sum"):
        raise ValueError(f"aggregate must be max or sum; got {aggregate!r}")
    if score == "expected_margin" and prices is None:
        raise ValueError("score 'expected_margin' needs prices (item, unit_price)")

    def transform(purchases: DataFrame) -> DataFrame:
        scoped_rules = "segment_id" in rules.columns
        scope = F.coalesce(F.col("segment_id").cast("string"), F.lit(_ALL)) if scoped_rules else F.lit(_ALL)
        r = rules.select(
            scope.alias("_scope"),
            "antecedent",
            F.col("consequent").alias("item"),
            "confidence",
            "lift",
        ).withColumn("_rid", F.xxhash64("_scope", "antecedent", "item"))

        def scored(rules_df: DataFrame) -> DataFrame:
            if score == "expected_margin":
                rules_df = rules_df.join(F.broadcast(prices.select("item", "unit_price")), on="item", how="left")
            return rules_df.withColumn("score", rule_score(score, margin_rate))

        r = scored(r)

        bought = purchases.select("customer_key", "item").distinct()
        # One row per customer with what they bought; the rules (a bounded, mined list) are
        # broadcast and tested against it in place. Joining items to the rules that hold them
        # instead would shuffle (customer, rule, item) rows: 239M for 1M customers and 307
        # category rules, against at most one row per (customer, offered item) here, as the
        # fired rules are reduced to the best one per item before the shuffle.
        customers = bought.groupBy("customer_key").agg(F.collect_set("item").alias("_items"))
        in_scope = F.col("_scope") == F.lit(_ALL)
        if scoped_rules and segments is not None:
            seg = segments.select("customer_key", F.col("segment_id").cast("string").alias("_seg"))
            customers = customers.join(seg, on="customer_key", how="left")
            in_scope = in_scope | (F.col("_scope") == F.col("_seg"))
        offer_cols = ["customer_key", "item", "antecedent", "confidence", "lift", "score", "_rid", "_tier"]
        offers = (
            customers.crossJoin(F.broadcast(r))
            .where(in_scope & (F.size(F.array_except("antecedent", "_items")) == 0))
            .where(~F.array_contains("_items", F.col("item")))
            .withColumn("_tier", F.lit(1))
            .select(*offer_cols)
        )
        if journeys is not None and recent is not None:
            j = journeys.select(
                F.col("antecedent")[0].alias("_trigger"),
                "antecedent",
                F.col("consequent").alias("item"),
                F.col("confidence").cast("double").alias("confidence"),
                F.col("lift").cast("double").alias("lift"),
            )
            fired = (
                recent.select("customer_key", F.col("item").alias("_trigger"))
                .distinct()
                .join(F.broadcast(j), on="_trigger")
                .select(
                    "customer_key",
                    "item",
                    "antecedent",
                    "confidence",
                    "lift",
                    F.col("confidence").alias("score"),
                    F.xxhash64(F.lit("journey"), "antecedent", "item").alias("_rid"),
                    F.lit(0).alias("_tier"),
                )
            )
            offers = offers.unionByName(fired)
        owned = bought if exclude is None else exclude.select("customer_key", "item")
        if fill is not None:
            default = fill.select(
                F.array().cast("array<string>").alias("antecedent"),
                "item",
                F.col("support").cast("double").alias("confidence"),
                F.lit(1.0).alias("lift"),
            ).withColumn("_rid", F.xxhash64(F.lit(_ALL), "antecedent", "item"))
            default = scored(default)
            who = (targets if targets is not None else bought).select("customer_key").distinct()
            default = default.withColumn("_tier", F.lit(1))
            offers = offers.unionByName(who.crossJoin(F.broadcast(default)).select(*offer_cols))
        # The best rule of each (customer, item) is its reason: higher score, then confidence,
        # then lift, then the smaller rule id (~id reverses the order of a signed long).
        best = F.max(
            F.struct(
                (-F.col("_tier")).alias("t"),
                F.col("score").alias("s"),
                F.col("confidence").alias("c"),
                F.col("lift").alias("l"),
                F.bitwise_not("_rid").alias("r"),
                F.col("antecedent").alias("a"),
            )
        )
        total = F.sum("score") if aggregate == "sum" else F.max("score")
        per_item = (
            offers.groupBy("customer_key", "item")
            .agg(best.alias("_best"), total.alias("_total"))
            .join(owned, on=["customer_key", "item"], how="left_anti")
            .select(
                "customer_key",
                "item",
                F.when(F.col("_best.t") == 0, F.col("_best.s")).otherwise(F.col("_total")).alias("score"),
                (-F.col("_best.t")).alias("_tier"),
                F.col("_best.a").alias("antecedent"),
                F.col("_best.c").alias("confidence"),
                F.col("_best.l").alias("lift"),
            )
        )
        by_customer = Window.partitionBy("customer_key").orderBy(
            F.col("_tier"), F.desc("score"), F.desc("confidence"), F.col("item")
        )
        return (
            per_item.withColumn("rank", F.row_number().over(by_customer))
            .where(F.col("rank") <= top_n)
            .select(
                "customer_key",
                F.col("rank").cast("int").alias("rank"),
                "item",
                F.col("score").cast("double").alias("score"),
                "antecedent",
                "confidence",
                "lift",
                reason_text(horizon_days).alias("reason"),
            )
        )

    return transform
