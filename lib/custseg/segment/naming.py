"""Segment names from configurable rules, with a descriptive fallback.

A rule is ``name: {key: "<op> <number>", ...}`` (``segment.naming_rules``); all its
conditions must hold. A key from ``RAW_STATS`` (customer_share, revenue_share,
churn_risk_share, avg_churn_risk, avg_clv) compares the segment's value; any other key is
a profile column compared by the z of the segment's mean against all customers
(``(segment mean - population mean) / population sd``), so ``monetary: "> 0.5"`` reads
"spends half a standard deviation above the average customer".

Rules are tried in order and each name goes to at most one segment: among the segments a
rule matches, the one that clears its thresholds by the widest margin (the smallest
clearance over its conditions) takes it; the others go on to later rules. Names already
held by surviving segments (stable labels) are skipped. A segment no rule names gets a
name from its most distinguishing features (largest |z|), e.g. "Lapsed, low-spend".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.segment.settings import RAW_STATS

_COND = re.compile(r"^\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")

# (low, high) words for the fallback name; other columns read "low <col>" / "high <col>".
FEATURE_WORDS: dict[str, tuple[str, str]] = {
    "recency_days": ("recent", "lapsed"),
    "frequency": ("infrequent", "frequent"),
    "monetary": ("low-spend", "high-spend"),
    "tenure_days": ("new", "long-standing"),
    "discount_order_share": ("full-price", "discount-driven"),
    "discount_coef": ("low-fare", "high-fare"),
    "sessions": ("light browsing", "heavy browsing"),
    "page_views": ("few page views", "many page views"),
    "view_to_purchase": ("low conversion", "high conversion"),
    "avg_basket_value": ("small baskets", "big baskets"),
    "avg_basket_size": ("few items", "many items"),
    "return_rate": ("few returns", "many returns"),
    "p_alive": ("likely churned", "active"),
    "clv": ("low CLV", "high CLV"),
}


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: float

    def clearance(self, x: float | None) -> float | None:
        """How far ``x`` is on the right side of the threshold (None: fails or missing)."""
        if x is None:
            return None
        gap = x - self.value if self.op in (">", ">=") else self.value - x
        ok = gap > 0 if self.op in (">", "<") else gap >= 0
        return gap if ok else None


@dataclass(frozen=True)
class NamingRule:
    name: str
    conditions: tuple[Condition, ...]

    def margin(self, values: Mapping[str, float | None]) -> float | None:
        """The smallest clearance over the conditions, or None when one fails."""
        gaps = [c.clearance(values.get(c.key)) for c in self.conditions]
        return None if any(g is None for g in gaps) else min(gaps)


def parse_rules(rules: Mapping[str, Mapping[str, str]] | None) -> list[NamingRule]:
    """``{name: {key: "> 0.5"}}`` -> rules in order; ValueError naming the bad entry."""
    out = []
    for name, conds in (rules or {}).items():
        if not isinstance(conds, Mapping) or not conds:
            raise ValueError(f'rule {name!r} must map keys to conditions like "> 0.5"; got {conds!r}')
        parsed = []
        for key, text in conds.items():
            m = _COND.match(str(text))
            if not m:
                raise ValueError(f'rule {name!r}: condition {key}: {text!r} must look like "> 0.5" or "<= -1"')
            parsed.append(Condition(str(key), m.group(1), float(m.group(2))))
        out.append(NamingRule(str(name), tuple(parsed)))
    return out


def rule_values(profile: Mapping) -> dict[str, float | None]:
    """The values rules see: raw stats as they are, profile columns by their z."""
    values: dict[str, float | None] = {k: profile.get(k) for k in RAW_STATS}
    for col, z in (profile.get("profile_z") or {}).items():
        values.setdefault(col, z)
    return values


def describe(
    profile_z: Mapping[str, float | None], columns: Sequence[str] | None = None, top: int = 2
) -> list[tuple[str, float]]:
    """The ``top`` columns with the largest |z| (ties: column order), as (column, z)."""
    cols = [c for c in (columns or list(profile_z)) if profile_z.get(c) is not None]
    ranked = sorted(cols, key=lambda c: (-abs(profile_z[c]), cols.index(c)))
    return [(c, float(profile_z[c])) for c in ranked[:top]]


def fallback_name(profile_z: Mapping[str, float | None], columns: Sequence[str] | None = None, top: int = 2) -> str:
    """ "Lapsed, low-spend": words for the most distinguishing features."""
    words = []
    for col, z in describe(profile_z, columns, top):
        low, high = FEATURE_WORDS.get(col, (f"low {col.replace('_', ' ')}", f"high {col.replace('_', ' ')}"))
        words.append(high if z > 0 else low)
    text = ", ".join(words) or "average"
    return text[0].upper() + text[1:]


def assign_names(
    profiles: Sequence[Mapping],
    rules: Sequence[NamingRule],
    reserved: Mapping[int, str] | None = None,
    fallback_columns: Sequence[str] | None = None,
    fallback_top: int = 2,
) -> dict[int, str]:
    """segment_id -> name for every profile (each a mapping with segment_id, RAW_STATS, profile_z)."""
    reserved = {int(k): v for k, v in (reserved or {}).items()}
    names: dict[int, str] = {
        sid: name for sid, name in reserved.items() if any(int(p["segment_id"]) == sid for p in profiles)
    }
    taken = set(names.values())
    values = {int(p["segment_id"]): rule_values(p) for p in profiles}
    for rule in rules:
        if rule.name in taken:
            continue
        margins = [(m, sid) for sid, v in values.items() if sid not in names and (m := rule.margin(v)) is not None]
        if margins:
            _, sid = max(margins, key=lambda t: (t[0], -t[1]))
            names[sid] = rule.name
            taken.add(rule.name)
    for p in sorted(profiles, key=lambda p: int(p["segment_id"])):
        sid = int(p["segment_id"])
        if sid in names:
            continue
        name = fallback_name(p.get("profile_z") or {}, fallback_columns, fallback_top)
        if name in taken:
            name = f"{name} #{sid}"
        names[sid] = name
        taken.add(name)
    return names


def name_segments(
    rules: Sequence[NamingRule] | Mapping[str, Mapping[str, str]],
    reserved: Mapping[int, str] | None = None,
    fallback_columns: Sequence[str] | None = None,
    fallback_top: int = 2,
) -> Callable[[DataFrame], DataFrame]:
    """Profiles -> profiles + ``segment_name`` and ``distinguishing`` ("monetary +1.80, ...").

    Needs segment_id, profile_z (map) and the RAW_STATS columns it has; the k profile rows
    are collected (bounded) because names are assigned jointly, not row by row.
    """
    parsed = parse_rules(rules) if isinstance(rules, Mapping) else list(rules)

    def transform(profiles: DataFrame) -> DataFrame:
        have = [c for c in ("segment_id", "profile_z", *RAW_STATS) if c in profiles.columns]
        rows = [r.asDict() for r in profiles.select(*have).collect()]
        names = assign_names(rows, parsed, reserved, fallback_columns, fallback_top)
        described = {
            int(r["segment_id"]): ", ".join(
                f"{c} {z:+.2f}" for c, z in describe(r.get("profile_z") or {}, fallback_columns, fallback_top)
            )
            for r in rows
        }
        schema = T.StructType(
            [
                T.StructField("segment_id", T.IntegerType(), False),
                T.StructField("segment_name", T.StringType(), False),
                T.StructField("distinguishing", T.StringType(), True),
            ]
        )
        lookup = profiles.sparkSession.createDataFrame(
            [(sid, names[sid], described[sid]) for sid in sorted(names)], schema
        )
        return profiles.join(F.broadcast(lookup), on="segment_id", how="left").select(
            *profiles.columns, "segment_name", "distinguishing"
        )

    return transform


__all__ = [
    "FEATURE_WORDS",
    "Condition",
    "NamingRule",
    "assign_names",
    "describe",
    "fallback_name",
    "name_segments",
    "parse_rules",
    "rule_values",
]
