"""Segmentation settings (``segment.*`` in conf/) and their semantic checks.

The stage reads one ``SegmentSettings``; the library functions take plain arguments so
tests and notebooks can call them without a config. ``check_segment_conf`` is registered
with ``custseg.config.validator`` so a bad ``segment`` section fails at start-up with the
key and the file named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from custseg.config import Config, ConfigError, validator

ALGORITHMS = ("kmeans", "bisecting", "gmm")
# segment.algorithm may also be "auto": the segmentation comparison picks one of ALGORITHMS.
AUTO = "auto"
K_CRITERIA = ("silhouette", "elbow")
IMPUTE = ("median", "zero")
LRFMC = ("L", "R", "F", "M", "C")

# Used when conf has no segment.feature_sets (library callers, old configs).
DEFAULT_FEATURE_SETS: dict[str, list[str]] = {
    "rfm": ["recency_days", "frequency", "monetary"],
    "lrfmc": ["l_z", "r_z", "f_z", "m_z", "c_z"],
    "behaviour": [
        "sessions",
        "page_views",
        "cart_adds",
        "view_to_purchase",
        "avg_session_seconds",
        "weekend_share",
        "avg_basket_size",
        "distinct_categories",
        "return_rate",
        "discount_order_share",
    ],
    # See docs/segments.md: discount depth (discount_coef), not the share of orders with
    # any discount, which saturates on multi-line baskets; page views, not the sparse and
    # heavy-tailed view_to_purchase; orders_last_90 parts active from lapsed regulars.
    "persona": [
        "recency_days",
        "frequency",
        "monetary",
        "tenure_days",
        "avg_basket_value",
        "discount_coef",
        "page_views",
        "orders_last_90",
    ],
}

# Classic airline-study mapping (see docs/segments.md): first matching rule wins.
DEFAULT_VALUE_CLASS_RULES: list[dict] = [
    {"name": "important-retain", "when": {"F": "+", "M": "+", "R": "-"}},
    {"name": "important-win-back", "when": {"F": "+", "M": "+", "R": "+"}},
    {"name": "important-develop", "when": {"C": "+", "F": "-", "M": "-"}},
    {"name": "important-win-back", "when": {"L": "+", "R": "-", "F": "-", "M": "-"}},
    {"name": "low-value", "when": {"R": "+"}},
    {"name": "general", "when": {}},
]
DEFAULT_VALUE_CLASS_COLUMNS = {"L": "l_z", "R": "r_z", "F": "f_z", "M": "m_z", "C": "c_z"}

# Stat names a naming rule compares by raw value; any other key is a profile column
# compared by the z of its segment mean (see naming.py).
RAW_STATS = ("customer_share", "revenue_share", "churn_risk_share", "avg_churn_risk", "avg_clv")


@dataclass(frozen=True)
class SegmentSettings:
    """Everything the segment stage needs from ``segment.*``."""

    feature_set: str = "persona"
    feature_columns: tuple[str, ...] = ()
    feature_sets: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_FEATURE_SETS))
    log1p_columns: tuple[str, ...] = ()
    impute: str = "median"
    impute_max_columns: tuple[str, ...] = ("recency_days", "median_gap_days")
    standardize: bool = True
    k: int = 0
    k_min: int = 2
    k_max: int = 10
    k_criterion: str = "silhouette"
    algorithm: str = "kmeans"
    n_init: int = 5
    max_iter: int = 50
    tol: float = 1e-4
    seed: int = 42
    sample_rows: int = 200_000
    partition_rows: int = 100_000
    parallel_fits: int = 2
    match_max_shift: float = 0.5
    churn_risk_threshold: float = 0.5
    top_categories: int = 3
    profile_columns: tuple[str, ...] = ()
    fallback_features: int = 2
    naming_rules: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    value_class_margin: float = 0.0
    value_class_rules: tuple[dict, ...] = tuple(DEFAULT_VALUE_CLASS_RULES)
    value_class_columns: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_VALUE_CLASS_COLUMNS))
    # segment.comparison.* (gold.segmentation_comparison; docs/segments.md)
    comparison: bool = False
    comparison_bootstrap: int = 2
    comparison_n_init: int = 1
    comparison_max_iter: int = 20
    comparison_sample_rows: int = 50_000
    comparison_previous: bool = True
    comparison_tree_depth: int = 3
    comparison_min_z: float = 0.5
    comparison_value_column: str = "monetary"

    @property
    def columns(self) -> list[str]:
        """The clustering columns: ``feature_columns`` if set, else the named set."""
        if self.feature_columns:
            return list(self.feature_columns)
        return list(self.feature_sets[self.feature_set])

    @property
    def feature_set_label(self) -> str:
        return "custom" if self.feature_columns else self.feature_set

    @classmethod
    def from_config(cls, conf: Config) -> SegmentSettings:
        s = conf.get_path("segment", {})
        s = s.to_dict() if hasattr(s, "to_dict") else dict(s)
        d = cls()
        vc = s.get("value_classes", {}) or {}
        cmp = s.get("comparison", {}) or {}
        return cls(
            feature_set=s.get("feature_set", d.feature_set),
            feature_columns=tuple(s.get("feature_columns", []) or []),
            feature_sets=s.get("feature_sets") or dict(DEFAULT_FEATURE_SETS),
            log1p_columns=tuple(s.get("log1p_columns", []) or []),
            impute=s.get("impute", d.impute),
            impute_max_columns=tuple(s.get("impute_max_columns", d.impute_max_columns) or []),
            standardize=bool(s.get("standardize", d.standardize)),
            k=int(s.get("k", d.k) or 0),
            k_min=int(s.get("k_min", d.k_min)),
            k_max=int(s.get("k_max", d.k_max)),
            k_criterion=s.get("k_criterion", d.k_criterion),
            algorithm=s.get("algorithm", d.algorithm),
            n_init=int(s.get("n_init", d.n_init)),
            max_iter=int(s.get("max_iter", d.max_iter)),
            tol=float(s.get("tol", d.tol)),
            seed=int(s.get("seed", d.seed)),
            sample_rows=int(s.get("sample_rows", d.sample_rows)),
            partition_rows=int(s.get("partition_rows", d.partition_rows)),
            parallel_fits=int(s.get("parallel_fits", d.parallel_fits)),
            match_max_shift=float(s.get("match_max_shift", d.match_max_shift)),
            churn_risk_threshold=float(s.get("churn_risk_threshold", d.churn_risk_threshold)),
            top_categories=int(s.get("top_categories", d.top_categories)),
            profile_columns=tuple(s.get("profile_columns", []) or []),
            fallback_features=int(s.get("fallback_features", d.fallback_features)),
            naming_rules=s.get("naming_rules", {}) or {},
            value_class_margin=float(vc.get("margin", d.value_class_margin)),
            value_class_rules=tuple(vc.get("rules") or DEFAULT_VALUE_CLASS_RULES),
            value_class_columns=vc.get("columns") or dict(DEFAULT_VALUE_CLASS_COLUMNS),
            comparison=bool(cmp.get("enabled", d.comparison)),
            comparison_bootstrap=int(cmp.get("bootstrap", d.comparison_bootstrap)),
            comparison_n_init=int(cmp.get("n_init", d.comparison_n_init)),
            comparison_max_iter=int(cmp.get("max_iter", d.comparison_max_iter)),
            comparison_sample_rows=int(cmp.get("sample_rows", d.comparison_sample_rows)),
            comparison_previous=bool(cmp.get("previous", d.comparison_previous)),
            comparison_tree_depth=int(cmp.get("tree_depth", d.comparison_tree_depth)),
            comparison_min_z=float(cmp.get("min_z", d.comparison_min_z)),
            comparison_value_column=str(cmp.get("value_column", d.comparison_value_column)),
        )


def parse_sign(text: Any) -> int:
    """'+' / '-' (also 'high' / 'low') -> +1 / -1."""
    t = str(text).strip().lower()
    if t in ("+", "high", "pos", "positive"):
        return 1
    if t in ("-", "low", "neg", "negative"):
        return -1
    raise ValueError(f"sign must be '+' or '-', got {text!r}")


def _check_value_class_rules(conf: Config, rules: Any) -> None:
    key = "segment.value_classes.rules"
    if not isinstance(rules, list):
        raise conf.error(key, f"must be a list of {{name, when}}; got {rules!r}")
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping) or set(rule) != {"name", "when"} or not isinstance(rule["when"], Mapping):
            raise conf.error(key, f"entry [{i}] must have exactly name and when (a mapping); got {rule!r}")
        for letter, sign in rule["when"].items():
            if letter not in LRFMC:
                raise conf.error(key, f"entry [{i}] ({rule['name']}): unknown axis {letter!r}, use one of L R F M C")
            try:
                parse_sign(sign)
            except ValueError as exc:
                raise conf.error(key, f"entry [{i}] ({rule['name']}): {exc}") from None


@validator
def check_segment_conf(conf: Config) -> None:
    """Semantic checks of ``segment.*`` (types are already checked against base.yaml)."""
    from custseg.segment.naming import parse_rules

    if conf.get_path("segment", None) is None:
        return
    g = lambda key, default=None: conf.get_path(f"segment.{key}", default)  # noqa: E731
    algorithm = g("algorithm", "kmeans")
    if algorithm not in (*ALGORITHMS, AUTO):
        raise conf.error("segment.algorithm", f"must be one of {', '.join((*ALGORITHMS, AUTO))}; got {algorithm!r}")
    k_min, k_max, k = g("k_min", 2), g("k_max", 10), g("k", 0)
    if not isinstance(k_min, int) or k_min < 2:
        raise conf.error("segment.k_min", f"must be an integer >= 2; got {k_min!r}")
    if not isinstance(k_max, int) or k_max < k_min:
        raise conf.error("segment.k_max", f"must be an integer >= k_min ({k_min}); got {k_max!r}")
    if not isinstance(k, int) or (k != 0 and k < 2):
        raise conf.error("segment.k", f"must be 0 (choose from the data) or an integer >= 2; got {k!r}")
    crit = g("k_criterion", "silhouette")
    if crit not in K_CRITERIA:
        raise conf.error("segment.k_criterion", f"must be one of {', '.join(K_CRITERIA)}; got {crit!r}")
    imp = g("impute", "median")
    if imp not in IMPUTE:
        raise conf.error("segment.impute", f"must be one of {', '.join(IMPUTE)}; got {imp!r}")
    for key, low in (
        ("n_init", 1),
        ("max_iter", 1),
        ("sample_rows", 100),
        ("partition_rows", 1000),
        ("parallel_fits", 1),
        ("top_categories", 0),
        ("fallback_features", 1),
    ):
        value = g(key, low)
        if not isinstance(value, int) or value < low:
            raise conf.error(f"segment.{key}", f"must be an integer >= {low}; got {value!r}")
    for key in ("tol", "match_max_shift"):
        value = g(key, 1.0)
        if not isinstance(value, (int, float)) or value <= 0:
            raise conf.error(f"segment.{key}", f"must be a positive number; got {value!r}")
    for key, low in (("bootstrap", 0), ("n_init", 1), ("max_iter", 1), ("sample_rows", 100), ("tree_depth", 1)):
        value = g(f"comparison.{key}", low)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise conf.error(f"segment.comparison.{key}", f"must be an integer >= {low}; got {value!r}")
    min_z = g("comparison.min_z", 0.5)
    if not isinstance(min_z, (int, float)) or min_z <= 0:
        raise conf.error("segment.comparison.min_z", f"must be a positive number; got {min_z!r}")
    thr = g("churn_risk_threshold", 0.5)
    if not isinstance(thr, (int, float)) or not 0 <= thr <= 1:
        raise conf.error("segment.churn_risk_threshold", f"must be within 0..1; got {thr!r}")
    sets = g("feature_sets", None) or DEFAULT_FEATURE_SETS
    for name, cols in dict(sets).items():
        if not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols):
            raise conf.error(f"segment.feature_sets.{name}", f"must be a non-empty list of column names; got {cols!r}")
    columns = g("feature_columns", []) or []
    feature_set = g("feature_set", "persona")
    if not columns and feature_set not in sets:
        raise conf.error(
            "segment.feature_set",
            f"must name one of segment.feature_sets ({', '.join(sets)}) or set segment.feature_columns; got {feature_set!r}",
        )
    if columns and (len(set(columns)) != len(columns) or not all(isinstance(c, str) for c in columns)):
        raise conf.error("segment.feature_columns", f"must be distinct column names; got {columns!r}")
    rules = g("naming_rules", {}) or {}
    try:
        parse_rules(rules.to_dict() if hasattr(rules, "to_dict") else rules)
    except ValueError as exc:
        raise conf.error("segment.naming_rules", str(exc)) from None
    vc = g("value_classes", None)
    if vc is not None:
        _check_value_class_rules(
            conf, (vc.to_dict() if hasattr(vc, "to_dict") else vc).get("rules", DEFAULT_VALUE_CLASS_RULES)
        )
        cols = vc.get("columns", DEFAULT_VALUE_CLASS_COLUMNS)
        if set(cols) != set(LRFMC):
            raise conf.error(
                "segment.value_classes.columns", f"must map exactly L, R, F, M, C to columns; got {dict(cols)!r}"
            )


__all__ = [
    "ALGORITHMS",
    "AUTO",
    "DEFAULT_FEATURE_SETS",
    "DEFAULT_VALUE_CLASS_RULES",
    "LRFMC",
    "RAW_STATS",
    "ConfigError",
    "SegmentSettings",
    "check_segment_conf",
    "parse_sign",
]
