"""``basket.*`` settings: basket level, FP-Growth thresholds and guards, cross-sell scoring."""

from __future__ import annotations

from dataclasses import dataclass, field

from custseg.config import Config, validator

LEVELS = ("sku", "subcategory", "category")
SCORES = ("confidence_lift", "confidence", "expected_margin")


@dataclass(frozen=True)
class CrossSellSettings:
    window_days: int = 180
    score: str = "confidence_lift"
    margin_rate: float = 1.0
    aggregate: str = "max"
    top_n: int = 5
    fill: str = "popular"
    fill_candidates: int = 50


@dataclass(frozen=True)
class JourneySettings:
    enabled: bool = True
    horizon_days: int = 30
    min_eligible: int = 20
    min_lift: float = 1.5
    min_confidence: float = 0.05
    max_items: int = 100


@dataclass(frozen=True)
class BasketSettings:
    level: str = "category"
    statuses: tuple[str, ...] = ("completed",)
    window_days: int = 365
    min_support: float = 0.01
    min_confidence: float = 0.1
    min_lift: float = 1.0
    num_partitions: int = 0  # 0: derived from the data and the cluster
    max_itemset_size: int = 4
    max_itemsets: int = 200_000
    max_basket_items: int = 100
    by_segment: bool = False
    cross_sell: CrossSellSettings = field(default_factory=CrossSellSettings)
    journeys: JourneySettings = field(default_factory=JourneySettings)

    @classmethod
    def from_config(cls, conf: Config) -> BasketSettings:
        g = conf.get_path
        d = cls()
        xs = CrossSellSettings(
            window_days=int(g("basket.cross_sell.window_days", d.cross_sell.window_days)),
            score=str(g("basket.cross_sell.score", d.cross_sell.score)),
            margin_rate=float(g("basket.cross_sell.margin_rate", d.cross_sell.margin_rate)),
            aggregate=str(g("basket.cross_sell.aggregate", d.cross_sell.aggregate)),
            top_n=int(g("basket.top_n", d.cross_sell.top_n)),
            fill=str(g("basket.cross_sell.fill", d.cross_sell.fill)),
            fill_candidates=int(g("basket.cross_sell.fill_candidates", d.cross_sell.fill_candidates)),
        )
        dj = d.journeys
        journeys = JourneySettings(
            enabled=bool(g("basket.journeys.enabled", dj.enabled)),
            horizon_days=int(g("basket.journeys.horizon_days", dj.horizon_days)),
            min_eligible=int(g("basket.journeys.min_eligible", dj.min_eligible)),
            min_lift=float(g("basket.journeys.min_lift", dj.min_lift)),
            min_confidence=float(g("basket.journeys.min_confidence", dj.min_confidence)),
            max_items=int(g("basket.journeys.max_items", dj.max_items)),
        )
        return cls(
            level=str(g("basket.level", d.level)),
            statuses=tuple(g("basket.statuses", list(d.statuses))),
            window_days=int(g("basket.window_days", d.window_days)),
            min_support=float(g("basket.min_support", d.min_support)),
            min_confidence=float(g("basket.min_confidence", d.min_confidence)),
            min_lift=float(g("basket.min_lift", d.min_lift)),
            num_partitions=int(g("basket.num_partitions", d.num_partitions)),
            max_itemset_size=int(g("basket.max_itemset_size", d.max_itemset_size)),
            max_itemsets=int(g("basket.max_itemsets", d.max_itemsets)),
            max_basket_items=int(g("basket.max_basket_items", d.max_basket_items)),
            by_segment=bool(g("basket.by_segment", d.by_segment)),
            cross_sell=xs,
            journeys=journeys,
        )


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@validator
def check_basket(conf: Config) -> None:
    """Fail at start-up, naming the key, rather than after baskets were built."""
    if "basket" not in conf:
        return
    g = conf.get_path
    level = g("basket.level", "category")
    if level not in LEVELS:
        raise conf.error("basket.level", f"must be one of {', '.join(LEVELS)}; got {level!r}")
    statuses = g("basket.statuses", ["completed"])
    if not isinstance(statuses, list) or not statuses or not all(isinstance(s, str) and s for s in statuses):
        raise conf.error("basket.statuses", f"must be a non-empty list of order statuses; got {statuses!r}")
    for key, lo_open in (("basket.min_support", True), ("basket.min_confidence", False)):
        v = g(key, 0.1)
        if not _is_num(v) or not ((0 < v <= 1) if lo_open else (0 <= v <= 1)):
            interval = "(0, 1]" if lo_open else "[0, 1]"
            raise conf.error(key, f"must be a number in {interval}; got {v!r}")
    lift = g("basket.min_lift", 1.0)
    if not _is_num(lift) or lift < 0:
        raise conf.error("basket.min_lift", f"must be a number >= 0; got {lift!r}")
    for key, low in (
        ("basket.window_days", 1),
        ("basket.num_partitions", 0),
        ("basket.max_itemset_size", 2),
        ("basket.max_itemsets", 1),
        ("basket.max_basket_items", 2),
        ("basket.top_n", 1),
        ("basket.cross_sell.window_days", 1),
        ("basket.cross_sell.fill_candidates", 1),
        ("basket.journeys.horizon_days", 1),
        ("basket.journeys.min_eligible", 1),
        ("basket.journeys.max_items", 2),
    ):
        v = g(key, low)
        if not _is_int(v) or v < low:
            raise conf.error(key, f"must be an integer >= {low}; got {v!r}")
    score = g("basket.cross_sell.score", "confidence_lift")
    if score not in SCORES:
        raise conf.error("basket.cross_sell.score", f"must be one of {', '.join(SCORES)}; got {score!r}")
    agg = g("basket.cross_sell.aggregate", "max")
    if agg not in ("max", "sum"):
        raise conf.error("basket.cross_sell.aggregate", f"must be max or sum; got {agg!r}")
    fill = g("basket.cross_sell.fill", "popular")
    if fill not in ("popular", "none"):
        raise conf.error("basket.cross_sell.fill", f"must be popular or none; got {fill!r}")
    margin = g("basket.cross_sell.margin_rate", 1.0)
    if not _is_num(margin) or not 0 < margin <= 1:
        raise conf.error("basket.cross_sell.margin_rate", f"must be a number in (0, 1]; got {margin!r}")
    if not isinstance(g("basket.journeys.enabled", True), bool):
        raise conf.error("basket.journeys.enabled", "must be true or false")
    jl = g("basket.journeys.min_lift", 1.5)
    if not _is_num(jl) or jl < 0:
        raise conf.error("basket.journeys.min_lift", f"must be a number >= 0; got {jl!r}")
    jc = g("basket.journeys.min_confidence", 0.05)
    if not _is_num(jc) or not 0 <= jc <= 1:
        raise conf.error("basket.journeys.min_confidence", f"must be a number in [0, 1]; got {jc!r}")
    if not isinstance(g("basket.by_segment", False), bool):
        raise conf.error("basket.by_segment", "must be true or false")
