"""What every source declares: format, raw schema, key, and validation rules.

Bronze keeps raw values as strings (what arrived), so schemas here are the raw
landing shapes; typing happens in silver. A rule is a reason code and a Column
that is true when the record breaks the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

Rule = tuple[str, Callable[[], Column]]

# One typing of money and quantity from landing to gold. A unit price or line amount is MONEY,
# a line total LINE_MONEY, an order total ORDER_MONEY; ingest.bounds keeps max_price x max_qty
# below 10^12, so a line total always fits LINE_MONEY and nothing overflows in conform (ANSI)
# or silently becomes null (try_cast): a value out of bounds is quarantined at ingest.
MONEY = "decimal(12,2)"
LINE_MONEY = "decimal(14,2)"
ORDER_MONEY = "decimal(16,2)"
QTY = "int"

WHITESPACE = "whitespace"  # a CSV "delimiter": fields separated by runs of blanks (aligned text columns)
TS_FORMATS = ("yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ssXXX", "yyyy-MM-dd")


def parse_ts(col: str | Column, formats: tuple[str, ...] = TS_FORMATS) -> Column:
    """A timestamp from the formats the sources use (or ``formats``); null when none matches."""
    c = F.col(col) if isinstance(col, str) else col
    return F.coalesce(*[F.try_to_timestamp(c, F.lit(fmt)) for fmt in formats])


def parse_date(col: str | Column) -> Column:
    c = F.col(col) if isinstance(col, str) else col
    return F.to_date(parse_ts(c))


def strings(*names: str) -> StructType:
    return StructType([StructField(n, StringType(), True) for n in names])


def missing(col: str) -> Callable[[], Column]:
    return lambda: F.col(col).isNull() | (F.trim(F.col(col)) == "")


def bad_ts(col: str, required: bool = True, formats: tuple[str, ...] = TS_FORMATS) -> Callable[[], Column]:
    def rule() -> Column:
        present = F.col(col).isNotNull() & (F.trim(F.col(col)) != "")
        unparsable = present & parse_ts(col, formats).isNull()
        return (unparsable | ~present) if required else unparsable

    return rule


def bad_number(col: str, low: float | None = None, high: float | None = None) -> Callable[[], Column]:
    """True when present but not a number, or outside [low, high]."""

    def rule() -> Column:
        value = F.col(col).try_cast("double")
        present = F.col(col).isNotNull() & (F.trim(F.col(col)) != "")
        bad = present & value.isNull()
        if low is not None:
            bad = bad | (value < low)
        if high is not None:
            bad = bad | (value > high)
        return F.coalesce(bad, F.lit(False))

    return rule


def not_in(col: str, values: tuple[str, ...], required: bool = False) -> Callable[[], Column]:
    """True when the value (trimmed, lower case) is not one of ``values``; a null passes unless required."""

    def rule() -> Column:
        value = F.nullif(F.lower(F.trim(F.col(col))), F.lit(""))
        outside = ~value.isin(*values)
        return (value.isNull() | outside) if required else F.coalesce(outside, F.lit(False))

    return rule


@dataclass(frozen=True)
class SourceSpec:
    name: str
    fmt: str  # "csv" | "jsonl"
    schema: StructType  # raw landing schema
    key: str | None  # record id used for de-duplication
    rules: list[Rule] = field(default_factory=list)
    ts_cols: tuple[str, ...] = ()  # checked against the future tolerance
    ts_formats: tuple[str, ...] = TS_FORMATS
    delimiter: str = ","  # CSV only; WHITESPACE: runs of blanks
    # CSV only: schema column -> header name in the files (default: the same name); a column
    # mapped to "" is not expected in the files (null in bronze).
    header_names: dict[str, str] = field(default_factory=dict)
    # Money and quantity columns checked against ingest.bounds (``items.unit_price``: a field
    # of every element of the array column ``items``).
    money_cols: tuple[str, ...] = ()
    qty_cols: tuple[str, ...] = ()
    # A column telling versions of one record apart (crm_customers: updated_at): rows of one key
    # with different versions are updates, which conform resolves (latest wins), not duplicates.
    version: str | None = None

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]

    def header_name(self, column: str) -> str:
        return self.header_names.get(column, column)

    @property
    def required_headers(self) -> list[str]:
        """Header names a CSV file of this source must have: every declared column."""
        return [h for h in (self.header_name(c) for c in self.columns) if h]
