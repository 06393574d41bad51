"""Journey rules: "first bought A, then first bought B within H days", mined across orders.

Basket rules (FP-Growth) see what goes into one order. A journey is what a customer comes
back for: after their first purchase of A (a television), their first purchase of B
(furniture) follows within ``horizon_days``. Whoever owns A mostly owns B by the time a
basket rule could fire; a journey rule fires while the window is open: for customers who
bought A in the last ``horizon_days`` and have not bought B.

For every pair (A, B) of items, over the customers whose first purchase of A lies at least
``horizon_days`` before the end of the window (so that their horizon is fully observed):

- ``eligible`` = those who had not bought B by the day of their first A;
- ``converted`` = eligible customers whose first B came within ``horizon_days`` after it;
- ``confidence`` = converted / eligible, P(first B within H days | first A, B not owned);
- ``base_rate`` (of B) = the sum of ``converted`` over all antecedents A divided by the sum
  of ``eligible``: B's rate after any first purchase;
- ``lift`` = confidence / base_rate.

Pairs with at least ``min_eligible`` eligible customers, ``lift >= min_lift`` and
``confidence >= min_confidence`` are kept.

Cost: each customer's first-purchase dates are joined to themselves on the customer, so
the rows are the sum over customers of (items bought)^2. Only the ``max_items`` items that
most customers bought take part, which bounds it per customer and bounds the (A, B) grid
(a broadcast list of at most ``max_items``^2 pairs).
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from custseg.basket.baskets import customer_purchases, first_purchases
from custseg.basket.settings import BasketSettings

JOURNEY_COLUMNS = [
    "antecedent",
    "consequent",
    "eligible",
    "converted",
    "confidence",
    "base_rate",
    "lift",
    "horizon_days",
]


def mine_journeys(
    firsts: DataFrame,
    end: date,
    horizon_days: int,
    min_eligible: int = 20,
    min_lift: float = 1.5,
    min_confidence: float = 0.0,
    max_items: int = 100,
) -> DataFrame:
    """first purchases (customer_key, item, first_date) up to ``end`` -> journey rules (``JOURNEY_COLUMNS``)."""
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be >= 1; got {horizon_days}")
    top = (
        firsts.groupBy("item")
        .agg(F.count("*").alias("_buyers"))
        .orderBy(F.desc("_buyers"), F.col("item"))
        .limit(max_items)
        .select("item")
    )
    f = firsts.join(F.broadcast(top), on="item", how="left_semi")
    last_start = end - timedelta(days=horizon_days)
    a = f.where(F.col("first_date") <= F.lit(last_start)).select(
        "customer_key", F.col("item").alias("antecedent"), F.col("first_date").alias("_fa")
    )
    b = f.select("customer_key", F.col("item").alias("consequent"), F.col("first_date").alias("_fb"))
    pairs = (
        a.join(b, on="customer_key")
        .where(F.col("antecedent") != F.col("consequent"))
        .groupBy("antecedent", "consequent")
        .agg(
            F.sum(F.when(F.col("_fb") <= F.col("_fa"), 1).otherwise(0)).alias("_blocked"),
            F.sum(
                F.when(
                    (F.col("_fb") > F.col("_fa")) & (F.col("_fb") <= F.date_add(F.col("_fa"), horizon_days)), 1
                ).otherwise(0)
            ).alias("converted"),
        )
    )
    starters = a.groupBy("antecedent").agg(F.count("*").alias("_starters"))
    # Every (A, B) of the bounded item list: a pair nobody bought both of still counts its
    # A-starters as eligible for B's base rate.
    grid = (
        starters.crossJoin(top.select(F.col("item").alias("consequent")))
        .where(F.col("antecedent") != F.col("consequent"))
        .join(pairs, on=["antecedent", "consequent"], how="left")
        .select(
            "antecedent",
            "consequent",
            (F.col("_starters") - F.coalesce(F.col("_blocked"), F.lit(0))).cast("long").alias("eligible"),
            F.coalesce(F.col("converted"), F.lit(0)).cast("long").alias("converted"),
        )
    )
    base = grid.groupBy("consequent").agg((F.sum("converted") / F.sum("eligible")).cast("double").alias("base_rate"))
    rules = (
        grid.join(base, on="consequent")
        .where(F.col("eligible") > 0)
        .withColumn("confidence", (F.col("converted") / F.col("eligible")).cast("double"))
        .withColumn("lift", F.when(F.col("base_rate") > 0, F.col("confidence") / F.col("base_rate")).cast("double"))
    )
    return rules.where(
        (F.col("eligible") >= F.lit(int(min_eligible)))
        & (F.col("lift") >= F.lit(float(min_lift)))
        & (F.col("confidence") >= F.lit(float(min_confidence)))
    ).select(
        F.array(F.col("antecedent")).alias("antecedent"),
        "consequent",
        "eligible",
        "converted",
        "confidence",
        "base_rate",
        "lift",
        F.lit(int(horizon_days)).alias("horizon_days"),
    )


def journey_inputs(
    lines: DataFrame, basket: BasketSettings, as_of: date, products: DataFrame | None = None
) -> tuple[DataFrame, DataFrame] | None:
    """(journey rules, recent purchases) of silver order lines up to ``as_of`` at the basket
    level, or None when ``basket.journeys.enabled`` is false. The recent purchases (customer_key,
    item in the last ``horizon_days``) are what the rules fire on."""
    js = basket.journeys
    if not js.enabled:
        return None
    level, statuses = basket.level, basket.statuses
    firsts = lines.transform(
        first_purchases(level, statuses, as_of - timedelta(days=basket.window_days), as_of, products)
    )
    rules = mine_journeys(firsts, as_of, js.horizon_days, js.min_eligible, js.min_lift, js.min_confidence, js.max_items)
    recent = lines.transform(
        customer_purchases(level, statuses, as_of - timedelta(days=js.horizon_days), as_of, products)
    )
    return rules, recent
