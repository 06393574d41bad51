"""Stage ``features``: silver -> gold.customer_features for the snapshot date.

Each silver table is read once: the per-customer aggregates of all tables are joined and
persisted, and the few population statistics (RFM cuts, LRFMC moments, CLV fits) and the
final scoring read that persisted frame. silver.customers and silver.orders are required;
order_items, events, feedback and social are optional (a warning, and their features get
zeros / nulls) so the job runs while a source is not wired yet.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel

from custseg.features.assemble import OPTIONAL_TABLES, SilverInputs, finish_features, raw_features
from custseg.features.settings import FeatureSettings
from custseg.stages.context import StageContext

log = logging.getLogger(__name__)

FEATURES = "gold.customer_features"


def read_silver(ctx: StageContext) -> SilverInputs:
    t = ctx.tables
    optional = {}
    for name in OPTIONAL_TABLES:
        if t.exists(f"silver.{name}"):
            optional[name] = t.read(f"silver.{name}")
        else:
            log.warning("silver.%s does not exist; its features are left empty for %s", name, ctx.run_date)
            optional[name] = None
    return SilverInputs(customers=t.read("silver.customers"), orders=t.read("silver.orders"), **optional)


def run(ctx: StageContext) -> None:
    rec = ctx.recorder
    settings = FeatureSettings.from_config(ctx.conf)
    silver = read_silver(ctx)
    rec.details["missing_silver"] = [n for n in OPTIONAL_TABLES if getattr(silver, n) is None]

    raw = raw_features(silver, settings, ctx.as_of).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with rec.stage("aggregate"):
            rec.rows_in = raw.count()  # materialises the cache: the one scan of each silver table
        with rec.stage("fit"):
            features, report = finish_features(raw, settings, ctx.as_of)
        rec.details["fit"] = report.as_dict()
        log.info("features fit for %s: %s", ctx.run_date, report.as_dict())
        with rec.stage("write"):
            ctx.tables.overwrite(
                features, FEATURES, partition_by=["snapshot_date"], where={"snapshot_date": ctx.run_date}
            )
        rec.rows_out = rec.rows_in
    finally:
        raw.unpersist()
