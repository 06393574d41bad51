"""Segment strategy: the 4P (product, price, place, promotion) of every segment, with the evidence.

``segment_strategy(members, responses, cross_sell, recommendations, settings, as_of)`` -> one row
per segment (``STRATEGY_COLUMNS``). ``members`` is the marketing stage's customer base (one row
per customer: segment, features, consent); the other inputs may be None. Every choice comes
with a sentence saying which figures made it (``*_evidence`` / ``promotion_rule``):

- **product**: ``top_categories`` (the most frequent preferred categories of the members),
  ``cross_sell_items`` (items of ``gold.cross_sell`` offered to most members) and ``als_items``
  (items of ``gold.recommendations`` recommended to most members), each the ``top_n`` first;
  ``new_product_trial`` for explorers: the buyers' mean number of distinct categories bought is
  at least ``trial_min_categories``.
- **price**: ``discount_sensitivity`` = the buyers' mean share of discounted orders;
  ``discount_wanted`` = min_discount + (max_discount - min_discount) x sensitivity;
  ``discount_cap`` = (margin_rate - margin_floor) / (1 - margin_floor), the deepest discount that
  keeps the margin on the discounted price at ``margin_floor``; ``discount_depth`` = the smaller
  of the two, rounded down to a whole percent.
- **place**: per contact channel the share of members reachable (consent and an identifier)
  and the conversion rate of the segment's past treatment sends on it (``min_channel_sends`` or
  more; else the channel's rate over all segments; else ``fallback_response_rate``);
  ``channel_mix`` = the channels reaching at least ``min_reach_share`` of the members, best
  expected responders (reach x rate) first; ``purchase_channel`` = the members' most common
  preferred purchase channel; ``daypart`` = the day-part with the largest mean order share, when
  at least ``daypart_min_share``, else ``any``.
- **promotion**, first rule that holds: (1) at least ``new_customer_share`` of the members have
  at most one purchase -> ``first_purchase`` (goal acquisition, coupon); (2) at least
  ``lapsed_share`` have not bought for ``lapsed_days`` days, or the value class is one of
  ``winback_value_classes`` -> ``win_back`` (reactivation, voucher); (3) the value class is one of
  ``loyalty_value_classes``, or the mean CLV is at least ``loyalty_clv_index`` x the mean of all
  customers -> ``birthday_anniversary`` (retention, voucher); (4) the value class is one of
  ``upgrade_value_classes``, or the CLV index is at least ``upgrade_clv_index`` ->
  ``tier_upgrade`` (growth, coupon); (5) otherwise ``cross_sell`` (growth, cross_sell).

Everything is aggregated in Spark; the output is bounded by the number of segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from custseg.config import Config, validator
from custseg.marketing.audience import col_or_null, reachable
from custseg.marketing.campaigns import CHANNEL_CONSENT

UNSEGMENTED = "unsegmented"
PROMOTIONS = {
    # promotion -> (goal, campaign offer type)
    "first_purchase": ("acquisition", "coupon"),
    "win_back": ("reactivation", "voucher"),
    "birthday_anniversary": ("retention", "voucher"),
    "tier_upgrade": ("growth", "coupon"),
    "cross_sell": ("growth", "cross_sell"),
}
STRATEGY_COLUMNS = [
    "snapshot_date",
    "segment_name",
    "customers",
    "buyers",
    "value_class",
    "clv_mean",
    "clv_index",
    # product
    "top_categories",
    "cross_sell_items",
    "als_items",
    "new_product_trial",
    "product_evidence",
    # price
    "discount_sensitivity",
    "discount_wanted",
    "discount_cap",
    "discount_depth",
    "discount_capped",
    "price_evidence",
    # place
    "channel_mix",
    "primary_channel",
    "purchase_channel",
    "daypart",
    "place_evidence",
    # promotion
    "goal",
    "promotion",
    "offer_type",
    "promotion_rule",
]
DAYPART_SHARES = (
    ("weekday_lunch", "weekday_lunch_share"),
    ("weekday_evening", "weekday_evening_share"),
    ("weekend", "weekend_share"),
)


@dataclass(frozen=True)
class StrategySettings:
    top_n: int = 3
    trial_min_categories: float = 4.0
    margin_rate: float = 0.35
    margin_floor: float = 0.15
    min_discount: float = 0.05
    max_discount: float = 0.30
    min_reach_share: float = 0.1
    min_channel_sends: int = 30
    fallback_response_rate: float = 0.02
    daypart_min_share: float = 0.3
    new_customer_share: float = 0.5
    lapsed_days: int = 90
    lapsed_share: float = 0.5
    loyalty_value_classes: tuple[str, ...] = ("important-retain",)
    upgrade_value_classes: tuple[str, ...] = ("important-develop",)
    winback_value_classes: tuple[str, ...] = ("important-win-back",)
    loyalty_clv_index: float = 1.5
    upgrade_clv_index: float = 1.0

    @property
    def discount_cap(self) -> float:
        """The deepest discount d with (margin_rate - d) / (1 - d) >= margin_floor."""
        return (self.margin_rate - self.margin_floor) / (1.0 - self.margin_floor)

    @classmethod
    def from_config(cls, conf: Config) -> StrategySettings:
        """``marketing.strategy.*`` (defaults above); a bad value fails naming the key and the file."""
        d, p = cls(), "marketing.strategy."

        def get(key: str, default):
            return conf.get_path(p + key, default)

        def number(key: str, low: float, high: float, low_open: bool = False) -> float:
            v = get(key, getattr(d, key))
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not (low < v if low_open else low <= v)
                or v > high
            ):
                rng = f"{'>' if low_open else '>='} {low} and <= {high}"
                raise conf.error(p + key, f"must be a number {rng}; got {v!r}")
            return float(v)

        def integer(key: str, low: int) -> int:
            v = get(key, getattr(d, key))
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise conf.error(p + key, f"must be an integer >= {low}; got {v!r}")
            return v

        def names(key: str) -> tuple[str, ...]:
            v = get(key, list(getattr(d, key)))
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
                raise conf.error(p + key, f"must be a list of value class names; got {v!r}")
            return tuple(v)

        s = cls(
            top_n=integer("top_n", 1),
            trial_min_categories=number("trial_min_categories", 0.0, 1000.0),
            margin_rate=number("margin_rate", 0.0, 1.0, low_open=True),
            margin_floor=number("margin_floor", 0.0, 0.99),
            min_discount=number("min_discount", 0.0, 0.9),
            max_discount=number("max_discount", 0.0, 0.9),
            min_reach_share=number("min_reach_share", 0.0, 1.0),
            min_channel_sends=integer("min_channel_sends", 1),
            fallback_response_rate=float(
                conf.get_path("marketing.propensity.fallback_response_rate", d.fallback_response_rate)
            ),
            daypart_min_share=float(conf.get_path("marketing.offer.daypart_min_share", d.daypart_min_share)),
            new_customer_share=number("new_customer_share", 0.0, 1.0, low_open=True),
            lapsed_days=integer("lapsed_days", 1),
            lapsed_share=number("lapsed_share", 0.0, 1.0, low_open=True),
            loyalty_value_classes=names("loyalty_value_classes"),
            upgrade_value_classes=names("upgrade_value_classes"),
            winback_value_classes=names("winback_value_classes"),
            loyalty_clv_index=number("loyalty_clv_index", 0.0, 1000.0, low_open=True),
            upgrade_clv_index=number("upgrade_clv_index", 0.0, 1000.0, low_open=True),
        )
        if s.min_discount > s.max_discount:
            raise conf.error(
                p + "min_discount",
                f"({s.min_discount}) cannot exceed marketing.strategy.max_discount ({s.max_discount})",
            )
        if s.margin_floor >= s.margin_rate:
            raise conf.error(
                p + "margin_floor",
                f"({s.margin_floor}) must be below marketing.strategy.margin_rate ({s.margin_rate}): "
                "no discount could keep the margin above it",
            )
        return s


@validator
def _check_strategy(conf: Config) -> None:
    if conf.get_path("marketing", None) is not None:
        StrategySettings.from_config(conf)


def _pct(c: Column) -> Column:
    return F.format_string("%.0f%%", F.lit(100.0) * c)


def _top_items(df: DataFrame, item: Column, n: int, unit: str) -> DataFrame:
    """(segment_name, customer_key, item) -> segment_name, items (the n items most members have, ties
    by name), evidence ("bread (12 members), ...")."""
    counted = (
        df.select("segment_name", "customer_key", item.cast("string").alias("_item"))
        .where(F.col("_item").isNotNull())
        .groupBy("segment_name", "_item")
        .agg(F.count_distinct("customer_key").alias("_n"))
    )
    w = Window.partitionBy("segment_name").orderBy(F.col("_n").desc(), F.col("_item"))
    top = counted.withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= n)
    ranked = F.sort_array(F.collect_list(F.struct("_r", "_item", "_n")))
    return (
        top.groupBy("segment_name")
        .agg(ranked.alias("_top"))
        .select(
            "segment_name",
            F.transform("_top", lambda e: e["_item"]).alias("items"),
            F.array_join(
                F.transform("_top", lambda e: F.format_string(f"%s (%d {unit})", e["_item"], e["_n"])), ", "
            ).alias("evidence"),
        )
    )


def _members(members: DataFrame, segment_col: str) -> DataFrame:
    """The base with the segment key named ``segment_name`` (``unsegmented`` where it is null)."""
    seg = F.coalesce(col_or_null(members, segment_col, T.StringType()), F.lit(UNSEGMENTED))
    return members.withColumn("segment_name", seg)


def _product(m: DataFrame, cross_sell: DataFrame | None, recos: DataFrame | None, s: StrategySettings) -> DataFrame:
    cats = _top_items(m, F.col("preferred_category"), s.top_n, "members").select(
        "segment_name", F.col("items").alias("top_categories"), F.col("evidence").alias("_cat_ev")
    )
    keyed = m.select("customer_key", "segment_name")
    out = cats
    for name, table, ev in (("cross_sell_items", cross_sell, "_cs_ev"), ("als_items", recos, "_als_ev")):
        if table is None:
            continue
        top = _top_items(table.join(keyed, "customer_key", "inner"), F.col("item"), s.top_n, "members").select(
            "segment_name", F.col("items").alias(name), F.col("evidence").alias(ev)
        )
        out = out.join(top, "segment_name", "full")
    for name, ev in (("cross_sell_items", "_cs_ev"), ("als_items", "_als_ev")):
        if name not in out.columns:
            out = out.withColumns({name: F.lit(None).cast("array<string>"), ev: F.lit(None).cast("string")})
    return out


def _place(m: DataFrame, responses: DataFrame | None, s: StrategySettings) -> DataFrame:
    """segment_name, channel_mix, primary_channel, _place_ev (channels with reach and rate)."""
    by_key = "reach_by_key" in m.columns
    reach = m.groupBy("segment_name").agg(
        F.count("*").alias("_members"),
        *[F.sum(reachable(ch, by_key).cast("long")).alias(f"_reach_{ch}") for ch in CHANNEL_CONSENT],
    )
    rows = reach.select(
        "segment_name",
        F.explode(
            F.array(
                *[
                    F.struct(F.lit(ch).alias("channel"), (F.col(f"_reach_{ch}") / F.col("_members")).alias("reach"))
                    for ch in CHANNEL_CONSENT
                ]
            )
        ).alias("_c"),
    ).select("segment_name", "_c.channel", "_c.reach")
    if responses is not None:
        sends = responses.where(F.col("group") == "treatment").join(
            m.select("customer_key", "segment_name"), "customer_key", "inner"
        )
        converted = F.coalesce(F.col("converted").cast("double"), F.lit(0.0))
        seg_rate = sends.groupBy("segment_name", "channel").agg(
            F.count("*").alias("_sends"), F.avg(converted).alias("_seg_rate")
        )
        ch_rate = sends.groupBy("channel").agg(F.avg(converted).alias("_ch_rate"))
        rows = rows.join(seg_rate, ["segment_name", "channel"], "left").join(ch_rate, "channel", "left")
    else:
        rows = rows.withColumns(
            {"_sends": F.lit(None).cast("long"), "_seg_rate": F.lit(None).cast("double"), "_ch_rate": F.lit(None)}
        )
    sends_n = F.coalesce(F.col("_sends"), F.lit(0))
    own = sends_n >= F.lit(s.min_channel_sends)
    rate = F.when(own, F.col("_seg_rate")).otherwise(
        F.coalesce(F.col("_ch_rate").cast("double"), F.lit(s.fallback_response_rate))
    )
    basis = (
        F.when(own, F.format_string("%d sends", sends_n))
        .when(F.col("_ch_rate").isNotNull(), F.format_string("all segments, %d own sends", sends_n))
        .otherwise(F.lit("assumed, no history"))
    )
    ev = F.format_string(
        "%s %s reachable x %s converted (%s)", F.col("channel"), _pct(F.col("reach")), _pct(rate), basis
    )
    scored = rows.select(
        "segment_name",
        "channel",
        (F.col("reach") >= F.lit(s.min_reach_share)).alias("_in_mix"),
        (F.col("reach") * rate).alias("_score"),
        ev.alias("_ev"),
    )
    # Sorted by expected responders, then by name: ascending on (-score, channel).
    entry = F.struct((-F.col("_score")).alias("k"), F.col("channel"), F.col("_in_mix"), F.col("_ev"))
    agg = scored.groupBy("segment_name").agg(F.sort_array(F.collect_list(entry)).alias("_ch"))
    mix = F.transform(F.filter("_ch", lambda e: e["_in_mix"]), lambda e: e["channel"])
    return agg.select(
        "segment_name",
        mix.alias("channel_mix"),
        F.try_element_at(mix, F.lit(1)).alias("primary_channel"),
        F.array_join(F.transform("_ch", lambda e: e["_ev"]), "; ").alias("_place_ev"),
    )


def _daypart(s: StrategySettings) -> tuple[Column, Column]:
    best = F.greatest(*[F.coalesce(F.col(f"_m_{c}"), F.lit(0.0)) for _, c in DAYPART_SHARES])
    expr = F.when(best < F.lit(s.daypart_min_share), F.lit("any"))
    for name, c in DAYPART_SHARES:
        expr = expr.when(F.coalesce(F.col(f"_m_{c}"), F.lit(0.0)) == best, F.lit(name))
    ev = F.concat_ws(
        ", ",
        *[F.format_string(f"{name} %s", _pct(F.coalesce(F.col(f"_m_{c}"), F.lit(0.0)))) for name, c in DAYPART_SHARES],
    )
    return expr.otherwise(F.lit("any")), ev


def _promotion(s: StrategySettings) -> tuple[Column, Column]:
    """(promotion, the rule that chose it) from the segment's aggregates; first rule that holds."""
    vc = F.coalesce(F.col("value_class"), F.lit(""))
    new = F.col("_new_share") >= F.lit(s.new_customer_share)
    lapsed = F.col("_lapsed_share") >= F.lit(s.lapsed_share)
    winback_vc = vc.isin(*s.winback_value_classes) if s.winback_value_classes else F.lit(False)
    loyal_vc = vc.isin(*s.loyalty_value_classes) if s.loyalty_value_classes else F.lit(False)
    upgrade_vc = vc.isin(*s.upgrade_value_classes) if s.upgrade_value_classes else F.lit(False)
    clv_idx = F.coalesce(F.col("clv_index"), F.lit(0.0))
    new_ev = F.format_string(
        "%s of members have at most one purchase (first-purchase offer from %s)",
        _pct(F.col("_new_share")),
        F.lit(f"{s.new_customer_share:.0%}"),
    )
    lapsed_ev = F.format_string(
        "%s of members have not bought for %d days (win-back from %s); value class %s",
        _pct(F.col("_lapsed_share")),
        F.lit(s.lapsed_days),
        F.lit(f"{s.lapsed_share:.0%}"),
        F.coalesce(F.col("value_class"), F.lit("-")),
    )
    clv_txt = F.coalesce(F.format_string("%.2f", F.col("clv_index")), F.lit("-"))
    loyal_ev = F.format_string(
        "value class %s, CLV index %s (loyalty reward from %s or class %s)",
        F.coalesce(F.col("value_class"), F.lit("-")),
        clv_txt,
        F.lit(f"{s.loyalty_clv_index:g}"),
        F.lit("/".join(s.loyalty_value_classes) or "-"),
    )
    upgrade_ev = F.format_string(
        "value class %s, CLV index %s (tier upgrade from %s or class %s)",
        F.coalesce(F.col("value_class"), F.lit("-")),
        clv_txt,
        F.lit(f"{s.upgrade_clv_index:g}"),
        F.lit("/".join(s.upgrade_value_classes) or "-"),
    )
    other_ev = F.format_string(
        "no rule above holds (value class %s, CLV index %s): grow the basket with cross-sell",
        F.coalesce(F.col("value_class"), F.lit("-")),
        clv_txt,
    )
    promo = (
        F.when(new, F.lit("first_purchase"))
        .when(lapsed | winback_vc, F.lit("win_back"))
        .when(loyal_vc | (clv_idx >= F.lit(s.loyalty_clv_index)), F.lit("birthday_anniversary"))
        .when(upgrade_vc | (clv_idx >= F.lit(s.upgrade_clv_index)), F.lit("tier_upgrade"))
        .otherwise(F.lit("cross_sell"))
    )
    rule = (
        F.when(new, new_ev)
        .when(lapsed | winback_vc, lapsed_ev)
        .when(loyal_vc | (clv_idx >= F.lit(s.loyalty_clv_index)), loyal_ev)
        .when(upgrade_vc | (clv_idx >= F.lit(s.upgrade_clv_index)), upgrade_ev)
        .otherwise(other_ev)
    )
    return promo, rule


def _mapped(promo: Column, i: int) -> Column:
    pairs = [F.lit(x) for p, v in PROMOTIONS.items() for x in (p, v[i])]
    return F.create_map(*pairs)[promo]


def segment_strategy(
    members: DataFrame,
    responses: DataFrame | None,
    cross_sell: DataFrame | None,
    recommendations: DataFrame | None,
    settings: StrategySettings,
    as_of: date,
    segment_col: str = "segment_name",
) -> DataFrame:
    """The customer base (one row per customer) and optional campaign responses, ``gold.cross_sell`` and
    ``gold.recommendations`` rows of the snapshot -> ``gold.segment_strategy`` rows (``STRATEGY_COLUMNS``).

    ``segment_col`` names the segment of each member (``segment_name``, or ``rfm_segment`` when the
    stage has no segmentation)."""
    s = settings
    m = _members(members, segment_col)
    num = lambda c: col_or_null(m, c, T.DoubleType())  # noqa: E731
    bought = F.coalesce(num("frequency"), F.lit(0.0)) > 0
    lapsed = bought & (num("recency_days") >= F.lit(s.lapsed_days))
    stats = m.groupBy("segment_name").agg(
        F.count("*").alias("customers"),
        F.sum(bought.cast("long")).alias("buyers"),
        F.mode(col_or_null(m, "value_class", T.StringType())).alias("value_class"),
        F.avg(num("clv")).alias("clv_mean"),
        F.sum(num("clv")).alias("_clv_sum"),
        F.count(num("clv")).alias("_clv_n"),
        F.avg((F.coalesce(num("frequency"), F.lit(0.0)) <= 1).cast("double")).alias("_new_share"),
        F.avg(lapsed.cast("double")).alias("_lapsed_share"),
        F.avg(F.when(bought, num("distinct_categories"))).alias("_categories"),
        F.avg(F.when(bought, num("discount_order_share"))).alias("discount_sensitivity"),
        F.mode(F.when(bought, col_or_null(m, "preferred_channel", T.StringType()))).alias("purchase_channel"),
        *[F.avg(F.when(bought, num(c))).alias(f"_m_{c}") for _, c in DAYPART_SHARES],
    )
    everyone = Window.partitionBy()  # over the segments' rows: bounded by their number
    overall_clv = F.sum("_clv_sum").over(everyone) / F.sum("_clv_n").over(everyone)
    stats = stats.withColumn("clv_index", F.when(overall_clv > 0, F.col("clv_mean") / overall_clv).cast("double"))

    sens = F.coalesce(F.col("discount_sensitivity"), F.lit(0.0))
    wanted = F.lit(s.min_discount) + F.lit(s.max_discount - s.min_discount) * sens
    cap = F.lit(s.discount_cap)
    # Rounded down to a whole percent, so the rounding never crosses the cap.
    depth = F.floor(F.least(wanted, cap) * F.lit(100.0) + F.lit(1e-9)) / F.lit(100.0)
    price_ev = F.format_string(
        "%s of the buyers' orders discounted -> %s wanted (%s + %s x sensitivity); margin %s, floor %s -> cap %s",
        _pct(sens),
        F.format_string("%.1f%%", F.lit(100.0) * wanted),
        F.lit(f"{s.min_discount:.0%}"),
        F.lit(f"{s.max_discount - s.min_discount:.0%}"),
        F.lit(f"{s.margin_rate:.0%}"),
        F.lit(f"{s.margin_floor:.0%}"),
        F.lit(f"{s.discount_cap:.1%}"),
    )
    daypart, daypart_ev = _daypart(s)
    promo, rule = _promotion(s)
    trial = F.coalesce(F.col("_categories") >= F.lit(s.trial_min_categories), F.lit(False))
    product_ev = F.concat_ws(
        "; ",
        F.concat(F.lit("preferred categories: "), F.coalesce(F.col("_cat_ev"), F.lit("none"))),
        F.concat(F.lit("cross-sell: "), F.coalesce(F.col("_cs_ev"), F.lit("none"))),
        F.concat(F.lit("ALS: "), F.coalesce(F.col("_als_ev"), F.lit("none"))),
        F.format_string(
            "%s distinct categories per buyer (trial from %s)",
            F.coalesce(F.format_string("%.1f", F.col("_categories")), F.lit("-")),
            F.lit(f"{s.trial_min_categories:g}"),
        ),
    )
    place_ev = F.concat_ws(
        "; ",
        F.col("_place_ev"),
        F.concat(F.lit("buys at "), F.coalesce(F.col("purchase_channel"), F.lit("-"))),
        F.concat(F.lit("orders by day-part: "), daypart_ev),
    )
    return (
        stats.join(_product(m, cross_sell, recommendations, s), "segment_name", "left")
        .join(_place(m, responses, s), "segment_name", "left")
        .select(
            F.lit(as_of).alias("snapshot_date"),
            "segment_name",
            F.col("customers").cast("long").alias("customers"),
            F.coalesce(F.col("buyers"), F.lit(0)).cast("long").alias("buyers"),
            "value_class",
            F.col("clv_mean").cast("double").alias("clv_mean"),
            "clv_index",
            F.coalesce("top_categories", F.array().cast("array<string>")).alias("top_categories"),
            F.coalesce("cross_sell_items", F.array().cast("array<string>")).alias("cross_sell_items"),
            F.coalesce("als_items", F.array().cast("array<string>")).alias("als_items"),
            trial.alias("new_product_trial"),
            product_ev.alias("product_evidence"),
            F.col("discount_sensitivity").cast("double").alias("discount_sensitivity"),
            wanted.cast("double").alias("discount_wanted"),
            cap.cast("double").alias("discount_cap"),
            depth.cast("double").alias("discount_depth"),
            (wanted > cap).alias("discount_capped"),
            price_ev.alias("price_evidence"),
            F.coalesce("channel_mix", F.array().cast("array<string>")).alias("channel_mix"),
            "primary_channel",
            "purchase_channel",
            daypart.alias("daypart"),
            place_ev.alias("place_evidence"),
            _mapped(promo, 0).alias("goal"),
            promo.alias("promotion"),
            _mapped(promo, 1).alias("offer_type"),
            rule.alias("promotion_rule"),
        )
    )


def strategy_offers(strategy: DataFrame) -> DataFrame:
    """segment_name -> the offer a ``offers: from_strategy`` campaign makes its members:
    ``strategy_offer_type``, ``strategy_discount``, ``strategy_promotion``."""
    return strategy.select(
        "segment_name",
        F.col("offer_type").alias("strategy_offer_type"),
        F.col("discount_depth").alias("strategy_discount"),
        F.col("promotion").alias("strategy_promotion"),
    )
