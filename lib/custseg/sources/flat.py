"""``flat_transactions``: any line-item CSV (one row per item) as a source, mapped by conf.

The ``flat_transactions`` section of the config names the file's columns, its timestamp
format and how it marks cancellations; ingest reads ``landing/<source_name>/<date>/*.csv``
(or ``.csv.gz``) into ``bronze.flat_transactions`` under the canonical column names below,
and conform (custseg.conform.flat) maps those rows onto orders, items and customers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import Column
from pyspark.sql import functions as F

from custseg.config import Config, validator
from custseg.sources.base import SourceSpec, bad_number, bad_ts, missing, strings
from custseg.sources.mapping import check_file_format, check_required_columns, mapped_columns, named_columns

TABLE = "bronze.flat_transactions"
# canonical column -> required in every file. A file without invoice ids (order_id "") has
# one order per customer and day; without SKUs (sku "") its orders have no items, so the
# basket and recommendation stages skip it; a line total (amount) may stand for qty x unit_price.
COLUMNS = {
    "order_id": False,
    "sku": False,
    "description": False,
    "qty": False,
    "order_ts": True,
    "unit_price": False,
    "customer_id": False,
    "country": False,
    "amount": False,
}
STATUSES = ("completed", "returned", "cancelled")
CHANNELS = ("store", "web", "app")


@dataclass(frozen=True)
class FlatSettings:
    enabled: bool = False
    source_name: str = "flat_transactions"
    delimiter: str = ","
    columns: dict[str, str] = field(default_factory=lambda: {c: "" if c == "amount" else c for c in COLUMNS})
    ts_format: str = "yyyy-MM-dd HH:mm:ss"
    id_suffix: str = ".0"
    cancel_prefix: str = "C"
    cancel_status: str = "cancelled"
    negative_qty_status: str = "returned"
    channel: str = "web"
    default_category: str = ""

    @classmethod
    def from_config(cls, conf: Config) -> FlatSettings:
        g = conf.get_path
        d = cls()
        return cls(
            enabled=bool(g("flat_transactions.enabled", d.enabled)),
            source_name=str(g("flat_transactions.source_name", d.source_name)),
            delimiter=str(g("flat_transactions.delimiter", d.delimiter)),
            columns=mapped_columns(conf, "flat_transactions", COLUMNS, d.columns),
            ts_format=str(g("flat_transactions.ts_format", d.ts_format)),
            id_suffix=str(g("flat_transactions.id_suffix", d.id_suffix) or ""),
            cancel_prefix=str(g("flat_transactions.cancel_prefix", d.cancel_prefix) or ""),
            cancel_status=str(g("flat_transactions.cancel_status", d.cancel_status)),
            negative_qty_status=str(g("flat_transactions.negative_qty_status", d.negative_qty_status)),
            channel=str(g("flat_transactions.channel", d.channel)),
            default_category=str(g("flat_transactions.default_category", d.default_category) or ""),
        )


def _bad_qty() -> Column:
    """Not a whole number, or zero (a negative quantity is a return: valid)."""
    q = F.col("qty").try_cast("double")
    return F.coalesce(q.isNull() | (q != F.floor(q)) | (q == 0), F.lit(True))


def flat_spec(s: FlatSettings) -> SourceSpec:
    """The source spec of the configured flat file: canonical columns, the file's header names.

    A rule about a column the file does not have (mapped to "") is not applied."""
    has = {c for c, h in s.columns.items() if h}
    rules = [
        ("missing_order_id", missing("order_id"), "order_id" in has),
        # without invoice ids an order is customer + day: a line without a customer has no order
        ("missing_customer_id", missing("customer_id"), "order_id" not in has),
        ("missing_sku", missing("sku"), "sku" in has),
        ("bad_qty", _bad_qty, "qty" in has),
        ("bad_unit_price", lambda: missing("unit_price")() | bad_number("unit_price", low=0)(), "unit_price" in has),
        ("bad_amount", lambda: missing("amount")() | bad_number("amount", low=0)(), "amount" in has),
        ("bad_order_ts", bad_ts("order_ts", formats=(s.ts_format,)), True),
    ]
    return SourceSpec(
        name=s.source_name,
        fmt="csv",
        schema=strings(*COLUMNS),
        key=None,  # line items have no id of their own
        rules=[(code, rule) for code, rule, applies in rules if applies],
        ts_cols=("order_ts",),
        ts_formats=(s.ts_format,),
        delimiter=s.delimiter,
        header_names=dict(s.columns),
        money_cols=tuple(c for c in ("unit_price", "amount") if c in has),
        qty_cols=("qty",) if "qty" in has else (),
    )


@validator
def check_flat(conf: Config) -> None:
    if "flat_transactions" not in conf:
        return
    g = conf.get_path
    named = named_columns(conf, "flat_transactions")
    check_required_columns(conf, "flat_transactions", [c for c, required in COLUMNS.items() if required])
    if "order_id" not in named and "customer_id" not in named:
        raise conf.error(
            "flat_transactions.columns.order_id",
            "is empty, so orders are customer + day: flat_transactions.columns.customer_id must then name a column",
        )
    if not named & {"unit_price", "amount"}:
        raise conf.error(
            "flat_transactions.columns.unit_price",
            "must name the unit price column (or columns.amount the line total); both are empty",
        )
    if "unit_price" in named and "qty" not in named:
        raise conf.error("flat_transactions.columns.qty", "must name the quantity column when unit_price is mapped")
    for key, allowed in (
        ("cancel_status", STATUSES),
        ("negative_qty_status", STATUSES),
        ("channel", CHANNELS),
    ):
        v = g(f"flat_transactions.{key}", allowed[0])
        if v not in allowed:
            raise conf.error(f"flat_transactions.{key}", f"must be one of {', '.join(allowed)}; got {v!r}")
    check_file_format(conf, "flat_transactions", FlatSettings.source_name)
