"""Real-time triggers: a typed model of conf/triggers.yaml, validated with errors naming key and file.

A trigger says which situation fires it (``kind`` and its parameters), whom it may reach
(``eligibility``: segments, RFM segments, value classes, feature filters, a minimum
propensity), with what (``offer``), how (``channels``, each needing its consent as in the
batch campaigns), for how long (``expiry_minutes``), how often (``max_per_day`` per customer
for this trigger; ``realtime.max_offers_per_customer_per_day`` across triggers and batch
campaigns) and how it is measured (``holdout_share``: the stable hash holdout of the batch
campaigns, keyed by the trigger id). Triggers come from ``realtime.triggers_file`` (relative to
the config file's folder, else conf/); ``defaults`` in the file are merged under every trigger.

Kinds:
- ``browse_abandonment``: ``min_views`` views (``view_events``) of one product or category
  (``item_level``) in a session, no purchase in it, and the session closed ``timeout_minutes``
  after its last event;
- ``cart_abandonment``: items added (``cart_events``) and not removed (``remove_events``) in a
  session that closed without a purchase;
- ``post_purchase_cross_sell``: an association rule of the batch basket stage
  (gold.association_rules at ``basket.level``) whose antecedent the new order holds and whose
  consequent it lacks, with at least ``min_confidence`` and ``min_lift``;
- ``declining_return``: a customer flagged ``declining`` in gold.customer_features shows up
  (``return_events``);
- ``daypart``: a lunch regular (``weekday_lunch_share >= min_lunch_share``) opens the site or
  app (``open_events``) on a weekday in the ``lead_minutes`` before ``features.lunch_hours``
  starts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from custseg.config import Config, ConfigError, side_file, validator
from custseg.marketing.campaigns import (
    CHANNEL_CONSENT,
    OFFER_TYPES,
    Eligibility,
    _eligibility,
    _Reader,
)

BROWSE, CART = "browse_abandonment", "cart_abandonment"
CROSS_SELL, DECLINING, DAYPART = "post_purchase_cross_sell", "declining_return", "daypart"
KINDS = (BROWSE, CART, CROSS_SELL, DECLINING, DAYPART)
SESSION_KINDS = (BROWSE, CART)
ITEM_LEVELS = ("category", "sku")
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")

COMMON_KEYS = {
    "name",
    "description",
    "kind",
    "priority",
    "channels",
    "eligibility",
    "offer",
    "expiry_minutes",
    "max_per_day",
    "holdout_share",
    "enabled",
}
KIND_KEYS = {
    BROWSE: {"view_events", "item_level", "min_views", "timeout_minutes"},
    CART: {"cart_events", "remove_events", "timeout_minutes"},
    CROSS_SELL: {"min_confidence", "min_lift"},
    DECLINING: {"return_events"},
    DAYPART: {"open_events", "min_lunch_share", "lead_minutes"},
}


@dataclass(frozen=True)
class TriggerOffer:
    """What the customer is offered: ``type`` and ``discount``; the item is the trigger's own
    (the abandoned category or product, the rule's consequent) unless ``item`` fixes one."""

    type: str = "coupon"
    discount: float = 0.0
    item: str | None = None


@dataclass(frozen=True)
class Trigger:
    id: str
    kind: str
    name: str = ""
    # Lower first: of one customer's candidates in a micro-batch, the highest priority is offered.
    priority: int = 0
    channels: tuple[str, ...] = ("email",)
    eligibility: Eligibility = field(default_factory=Eligibility)
    min_propensity: float = 0.0
    offer: TriggerOffer = field(default_factory=TriggerOffer)
    expiry_minutes: int = 120
    max_per_day: int = 1
    holdout_share: float = 0.1
    # session kinds
    timeout_minutes: int = 30
    view_events: tuple[str, ...] = ("product_view",)
    item_level: str = "category"
    min_views: int = 3
    cart_events: tuple[str, ...] = ("add_to_cart",)
    remove_events: tuple[str, ...] = ("remove_from_cart",)
    # post-purchase cross-sell
    min_confidence: float = 0.0
    min_lift: float = 1.0
    # declining return / day-part
    return_events: tuple[str, ...] = ("page_view", "product_view", "login")
    open_events: tuple[str, ...] = ("page_view", "login")
    min_lunch_share: float = 0.5
    lead_minutes: int = 90

    @property
    def is_session(self) -> bool:
        return self.kind in SESSION_KINDS

    @property
    def consents(self) -> tuple[str, ...]:
        return tuple(CHANNEL_CONSENT[c] for c in self.channels)


def _deep_merge(base: Mapping, over: Mapping) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else copy.deepcopy(v)
        )
    return out


def _events(r: _Reader, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    values = r.strings(key, default)
    if not values:
        raise r.error(key, "must name at least one event type")
    return tuple(v.strip().lower() for v in values)


def _eligibility_and_propensity(r: _Reader) -> tuple[Eligibility, float]:
    e = r.section("eligibility")
    data = dict(e.data)
    min_p = e.number("min_propensity", 0.0, low=0, high=1)
    data.pop("min_propensity", None)
    return _eligibility(_Reader(data, e.prefix, e.where)), min_p


def parse_trigger(tid: Any, data: Any, where: str, index: int = 0, prefix: str = "triggers") -> Trigger:
    """One trigger from its mapping; raises ``ConfigError`` naming ``<prefix>.<id>.<key>`` and the file."""
    if not isinstance(tid, str) or not tid or not tid[0].isalpha() or not set(tid) <= _ID_CHARS or len(tid) > 64:
        raise ConfigError(
            f"{where}: trigger id {tid!r} under '{prefix}' must be lower-case letters, digits and _ "
            "(it names offer rows and the holdout hash)"
        )
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: key '{prefix}.{tid}' must be a mapping; got {data!r}")
    r = _Reader(data, f"{prefix}.{tid}", where)
    kind = r.choice("kind", KINDS)
    r.only(COMMON_KEYS | KIND_KEYS[kind])
    d = Trigger(id=tid, kind=kind)
    channels = r.strings("channels", d.channels)
    if not channels:
        raise r.error("channels", "must name at least one channel")
    bad = [c for c in channels if c not in CHANNEL_CONSENT]
    if bad:
        raise r.error("channels", f"has unknown channel(s) {bad}; known: {', '.join(CHANNEL_CONSENT)}")
    if len(set(channels)) != len(channels):
        raise r.error("channels", f"repeats a channel: {list(channels)}")
    o = r.section("offer")
    o.only({"type", "discount", "item"})
    item = o.get("item", None)
    if item is not None and (not isinstance(item, str) or not item.strip()):
        raise o.error("item", f"must be a non-empty string (a sku or category); got {item!r}")
    offer = TriggerOffer(o.choice("type", OFFER_TYPES, "coupon"), o.number("discount", 0.0, low=0, high=0.9), item)
    eligibility, min_p = _eligibility_and_propensity(r)
    kw: dict[str, Any] = {}
    if kind in SESSION_KINDS:
        kw["timeout_minutes"] = r.integer("timeout_minutes", d.timeout_minutes, low=1)
    if kind == BROWSE:
        kw["view_events"] = _events(r, "view_events", d.view_events)
        kw["item_level"] = r.choice("item_level", ITEM_LEVELS, d.item_level)
        kw["min_views"] = r.integer("min_views", d.min_views, low=1)
    elif kind == CART:
        kw["cart_events"] = _events(r, "cart_events", d.cart_events)
        kw["remove_events"] = tuple(v.lower() for v in r.strings("remove_events", d.remove_events))
    elif kind == CROSS_SELL:
        kw["min_confidence"] = r.number("min_confidence", d.min_confidence, low=0, high=1)
        kw["min_lift"] = r.number("min_lift", d.min_lift, low=0)
    elif kind == DECLINING:
        kw["return_events"] = _events(r, "return_events", d.return_events)
    elif kind == DAYPART:
        kw["open_events"] = _events(r, "open_events", d.open_events)
        kw["min_lunch_share"] = r.number("min_lunch_share", d.min_lunch_share, low=0, high=1, strict_low=True)
        kw["lead_minutes"] = r.integer("lead_minutes", d.lead_minutes, low=1)
    return Trigger(
        id=tid,
        kind=kind,
        name=str(r.get("name", tid)),
        priority=r.integer("priority", index),
        channels=channels,
        eligibility=eligibility,
        min_propensity=min_p,
        offer=offer,
        expiry_minutes=r.integer("expiry_minutes", d.expiry_minutes, low=1),
        max_per_day=r.integer("max_per_day", d.max_per_day, low=1),
        holdout_share=r.number("holdout_share", d.holdout_share, low=0, high=0.5),
        **kw,
    )


def parse_triggers(doc: Any, where: str) -> list[Trigger]:
    """Enabled triggers of a triggers file document (``defaults`` + ``triggers``), in file order."""
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: top level must be a mapping with 'triggers' (and optional 'defaults')")
    unknown = sorted(set(doc) - {"defaults", "triggers"})
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key(s) {unknown} (known: defaults, triggers)")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{where}: key 'defaults' must be a mapping")
    raw = doc.get("triggers") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: key 'triggers' must be a mapping of trigger id to settings")
    out = []
    for i, (tid, data) in enumerate(raw.items()):
        merged = _deep_merge(defaults, data) if isinstance(data, Mapping) else data
        enabled = merged.get("enabled", True) if isinstance(merged, Mapping) else True
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}: key 'triggers.{tid}.enabled' must be true or false; got {enabled!r}")
        trigger = parse_trigger(tid, merged, where, index=i)
        if enabled:
            out.append(trigger)
    timeouts = {t.timeout_minutes for t in out if t.is_session}
    if len(timeouts) > 1:
        first = next(t for t in out if t.is_session)
        other = next(t for t in out if t.is_session and t.timeout_minutes != first.timeout_minutes)
        raise ConfigError(
            f"{where}: key 'triggers.{other.id}.timeout_minutes' ({other.timeout_minutes}) must equal "
            f"'triggers.{first.id}.timeout_minutes' ({first.timeout_minutes}): session triggers share one "
            "session window, whose gap is the timeout"
        )
    return out


def triggers_path(conf: Config) -> Path | None:
    """The triggers file: relative to the config file's folder, else conf/; None if not set."""
    return side_file(conf, "realtime.triggers_file")


def load_triggers(conf: Config) -> list[Trigger]:
    """The enabled triggers of ``realtime.triggers_file``, validated (``ConfigError`` names key and file)."""
    path = triggers_path(conf)
    if path is None:
        return []
    if not path.exists():
        raise conf.error("realtime.triggers_file", f"names {path}, which does not exist")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    return parse_triggers(doc, str(path))


def session_gap(triggers: list[Trigger]) -> str:
    """The session window gap for ``F.session_window`` (the session triggers' shared timeout)."""
    minutes = max((t.timeout_minutes for t in triggers if t.is_session), default=Trigger("x", BROWSE).timeout_minutes)
    return f"{minutes} minutes"


def by_kind(triggers: list[Trigger], kind: str) -> list[Trigger]:
    return [t for t in triggers if t.kind == kind]


# --- realtime.* settings -----------------------------------------------------------------


@dataclass(frozen=True)
class RealtimeSettings:
    """``realtime.*`` (base.yaml): watermark, purchase events, the shared daily cap, the pulse test."""

    watermark: str = "10 minutes"
    purchase_events: tuple[str, ...] = ("purchase",)
    max_offers_per_customer_per_day: int = 1
    pulse_alpha: float = 0.05
    pulse_min_sends: int = 100

    @classmethod
    def from_config(cls, conf: Config) -> RealtimeSettings:
        d, g, p = cls(), conf.get_path, "realtime."
        watermark = g(p + "watermark", d.watermark)
        parts = str(watermark).split()
        units = {"second", "seconds", "minute", "minutes", "hour", "hours"}
        if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in units:
            raise conf.error(
                p + "watermark", f"must be '<n> seconds|minutes|hours', e.g. '10 minutes'; got {watermark!r}"
            )
        events = g(p + "purchase_events", list(d.purchase_events))
        if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
            raise conf.error(p + "purchase_events", f"must be a non-empty list of event types; got {events!r}")
        cap = g(p + "max_offers_per_customer_per_day", d.max_offers_per_customer_per_day)
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise conf.error(p + "max_offers_per_customer_per_day", f"must be an integer >= 1; got {cap!r}")
        alpha = g(p + "pulse.alpha", d.pulse_alpha)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
            raise conf.error(p + "pulse.alpha", f"must be a number between 0 and 0.5; got {alpha!r}")
        min_sends = g(p + "pulse.min_sends", d.pulse_min_sends)
        if not isinstance(min_sends, int) or isinstance(min_sends, bool) or min_sends < 1:
            raise conf.error(p + "pulse.min_sends", f"must be an integer >= 1; got {min_sends!r}")
        return cls(str(watermark), tuple(e.lower() for e in events), cap, float(alpha), min_sends)


@validator
def check_realtime(conf: Config) -> None:
    """``realtime.*`` and the triggers file, checked at start-up of every job (fail fast)."""
    if conf.get_path("realtime", None) is None:
        return
    RealtimeSettings.from_config(conf)
    path = triggers_path(conf)
    if path is not None and path.exists():
        load_triggers(conf)
