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

TABLE = "bronze.flat_transactions"
# canonical column -> required in every file
COLUMNS = {
    "order_id": True,
    "sku": True,
    "description": False,
    "qty": True,
    "order_ts": True,
    "unit_price": True,
    "customer_id": False,
    "country": False,
}
STATUSES = ("completed", "returned", "cancelled")
CHANNELS = ("store", "web", "app")


@dataclass(frozen=True)
class FlatSettings:
    enabled: bool = False
    source_name: str = "flat_transactions"
    delimiter: str = ","
    columns: dict[str, str] = field(default_factory=lambda: {c: c for c in COLUMNS})
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
        cols = g("flat_transactions.columns", None)
        return cls(
            enabled=bool(g("flat_transactions.enabled", d.enabled)),
            source_name=str(g("flat_transactions.source_name", d.source_name)),
            delimiter=str(g("flat_transactions.delimiter", d.delimiter)),
            columns={c: str((cols or {}).get(c) or "") for c in COLUMNS} if cols is not None else d.columns,
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
    """The source spec of the configured flat file: canonical columns, the file's header names."""
    return SourceSpec(
        name=s.source_name,
        fmt="csv",
        schema=strings(*COLUMNS),
        key=None,  # line items have no id of their own
        rules=[
            ("missing_order_id", missing("order_id")),
            ("missing_sku", missing("sku")),
            ("bad_qty", _bad_qty),
            ("bad_unit_price", lambda: missing("unit_price")() | bad_number("unit_price", low=0)()),
            ("bad_order_ts", bad_ts("order_ts", formats=(s.ts_format,))),
        ],
        ts_cols=("order_ts",),
        ts_formats=(s.ts_format,),
        delimiter=s.delimiter,
        header_names=dict(s.columns),
    )


@validator
def check_flat(conf: Config) -> None:
    if "flat_transactions" not in conf:
        return
    g = conf.get_path
    cols = g("flat_transactions.columns", {}) or {}
    for col, required in COLUMNS.items():
        v = cols.get(col)
        if required and not (isinstance(v, str) and v.strip()):
            raise conf.error(f"flat_transactions.columns.{col}", f"must name the file's column for {col}; got {v!r}")
    delim = g("flat_transactions.delimiter", ",")
    if not isinstance(delim, str) or len(delim) != 1:
        raise conf.error("flat_transactions.delimiter", f"must be one character; got {delim!r}")
    for key, allowed in (
        ("cancel_status", STATUSES),
        ("negative_qty_status", STATUSES),
        ("channel", CHANNELS),
    ):
        v = g(f"flat_transactions.{key}", allowed[0])
        if v not in allowed:
            raise conf.error(f"flat_transactions.{key}", f"must be one of {', '.join(allowed)}; got {v!r}")
    name = g("flat_transactions.source_name", "flat_transactions")
    from custseg.sources.catalog import SOURCES

    if not isinstance(name, str) or not name.isidentifier() or name in SOURCES:
        raise conf.error(
            "flat_transactions.source_name", f"must be a plain name other than the built-in sources; got {name!r}"
        )
    if not str(g("flat_transactions.ts_format", "") or "").strip():
        raise conf.error("flat_transactions.ts_format", "must be a Spark datetime pattern, e.g. 'yyyy-MM-dd HH:mm:ss'")
