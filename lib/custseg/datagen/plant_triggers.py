"""Plant real-time trigger situations, and near misses, into a landing zone, with their truth.

Given customers the generator wrote (their ``customer_id``; what the batch gold says of them, as
far as the caller knows it: declining, lunch regular, consent, key, contacted today), one day
and the triggers, ``plant`` emits clickstream events and orders in the generator's landing
format that fire each trigger kind once per chosen customer, and near misses that must not fire:

| situation | kind | fires |
|---|---|---|
| ``browse`` | browse_abandonment | ``min_views`` product views of one category, no purchase |
| ``browse_short`` | - | one view fewer |
| ``cart`` | cart_abandonment | an item added, session left |
| ``cart_bought`` / ``cart_removed`` | - | added then bought (purchase event) / removed |
| ``cross_sell`` | post_purchase_cross_sell | an order holding a rule's antecedent, not its consequent |
| ``cross_sell_owned`` | - | the order already holds the consequent |
| ``declining`` | declining_return | a declining customer opens the site (afternoon) |
| ``lunch`` | daypart | a lunch regular logs in 30 minutes before lunch on a weekday |
| ``lunch_late`` | - | the same 30 minutes after lunch started |

Every customer gets one situation (so no planted firing caps another); declining customers get
``declining``, lunch regulars ``lunch`` / ``lunch_late``, the others rotate through the rest. Two
late anonymous page views move the stream's watermark past every planted session.

``truth/realtime_triggers.csv``: customer_id, situation, trigger (the trigger id; empty for a
near miss), expected_decision: ``unknown_customer`` (not a CRM customer), ``no_consent``,
``capped`` (contacted today by a batch campaign), ``control`` (the holdout hash, when the
customer key is given), else ``offered``; ``none`` for a near miss. Eligibility rules beyond
those flags are not modelled: keep the planted customers inside every trigger's eligibility.
A cross-sell near miss holds only the rule's items; another mined rule could still fire on it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from custseg.realtime.triggers import BROWSE, CART, CROSS_SELL, DAYPART, DECLINING, Trigger

log = logging.getLogger(__name__)

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
FILE_NAME = "planted-triggers.jsonl"
TRUTH_FILE = "realtime_triggers.csv"
TRUTH_COLUMNS = ["customer_id", "situation", "trigger", "expected_decision", "event_ts"]
OTHER_SITUATIONS = ("browse", "cart", "cross_sell", "browse_short", "cart_bought", "cart_removed", "cross_sell_owned")
SITUATION_KIND = {
    "browse": BROWSE,
    "browse_short": BROWSE,
    "cart": CART,
    "cart_bought": CART,
    "cart_removed": CART,
    "cross_sell": CROSS_SELL,
    "cross_sell_owned": CROSS_SELL,
}
FIRES = {"browse": BROWSE, "cart": CART, "cross_sell": CROSS_SELL, "declining": DECLINING, "lunch": DAYPART}


@dataclass(frozen=True)
class PlantCustomer:
    customer_id: str
    customer_key: str | None = None  # for the expected holdout decision; None: control not predicted
    declining: bool = False
    lunch_regular: bool = False
    opted_in: bool = True  # consented to at least one channel of the triggers
    known: bool = True  # a CRM customer the batch gold knows
    contacted_today: bool = False


@dataclass
class Planted:
    events: list[dict] = field(default_factory=list)
    orders: list[dict] = field(default_factory=list)
    truth: list[dict] = field(default_factory=list)


def in_holdout(customer_key: str, trigger_id: str, share: float, salt: str) -> bool:
    """The batch campaigns' holdout (custseg.marketing.audience.holdout_group), in Python."""
    digest = hashlib.sha256(f"{customer_key}|{trigger_id}|{salt}".encode()).hexdigest()
    return int(digest[:12], 16) % 10000 < round(share * 10000)


def _first(triggers: Sequence[Trigger], kind: str) -> Trigger | None:
    return next((t for t in triggers if t.kind == kind), None)


def _expected(c: PlantCustomer, t: Trigger, salt: str) -> str:
    if not c.known:
        return "unknown_customer"
    if not c.opted_in:
        return "no_consent"
    if c.contacted_today:
        return "capped"
    if c.customer_key is not None and in_holdout(c.customer_key, t.id, t.holdout_share, salt):
        return "control"
    return "offered"


def plant(
    customers: Sequence[PlantCustomer],
    catalog: dict[str, list[str]],
    day: date,
    triggers: Sequence[Trigger],
    rule: tuple[Sequence[str], str] | None = None,
    lunch_hours: tuple[int, int] = (11, 14),
    salt: str = "custseg-holdout-v1",
    watermark_minutes: int = 10,
) -> Planted:
    """Events, orders and truth for ``customers`` on ``day`` (a weekday).

    ``catalog``: category -> skus (silver.products); ``rule``: (antecedent categories, consequent
    category) of a rule the cross-sell trigger accepts (at basket.level category), or None to plant
    no cross-sell. Situations whose trigger is absent from ``triggers`` are not planted.
    """
    if day.weekday() >= 5:
        raise ValueError(f"plant: {day} is a weekend day; the day-part trigger fires on weekdays only")
    kinds = {k: _first(triggers, k) for k in (BROWSE, CART, CROSS_SELL, DECLINING, DAYPART)}
    others = [
        s
        for s in OTHER_SITUATIONS
        if kinds[SITUATION_KIND[s]] is not None and (rule is not None or SITUATION_KIND[s] != CROSS_SELL)
    ]
    categories = sorted(c for c, skus in catalog.items() if skus)
    if not categories:
        raise ValueError("plant: the catalog has no category with a sku")
    out = Planted()
    lunch_start = datetime.combine(day, datetime.min.time()) + timedelta(hours=lunch_hours[0])
    afternoon = datetime.combine(day, datetime.min.time()) + timedelta(hours=15)
    n_ev, n_other, latest = [0], 0, afternoon

    def event(c: PlantCustomer, i: int, ts: datetime, etype: str, sku: str | None = None, cat: str | None = None):
        n_ev[0] += 1
        out.events.append(
            {
                "event_id": f"EPT{n_ev[0]:09d}",
                "ts": ts.strftime(TS_FORMAT),
                "device_id": f"DPT{i:07d}",
                "customer_id": c.customer_id,
                "session_id": f"SPT{i:08d}",
                "event_type": etype,
                "sku": sku,
                "category": cat,
                "page": "/p" if sku else "/",
                "duration_ms": 1000 if sku else None,
                "utm_source": None,
                "utm_medium": None,
                "utm_campaign": None,
            }
        )

    def order(c: PlantCustomer, i: int, ts: datetime, cats: Sequence[str]):
        out.orders.append(
            {
                "order_id": f"OPT{i:09d}",
                "customer_id": c.customer_id,
                "loyalty_phone": None,
                "order_ts": ts.strftime(TS_FORMAT),
                "channel": "web",
                "store_id": None,
                "status": "completed",
                "items": [{"sku": catalog[k][0], "qty": 1, "unit_price": 5.0, "discount": 0.0} for k in cats],
            }
        )

    for i, c in enumerate(customers):
        t0 = afternoon + timedelta(seconds=7 * i)
        cat = categories[i % len(categories)]
        sku = catalog[cat][0]
        if c.declining and kinds[DECLINING] is not None:
            situation, ts = "declining", t0
            event(c, i, ts, "page_view")
        elif c.lunch_regular and kinds[DAYPART] is not None:
            situation = "lunch" if i % 2 == 0 else "lunch_late"
            ts = lunch_start + timedelta(minutes=-30 if situation == "lunch" else 30, seconds=i % 600)
            event(c, i, ts, "login")
        elif others:
            situation = others[n_other % len(others)]
            n_other += 1
            ts = t0
            if situation.startswith("browse"):
                b = kinds[BROWSE]
                n = b.min_views - (1 if situation == "browse_short" else 0)
                for v in range(n):
                    ts = t0 + timedelta(minutes=v)
                    event(c, i, ts, b.view_events[0], sku, cat)
            elif situation.startswith("cart"):
                k = kinds[CART]
                event(c, i, t0, k.cart_events[0], sku, cat)
                if situation == "cart_bought":
                    ts = t0 + timedelta(minutes=2)
                    event(c, i, ts, "purchase")
                elif situation == "cart_removed":
                    ts = t0 + timedelta(minutes=1)
                    event(c, i, ts, k.remove_events[0] if k.remove_events else "remove_from_cart", sku, cat)
            else:
                antecedent, consequent = rule
                items = list(antecedent) + ([consequent] if situation == "cross_sell_owned" else [])
                order(c, i, t0, items)
            # a session trigger fires when the session closes: last event + the timeout
            if situation in ("browse", "cart"):
                ts = ts + timedelta(minutes=kinds[FIRES[situation]].timeout_minutes)
        else:
            continue
        latest = max(latest, ts)
        kind = FIRES.get(situation)
        t = kinds[kind] if kind else None
        out.truth.append(
            {
                "customer_id": c.customer_id,
                "situation": situation,
                "trigger": t.id if t else "",
                "expected_decision": _expected(c, t, salt) if t else "none",
                "event_ts": ts.strftime(TS_FORMAT),
            }
        )
    gap = max((t.timeout_minutes for t in triggers if t.is_session), default=30)
    closer = latest + timedelta(minutes=gap + watermark_minutes + 5)
    for j, ts in enumerate((closer, closer + timedelta(minutes=1))):
        n_ev[0] += 1
        out.events.append(
            {
                "event_id": f"EPT{n_ev[0]:09d}",
                "ts": ts.strftime(TS_FORMAT),
                "device_id": f"DPTCLOSE{j}",
                "customer_id": None,
                "session_id": f"SPTCLOSE{j}",
                "event_type": "page_view",
                "sku": None,
                "category": None,
                "page": "/",
                "duration_ms": None,
                "utm_source": None,
                "utm_medium": None,
                "utm_campaign": None,
            }
        )
    out.events.sort(key=lambda e: e["ts"])
    return out


def write_planted(planted: Planted, landing: Path, truth_dir: Path, day: date) -> dict[str, Path]:
    """``landing/events/<day>/planted-triggers.jsonl``, ``landing/orders/<day>/...`` and the truth CSV."""
    paths = {}
    for source, rows in (("events", planted.events), ("orders", planted.orders)):
        if not rows:
            continue
        folder = Path(landing) / source / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{FILE_NAME}.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        tmp.rename(folder / FILE_NAME)  # a file stream never sees half a file
        paths[source] = folder / FILE_NAME
    Path(truth_dir).mkdir(parents=True, exist_ok=True)
    truth = Path(truth_dir) / TRUTH_FILE
    with truth.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=TRUTH_COLUMNS)
        w.writeheader()
        w.writerows(planted.truth)
    paths["truth"] = truth
    return paths


def read_catalog(products_csv: Path) -> dict[str, list[str]]:
    """category -> skus from a landing products CSV (the catalogue: bounded)."""
    out: dict[str, list[str]] = {}
    with Path(products_csv).open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("category") and row.get("sku"):
                out.setdefault(row["category"].strip().lower(), []).append(row["sku"].strip())
    return {k: sorted(v) for k, v in out.items()}


def customers_from_gold(
    spark, gold, identity_map, customer_ids: Sequence[str], salt, triggers: Sequence[Trigger], min_lunch_share=None
) -> list[PlantCustomer]:
    """``PlantCustomer`` flags for the given generator ids, from what the batch says of them.

    ``gold``: ``custseg.realtime.decide.load_gold`` of the planting day; ``identity_map``:
    silver.identity_map; ``salt``: the PII key (``custseg.pii.resolve_pii_key``). An id the map does
    not resolve, or the base does not hold, is ``known=False``. Bounded by ``customer_ids``, which
    the caller chooses (a few dozen): only those rows reach the driver.
    """
    from pyspark.sql import functions as F

    from custseg.conform.identity import CUSTOMER_ID, customer_id_key, with_customer_key
    from custseg.marketing.audience import assigned_channel

    daypart = next((t for t in triggers if t.kind == DAYPART), None)
    share = min_lunch_share if min_lunch_share is not None else (daypart.min_lunch_share if daypart else 0.5)
    channels = list(dict.fromkeys(c for t in triggers for c in t.channels))
    base = gold.customers
    by_key = "reach_by_key" in base.columns
    flags = base.select(
        "customer_key",
        F.lit(True).alias("known"),
        F.coalesce(F.col("declining"), F.lit(False)).alias("declining"),
        F.coalesce(F.col("weekday_lunch_share") >= F.lit(share), F.lit(False)).alias("lunch_regular"),
        assigned_channel(channels, by_key).isNotNull().alias("opted_in"),
    )
    ids = spark.createDataFrame([(i,) for i in customer_ids], "customer_id string")
    rows = (
        ids.transform(with_customer_key(identity_map, (CUSTOMER_ID, customer_id_key("customer_id", salt))))
        .join(flags, on="customer_key", how="left")
        .join(
            gold.contacted_today.select("customer_key", F.lit(True).alias("contacted")), on="customer_key", how="left"
        )
        .collect()
    )
    by_id = {r["customer_id"]: r for r in rows}
    out = []
    for cid in customer_ids:
        r = by_id.get(cid)
        if r is None or not r["known"]:
            out.append(PlantCustomer(cid, None, known=False))
            continue
        out.append(
            PlantCustomer(
                cid,
                r["customer_key"],
                declining=bool(r["declining"]),
                lunch_regular=bool(r["lunch_regular"]),
                opted_in=bool(r["opted_in"]),
                contacted_today=bool(r["contacted"]),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m custseg.datagen.plant_triggers --out data --customers planted.csv --day D``."""
    from custseg.config import load_config
    from custseg.realtime.triggers import load_triggers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data", help="the generator's output folder (landing/ and truth/)")
    p.add_argument("--customers", required=True, help="CSV: customer_id[, customer_key, declining, lunch_regular, ...]")
    p.add_argument("--day", required=True, help="weekday to plant on (YYYY-MM-DD)")
    p.add_argument("--rule", default="", help="cross-sell rule 'a+b->c' at category level (empty: none)")
    p.add_argument("--conf", default=None)
    args = p.parse_args(argv)
    conf = load_config(args.conf)
    triggers = load_triggers(conf)
    out = Path(args.out)
    products = sorted((out / "landing" / "products").glob("*/*.csv"))
    if not products:
        p.error(f"no products CSV under {out / 'landing' / 'products'}")
    flags = ("declining", "lunch_regular", "opted_in", "known", "contacted_today")
    with open(args.customers, newline="", encoding="utf-8") as fh:
        customers = [
            PlantCustomer(
                r["customer_id"],
                r.get("customer_key") or None,
                **{f: r[f].strip().lower() in ("1", "true") for f in flags if r.get(f) not in (None, "")},
            )
            for r in csv.DictReader(fh)
        ]
    rule = None
    if args.rule:
        left, right = args.rule.split("->")
        rule = ([x.strip() for x in left.split("+")], right.strip())
    day = date.fromisoformat(args.day)
    planted = plant(
        customers,
        read_catalog(products[-1]),
        day,
        triggers,
        rule,
        tuple(conf.get_path("features.lunch_hours", [11, 14])),
        str(conf.get_path("marketing.holdout_salt", "custseg-holdout-v1")),
    )
    paths = write_planted(planted, out / "landing", out / "truth", day)
    log.info("planted %d situations: %s", len(planted.truth), {k: str(v) for k, v in paths.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
