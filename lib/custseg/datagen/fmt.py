"""Columnar records and their rendering as CSV / JSON Lines text, vectorized with pyarrow.

Generators produce numpy columns (ints for ids, codes, seconds, cents); a `Field` says how
each one is spelled. Rendering builds whole lines with `binary_join_element_wise`, so no
Python code runs per row; the joined lines are written straight from the Arrow buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

INT_NULL = np.iinfo(np.int64).min
# Codes a time / date column may hold instead of a value: rendered as these strings.
BAD_TIME_STRINGS = ("31/02/2026", "not-a-date", "2026-13-45 25:61:00")
BAD_TIME_CODES = tuple(INT_NULL + 1 + i for i in range(len(BAD_TIME_STRINGS)))
DAY_TABLE_START = int(np.datetime64("1930-01-01", "D").astype(np.int64))
DAY_TABLE_END = int(np.datetime64("2110-01-01", "D").astype(np.int64))

QUOTED_KINDS = {"id", "ref", "ts", "date", "str"}


@dataclass(frozen=True)
class Field:
    """One output column: `kind` says how the numpy/arrow values become text.

    id: int >= 0 -> prefix + zero-padded digits (< 0 is null); ref: int code into a
    table (< 0 is null); ts: epoch seconds; date: epoch days; int; money: cents;
    frac: hundredths; str / raw: an arrow string array, quoted / not quoted in JSON.
    """

    name: str
    kind: str
    prefix: str = ""
    width: int = 0
    table: str = ""
    text: bool = False


@dataclass
class Records:
    """Equal-length columns of one source for one block of customers."""

    cols: dict[str, Any]
    batch: np.ndarray
    tables: dict[str, pa.Array] = field(default_factory=dict)
    bad: np.ndarray | None = None
    items: Records | None = None  # order lines; their "order" column indexes rows here

    def __len__(self) -> int:
        return len(self.batch)

    def take(self, idx: np.ndarray) -> Records:
        idx = np.asarray(idx, dtype=np.int64)
        cols = {k: _take(v, idx) for k, v in self.cols.items()}
        bad = None if self.bad is None else self.bad[idx]
        items = None
        if self.items is not None:
            counts = np.bincount(self.items.cols["order"], minlength=len(self))
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            pos = gather_ranges(starts[idx], counts[idx])
            items = self.items.take(pos)
            items.cols["order"] = np.repeat(np.arange(len(idx)), counts[idx])
        return Records(cols, self.batch[idx], dict(self.tables), bad, items)


def concat(a: Records, b: Records) -> Records:
    """Rows of `a` then `b` (same columns; `b`'s ref tables must extend `a`'s)."""
    cols = {k: _concat(a.cols[k], b.cols[k]) for k in a.cols}
    bad = None
    if a.bad is not None or b.bad is not None:
        bad = np.concatenate([_bad_or_clean(a), _bad_or_clean(b)])
    items = None
    if a.items is not None:
        bi = Records(dict(b.items.cols), b.items.batch, b.items.tables, b.items.bad)
        bi.cols["order"] = b.items.cols["order"] + len(a)
        items = concat(a.items, bi)
    tables = {**a.tables, **b.tables}
    return Records(cols, np.concatenate([a.batch, b.batch]), tables, bad, items)


def _bad_or_clean(r: Records) -> np.ndarray:
    return r.bad if r.bad is not None else np.full(len(r), -1, dtype=np.int64)


def gather_ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) for each (s, n), without a Python loop."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lens)
    offsets = np.repeat(starts - (ends - lens), lens)
    return np.arange(total, dtype=np.int64) + offsets


def _take(v: Any, idx: np.ndarray) -> Any:
    if isinstance(v, pa.Array | pa.ChunkedArray):
        return pc.take(v, pa.array(idx))
    return v[idx]


def _concat(a: Any, b: Any) -> Any:
    if isinstance(a, pa.Array | pa.ChunkedArray):
        return pa.concat_arrays([_combine(a), _combine(b)])
    return np.concatenate([a, b])


def _combine(v: Any) -> pa.Array:
    return v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v


@lru_cache(maxsize=1)
def day_table() -> pa.Array:
    days = np.arange(DAY_TABLE_START, DAY_TABLE_END).astype("datetime64[D]")
    return pa.array(np.datetime_as_string(days, unit="D").tolist())


@lru_cache(maxsize=1)
def time_of_day_table() -> pa.Array:
    s = np.arange(86400)
    return pa.array([f"{h:02d}:{m:02d}:{x:02d}" for h, m, x in zip(s // 3600, s // 60 % 60, s % 60, strict=True)])


@lru_cache(maxsize=1)
def two_digit_table() -> pa.Array:
    return pa.array([f"{i:02d}" for i in range(100)])


@lru_cache(maxsize=1)
def frac_table() -> pa.Array:
    return pa.array([f"{i / 100:.2f}" for i in range(101)])


def _ints(v: np.ndarray, null: np.ndarray) -> pa.Array:
    return pa.array(np.where(null, 0, v).astype(np.int64), mask=null if null.any() else None).cast(pa.string())


def _quoted(table: pa.Array, quote: str) -> pa.Array:
    """A (small) lookup table with its values quoted."""
    return pc.binary_join_element_wise(quote, table, quote, "") if quote else table


def _times(v: np.ndarray, unit: int) -> list:
    """Pieces of the text of epoch seconds (unit 86400) or days (unit 1); special codes allowed."""
    v = np.asarray(v, dtype=np.int64)
    special = v <= BAD_TIME_CODES[-1]
    safe = np.where(special, 0, v)
    day = safe // unit - DAY_TABLE_START
    if len(day) and (day.min() < 0 or day.max() >= DAY_TABLE_END - DAY_TABLE_START):
        raise ValueError("date outside 1930..2109")
    if unit == 1:
        pieces = [pc.take(day_table(), pa.array(day))]
    else:
        pieces = [
            pc.take(day_table(), pa.array(day)),
            " ",
            pc.take(time_of_day_table(), pa.array(safe % unit)),
        ]
    if not special.any():
        return pieces
    out = pc.binary_join_element_wise(*pieces, "")
    bad = special & (v != INT_NULL)
    strings = np.array(BAD_TIME_STRINGS + (None,), dtype=object)[np.where(bad, v - BAD_TIME_CODES[0], -1)[special]]
    return [pc.replace_with_mask(out, pa.array(special), pa.array(strings.tolist(), pa.string()))]


def _pieces(f: Field, values: Any, tables: dict[str, pa.Array], quote: str) -> list:
    """Pieces (arrays and constants) whose concatenation spells the column, quoted with `quote`.

    A piece list that may hold nulls is a single array (nulls where the value is missing).
    """
    q = quote if f.kind in QUOTED_KINDS else ""
    if f.kind == "raw":
        return [_combine(values)]
    if f.kind == "str":
        s = _combine(values)
        return [pc.binary_join_element_wise(q, s, q, "")] if q else [s]
    v = np.asarray(values)
    if f.kind == "id":
        null = v < 0
        if not f.width:
            s = _ints(v, null)
        else:  # one digit too many, replaced by the prefix: zero padding without a pad pass
            s = pc.utf8_replace_slice(_ints(v + 10**f.width, null), 0, 1, f.prefix)
            if not f.prefix:
                raise ValueError(f"id field {f.name!r} needs a prefix")
        if not null.any():
            return [q, s, q]
        return [pc.binary_join_element_wise(q, s, q, "")] if q else [s]
    if f.kind == "ref":
        null = v < 0
        return [
            pc.take(
                _quoted(tables[f.table], q),
                pa.array(np.where(null, 0, v), mask=null if null.any() else None),
            )
        ]
    if f.kind in ("ts", "date"):
        return [q, *_times(v, 86400 if f.kind == "ts" else 1), q]
    if f.kind == "int":
        return [_ints(v, v == INT_NULL)]
    if f.kind == "money":
        v = v.astype(np.int64)
        null = v == INT_NULL
        a = np.abs(np.where(null, 0, v))
        cents = pc.take(two_digit_table(), pa.array(a % 100))
        whole = _ints(a // 100, null)
        if (v < 0).any():
            whole = pc.binary_join_element_wise(pa.array(np.where(v < 0, "-", "").tolist(), pa.string()), whole, "")
        return [whole, ".", cents]
    if f.kind == "frac":
        null = v == INT_NULL
        return [pc.take(frac_table(), pa.array(np.where(null, 0, v), mask=null if null.any() else None))]
    raise ValueError(f"unknown field kind {f.kind!r}")


def _value(pieces: list) -> Any:
    """Collapse pieces into one array (a lone constant stays a string)."""
    pieces = [p for p in pieces if not (isinstance(p, str) and p == "")]
    if all(isinstance(p, str) for p in pieces):
        return "".join(pieces)
    return pieces[0] if len(pieces) == 1 else pc.binary_join_element_wise(*pieces, "")


def render_column(f: Field, values: Any, tables: dict[str, pa.Array]) -> pa.Array:
    """The text of one column (unquoted), nulls kept as nulls."""
    out = _value(_pieces(f, values, tables, ""))
    return out if not isinstance(out, str) else pa.array([out] * len(values), pa.string())


def _line(pieces: list) -> pa.Array:
    merged: list = []
    for p in pieces:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        elif not (isinstance(p, str) and p == ""):
            merged.append(p)
    return pc.binary_join_element_wise(*merged, "")


def _has_nulls(pieces: list) -> bool:
    return any(not isinstance(p, str) and p.null_count for p in pieces)


def json_lines(fields: list[Field], rec: Records, newline: bool = True) -> pa.Array:
    """One JSON object per row (keys always present, null where missing)."""
    if len(rec) == 0:
        return pa.array([], pa.string())
    pieces: list[Any] = []
    for i, f in enumerate(fields):
        pieces.append(("{" if i == 0 else ",") + f'"{f.name}":')
        parts = _pieces(f, rec.cols[f.name], rec.tables, '"')
        if _has_nulls(parts):
            pieces.append(pc.fill_null(_value(parts), "null"))
        else:
            pieces.extend(parts)
    pieces.append("}\n" if newline else "}")
    return _line(pieces)


def csv_header(fields: list[Field]) -> str:
    return ",".join(f.name for f in fields) + "\n"


def csv_lines(fields: list[Field], rec: Records) -> pa.Array:
    """One CSV line per row; text fields quoted only where RFC 4180 (or a blank edge) needs it."""
    if len(rec) == 0:
        return pa.array([], pa.string())
    pieces: list[Any] = []
    for i, f in enumerate(fields):
        if i:
            pieces.append(",")
        parts = _pieces(f, rec.cols[f.name], rec.tables, "")
        if f.text:
            s = _value(parts)
            s = pa.array([s] * len(rec), pa.string()) if isinstance(s, str) else s
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(s, '"', '""'), '"', "")
            parts = [pc.if_else(pc.match_substring_regex(s, r'[,"\n]|^\s|\s$'), quoted, s)]
        if _has_nulls(parts):
            parts = [pc.fill_null(_value(parts), "")]
        pieces.extend(parts)
    pieces.append("\n")
    return _line(pieces)


def array_bytes(lines: pa.Array) -> memoryview:
    """The concatenated text of a string array, without copying it."""
    lines = _combine(lines)
    if len(lines) == 0:
        return memoryview(b"")
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    _, offsets, data = lines.buffers()
    offs = np.frombuffer(offsets, dtype=width, count=len(lines) + 1, offset=lines.offset * width().itemsize)
    return memoryview(data)[int(offs[0]) : int(offs[-1])]
