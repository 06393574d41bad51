"""Clickstream of one block: browsing sessions (anonymous until a login) and purchase sessions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from custseg.datagen import personas as P
from custseg.datagen.catalog import (
    PAGE_CATEGORY,
    PAGE_CHECKOUT,
    PAGE_CONFIRM,
    PAGE_HOME,
    PAGE_LOGIN,
    PAGE_PRODUCT,
    PAGE_SEARCH,
)
from custseg.datagen.clock import draw_times
from custseg.datagen.context import BLOCK, Context
from custseg.datagen.fmt import INT_NULL, Field, Records
from custseg.datagen.orders import Orders
from custseg.datagen.people import Customers

EVENT_TYPES = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "purchase",
    "login",
)
PAGE_VIEW, PRODUCT_VIEW, SEARCH, ADD, REMOVE, CHECKOUT, PURCHASE, LOGIN = range(8)
# Type mix of browsing events after the landing page (page_view .. checkout).
BROWSE_MIX = np.array([[0.20, 0.45, 0.12, 0.15, 0.05, 0.03], [0.15, 0.50, 0.10, 0.17, 0.07, 0.01]])
UTM = (
    ("google", "cpc", "brand_search"),
    ("google", "cpc", "generic_search"),
    ("facebook", "social", "summer_sale"),
    ("instagram", "social", "new_in"),
    ("newsletter", "email", "weekly_deals"),
    ("tiktok", "social", "trending"),
    ("bing", "cpc", "brand_search"),
    ("affiliate", "referral", "voucher_codes"),
)
P_UTM = 0.35
PURCHASE_STEPS = np.array([LOGIN, CHECKOUT, PURCHASE])
PURCHASE_PAGES = np.array([PAGE_LOGIN, PAGE_CHECKOUT, PAGE_CONFIRM])
P_CATEGORY_PAGE = 0.5
MAX_EVENTS = 30
EVENT_ID_SPAN = 10**7
SESSION_ID_SPAN = 10**6

EVENT_FIELDS = [
    Field("event_id", "id", prefix="E", width=12),
    Field("ts", "ts"),
    Field("device_id", "id", prefix="D", width=9),
    Field("customer_id", "id", prefix="C", width=7),
    Field("session_id", "id", prefix="S", width=11),
    Field("event_type", "ref", table="event_type"),
    Field("sku", "ref", table="sku"),
    Field("category", "ref", table="category"),
    Field("page", "ref", table="page"),
    Field("duration_ms", "int"),
    Field("utm_source", "ref", table="utm_source"),
    Field("utm_medium", "ref", table="utm_medium"),
    Field("utm_campaign", "ref", table="utm_campaign"),
]


@dataclass
class Events:
    records: Records
    login_devices: tuple[np.ndarray, np.ndarray]  # (customer index, device number), unique
    next_seq: int


def _pick_device(c: Customers, cust: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n_dev = (c.devices >= 0).sum(axis=1)
    return c.devices[cust, np.floor(rng.random(len(cust)) * n_dev[cust]).astype(int)]


def _browse(ctx: Context, c: Customers, rng: np.random.Generator) -> dict[str, np.ndarray]:
    cat = ctx.catalog
    p = c.persona
    span = (c.act_hi - c.act_lo + 1).astype(float)
    ns = rng.poisson(P.SESSIONS[p] * span / 365)
    sc = np.repeat(np.arange(len(c)), ns)
    n_s = len(sc)
    start = draw_times(rng, c.act_lo[sc], c.act_hi[sc], c.daypart[sc], follow=0.6)
    device = _pick_device(c, sc, rng)
    ne = np.minimum(rng.geometric(1.0 / P.EVENTS_PER_SESSION[p[sc]]), MAX_EVENTS)
    login = rng.random(n_s) < P.P_LOGIN[p[sc]]
    k = np.floor(rng.random(n_s) * ne).astype(int)
    utm = np.where(rng.random(n_s) < P_UTM, rng.integers(0, len(UTM), n_s), -1)
    m = ne + login
    es = np.repeat(np.arange(n_s), m)
    first = np.concatenate([[0], np.cumsum(m)[:-1]])
    pos = np.arange(len(es)) - first[es]
    is_login = login[es] & (pos == k[es])
    logged = login[es] & (pos >= k[es])
    rank = pos - (login[es] & (pos > k[es]))
    mix = BROWSE_MIX[(p[sc[es]] == P.BROWSER).astype(int)]
    etype = np.where(rank == 0, PAGE_VIEW, P.choose_rows(mix, rng))
    etype = np.where(is_login, LOGIN, etype)
    ec = sc[es]
    n_fav = (c.favs >= 0).sum(axis=1)
    fav = c.favs[ec, np.floor(rng.random(len(es)) * n_fav[ec]).astype(int)]
    ecat = np.where(rng.random(len(es)) < 0.7, fav, P.choose_rows(P.CATEGORY_WEIGHTS[p[ec]], rng))
    sku_all = cat.sample(ecat, rng)
    is_product = np.isin(etype, (PRODUCT_VIEW, ADD, REMOVE))
    cat_page = (etype == PAGE_VIEW) & (rng.random(len(es)) < P_CATEGORY_PAGE)
    sku = np.where(is_product, sku_all, -1)
    category = np.where(is_product, cat.category[sku_all], np.where(cat_page, ecat, -1))
    page = np.select(
        [
            is_product,
            cat_page,
            etype == PAGE_VIEW,
            etype == SEARCH,
            etype == CHECKOUT,
            etype == LOGIN,
        ],
        [
            PAGE_PRODUCT + sku_all,
            PAGE_CATEGORY + ecat,
            PAGE_HOME,
            PAGE_SEARCH,
            PAGE_CHECKOUT,
            PAGE_LOGIN,
        ],
        PAGE_HOME,
    )
    viewing = np.isin(etype, (PAGE_VIEW, PRODUCT_VIEW))
    scale = np.where(p[ec] == P.BROWSER, 1.5, 1.0)
    duration = np.where(viewing, (rng.lognormal(np.log(12000), 0.8, len(es)) * scale).astype(np.int64), INT_NULL)
    gap = np.where(pos == 0, 0, 5 + rng.exponential(40, len(es)).astype(np.int64))
    cs = np.cumsum(gap)
    ts = start[es] + cs - cs[first[es]]
    return {
        "ts": ts,
        "device_id": device[es],
        "cust": np.where(logged, ec, -1),
        "session": es,
        "event_type": etype,
        "sku": sku,
        "category": category,
        "page": page,
        "duration_ms": duration,
        "utm": np.where(pos == 0, utm[es], -1),
    }


def _purchases(ctx: Context, c: Customers, orders: Orders, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """login, checkout, purchase: the session of every web / app order of a known customer."""
    rec = orders.records
    ch = rec.cols["channel"]
    oi = np.flatnonzero((ch > 0) & (orders.cust >= 0))
    cust = orders.cust[oi]
    device = np.where(ch[oi] == 2, c.devices[cust, 0], _pick_device(c, cust, rng))
    n = len(oi)
    steps = len(PURCHASE_STEPS)
    gaps = 10 + rng.exponential(90, (n, steps - 1)).astype(np.int64)
    back = np.cumsum(gaps[:, ::-1], axis=1)[:, ::-1]  # seconds before the order, per step
    offs = np.concatenate([-back, np.zeros((n, 1), dtype=np.int64)], axis=1)
    ts = (rec.cols["order_ts"][oi][:, None] + offs).ravel()
    return {
        "ts": ts,
        "device_id": np.repeat(device, steps),
        "cust": np.repeat(cust, steps),
        "session": np.repeat(np.arange(n), steps),
        "event_type": np.tile(PURCHASE_STEPS, n),
        "sku": np.full(steps * n, -1),
        "category": np.full(steps * n, -1),
        "page": np.tile(PURCHASE_PAGES, n),
        "duration_ms": np.full(steps * n, INT_NULL),
        "utm": np.full(steps * n, -1),
    }


def make_events(ctx: Context, c: Customers, orders: Orders) -> Events:
    block = int(c.g[0]) // BLOCK
    rng = ctx.rng(block, 3)
    browse = _browse(ctx, c, rng)
    buy = _purchases(ctx, c, orders, rng)
    n_browse_sessions = int(browse["session"].max()) + 1 if len(browse["session"]) else 0
    buy["session"] = buy["session"] + n_browse_sessions
    ev = {k: np.concatenate([browse[k], buy[k]]) for k in browse}
    order = np.argsort(ev["ts"], kind="stable")
    ev = {k: v[order] for k, v in ev.items()}
    n = len(ev["ts"])
    cust = ev["cust"]
    utm = ev["utm"]
    cols = {
        "event_id": block * EVENT_ID_SPAN + np.arange(n, dtype=np.int64),
        "ts": ev["ts"],
        "device_id": ev["device_id"],
        "customer_id": np.where(cust >= 0, c.num[np.maximum(cust, 0)], -1),
        "session_id": block * SESSION_ID_SPAN + ev["session"],
        "event_type": ev["event_type"],
        "sku": ev["sku"],
        "category": ev["category"],
        "page": ev["page"],
        "duration_ms": ev["duration_ms"],
        "utm_source": utm,
        "utm_medium": utm,
        "utm_campaign": utm,
    }
    tables = {
        "event_type": pa.array(list(EVENT_TYPES)),
        "sku": ctx.catalog.sku_table,
        "category": ctx.catalog.category_table,
        "page": ctx.catalog.page_table,
        "utm_source": pa.array([u[0] for u in UTM]),
        "utm_medium": pa.array([u[1] for u in UTM]),
        "utm_campaign": pa.array([u[2] for u in UTM]),
    }
    is_login = ev["event_type"] == LOGIN
    pairs = np.unique(np.stack([cust[is_login], ev["device_id"][is_login]]), axis=1)
    return Events(Records(cols, ctx.batch_of(ev["ts"]), tables), (pairs[0], pairs[1]), n)
