"""Orders of one block with nested items, the planted basket rules, and their exact counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from custseg.datagen import personas as P
from custseg.datagen.catalog import (
    CATEGORIES,
    CATEGORY_NAMES,
    JOURNEY_DELAY_DAYS,
    JOURNEYS,
    Catalog,
)
from custseg.datagen.clock import draw_times
from custseg.datagen.context import BLOCK, DAY, Context
from custseg.datagen.fmt import Field, Records, concat
from custseg.datagen.people import (
    CITIES,
    LOYALTY_PHONE_P,
    STORES_PER_CITY,
    Customers,
    Spellings,
    phone_spellings,
)

ORDER_FIELDS = [
    Field("order_id", "id", prefix="O", width=11),
    Field("customer_id", "id", prefix="C", width=7),
    Field("loyalty_phone", "str"),
    Field("order_ts", "ts"),
    Field("channel", "ref", table="channel"),
    Field("store_id", "id", prefix="ST", width=3),
    Field("status", "ref", table="status"),
    Field("items", "raw"),
]
ITEM_FIELDS = [
    Field("sku", "ref", table="sku"),
    Field("qty", "int"),
    Field("unit_price", "money"),
    Field("discount", "frac"),
]
STATUSES = ("completed", "returned", "cancelled")
ORDER_ID_SPAN = 10**6  # order ids: block * span + sequence
GUEST_SHARE = 0.015
BROWSER_ORDERS_P = (0.05, 0.6, 0.35)  # browsers buy 0, 1 or 2 times in the period
MAX_LINES = 25
P_PREFERRED_CHANNEL = 0.75
P_HOME_STORE = 0.85
STORE_ID_BASE = 101
# How a store order names its buyer: customer id only, loyalty phone only, both.
STORE_IDENT_P = (0.45, 0.40, 0.15)
N_STORES = STORES_PER_CITY * len(CITIES)
QTY_FACTOR = np.array([c[5] for c in CATEGORIES])
JOURNEY_STREAM = 5  # own random stream: the orders drawn before the journeys stay the same
JOURNEY_EXTRA_LINES = 0.5  # Poisson mean of further follow-up lines of the same category


@dataclass
class Orders:
    records: Records  # clean orders with items, sorted by time
    cust: np.ndarray  # block-local customer index per order, -1 for guests
    rule_counts: np.ndarray  # (rule rows, 4): baskets, antecedent, consequent, both
    phones: Spellings  # loyalty phone spellings used
    next_seq: int


def order_counts(ctx: Context, c: Customers, rng: np.random.Generator) -> np.ndarray:
    p = c.persona
    n = len(c)
    span = (c.act_hi - c.act_lo + 1).astype(float)
    lo, hi = P.ORDER_RATE[p].T
    rate = lo + rng.random(n) * (hi - lo)
    per_month = np.isin(p, (P.LOYAL, P.BARGAIN, P.CHURNING))
    lam = np.where(per_month, rate / 30 * span, rate / 365 * span)
    count = rng.poisson(lam)
    count = np.where(p == P.NEW, rng.integers(1, 4, n), count)
    count = np.where(p == P.BROWSER, P.choose_rows(np.tile(BROWSER_ORDERS_P, (n, 1)), rng), count)
    count = np.where(p == P.CHURNING, np.maximum(count, 3), count)
    return np.where((p == P.LOYAL) | (p == P.OCCASIONAL), np.maximum(count, 1), count)


def make_orders(ctx: Context, c: Customers) -> Orders:
    block = int(c.g[0]) // BLOCK
    rng = ctx.rng(block, 2)
    cat = ctx.catalog
    counts = order_counts(ctx, c, rng)
    oc = np.repeat(np.arange(len(c)), counts)
    ts = draw_times(rng, c.act_lo[oc], c.act_hi[oc], c.daypart[oc])
    n_guest = rng.binomial(len(oc), GUEST_SHARE)
    guest_lo = np.full(n_guest, ctx.start_day)
    guest_ts = draw_times(rng, guest_lo, guest_lo + ctx.days, rng.integers(0, 4, n_guest), follow=0.0)
    cust = np.concatenate([oc, np.full(n_guest, -1)])
    ts = np.concatenate([ts, guest_ts])
    order = np.argsort(ts, kind="stable")
    cust, ts = cust[order], ts[order]
    n = len(ts)
    known = cust >= 0
    persona = np.where(known, c.persona[cust], P.GUEST)
    channel = P.choose_rows(P.CHANNEL[persona], rng)
    channel = np.where(known & (rng.random(n) < P_PREFERRED_CHANNEL), c.channel[cust], channel)
    is_store = channel == 0
    home = np.where(rng.random(n) < P_HOME_STORE, c.store[cust], rng.integers(0, N_STORES, n))
    store = np.where(is_store, STORE_ID_BASE + home, -1)
    mode = P.choose_rows(np.tile(STORE_IDENT_P, (n, 1)), rng)
    with_id = known & (~is_store | (mode != 1))
    with_phone = known & is_store & (mode != 0)
    pi = np.flatnonzero(with_phone)
    fmt = P.choose_rows(np.tile(LOYALTY_PHONE_P, (len(pi), 1)), rng)
    phones = phone_spellings(pc.take(c.phone, pa.array(cust[pi])), fmt)
    loyalty = pc.replace_with_mask(pa.nulls(n, pa.string()), pa.array(with_phone), phones)
    status = P.choose_rows(P.STATUS[persona], rng)
    items, rule_counts = make_items(cat, c, cust, persona, rng)
    cols = {
        "order_id": block * ORDER_ID_SPAN + np.arange(n, dtype=np.int64),
        "customer_id": np.where(with_id, c.num[np.maximum(cust, 0)], -1),
        "loyalty_phone": loyalty,
        "order_ts": ts,
        "channel": channel,
        "store_id": store,
        "status": status,
    }
    tables = {
        "channel": pa.array(list(P.CHANNELS)),
        "status": pa.array(list(STATUSES)),
        "sku": cat.sku_table,
    }
    rec = Records(cols, ctx.batch_of(ts), tables, items=items)
    spellings = Spellings(cust[pi], fmt)
    follow = journey_orders(ctx, c, rec, cust, block * ORDER_ID_SPAN + n)
    if len(follow):
        rec = concat(rec, follow.records)
        cust = np.concatenate([cust, follow.cust])
        by_time = np.argsort(rec.cols["order_ts"], kind="stable")
        rec, cust = rec.take(by_time), cust[by_time]
        rule_counts = basket_counts(cat, rec.items.cols["order"], rec.items.cols["sku"], len(rec))
    return Orders(rec, cust, rule_counts, spellings, n + len(follow))


@dataclass
class FollowUps:
    records: Records
    cust: np.ndarray

    def __len__(self) -> int:
        return len(self.cust)


def journey_orders(ctx: Context, c: Customers, rec: Records, cust: np.ndarray, first_id: int) -> FollowUps:
    """The planted journeys (catalog.JOURNEYS) as new orders after their trigger orders.

    For each journey, a customer's completed orders holding the trigger category, before
    their first order of the follow-up category, each convert with the journey's probability;
    the first that does gets a follow-up order JOURNEY_DELAY_DAYS later (inside the
    customer's active period), so the customer then owns the follow-up category. Journeys
    are drawn in order and a follow-up order can trigger a later journey (baby care, then
    toys, then books).
    """
    rng = ctx.rng(int(c.g[0]) // BLOCK, JOURNEY_STREAM)
    cat = ctx.catalog
    n = len(cust)
    io, sku = rec.items.cols["order"], rec.items.cols["sku"]
    present = np.zeros((n, len(CATEGORIES)), dtype=bool)
    present[io, cat.category[sku]] = True
    ts = rec.cols["order_ts"]
    completed = (rec.cols["status"] == 0) & (cust >= 0)
    out_cust, out_ts, out_cat = [], [], []
    for trigger, follow_up, prob in JOURNEYS:
        if out_cust:  # the follow-ups so far are orders too
            new = np.zeros((len(out_cust[-1]), len(CATEGORIES)), dtype=bool)
            new[np.arange(len(new)), out_cat[-1]] = True
            present = np.concatenate([present, new])
            cust = np.concatenate([cust, out_cust[-1]])
            ts = np.concatenate([ts, out_ts[-1]])
            completed = np.concatenate([completed, np.ones(len(new), dtype=bool)])
        a, b = CATEGORY_NAMES.index(trigger), CATEGORY_NAMES.index(follow_up)
        first_b = np.full(len(c), np.iinfo(np.int64).max)
        owns = completed & present[:, b]
        np.minimum.at(first_b, cust[owns], ts[owns])
        cand = np.flatnonzero(completed & present[:, a])
        cand = cand[ts[cand] < first_b[cust[cand]]]
        cand = cand[rng.random(len(cand)) < prob]
        cand = cand[np.argsort(ts[cand], kind="stable")]
        _, first = np.unique(cust[cand], return_index=True)
        trig = cand[first]
        days = rng.integers(JOURNEY_DELAY_DAYS[0], JOURNEY_DELAY_DAYS[1] + 1, len(trig))
        when = ts[trig] + days * DAY
        ok = when < (c.act_hi[cust[trig]] + 1) * DAY
        out_cust.append(cust[trig][ok])
        out_ts.append(when[ok])
        out_cat.append(np.full(int(ok.sum()), b))
    fc, fts, fcat = (np.concatenate(x).astype(np.int64) for x in (out_cust, out_ts, out_cat))
    m = len(fc)
    lines = 1 + rng.poisson(JOURNEY_EXTRA_LINES, m)
    fio = np.repeat(np.arange(m), lines)
    fsku = cat.sample(fcat[fio], rng)
    fio, fsku = _dedupe(fio, fsku, cat.size)
    items = _line_items(cat, fio, fsku, c.persona[fc][fio], rng)
    channel = c.channel[fc]
    is_store = channel == 0
    cols = {
        "order_id": first_id + np.arange(m, dtype=np.int64),
        "customer_id": c.num[fc],
        "loyalty_phone": pa.nulls(m, pa.string()),
        "order_ts": fts,
        "channel": channel,
        "store_id": np.where(is_store, STORE_ID_BASE + c.store[fc], -1),
        "status": np.zeros(m, dtype=np.int64),
    }
    tables = {"channel": pa.array(list(P.CHANNELS)), "status": pa.array(list(STATUSES)), "sku": cat.sku_table}
    return FollowUps(Records(cols, ctx.batch_of(fts), tables, items=items), fc)


def make_items(
    cat: Catalog, c: Customers, cust: np.ndarray, persona: np.ndarray, rng: np.random.Generator
) -> tuple[Records, np.ndarray]:
    n = len(cust)
    lines = np.minimum(P.LINES_BASE[persona].astype(int) + rng.poisson(P.LINES_LAM[persona]), MAX_LINES)
    io = np.repeat(np.arange(n), lines)
    ip, ic = persona[io], cust[io]
    n_fav = (c.favs >= 0).sum(axis=1)
    slot = np.floor(rng.random(len(io)) * n_fav[np.maximum(ic, 0)]).astype(int)
    fav = c.favs[np.maximum(ic, 0), slot]
    general = P.choose_rows(P.CATEGORY_WEIGHTS[ip], rng)
    use_fav = (ic >= 0) & (rng.random(len(io)) < P.P_FAV[ip])
    sku = cat.sample(np.where(use_fav, fav, general), rng)
    io, sku = _dedupe(io, sku, cat.size)
    for rule in cat.rules:
        inject = rng.random(n) < rule.inject
        for a in rule.antecedent:
            io, sku = _add(io, sku, inject & ~_has(io, sku, a, n), a)
        present = np.logical_and.reduce([_has(io, sku, a, n) for a in rule.antecedent])
        add = present & ~_has(io, sku, rule.consequent, n) & (rng.random(n) < rule.prob)
        io, sku = _add(io, sku, add, rule.consequent)
    order = np.argsort(io, kind="stable")
    io, sku = io[order], sku[order]
    return _line_items(cat, io, sku, persona[io], rng), basket_counts(cat, io, sku, n)


def _line_items(cat: Catalog, io: np.ndarray, sku: np.ndarray, ip: np.ndarray, rng: np.random.Generator) -> Records:
    """Order lines (order index, sku) with quantity, list price and discount by the buyer's persona ``ip``."""
    qty = 1 + rng.poisson(P.QTY_LAM[ip] * QTY_FACTOR[cat.category[sku]])
    p_disc, lo, hi = P.DISCOUNT[ip].T
    discount = np.where(rng.random(len(io)) < p_disc, rng.integers(lo.astype(int), hi.astype(int) + 1), 0)
    cols = {
        "order": io,
        "sku": sku,
        "qty": qty.astype(np.int64),
        "unit_price": cat.price[sku].copy(),
        "discount": discount.astype(np.int64),
    }
    return Records(cols, np.zeros(len(io), dtype=np.int64), {"sku": cat.sku_table})


def _dedupe(io: np.ndarray, sku: np.ndarray, n_sku: int) -> tuple[np.ndarray, np.ndarray]:
    _, first = np.unique(io * n_sku + sku, return_index=True)
    keep = np.sort(first)
    return io[keep], sku[keep]


def _has(io: np.ndarray, sku: np.ndarray, s: int, n: int) -> np.ndarray:
    h = np.zeros(n, dtype=bool)
    h[io[sku == s]] = True
    return h


def _add(io: np.ndarray, sku: np.ndarray, mask: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    new = np.flatnonzero(mask)
    return np.concatenate([io, new]), np.concatenate([sku, np.full(len(new), s)])


def rule_rows(cat: Catalog) -> list[tuple[str, tuple[int, ...], int, float]]:
    """(level, antecedent, consequent, planted probability): SKU rules, then category rules."""
    rows = [("sku", r.antecedent, r.consequent, r.prob) for r in cat.rules]
    for r in cat.rules:
        ante = tuple(sorted({int(cat.category[a]) for a in r.antecedent}))
        cons = int(cat.category[r.consequent])
        if cons not in ante:
            rows.append(("category", ante, cons, r.prob))
    return rows


def basket_counts(cat: Catalog, io: np.ndarray, sku: np.ndarray, n: int) -> np.ndarray:
    """Per rule row: number of baskets, with the antecedent, with the consequent, with both."""
    rows = rule_rows(cat)
    out = np.zeros((len(rows), 4), dtype=np.int64)
    cat_present = np.zeros((n, len(CATEGORIES)), dtype=bool)
    cat_present[io, cat.category[sku]] = True
    for k, (level, ante, cons, _) in enumerate(rows):
        if level == "sku":
            a = np.logical_and.reduce([_has(io, sku, s, n) for s in ante])
            b = _has(io, sku, cons, n)
        else:
            a = cat_present[:, list(ante)].all(axis=1)
            b = cat_present[:, cons]
        out[k] = (n, a.sum(), b.sum(), (a & b).sum())
    return out
