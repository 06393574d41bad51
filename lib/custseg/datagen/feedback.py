"""Feedback and social profiles of one block."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from custseg.datagen import personas as P
from custseg.datagen.context import BLOCK, DAY, Context
from custseg.datagen.fmt import Field, Records
from custseg.datagen.people import (
    SOCIAL_EMAIL_P,
    Customers,
    Spellings,
    email_spellings,
    mailbox_number,
)

FEEDBACK_CHANNELS = ("web", "app", "email", "store", "call_center")
CHANNEL_TABLE = pa.array(list(FEEDBACK_CHANNELS))
FEEDBACK_CHANNEL_P = np.array([0.3, 0.3, 0.2, 0.15, 0.05])
TEXTS = (
    (
        "Terrible experience, will not shop again",
        "Order arrived late and damaged",
        "Refund still not processed after three weeks",
        "Rude staff at the till",
    ),
    ("Poor quality, disappointed", "Delivery was late again", "Prices keep going up, not worth it"),
    ("Okay overall, nothing special", "Average service, long queues", "Fine, but the app is slow"),
    ("Good value, quick delivery", "Friendly staff and a tidy store", "Happy with my order"),
    (
        "Excellent service, highly recommend",
        "Love the loyalty rewards!",
        "Great quality, fast delivery, will buy again",
    ),
)
TEXT_TABLE = pa.array([t for level in TEXTS for t in level])
TEXT_START = np.cumsum([0] + [len(t) for t in TEXTS])[:-1]
TEXT_COUNT = np.array([len(t) for t in TEXTS])
FEEDBACK_ID_SPAN = 10**5
CHURN_COMPLAINT_DAYS = 60  # churners' feedback clusters before they stop

FEEDBACK_FIELDS = [
    Field("feedback_id", "id", prefix="FB", width=10),
    Field("customer_id", "id", prefix="C", width=7),
    Field("ts", "ts"),
    Field("channel", "ref", table="channel"),
    Field("rating", "int"),
    Field("nps", "int"),
    Field("text", "ref", table="text", text=True),
]

PLATFORMS = ("instagram", "tiktok", "x", "facebook")
PLATFORM_TABLE = pa.array(list(PLATFORMS))
SOCIAL_FIELDS = [
    Field("platform", "ref", table="platform"),
    Field("handle", "str"),
    Field("email", "str"),
    Field("followers", "int"),
    Field("posts", "int"),
    Field("shares", "int"),
    Field("mentions", "int"),
    Field("observed_at", "ts"),
]
MENTIONS = np.array([2.0, 0.8, 0.6, 0.2, 0.5, 1.0])  # brand mentions per observation, by persona


def make_feedback(ctx: Context, c: Customers) -> tuple[Records, int]:
    block = int(c.g[0]) // BLOCK
    rng = ctx.rng(block, 4)
    p = c.persona
    span = (c.act_hi - c.act_lo + 1).astype(float)
    count = rng.poisson(P.FEEDBACK_PER_YEAR[p] * np.maximum(span, 30) / 365)
    fc = np.repeat(np.arange(len(c)), count)
    lo, hi = c.act_lo[fc], np.minimum(c.act_hi[fc] + 10, ctx.end_day)
    churn = p[fc] == P.CHURNING
    lo = np.where(churn, np.clip(c.act_hi[fc] - CHURN_COMPLAINT_DAYS, lo, hi), lo)
    ts = lo * DAY + np.floor(rng.random(len(fc)) * ((hi - lo + 1) * DAY)).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    fc, ts = fc[order], ts[order]
    n = len(fc)
    rating = 1 + P.choose_rows(P.RATING[p[fc]], rng)
    nps = np.clip(np.round(2 * rating - 1 + rng.normal(0, 1.2, n)), 0, 10).astype(np.int64)
    text = TEXT_START[rating - 1] + np.floor(rng.random(n) * TEXT_COUNT[rating - 1]).astype(np.int64)
    cols = {
        "feedback_id": block * FEEDBACK_ID_SPAN + np.arange(n, dtype=np.int64),
        "customer_id": c.num[fc],
        "ts": ts,
        "channel": P.choose_rows(np.tile(FEEDBACK_CHANNEL_P, (n, 1)), rng),
        "rating": rating.astype(np.int64),
        "nps": nps,
        "text": text,
    }
    tables = {"channel": CHANNEL_TABLE, "text": TEXT_TABLE}
    return Records(cols, ctx.batch_of(ts), tables), n


def make_social(ctx: Context, c: Customers) -> tuple[Records, Spellings]:
    """Profile snapshots, and the e-mail spellings they use."""
    rng = ctx.rng(int(c.g[0]) // BLOCK, 5)
    p = c.persona
    n = len(c)
    n_prof = np.where(rng.random(n) < P.P_SOCIAL[p], 1 + (rng.random(n) < 0.3), 0)
    pc_ = np.repeat(np.arange(n), n_prof)
    j = np.arange(len(pc_)) - np.repeat(np.cumsum(n_prof) - n_prof, n_prof)
    first_platform = rng.integers(0, len(PLATFORMS), n)
    platform = (first_platform[pc_] + j * (1 + rng.integers(0, 3, len(pc_)))) % len(PLATFORMS)
    base_followers = rng.lognormal(5.0, 1.5, len(pc_))
    n_obs = 1 + rng.binomial(2, 0.5, len(pc_))
    ri = np.repeat(np.arange(len(pc_)), n_obs)
    cust = pc_[ri]
    lo = np.maximum(c.signup[cust], ctx.start_day)
    day = lo + np.floor(rng.random(len(ri)) * (ctx.end_day - lo + 1)).astype(np.int64)
    ts = day * DAY + rng.integers(0, DAY, len(ri))
    order = np.lexsort((ts, ri))
    ri, cust, ts = ri[order], cust[order], ts[order]
    m = len(ri)
    grow = 1 + 0.002 * (ts // DAY - ctx.start_day)
    names = pc.utf8_lower(pc.replace_substring(pc.take(c.name, pa.array(cust)), " ", "_"))
    handle = pc.binary_join_element_wise(
        "@", names, "_", pa.array((mailbox_number(c.g[cust]) * 10 + j[ri]).astype(str)), ""
    )
    variant = P.choose_rows(np.tile(SOCIAL_EMAIL_P, (m, 1)), rng)
    email = email_spellings(pc.take(c.email, pa.array(cust)), variant)
    cols = {
        "platform": platform[ri],
        "handle": handle,
        "email": email,
        "followers": (base_followers[ri] * grow).astype(np.int64),
        "posts": rng.poisson(5 + base_followers[ri] ** 0.3, m).astype(np.int64),
        "shares": rng.poisson(2, m).astype(np.int64),
        "mentions": rng.poisson(MENTIONS[p[cust]]).astype(np.int64),
        "observed_at": ts,
    }
    return Records(cols, ctx.batch_of(ts), {"platform": PLATFORM_TABLE}), Spellings(cust, variant)
