"""Typed view of the ``rfm:`` and ``features:`` sections of conf/, and their semantic checks.

The feature job reads every tunable number from here, so a bad value fails at start-up
(``ConfigError`` naming the key and file) and not after an hour of aggregation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from custseg.config import Config, Section, validator
from custseg.features.rfm import DEFAULT_SEGMENTS

LRFMC_MEASURES = ("net_revenue", "units")


@dataclass(frozen=True)
class RfmSettings:
    window_days: int = 365
    bins: int = 5
    binning: str = "quantile"
    fixed_thresholds: dict | None = None
    segments: tuple = tuple(DEFAULT_SEGMENTS)
    quantile_accuracy: int = 100000


@dataclass(frozen=True)
class ClvSettings:
    horizon_days: int = 365
    discount_rate_annual: float = 0.1
    periods: int = 12
    time_unit_days: int = 7
    margin: float = 1.0
    max_fit_rows: int = 200000
    max_shape: float = 1000.0
    seed: int = 42
    series_tolerance: float = 1e-10
    series_max_terms: int = 5000


@dataclass(frozen=True)
class FeatureSettings:
    """Everything the feature job needs besides the tables and the snapshot date."""

    rfm: RfmSettings = field(default_factory=RfmSettings)
    churn_window_days: int = 90
    overdue_ratio_threshold: float = 2.0
    decline_ratio: float = 0.5
    lrfmc_monetary: str = "net_revenue"
    winsorize_quantile: float = 0.99
    top_categories: int = 3
    lunch_hours: tuple[int, int] = (11, 14)
    evening_hours: tuple[int, int] = (18, 23)
    online_channels: tuple[str, ...] = ("web", "app")
    page_view_events: tuple[str, ...] = ("page_view", "product_view")
    product_view_events: tuple[str, ...] = ("product_view",)
    cart_add_events: tuple[str, ...] = ("add_to_cart",)
    social_weights: tuple[tuple[str, float], ...] = (("followers", 1.0), ("shares", 1.0), ("mentions", 1.0))
    clv: ClvSettings = field(default_factory=ClvSettings)

    @classmethod
    def from_config(cls, conf: Config) -> FeatureSettings:
        r, f = conf.rfm, conf.features
        rfm = RfmSettings(
            window_days=int(r.window_days),
            bins=int(r.bins),
            binning=str(r.binning),
            fixed_thresholds=r.fixed_thresholds.to_dict(),
            segments=tuple(r.segments),
            quantile_accuracy=int(r.quantile_accuracy),
        )
        clv = ClvSettings(
            horizon_days=int(f.clv_horizon_days),
            discount_rate_annual=float(f.clv_discount_rate_annual),
            periods=int(f.clv_periods),
            time_unit_days=int(f.clv_time_unit_days),
            margin=float(f.clv_margin),
            max_fit_rows=int(f.clv_max_fit_rows),
            max_shape=float(f.clv_max_shape),
            seed=int(f.clv_seed),
            series_tolerance=float(f.clv_series_tolerance),
            series_max_terms=int(f.clv_series_max_terms),
        )
        return cls(
            rfm=rfm,
            churn_window_days=int(f.churn_window_days),
            overdue_ratio_threshold=float(f.overdue_ratio_threshold),
            decline_ratio=float(f.decline_ratio),
            lrfmc_monetary=str(f.lrfmc_monetary),
            winsorize_quantile=float(f.winsorize_quantile),
            top_categories=int(f.top_categories),
            lunch_hours=(int(f.lunch_hours[0]), int(f.lunch_hours[1])),
            evening_hours=(int(f.evening_hours[0]), int(f.evening_hours[1])),
            online_channels=tuple(f.online_channels),
            page_view_events=tuple(f.page_view_events),
            product_view_events=tuple(f.product_view_events),
            cart_add_events=tuple(f.cart_add_events),
            social_weights=tuple((k, float(v)) for k, v in f.social_weights.to_dict().items()),
            clv=clv,
        )


def _positive_int(conf: Config, key: str, upper: int | None = None) -> None:
    value = conf.get_path(key, None)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or (upper and value > upper):
        bound = f" and at most {upper}" if upper else ""
        raise conf.error(key, f"must be a positive integer{bound}; got {value!r}")


def _number(conf: Config, key: str, low: float, high: float, low_open: bool = False) -> None:
    value = conf.get_path(key, None)
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        lo = "(" if low_open else "["
        raise conf.error(key, f"must be a number in {lo}{low}, {high}]; got {value!r}")


def _string_list(conf: Config, key: str) -> None:
    value = conf.get_path(key, None)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise conf.error(key, f"must be a list of non-empty strings; got {value!r}")


@validator
def check_feature_settings(conf: Config) -> None:
    """Semantic checks of ``rfm.*`` (beyond config.py's core checks) and ``features.*``."""
    if conf.get_path("rfm.binning", "quantile") == "fixed":
        bins = conf.get_path("rfm.bins", 5)
        for measure in ("recency_days", "frequency", "monetary"):
            key = f"rfm.fixed_thresholds.{measure}"
            cuts = conf.get_path(key, None)
            if (
                not isinstance(cuts, list)
                or len(cuts) != bins - 1
                or any(not isinstance(c, (int, float)) or isinstance(c, bool) for c in cuts)
            ):
                raise conf.error(key, f"must be a list of {bins - 1} numbers (rfm.bins - 1); got {cuts!r}")
            if any(b <= a for a, b in zip(cuts, cuts[1:], strict=False)):
                raise conf.error(key, f"must be strictly increasing; got {cuts!r}")
    _positive_int(conf, "rfm.quantile_accuracy")

    _positive_int(conf, "features.churn_window_days", upper=3650)
    _number(conf, "features.overdue_ratio_threshold", 0.0, 1e6, low_open=True)
    _number(conf, "features.decline_ratio", 0.0, 1.0, low_open=True)
    measure = conf.get_path("features.lrfmc_monetary", "net_revenue")
    if measure not in LRFMC_MEASURES:
        raise conf.error("features.lrfmc_monetary", f"must be one of {', '.join(LRFMC_MEASURES)}; got {measure!r}")
    _number(conf, "features.winsorize_quantile", 0.5, 1.0, low_open=True)
    _positive_int(conf, "features.top_categories", upper=50)
    for key in ("features.lunch_hours", "features.evening_hours"):
        hours = conf.get_path(key, None)
        if hours is not None and not (
            isinstance(hours, list)
            and len(hours) == 2
            and all(isinstance(h, int) and not isinstance(h, bool) for h in hours)
            and 0 <= hours[0] < hours[1] <= 24
        ):
            raise conf.error(key, f"must be [start, end) hours with 0 <= start < end <= 24; got {hours!r}")
    for key in ("online_channels", "page_view_events", "product_view_events", "cart_add_events"):
        _string_list(conf, f"features.{key}")
    weights = conf.get_path("features.social_weights", None)
    if weights is not None:
        weights = weights.to_dict() if isinstance(weights, Section) else weights
        if not isinstance(weights, dict) or set(weights) - {"followers", "shares", "mentions"}:
            raise conf.error("features.social_weights", f"may only weight followers, shares, mentions; got {weights!r}")
        for k in weights:
            _number(conf, f"features.social_weights.{k}", 0.0, 1e6)

    _positive_int(conf, "features.clv_horizon_days", upper=36500)
    _number(conf, "features.clv_discount_rate_annual", 0.0, 10.0)
    _positive_int(conf, "features.clv_periods", upper=600)
    _positive_int(conf, "features.clv_time_unit_days", upper=365)
    _number(conf, "features.clv_margin", 0.0, 1e6)
    _positive_int(conf, "features.clv_max_fit_rows")
    _number(conf, "features.clv_max_shape", 1.0, 1e6)
    _number(conf, "features.clv_series_tolerance", 0.0, 1e-3, low_open=True)
    _positive_int(conf, "features.clv_series_max_terms", upper=100000)
