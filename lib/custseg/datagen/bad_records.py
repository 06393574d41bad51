"""Bad records: defective copies of clean records, placed right after the record they copy.

Injecting copies (instead of damaging originals) keeps the clean data, and so every
truth figure, exact: a pipeline that quarantines exactly the listed lines sees the
planted data. Copies that are not duplicates get a fresh surrogate key where the source
has one, so a defect never hides behind deduplication.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from custseg.datagen.context import DAY, Context, unknown_customer_numbers
from custseg.datagen.fmt import BAD_TIME_CODES, Records, concat

BAD_CLASSES = {
    "crm_customers": ("missing_id", "unparsable_date", "future_timestamp", "duplicate_record"),
    "products": ("missing_id", "negative_price", "duplicate_record"),
    "orders": (
        "malformed_json",
        "missing_id",
        "negative_price",
        "negative_quantity",
        "unparsable_date",
        "duplicate_order",
        "unknown_customer",
        "future_timestamp",
    ),
    "events": (
        "malformed_json",
        "missing_id",
        "unparsable_date",
        "duplicate_event",
        "unknown_customer",
        "future_timestamp",
    ),
    "feedback": (
        "missing_id",
        "unparsable_date",
        "rating_out_of_range",
        "unknown_customer",
        "future_timestamp",
        "duplicate_record",
    ),
    "social": (
        "malformed_json",
        "missing_id",
        "unparsable_date",
        "unknown_customer",
        "negative_value",
        "future_timestamp",
        "duplicate_record",
    ),
    "campaign_responses": (
        "missing_id",
        "unparsable_date",
        "unknown_customer",
        "negative_value",
        "future_timestamp",
        "duplicate_record",
    ),
}
KEEP_KEY = {
    "duplicate_record",
    "duplicate_order",
    "duplicate_event",
    "malformed_json",
    "missing_id",
}
FUTURE_DAYS = (30, 800)


@dataclass(frozen=True)
class Target:
    """Which columns of a source each defect touches."""

    key: str
    dates: tuple[str, ...]
    ts: str
    customer: str = ""
    value: str = ""
    fresh_key: bool = False


TARGETS = {
    "crm_customers": Target("customer_id", ("signup_date", "birth_date", "updated_at"), "updated_at"),
    "products": Target("sku", (), "", value="list_price"),
    "orders": Target("order_id", ("order_ts",), "order_ts", "customer_id", fresh_key=True),
    "events": Target("event_id", ("ts",), "ts", "customer_id", fresh_key=True),
    "feedback": Target("feedback_id", ("ts",), "ts", "customer_id", value="rating", fresh_key=True),
    "social": Target("handle", ("observed_at",), "observed_at", "email", value="followers"),
    "campaign_responses": Target("customer_id", ("sent_ts",), "sent_ts", "customer_id", value="revenue"),
}


def inject(
    source: str,
    rec: Records,
    ctx: Context,
    rng: np.random.Generator,
    force_all: bool,
    fresh_keys: Callable[[int], np.ndarray] | None = None,
) -> Records:
    """`rec` with defective copies added; `bad` holds the class index per row (-1 = clean).

    About `bad_share` of the clean count is added; with `force_all` every class appears once more.
    """
    classes = BAD_CLASSES[source]
    n = len(rec)
    rec.bad = np.full(n, -1, dtype=np.int64)
    if ctx.bad_share <= 0 or n == 0:
        return rec
    cls = rng.integers(0, len(classes), rng.binomial(n, ctx.bad_share))
    if force_all:
        cls = np.concatenate([np.arange(len(classes)), cls])
    origin = rng.integers(0, n, len(cls))
    copies = rec.take(origin)
    copies.bad = cls
    target = TARGETS[source]
    fresh = np.array([classes[k] not in KEEP_KEY for k in cls], dtype=bool)
    if target.fresh_key and fresh.any():
        copies.cols[target.key] = copies.cols[target.key].copy()
        copies.cols[target.key][fresh] = fresh_keys(int(fresh.sum()))
    for k, name in enumerate(classes):
        m = cls == k
        if m.any():
            MUTATIONS.get(name, _nothing)(copies, m, target, ctx, rng)
    out = concat(rec, copies)
    place = np.argsort(np.concatenate([np.arange(n) * 2.0, origin * 2.0 + 1]), kind="stable")
    return out.take(place)


def _nothing(*_args) -> None:
    return None


def _set(rec: Records, name: str, mask: np.ndarray, values) -> None:
    col = rec.cols[name]
    if isinstance(col, pa.Array | pa.ChunkedArray):
        rec.cols[name] = pc.replace_with_mask(col, pa.array(mask), pa.array(values, type=pa.string()))
    else:
        col = col.copy()
        col[mask] = values
        rec.cols[name] = col


def _missing_id(rec, m, t, ctx, rng) -> None:
    is_arrow = isinstance(rec.cols[t.key], pa.Array | pa.ChunkedArray)
    _set(rec, t.key, m, [None] * int(m.sum()) if is_arrow else -1)


def _unparsable(rec, m, t, ctx, rng) -> None:
    rows = np.flatnonzero(m)
    which = rng.integers(0, len(t.dates), len(rows))
    codes = rng.choice(np.array(BAD_TIME_CODES), len(rows))
    for j, name in enumerate(t.dates):
        sub = np.zeros(len(rec), dtype=bool)
        sub[rows[which == j]] = True
        if sub.any():
            _set(rec, name, sub, codes[which == j])


def _future(rec, m, t, ctx, rng) -> None:
    k = int(m.sum())
    day = ctx.end_day + rng.integers(FUTURE_DAYS[0], FUTURE_DAYS[1], k)
    _set(rec, t.ts, m, day * DAY + rng.integers(0, DAY, k))


def _unknown(rec, m, t, ctx, rng) -> None:
    nums = unknown_customer_numbers(ctx, int(m.sum()), rng)
    if t.customer == "email":
        _set(rec, "email", m, [f"unknown.person{x}@example.org" for x in nums])
    else:
        _set(rec, t.customer, m, nums)


def _first_items(rec: Records, m: np.ndarray) -> np.ndarray:
    counts = np.bincount(rec.items.cols["order"], minlength=len(rec))
    return (np.cumsum(counts) - counts)[m]


def _negative_price(rec, m, t, ctx, rng) -> None:
    if rec.items is None:
        _set(rec, t.value, m, -np.maximum(rec.cols[t.value][m], 1))
        return
    idx = _first_items(rec, m)
    price = rec.items.cols["unit_price"].copy()
    price[idx] = -np.maximum(price[idx], 1)
    rec.items.cols["unit_price"] = price


def _negative_quantity(rec, m, t, ctx, rng) -> None:
    idx = _first_items(rec, m)
    qty = rec.items.cols["qty"].copy()
    qty[idx] = -qty[idx]
    rec.items.cols["qty"] = qty


def _rating(rec, m, t, ctx, rng) -> None:
    _set(rec, "rating", m, rng.choice(np.array([0, 7]), int(m.sum()), p=[0.3, 0.7]))


def _negative_value(rec, m, t, ctx, rng) -> None:
    _set(rec, t.value, m, -(rec.cols[t.value][m] + 1 + rng.integers(0, 500, int(m.sum()))))


MUTATIONS = {
    "missing_id": _missing_id,
    "unparsable_date": _unparsable,
    "future_timestamp": _future,
    "unknown_customer": _unknown,
    "negative_price": _negative_price,
    "negative_quantity": _negative_quantity,
    "rating_out_of_range": _rating,
    "negative_value": _negative_value,
}


def truncate_malformed(source: str, lines: pa.Array, bad: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Cut the lines of `malformed_json` copies short (they stay one line each)."""
    if "malformed_json" not in BAD_CLASSES[source]:
        return lines
    rows = np.flatnonzero(bad == BAD_CLASSES[source].index("malformed_json"))
    if len(rows) == 0:
        return lines
    texts = pc.take(lines, pa.array(rows)).to_pylist()
    cut = rng.uniform(0.3, 0.8, len(rows))
    short = [t[: max(5, int(len(t) * f))].rstrip("\n") + "\n" for t, f in zip(texts, cut, strict=True)]
    mask = np.zeros(len(lines), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(lines, pa.array(mask), pa.array(short, pa.string()))
