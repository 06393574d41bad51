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

TS_FORMATS = ("yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ssXXX", "yyyy-MM-dd")


def parse_ts(col: str | Column) -> Column:
    """A timestamp from the formats the sources use; null when none matches."""
    c = F.col(col) if isinstance(col, str) else col
    return F.coalesce(*[F.try_to_timestamp(c, F.lit(fmt)) for fmt in TS_FORMATS])


def parse_date(col: str | Column) -> Column:
    c = F.col(col) if isinstance(col, str) else col
    return F.to_date(parse_ts(c))


def strings(*names: str) -> StructType:
    return StructType([StructField(n, StringType(), True) for n in names])


def missing(col: str) -> Callable[[], Column]:
    return lambda: F.col(col).isNull() | (F.trim(F.col(col)) == "")


def bad_ts(col: str, required: bool = True) -> Callable[[], Column]:
    def rule() -> Column:
        present = F.col(col).isNotNull() & (F.trim(F.col(col)) != "")
        unparsable = present & parse_ts(col).isNull()
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


@dataclass(frozen=True)
class SourceSpec:
    name: str
    fmt: str  # "csv" | "jsonl"
    schema: StructType  # raw landing schema
    key: str | None  # record id used for de-duplication
    rules: list[Rule] = field(default_factory=list)
    ts_cols: tuple[str, ...] = ()  # checked against the future tolerance

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]
