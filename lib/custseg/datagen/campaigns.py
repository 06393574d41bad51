"""Past campaigns: planted treatment / control conversion, and the responses of one block."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from custseg.datagen import personas as P
from custseg.datagen.context import BLOCK, DAY, Campaign, Context
from custseg.datagen.fmt import INT_NULL, Field, Records
from custseg.datagen.people import Customers

CAMPAIGN_CHANNELS = ("email", "sms", "ads")
GROUPS = ("treatment", "control")
MAX_TREATED_RATE = 0.95
CONVERSION_WINDOW_DAYS = 14
# Per campaign: n_treatment, n_control, sum of planted treated probabilities,
# conversions treated, conversions control, revenue treated, revenue control (cents).
STATS = (
    "n_treatment",
    "n_control",
    "sum_treatment_prob",
    "conv_treatment",
    "conv_control",
    "revenue_treatment",
    "revenue_control",
)

CAMPAIGN_FIELDS = [
    Field("campaign_id", "ref", table="campaign"),
    Field("customer_id", "id", prefix="C", width=7),
    Field("channel", "ref", table="channel"),
    Field("group", "ref", table="group"),
    Field("sent_ts", "ts"),
    Field("opened_ts", "ts"),
    Field("clicked_ts", "ts"),
    Field("converted_ts", "ts"),
    Field("revenue", "money"),
]


def plan_campaigns(n: int, start_day: int, days: int, rng: np.random.Generator) -> tuple[Campaign, ...]:
    """n campaigns spread evenly over the period, with planted conversion parameters."""
    out = []
    for k in range(n):
        day = start_day + int(round(days * (k + 0.5) / n))
        stamp = str(np.datetime64(day, "D")).replace("-", "")
        out.append(
            Campaign(
                campaign_id=f"CMP{k + 1:02d}_{stamp}",
                channel=CAMPAIGN_CHANNELS[k % len(CAMPAIGN_CHANNELS)],
                send_day=day,
                target_share=round(float(rng.uniform(0.3, 0.5)), 3),
                control_share=round(float(rng.uniform(0.1, 0.2)), 3),
                control_rate=round(float(rng.uniform(0.01, 0.03)), 4),
                multiplier=round(float(rng.uniform(0.6, 1.0)), 3),
            )
        )
    return tuple(out)


def make_responses(ctx: Context, c: Customers) -> tuple[Records, np.ndarray]:
    rng = ctx.rng(int(c.g[0]) // BLOCK, 6)
    n = len(c)
    parts = []
    stats = np.zeros((len(ctx.campaigns), len(STATS)))
    last_second = ctx.end_day * DAY + DAY - 1
    for k, camp in enumerate(ctx.campaigns):
        targeted = (c.signup < camp.send_day) & (rng.random(n) < camp.target_share)
        control = rng.random(n) < camp.control_share
        u_open, u_click, u_conv = rng.random((3, n))
        delay_open = (60 + rng.exponential(6 * 3600, n)).astype(np.int64)
        delay_click = (30 + rng.exponential(1800, n)).astype(np.int64)
        delay_conv = rng.integers(1800, CONVERSION_WINDOW_DAYS * DAY, n)
        revenue = np.round(P.CONVERSION_REVENUE[c.persona] * rng.lognormal(0, 0.4, n) * 100).astype(np.int64)
        sent = camp.send_day * DAY + 9 * 3600 + rng.integers(0, 2 * 3600, n)
        idx = np.flatnonzero(targeted)
        prop = c.propensity[idx]
        ctl = control[idx]
        p_treat = np.minimum(camp.control_rate + camp.multiplier * prop, MAX_TREATED_RATE)
        converted = u_conv[idx] < np.where(ctl, camp.control_rate, p_treat)
        messaged = camp.channel != "ads"
        opened = ~ctl & messaged & (u_open[idx] < 0.2 + 0.6 * prop)
        p_click = np.where(messaged, opened * (0.15 + 0.5 * prop), 0.02 + 0.3 * prop)
        clicked = ~ctl & (u_click[idx] < p_click)
        s = sent[idx]
        opened_ts = np.where(opened, s + delay_open[idx], INT_NULL)
        clicked_ts = np.where(clicked, np.where(opened, opened_ts, s) + delay_click[idx], INT_NULL)
        conv_ts = np.maximum(s + delay_conv[idx], np.where(clicked, clicked_ts + 60, 0))
        conv_ts = np.where(converted, np.minimum(conv_ts, last_second), INT_NULL)
        rev = np.where(converted, revenue[idx], 0)
        parts.append(
            {
                "campaign_id": np.full(len(idx), k),
                "customer_id": c.num[idx],
                "channel": np.full(len(idx), CAMPAIGN_CHANNELS.index(camp.channel)),
                "group": ctl.astype(np.int64),
                "sent_ts": s,
                "opened_ts": opened_ts,
                "clicked_ts": clicked_ts,
                "converted_ts": conv_ts,
                "revenue": rev,
            }
        )
        t = ~ctl
        stats[k] = (
            t.sum(),
            ctl.sum(),
            p_treat[t].sum(),
            converted[t].sum(),
            converted[ctl].sum(),
            rev[t].sum(),
            rev[ctl].sum(),
        )
    cols = (
        {key: np.concatenate([p[key] for p in parts]).astype(np.int64) for key in parts[0]}
        if parts
        else {f.name: np.zeros(0, dtype=np.int64) for f in CAMPAIGN_FIELDS}
    )
    tables = {
        "campaign": pa.array([x.campaign_id for x in ctx.campaigns], pa.string()),
        "channel": pa.array(list(CAMPAIGN_CHANNELS)),
        "group": pa.array(list(GROUPS)),
    }
    return Records(cols, ctx.batch_of(cols["sent_ts"]), tables), stats
