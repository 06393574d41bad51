"""Campaign definitions: a typed model of conf/campaigns.yaml, validated with clear errors.

A campaign says whom to target (eligibility), how (channels and the consent each one
needs), with what (an offer), at what price (cost per contact, revenue and margin of a
response, budget), how it will be measured (holdout share) and whom never to bother
(frequency cap and suppressions). Campaigns come from ``marketing.campaigns_file``
(relative to the config file's folder) and from the open map ``marketing.campaigns``
of the config itself, by id (inline wins). ``defaults`` in the file are merged under
every campaign. Every error names the file and the key, e.g.
``campaigns.yaml: key 'campaigns.winback.holdout_share' must be a number from 0 to 0.5``.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from custseg.config import Config, ConfigError, side_file, validator

GOALS = ("retention", "growth", "reactivation", "acquisition")
# Contact channel -> the silver.customers consent column it needs.
CHANNEL_CONSENT = {"email": "opt_in_email", "sms": "opt_in_sms", "ads": "opt_in_ads"}
OFFER_TYPES = ("coupon", "cross_sell", "voucher", "content")
DAYPARTS = ("any", "preferred", "weekday_lunch", "weekday_evening", "weekend")
# ``offers``: fixed (the campaign's ``offer``) or from_strategy (type and discount of the member's
# segment in gold.segment_strategy; ``offer`` gives the rest and the fallback for the unsegmented).
OFFER_SOURCES = ("fixed", "from_strategy")
# ``response_value``: clv (margin_per_response x the customer's CLV factor, custseg.marketing.audience)
# or flat (every response worth margin_per_response, as in the textbook's blanket-vs-precise table).
RESPONSE_VALUES = ("clv", "flat")
FILTER_OPS = ("<", "<=", ">", ">=", "==", "!=", "in", "not_in", "between", "is_null", "not_null")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FeatureFilter:
    """``column op value`` on the customer base (features + segments), e.g. recency_days >= 60."""

    column: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Eligibility:
    """Empty lists mean no restriction; all given conditions must hold."""

    segments: tuple[str, ...] = ()
    rfm_segments: tuple[str, ...] = ()
    value_classes: tuple[str, ...] = ()
    filters: tuple[FeatureFilter, ...] = ()


@dataclass(frozen=True)
class Offer:
    type: str = "coupon"
    discount: float = 0.0
    # "preferred": the customer's preferred category, else ``fallback_category``
    category: str = "preferred"
    fallback_category: str | None = None
    # "preferred": the customer's usual day-part (weekday lunch, weekend, ...), else a fixed one
    daypart: str = "preferred"
    valid_days: int = 14


@dataclass(frozen=True)
class Variant:
    """One arm of an A/B/n offer test: treated customers get it with probability weight / sum of weights."""

    id: str
    weight: float = 1.0
    offer: Offer = field(default_factory=Offer)


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``max_contacts`` sends (any campaign) in the last ``days`` days."""

    max_contacts: int = 3
    days: int = 30


@dataclass(frozen=True)
class Suppression:
    contacted_within_days: int = 7
    complained: bool = True
    complaint_lookback_days: int = 90


@dataclass(frozen=True)
class Arms:
    """Designed arms (textbook table 9.1 as an experiment): beside the model-chosen precise arm, a
    blanket arm, a random sample of the eligible drawn by a stable hash per campaign, contacted at its
    own cost per contact. The blanket sample is drawn first; the precise arm is chosen from the rest.
    Both arms keep the campaign's hash holdout (``holdout_share``, set by ``control.fraction``) as
    their own control, so each contacted arm's lift is measured against customers drawn like it.
    ``blanket_size`` > 0: that many blanket contacts (treatment); else ``blanket_fraction`` of the
    eligible; both 0: no blanket arm."""

    blanket_size: int = 0
    blanket_fraction: float = 0.0
    blanket_cost_per_contact: float = 0.0

    @property
    def has_blanket(self) -> bool:
        return self.blanket_size > 0 or self.blanket_fraction > 0


@dataclass(frozen=True)
class Campaign:
    id: str
    goal: str
    channels: tuple[str, ...]
    cost_per_contact: float
    revenue_per_response: float
    margin_per_response: float
    budget: float
    name: str = ""
    holdout_share: float = 0.1
    max_contacts: int = 0  # 0: only the budget limits the audience
    eligibility: Eligibility = field(default_factory=Eligibility)
    offer: Offer = field(default_factory=Offer)
    frequency_cap: FrequencyCap = field(default_factory=FrequencyCap)
    suppression: Suppression = field(default_factory=Suppression)
    # Glob patterns of historical campaign ids whose responses train this goal's model.
    history: tuple[str, ...] = ()
    # Acquisition by look-alike: the seed audience (best customers) sent hashed to ad tools.
    seed: Eligibility | None = None
    seed_max_size: int = 5000
    offers: str = "fixed"
    response_value: str = "clv"
    # Designed arms (blanket / precise / control); None: the precise audience and its holdout only.
    arms: Arms | None = None
    # A/B/n offer variants (custseg.marketing.abtest); empty: one implicit variant, the offer.
    variants: tuple[Variant, ...] = ()

    @property
    def offers_from_strategy(self) -> bool:
        return self.offers == "from_strategy"

    @property
    def consents(self) -> tuple[str, ...]:
        return tuple(CHANNEL_CONSENT[c] for c in self.channels)


# --- parsing ------------------------------------------------------------------------


class _Reader:
    """Typed access to one campaign's mapping; errors name ``<prefix>.<key>`` and the file."""

    def __init__(self, data: Mapping, prefix: str, where: str):
        self.data, self.prefix, self.where = data, prefix, where

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: key '{self.prefix}.{key}' {problem}")

    def get(self, key: str, default: Any = ...) -> Any:
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise self.error(key, "is required")
            return default
        return self.data[key]

    def number(
        self,
        key: str,
        default: Any = ...,
        low: float | None = None,
        high: float | None = None,
        strict_low: bool = False,
    ) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number; got {value!r}")
        too_low = low is not None and (value <= low if strict_low else value < low)
        if too_low or (high is not None and value > high):
            lo = f"> {low}" if strict_low else f">= {low}"
            rng = f"{lo}" + (f" and <= {high}" if high is not None else "") if low is not None else f"<= {high}"
            raise self.error(key, f"must be a number {rng}; got {value!r}")
        return float(value)

    def integer(self, key: str, default: Any = ..., low: int = 0) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.error(key, f"must be an integer >= {low}; got {value!r}")
        return int(value)

    def boolean(self, key: str, default: Any = ...) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false; got {value!r}")
        return value

    def strings(self, key: str, default: Any = ()) -> tuple[str, ...]:
        value = self.get(key, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a list of non-empty strings; got {value!r}")
        return tuple(value)

    def choice(self, key: str, options: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, default)
        if value not in options:
            raise self.error(key, f"must be one of {', '.join(options)}; got {value!r}")
        return value

    def section(self, key: str) -> _Reader:
        value = self.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a mapping; got {value!r}")
        return _Reader(value, f"{self.prefix}.{key}", self.where)

    def only(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise ConfigError(
                f"{self.where}: unknown key(s) {', '.join(repr(f'{self.prefix}.{k}') for k in unknown)} "
                f"(known: {', '.join(sorted(allowed))})"
            )


def _filters(r: _Reader, key: str) -> tuple[FeatureFilter, ...]:
    raw = r.get(key, [])
    if not isinstance(raw, list):
        raise r.error(key, f"must be a list of {{column, op, value}}; got {raw!r}")
    out = []
    for i, item in enumerate(raw):
        fr = _Reader(item if isinstance(item, Mapping) else {}, f"{r.prefix}.{key}[{i}]", r.where)
        if not isinstance(item, Mapping):
            raise r.error(f"{key}[{i}]", f"must be a mapping with column, op, value; got {item!r}")
        fr.only({"column", "op", "value"})
        column = fr.get("column")
        if not isinstance(column, str) or not _COLUMN.match(column):
            raise fr.error("column", f"must be a column name; got {column!r}")
        op = fr.choice("op", FILTER_OPS)
        value = item.get("value")
        if op in ("is_null", "not_null"):
            if value is not None:
                raise fr.error("value", f"must be absent for op {op}")
        elif op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise fr.error("value", f"must be a non-empty list for op {op}; got {value!r}")
        elif op == "between":
            if not (
                isinstance(value, list)
                and len(value) == 2
                and all(_is_number(v) for v in value)
                and value[0] <= value[1]
            ):
                raise fr.error("value", f"must be [low, high] numbers for op between; got {value!r}")
        elif value is None or isinstance(value, (list, Mapping)):
            raise fr.error("value", f"must be a single value for op {op}; got {value!r}")
        elif op not in ("==", "!=") and not _is_number(value):
            raise fr.error("value", f"must be a number for op {op}; got {value!r}")
        out.append(FeatureFilter(column, op, tuple(value) if isinstance(value, list) else value))
    return tuple(out)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eligibility(r: _Reader) -> Eligibility:
    r.only({"segments", "rfm_segments", "value_classes", "filters"})
    return Eligibility(
        segments=r.strings("segments"),
        rfm_segments=r.strings("rfm_segments"),
        value_classes=r.strings("value_classes"),
        filters=_filters(r, "filters"),
    )


CAMPAIGN_KEYS = {
    "name",
    "goal",
    "channels",
    "cost_per_contact",
    "revenue_per_response",
    "margin_per_response",
    "budget",
    "holdout_share",
    "max_contacts",
    "eligibility",
    "offer",
    "offers",
    "response_value",
    "frequency_cap",
    "suppression",
    "history",
    "seed",
    "seed_max_size",
    "variants",
    "description",
    "arms",
}
ARM_KEYS = {"blanket", "precise", "control"}


def _arms(r: _Reader) -> tuple[Arms | None, float | None, float | None]:
    """``arms`` -> (Arms, the precise arm's cost per contact, the control fraction); Nones where unset."""
    if r.get("arms", None) is None:
        return None, None, None
    a = r.section("arms")
    a.only(ARM_KEYS)
    p = a.section("precise")
    p.only({"cost_per_contact"})
    precise_cost = p.number("cost_per_contact", low=0, strict_low=True) if "cost_per_contact" in p.data else None
    c = a.section("control")
    c.only({"fraction"})
    control = c.number("fraction", low=0, high=0.5) if "fraction" in c.data else None
    b = a.section("blanket")
    b.only({"size", "fraction", "cost_per_contact"})
    size, fraction, blanket_cost = 0, 0.0, 0.0
    if b.data:
        given = [k for k in ("size", "fraction") if b.data.get(k) is not None]
        if len(given) != 1:
            raise b.error("size", "or 'fraction': give exactly one (blanket contacts, or the share of the eligible)")
        if given == ["size"]:
            size = b.integer("size", low=1)
        else:
            fraction = b.number("fraction", low=0, high=1, strict_low=True)
        blanket_cost = b.number("cost_per_contact", low=0, strict_low=True) if "cost_per_contact" in b.data else None
    return Arms(size, fraction, blanket_cost or 0.0), precise_cost, control


def parse_campaign(cid: str, data: Any, where: str, prefix: str = "campaigns") -> Campaign:
    """One campaign from its mapping; raises ``ConfigError`` naming ``<prefix>.<id>.<key>``."""
    if not isinstance(cid, str) or not _ID.match(cid):
        raise ConfigError(
            f"{where}: campaign id {cid!r} under '{prefix}' must be lower-case letters, digits and _ "
            "(it names export folders and table rows)"
        )
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: key '{prefix}.{cid}' must be a mapping; got {data!r}")
    r = _Reader(data, f"{prefix}.{cid}", where)
    r.only(CAMPAIGN_KEYS)
    goal = r.choice("goal", GOALS)
    channels = r.strings("channels", ...)
    if not channels:
        raise r.error("channels", "must name at least one channel")
    bad = [c for c in channels if c not in CHANNEL_CONSENT]
    if bad:
        raise r.error("channels", f"has unknown channel(s) {bad}; known: {', '.join(CHANNEL_CONSENT)}")
    if len(set(channels)) != len(channels):
        raise r.error("channels", f"repeats a channel: {list(channels)}")
    revenue = r.number("revenue_per_response", low=0)
    margin = r.number("margin_per_response", low=0)
    if margin > revenue:
        raise r.error("margin_per_response", f"({margin}) cannot exceed revenue_per_response ({revenue})")

    offer = _offer(r.section("offer"), Offer())
    fc = r.section("frequency_cap")
    fc.only({"max_contacts", "days"})
    sp = r.section("suppression")
    sp.only({"contacted_within_days", "complained", "complaint_lookback_days"})
    history = r.strings("history")
    arms, precise_cost, control_fraction = _arms(r)
    # arms.precise.cost_per_contact is the model-chosen audience's cost: it replaces cost_per_contact
    # (scoring, budget, plan, results); arms.control.fraction is the holdout share of both arms.
    cost = precise_cost if precise_cost is not None else r.number("cost_per_contact", low=0, strict_low=True)
    holdout = control_fraction if control_fraction is not None else r.number("holdout_share", 0.1, low=0, high=0.5)
    if arms is not None and arms.has_blanket and not arms.blanket_cost_per_contact:
        arms = Arms(arms.blanket_size, arms.blanket_fraction, cost)  # the blanket arm's cost defaults to the campaign's
    seed = None
    if r.get("seed", None) is not None:
        if goal != "acquisition":
            raise r.error("seed", "is only for acquisition campaigns (the look-alike seed audience)")
        if "ads" not in channels:
            raise r.error("seed", "needs the ads channel among channels (ad platforms build the look-alike)")
        seed = _eligibility(r.section("seed"))
    return Campaign(
        id=cid,
        name=str(r.get("name", cid)),
        goal=goal,
        channels=channels,
        cost_per_contact=cost,
        revenue_per_response=revenue,
        margin_per_response=margin,
        budget=r.number("budget", low=0, strict_low=True),
        holdout_share=holdout,
        max_contacts=r.integer("max_contacts", 0),
        eligibility=_eligibility(r.section("eligibility")),
        offer=offer,
        frequency_cap=FrequencyCap(fc.integer("max_contacts", 3, low=1), fc.integer("days", 30, low=1)),
        suppression=Suppression(
            sp.integer("contacted_within_days", 7),
            sp.boolean("complained", True),
            sp.integer("complaint_lookback_days", 90, low=1),
        ),
        history=history,
        seed=seed,
        seed_max_size=r.integer("seed_max_size", 5000, low=1),
        offers=r.choice("offers", OFFER_SOURCES, "fixed"),
        response_value=r.choice("response_value", RESPONSE_VALUES, "clv"),
        arms=arms,
        variants=_variants(r, offer),
    )


def _offer(o: _Reader, base: Offer) -> Offer:
    """An offer from its mapping; keys left out keep ``base``'s values (a variant's offer
    overrides only what it names of its campaign's)."""
    o.only({"type", "discount", "category", "fallback_category", "daypart", "valid_days"})
    return Offer(
        type=o.choice("type", OFFER_TYPES, base.type),
        discount=o.number("discount", base.discount, low=0, high=0.9),
        category=str(o.get("category", base.category)),
        fallback_category=o.get("fallback_category", base.fallback_category),
        daypart=o.choice("daypart", DAYPARTS, base.daypart),
        valid_days=o.integer("valid_days", base.valid_days, low=1),
    )


def _variants(r: _Reader, offer: Offer) -> tuple[Variant, ...]:
    raw = r.get("variants", [])
    if not isinstance(raw, list) or len(raw) == 1:
        raise r.error("variants", f"must be a list of at least two {{id, weight, offer}}; got {raw!r}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise r.error(f"variants[{i}]", f"must be a mapping with id, weight, offer; got {item!r}")
        vr = _Reader(item, f"{r.prefix}.variants[{i}]", r.where)
        vr.only({"id", "weight", "offer", "description"})
        vid = vr.get("id")
        if not isinstance(vid, str) or not _ID.match(vid):
            raise vr.error("id", f"must be lower-case letters, digits and _ (it names result rows); got {vid!r}")
        out.append(Variant(vid, vr.number("weight", 1.0, low=0, strict_low=True), _offer(vr.section("offer"), offer)))
    ids = [v.id for v in out]
    if len(set(ids)) != len(ids):
        raise r.error("variants", f"repeats a variant id: {ids}")
    return tuple(out)


def _deep_merge(base: Mapping, over: Mapping) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else copy.deepcopy(v)
        )
    return out


def parse_campaigns(doc: Any, where: str, inline: Mapping | None = None) -> list[Campaign]:
    """Campaigns from a campaigns file document (``defaults`` + ``campaigns``) and inline ones."""
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: top level must be a mapping with 'campaigns' (and optional 'defaults')")
    unknown = sorted(set(doc) - {"defaults", "campaigns"})
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key(s) {unknown} (known: defaults, campaigns)")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{where}: key 'defaults' must be a mapping")
    file_campaigns = doc.get("campaigns") or {}
    if not isinstance(file_campaigns, Mapping):
        raise ConfigError(f"{where}: key 'campaigns' must be a mapping of campaign id to settings")
    out: dict[str, Campaign] = {}
    for cid, data in file_campaigns.items():
        merged = _deep_merge(defaults, data) if isinstance(data, Mapping) else data
        out[cid] = parse_campaign(cid, merged, where)
    for cid, data in (inline or {}).items():
        # Inline settings override the file's campaign of the same id key by key (an overlay
        # can change one budget), or define a new campaign on top of the defaults.
        under = file_campaigns.get(cid) if isinstance(file_campaigns.get(cid), Mapping) else {}
        merged = _deep_merge(_deep_merge(defaults, under), data) if isinstance(data, Mapping) else data
        out[cid] = parse_campaign(
            cid, merged, f"config (over {where})" if under else "config", prefix="marketing.campaigns"
        )
    return list(out.values())


def campaigns_path(conf: Config) -> Path | None:
    """The campaigns file: relative to the config file's folder, else conf/; None if not set."""
    return side_file(conf, "marketing.campaigns_file")


def load_campaigns(conf: Config) -> list[Campaign]:
    """Every campaign of the effective config (file + inline), validated."""
    path = campaigns_path(conf)
    doc: Any = {}
    where = "config"
    if path is not None:
        if not path.exists():
            raise conf.error("marketing.campaigns_file", f"names {path}, which does not exist")
        where = str(path)
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    inline = conf.get_path("marketing.campaigns", {}) or {}
    inline = inline.to_dict() if hasattr(inline, "to_dict") else dict(inline)
    return parse_campaigns(doc, where, inline)


def history_matches(campaign_id: str, patterns: tuple[str, ...]) -> bool:
    """Whether a historical campaign id matches any glob pattern (driver-side, on bounded ids)."""
    return any(fnmatch.fnmatchcase(campaign_id, p) for p in patterns)


def glob_regex(patterns: tuple[str, ...]) -> str:
    """One anchored regex for Spark ``rlike`` from glob patterns."""
    return "|".join(f"(?:{fnmatch.translate(p)})" for p in patterns) if patterns else "$^"


# --- the validator the lead registers ----------------------------------------------


def _settings_problem(conf: Config) -> None:
    m = conf.get_path("marketing", None)
    if m is None:
        return
    checks = [
        ("marketing.holdout_salt", lambda v: isinstance(v, str) and v != "", "must be a non-empty string"),
        (
            "marketing.max_campaigns_per_customer",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "must be an integer >= 0 (0: no limit)",
        ),
        (
            "marketing.propensity.validation_share",
            lambda v: _is_number(v) and 0.05 <= v <= 0.5,
            "must be a number from 0.05 to 0.5",
        ),
        ("marketing.propensity.outcome_days", lambda v: isinstance(v, int) and v >= 0, "must be an integer >= 0"),
        (
            "marketing.propensity.min_training_rows",
            lambda v: isinstance(v, int) and v >= 10,
            "must be an integer >= 10",
        ),
        ("marketing.propensity.min_positives", lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
        (
            "marketing.propensity.calibration_bins",
            lambda v: isinstance(v, int) and 2 <= v <= 100,
            "must be an integer from 2 to 100",
        ),
        (
            "marketing.propensity.fallback_response_rate",
            lambda v: _is_number(v) and 0 < v < 1,
            "must be a number between 0 and 1",
        ),
        (
            "marketing.propensity.models",
            lambda v: isinstance(v, list) and v and set(v) <= {"logistic", "gbt"},
            "must be a non-empty list of logistic, gbt",
        ),
        (
            "marketing.evaluation.confidence",
            lambda v: _is_number(v) and 0.5 <= v < 1,
            "must be a number from 0.5 to 1 (exclusive)",
        ),
        ("marketing.evaluation.margin_rate", lambda v: _is_number(v) and 0 <= v <= 1, "must be a number from 0 to 1"),
        (
            "marketing.churn_alerts.churn_risk_threshold",
            lambda v: _is_number(v) and 0 < v <= 1,
            "must be a number in (0, 1]",
        ),
        (
            "marketing.export.formats",
            lambda v: isinstance(v, list) and v and set(v) <= {"csv", "parquet"},
            "must be a non-empty list of csv, parquet",
        ),
    ]
    for key, ok, problem in checks:
        value = conf.get_path(key, None)
        if value is not None and not ok(value):
            raise conf.error(key, f"{problem}; got {value!r}")


@validator
def check_marketing(conf: Config) -> None:
    """Semantic checks of the ``marketing`` section and of every campaign (fail at start-up)."""
    _settings_problem(conf)
    if conf.get_path("marketing", None) is None:
        return
    from custseg.marketing.consent import check_consent  # consent imports this module

    check_consent(conf)
    from custseg.marketing.profiles import check_profiles  # profiles imports this module

    check_profiles(conf)
    for key, low in (
        ("marketing.propensity.behaviour.label_days", 1),
        ("marketing.propensity.behaviour.snapshots", 2),
        ("marketing.propensity.behaviour.step_days", 1),
    ):
        v = conf.get_path(key, low)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise conf.error(key, f"must be an integer >= {low}; got {v!r}")
    if not isinstance(conf.get_path("marketing.propensity.behaviour.enabled", True), bool):
        raise conf.error("marketing.propensity.behaviour.enabled", "must be true or false")
    path = campaigns_path(conf)
    if path is not None and not path.exists():
        # Only the marketing stage needs the file; it fails there with the same message.
        return
    load_campaigns(conf)
