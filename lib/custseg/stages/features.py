"""Stage ``features``: silver -> gold.customer_features for the snapshot date."""

from __future__ import annotations

from pyspark.sql import functions as F

from custseg.features.rfm import rfm_features
from custseg.stages.context import StageContext

FEATURES = "gold.customer_features"


def run(ctx: StageContext) -> None:
    t, conf, rec = ctx.tables, ctx.conf, ctx.recorder
    with rec.stage("rfm"):
        rfm = rfm_features(
            t.read("silver.orders"),
            t.read("silver.customers"),
            ctx.as_of,
            window_days=conf.rfm.window_days,
            bins=conf.rfm.bins,
            segments=conf.rfm.segments,
            binning=conf.rfm.binning,
            fixed=conf.rfm.fixed_thresholds.to_dict(),
        )
        out = rfm.withColumn("snapshot_date", F.lit(ctx.as_of))
        t.overwrite(out, FEATURES, partition_by=["snapshot_date"], where={"snapshot_date": ctx.run_date})
