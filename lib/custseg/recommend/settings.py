"""``recommend.*`` settings: interaction weights, ALS parameters, cold start, evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

from custseg.config import Config, validator

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
DEFAULT_WEIGHTS = {"purchase": 5.0, "add_to_cart": 2.0, "product_view": 1.0}
COLD_START = ("segment", "global")


@dataclass(frozen=True)
class AlsParams:
    rank: int = 16
    max_iter: int = 10
    reg_param: float = 0.5
    alpha: float = 5.0
    seed: int = 42
    num_blocks: int = 0  # user and item blocks; 0 = the session's default parallelism


@dataclass(frozen=True)
class RecommendSettings:
    window_days: int = 365
    # purchase = one completed order line of silver.order_items; the other keys are
    # silver.events types with a sku (events of type purchase are not read: orders are)
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    als: AlsParams = field(default_factory=AlsParams)
    top_n: int = 10
    max_candidates: int = 100
    cold_start: str = "segment"
    evaluate: bool = True
    holdout_days: int = 30
    k: tuple[int, ...] = (5, 10)
    blend_rules_weight: float = 0.5
    blend_rrf_k: int = 60

    @classmethod
    def from_config(cls, conf: Config) -> RecommendSettings:
        g = conf.get_path
        d = cls()
        weights = g("recommend.weights", None)
        return cls(
            window_days=int(g("recommend.window_days", d.window_days)),
            weights={str(k): float(v) for k, v in (weights.to_dict() if weights is not None else d.weights).items()},
            als=AlsParams(
                rank=int(g("recommend.als.rank", d.als.rank)),
                max_iter=int(g("recommend.als.max_iter", d.als.max_iter)),
                reg_param=float(g("recommend.als.reg_param", d.als.reg_param)),
                alpha=float(g("recommend.als.alpha", d.als.alpha)),
                seed=int(g("recommend.als.seed", d.als.seed)),
                num_blocks=int(g("recommend.als.num_blocks", d.als.num_blocks)),
            ),
            top_n=int(g("recommend.top_n", d.top_n)),
            max_candidates=int(g("recommend.max_candidates", d.max_candidates)),
            cold_start=str(g("recommend.cold_start", d.cold_start)),
            evaluate=bool(g("recommend.evaluate", d.evaluate)),
            holdout_days=int(g("recommend.holdout_days", d.holdout_days)),
            k=tuple(int(k) for k in g("recommend.k", list(d.k))),
            blend_rules_weight=float(g("recommend.blend_rules_weight", d.blend_rules_weight)),
            blend_rrf_k=int(g("recommend.blend_rrf_k", d.blend_rrf_k)),
        )


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@validator
def check_recommend(conf: Config) -> None:
    """Fail at start-up, naming the key, rather than after ALS trained for minutes."""
    if "recommend" not in conf:
        return
    g = conf.get_path
    weights = g("recommend.weights", None)
    weights = weights.to_dict() if weights is not None else dict(DEFAULT_WEIGHTS)
    for name, w in weights.items():
        if name not in EVENT_TYPES:
            raise conf.error(
                f"recommend.weights.{name}", f"is not an interaction type; known: {', '.join(EVENT_TYPES)}"
            )
        if not _is_num(w) or w < 0:
            raise conf.error(f"recommend.weights.{name}", f"must be a number >= 0; got {w!r}")
    purchase = weights.get("purchase", 0.0)
    for name in ("product_view", "page_view", "search"):
        if weights.get(name, 0.0) >= purchase:
            raise conf.error(
                "recommend.weights.purchase",
                f"must be above the weight of {name} ({weights.get(name, 0.0)}); got {purchase!r}",
            )
    for key, low in (
        ("recommend.window_days", 1),
        ("recommend.als.rank", 1),
        ("recommend.als.max_iter", 1),
        ("recommend.als.num_blocks", 0),
        ("recommend.top_n", 1),
        ("recommend.max_candidates", 1),
        ("recommend.holdout_days", 1),
        ("recommend.blend_rrf_k", 0),
    ):
        v = g(key, low)
        if not _is_int(v) or v < low:
            raise conf.error(key, f"must be an integer >= {low}; got {v!r}")
    if not _is_int(g("recommend.als.seed", 42)):
        raise conf.error("recommend.als.seed", "must be an integer")
    for key in ("recommend.als.reg_param", "recommend.als.alpha"):
        v = g(key, 1.0)
        if not _is_num(v) or v < 0:
            raise conf.error(key, f"must be a number >= 0; got {v!r}")
    if g("recommend.cold_start", "segment") not in COLD_START:
        raise conf.error("recommend.cold_start", f"must be one of {', '.join(COLD_START)}")
    ks = g("recommend.k", [5, 10])
    if not isinstance(ks, list) or not ks or not all(_is_int(k) and k >= 1 for k in ks):
        raise conf.error("recommend.k", f"must be a non-empty list of integers >= 1; got {ks!r}")
    w = g("recommend.blend_rules_weight", 0.5)
    if not _is_num(w) or not 0 <= w <= 1:
        raise conf.error("recommend.blend_rules_weight", f"must be a number in [0, 1]; got {w!r}")
    if g("recommend.max_candidates", 100) < g("recommend.top_n", 10):
        raise conf.error("recommend.max_candidates", "must be >= recommend.top_n")
    if not isinstance(g("recommend.evaluate", True), bool):
        raise conf.error("recommend.evaluate", "must be true or false")
