"""Stage ``basket``: silver order lines and events -> gold frequent_itemsets, association_rules,
journey_rules, cross_sell, recommendations and reco_quality for the snapshot date.

Every table is partitioned by snapshot_date and overwritten for the run date only, so a
rerun of a date leaves the same tables. gold.customer_segments is optional: without it
there is no per-segment mining and cold-start customers get the overall popular items.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from custseg.basket.baskets import baskets, customer_purchases, item_prices
from custseg.basket.cross_sell import CROSS_SELL_COLUMNS, cross_sell, popular_fill
from custseg.basket.fpgrowth import ITEMSET_COLUMNS, RULE_COLUMNS, mine, mine_by_segment
from custseg.basket.journeys import JOURNEY_COLUMNS, journey_inputs
from custseg.basket.settings import BasketSettings
from custseg.recommend.als import fit_als, interactions, recommend
from custseg.recommend.evaluate import QUALITY_COLUMNS, holdout_quality
from custseg.recommend.popularity import RECO_COLUMNS
from custseg.recommend.settings import RecommendSettings
from custseg.stages.context import StageContext

log = logging.getLogger(__name__)

ITEMSETS = "gold.frequent_itemsets"
RULES = "gold.association_rules"
JOURNEY_RULES = "gold.journey_rules"
CROSS_SELL = "gold.cross_sell"
RECOMMENDATIONS = "gold.recommendations"
RECO_QUALITY = "gold.reco_quality"
SEGMENTS = "gold.customer_segments"


def latest_segments(tables, as_of: date) -> DataFrame | None:
    """customer_key, segment_id of the latest segment snapshot on or before ``as_of``; None if none."""
    if not tables.exists(SEGMENTS):
        log.info("no %s: no per-segment rules, cold start falls back to overall popularity", SEGMENTS)
        return None
    seg = tables.read(SEGMENTS).where(F.col("snapshot_date") <= F.lit(as_of))
    latest = seg.agg(F.max("snapshot_date")).first()[0]
    if latest is None:
        return None
    return seg.where(F.col("snapshot_date") == F.lit(latest)).select(
        "customer_key", F.col("segment_id").cast("int").alias("segment_id")
    )


def _has_items(lines: DataFrame, level: str, products: DataFrame | None) -> bool:
    """Whether any order line has an item at ``level`` (a one-row probe, not a count)."""
    from custseg.basket.baskets import with_item

    if level not in lines.columns and products is None:
        return False
    return lines.transform(with_item(level, products)).where(F.col("item").isNotNull()).limit(1).count() > 0


def _optional(tables, name: str) -> DataFrame | None:
    return tables.read(name) if tables.exists(name) else None


def run(ctx: StageContext) -> None:
    t, rec, as_of = ctx.tables, ctx.recorder, ctx.as_of
    bs = BasketSettings.from_config(ctx.conf)
    rs = RecommendSettings.from_config(ctx.conf)
    level, statuses = bs.level, bs.statuses
    snap = {"snapshot_date": ctx.run_date}
    stamp = [F.lit(as_of).alias("snapshot_date"), F.lit(level).alias("level")]

    lines = t.read("silver.order_items").where(F.col("order_date") <= F.lit(as_of))
    products = _optional(t, "silver.products")
    if not _has_items(lines, level, products):
        msg = (
            f"basket: silver.order_items has no item at basket.level={level} up to {ctx.run_date} (a source "
            "without products, e.g. flat_transactions with columns.sku empty): frequent itemsets, rules, "
            "journeys, cross-sell and recommendations are skipped; gold tables of this stage are not written"
        )
        log.warning(msg)
        rec.details["skipped"] = msg
        return
    events = _optional(t, "silver.events")
    if events is not None:
        events = events.where(F.to_date("ts") <= F.lit(as_of))
    segments = latest_segments(t, as_of)
    tr, versions = ctx.tracker, {}
    if tr.enabled:
        tr.log_params({"run_date": ctx.run_date, **_settings_params(bs, rs)})

    with rec.stage("fp-growth"):
        window_start = as_of - timedelta(days=bs.window_days)
        b = lines.transform(baskets(level, statuses, window_start, as_of, products))
        options = {
            "min_lift": bs.min_lift,
            "num_partitions": bs.num_partitions,
            "max_itemset_size": bs.max_itemset_size,
            "max_itemsets": bs.max_itemsets,
            "max_basket_items": bs.max_basket_items,
        }
        mined = mine(b, bs.min_support, bs.min_confidence, **options)
        rules = mined.rules.withColumn("segment_id", F.lit(None).cast("int"))
        itemsets = mined.itemsets.withColumn("segment_id", F.lit(None).cast("int"))
        per_segment = []
        if bs.by_segment and segments is not None:
            seg_b = b.join(segments, on="customer_key", how="inner")
            seg_sets, seg_rules, per_segment = mine_by_segment(
                seg_b, "segment_id", bs.min_support, bs.min_confidence, **options
            )
            itemsets = itemsets.unionByName(seg_sets)
            rules = rules.unionByName(seg_rules)
        rules = rules.persist(StorageLevel.MEMORY_AND_DISK)
        versions[ITEMSETS] = t.overwrite(
            itemsets.select(*stamp, "segment_id", *ITEMSET_COLUMNS),
            ITEMSETS,
            partition_by=["snapshot_date"],
            where=snap,
        )
        versions[RULES] = t.overwrite(
            rules.select(*stamp, "segment_id", *RULE_COLUMNS), RULES, partition_by=["snapshot_date"], where=snap
        )
        n_rules = rules.count()
        rec.rows_in += mined.n_baskets
        rec.rows_out += n_rules
        rec.details["fp_growth"] = {**mined.summary(), "rules": n_rules, "segments_mined": len(per_segment)}
        tr.log_metrics({f"fp_growth.{k}": v for k, v in rec.details["fp_growth"].items()})

    journeys = None
    if bs.journeys.enabled:
        with rec.stage("journeys"):
            j_rules, recent = journey_inputs(lines, bs, as_of, products)
            j_rules = j_rules.persist(StorageLevel.MEMORY_AND_DISK)
            versions[JOURNEY_RULES] = t.overwrite(
                j_rules.select(*stamp, *JOURNEY_COLUMNS), JOURNEY_RULES, partition_by=["snapshot_date"], where=snap
            )
            rec.details["journeys"] = {"rules": j_rules.count(), "horizon_days": bs.journeys.horizon_days}
            journeys = (j_rules, recent)

    history = max(rs.window_days, bs.cross_sell.window_days)
    owned = lines.transform(customer_purchases(level, statuses, as_of - timedelta(days=history), as_of, products))
    owned = owned.persist(StorageLevel.MEMORY_AND_DISK)

    with rec.stage("cross_sell"):
        xs = bs.cross_sell
        triggers = lines.transform(
            customer_purchases(level, statuses, as_of - timedelta(days=xs.window_days), as_of, products)
        )
        prices = (
            lines.transform(item_prices(level, statuses, window_start, as_of, products))
            if xs.score == "expected_margin"
            else None
        )
        fill = popular_fill(mined.itemsets, xs.fill_candidates) if xs.fill == "popular" else None
        offers = triggers.transform(
            cross_sell(
                rules,
                xs.top_n,
                xs.score,
                prices,
                xs.margin_rate,
                segments=segments,
                exclude=owned,
                aggregate=xs.aggregate,
                fill=fill,
                journeys=journeys[0] if journeys else None,
                recent=journeys[1] if journeys else None,
                horizon_days=bs.journeys.horizon_days,
            )
        )
        versions[CROSS_SELL] = t.overwrite(
            offers.select(*stamp, *CROSS_SELL_COLUMNS), CROSS_SELL, partition_by=["snapshot_date"], where=snap
        )

    with rec.stage("als"):
        inter = interactions(
            lines, events, rs.weights, level, as_of - timedelta(days=rs.window_days), as_of, statuses, products
        )
        fit = fit_als(inter, rs.als)
        customers = _optional(t, "silver.customers")
        targets = (
            (customers if customers is not None else lines)
            .select("customer_key")
            .where(F.col("customer_key").isNotNull())
        )
        cold_segments = segments if rs.cold_start == "segment" else None
        recs = targets.transform(recommend(fit, owned, cold_segments, rs.top_n, rs.max_candidates))
        versions[RECOMMENDATIONS] = t.overwrite(
            recs.select(*stamp, *RECO_COLUMNS), RECOMMENDATIONS, partition_by=["snapshot_date"], where=snap
        )
        tr.log_metrics({"als.items": fit.n_items})
        tr.log_model("als", fit.model)
        fit.unpersist()

    rules.unpersist()
    if journeys:
        journeys[0].unpersist()
    owned.unpersist()
    mined.unpersist()
    for res in per_segment:
        res.unpersist()

    if rs.evaluate:
        with rec.stage("reco_quality"):
            quality = holdout_quality(lines, events, as_of, bs, rs, products)
            versions[RECO_QUALITY] = t.overwrite(
                quality.select(F.lit(as_of).alias("snapshot_date"), *QUALITY_COLUMNS),
                RECO_QUALITY,
                partition_by=["snapshot_date"],
                where=snap,
            )
            rows = quality.collect()  # methods x k: a handful of rows
            rec.details["reco_quality"] = [
                {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.asDict().items() if k != "train_end"}
                for r in rows
                if r["k"] == max(rs.k)
            ]
            tr.log_metrics(reco_metrics(rows))
    tr.log_params({f"version.{name}": v for name, v in versions.items()})


def reco_metrics(rows) -> dict[str, float]:
    """reco_quality rows as MLflow metrics: ``reco.<method>.<metric>_at_<k>`` (map_at_10, ...)."""
    out = {}
    for r in rows:
        prefix = f"reco.{r['method']}"
        out[f"{prefix}.users_at_{r['k']}"] = r["users"]
        for metric in ("precision", "recall", "map", "coverage"):
            out[f"{prefix}.{metric}_at_{r['k']}"] = r[metric]
    return out


def _settings_params(bs: BasketSettings, rs: RecommendSettings) -> dict:
    """What decides the rules and the ALS model, as MLflow parameters."""
    a = rs.als
    return {
        "basket.level": bs.level,
        "basket.window_days": bs.window_days,
        "basket.min_support": bs.min_support,
        "basket.min_confidence": bs.min_confidence,
        "basket.min_lift": bs.min_lift,
        "basket.max_itemset_size": bs.max_itemset_size,
        "basket.by_segment": bs.by_segment,
        "als.rank": a.rank,
        "als.max_iter": a.max_iter,
        "als.reg_param": a.reg_param,
        "als.alpha": a.alpha,
        "als.seed": a.seed,
        "als.num_blocks": a.num_blocks,  # 0: the session's default parallelism
        "als.implicit_prefs": True,
        "recommend.window_days": rs.window_days,
        "recommend.weights": rs.weights,
        "recommend.top_n": rs.top_n,
        "recommend.cold_start": rs.cold_start,
        "recommend.holdout_days": rs.holdout_days if rs.evaluate else None,
        "recommend.k": list(rs.k),
    }
