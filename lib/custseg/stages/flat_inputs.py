"""Conform's inputs with bronze.flat_transactions mapped in (custseg.conform.flat).

``bronze_with_flat(ctx, "orders")`` is bronze.orders plus the orders mapped from the flat
file when ``flat_transactions.enabled`` and its bronze table exists; either side may be
absent (a pipeline fed only by a flat file has no bronze.orders nor bronze.crm_customers).
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from custseg.conform.flat import flat_customers, flat_orders, flat_products
from custseg.sources.flat import TABLE, FlatSettings
from custseg.stages.context import StageContext

log = logging.getLogger(__name__)

MAPPERS = {"orders": flat_orders, "crm_customers": flat_customers, "products": flat_products}


def bronze_with_flat(ctx: StageContext, name: str) -> DataFrame:
    """bronze.<name>, unioned with the rows mapped from bronze.flat_transactions."""
    t = ctx.tables
    settings = FlatSettings.from_config(ctx.conf)
    own = t.read(f"bronze.{name}") if t.exists(f"bronze.{name}") else None
    if not (settings.enabled and t.exists(TABLE)):
        return own if own is not None else t.read(f"bronze.{name}")  # raises the usual "does not exist"
    mapped = t.read(TABLE).where(F.col("_batch_date") <= F.lit(ctx.as_of)).transform(MAPPERS[name](settings))
    log.info("bronze.%s: rows mapped from %s included", name, TABLE)
    if own is None:
        return mapped
    return own.unionByName(mapped.select(*[F.col(f.name).cast(f.dataType) for f in own.schema]))
