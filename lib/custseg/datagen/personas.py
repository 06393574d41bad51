"""The six planted personas and the behaviour parameters that set them apart.

Rows follow `PERSONAS`; a seventh row, `guest`, drives anonymous web orders. The numbers
are chosen so that recency, frequency, monetary value, tenure, discount share and
browsing volume separate the personas clearly, with noise (see DESIGN.md "Models").
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

PERSONAS = (
    "loyal_high_value",
    "bargain_hunter",
    "new_customer",
    "churning",
    "occasional_big_spender",
    "browser",
)
LOYAL, BARGAIN, NEW, CHURNING, OCCASIONAL, BROWSER, GUEST = range(7)
DEFAULT_SHARES = {
    "loyal_high_value": 0.12,
    "bargain_hunter": 0.20,
    "new_customer": 0.15,
    "churning": 0.18,
    "occasional_big_spender": 0.10,
    "browser": 0.25,
}
DAYPARTS = ("weekday_lunch", "evening", "weekend", "morning")
CHANNELS = ("store", "web", "app")
TIERS = ("bronze", "silver", "gold", "platinum")


def _a(rows: list) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64)


# Days between signup and the end date (uniform in [lo, hi]).
TENURE = _a([[500, 2500], [250, 1800], [1, 60], [500, 2200], [400, 2500], [180, 720]])
# Orders: loyal, bargain, churning: Poisson with a rate per 30 days drawn in [lo, hi];
# occasional: per 365 days; new: a count in [lo, hi]; browser: a count in [lo, hi].
ORDER_RATE = _a([[2.0, 4.0], [0.8, 1.6], [1, 3], [2.0, 3.5], [2.0, 4.0], [0, 2]])
CHURN_STOP_DAYS = (90, 200)  # churners' last possible order, days before the end date
# Basket: lines = base + Poisson(lam); category from favourites with p_fav.
LINES_BASE = _a([4, 2, 2, 3, 4, 1, 1])
LINES_LAM = _a([5.0, 3.0, 3.0, 4.0, 4.0, 1.0, 2.0])
P_FAV = _a([0.7, 0.6, 0.6, 0.7, 0.8, 0.7, 0.0])
QTY_LAM = _a([0.8, 1.0, 0.4, 0.6, 0.5, 0.2, 0.4])
# Discount: with probability p a line is discounted by U(lo, hi) (hundredths).
DISCOUNT = _a(
    [
        [0.2, 10, 40],
        [0.85, 25, 60],
        [0.2, 10, 40],
        [0.2, 10, 40],
        [0.15, 10, 30],
        [0.2, 10, 40],
        [0.2, 10, 40],
    ]
)
STATUS = _a(
    [
        [0.92, 0.04, 0.04],
        [0.86, 0.10, 0.04],
        [0.92, 0.04, 0.04],
        [0.90, 0.06, 0.04],
        [0.92, 0.05, 0.03],
        [0.90, 0.04, 0.06],
        [0.90, 0.04, 0.06],
    ]
)
DAYPART = _a(
    [
        [0.55, 0.25, 0.1, 0.1],
        [0.1, 0.2, 0.6, 0.1],
        [0.25, 0.25, 0.25, 0.25],
        [0.3, 0.3, 0.2, 0.2],
        [0.1, 0.25, 0.55, 0.1],
        [0.1, 0.6, 0.2, 0.1],
    ]
)
CHANNEL = _a(
    [
        [0.6, 0.15, 0.25],
        [0.6, 0.25, 0.15],
        [0.2, 0.4, 0.4],
        [0.6, 0.25, 0.15],
        [0.3, 0.5, 0.2],
        [0.1, 0.4, 0.5],
        [0.0, 0.7, 0.3],
    ]
)
TIER = _a(
    [
        [0.05, 0.2, 0.45, 0.3],
        [0.4, 0.4, 0.15, 0.05],
        [0.9, 0.1, 0.0, 0.0],
        [0.2, 0.4, 0.3, 0.1],
        [0.2, 0.3, 0.3, 0.2],
        [0.7, 0.25, 0.05, 0.0],
    ]
)
OPT_IN = _a(
    [
        [0.8, 0.5, 0.6],
        [0.85, 0.6, 0.7],
        [0.7, 0.4, 0.5],
        [0.5, 0.3, 0.4],
        [0.6, 0.3, 0.5],
        [0.6, 0.3, 0.6],
    ]
)
AGE = _a([[48, 12], [38, 12], [32, 10], [45, 14], [50, 10], [27, 7]])
# Browsing: sessions per 365 active days, mean events per session, login probability.
SESSIONS = _a([3, 4, 18, 3, 3, 12])
EVENTS_PER_SESSION = _a([4.0, 4.5, 4.5, 4.0, 4.5, 6.5])
P_LOGIN = _a([0.6, 0.5, 0.6, 0.5, 0.4, 0.35])
P_EXTRA_DEVICE = _a([0.25, 0.25, 0.25, 0.25, 0.25, 0.5])
FEEDBACK_PER_YEAR = _a([1.2, 0.6, 3.0, 1.5, 0.6, 0.15])
RATING = _a(
    [
        [0.02, 0.03, 0.1, 0.35, 0.5],
        [0.05, 0.1, 0.3, 0.35, 0.2],
        [0.05, 0.05, 0.2, 0.4, 0.3],
        [0.3, 0.3, 0.25, 0.1, 0.05],
        [0.05, 0.05, 0.2, 0.35, 0.35],
        [0.1, 0.1, 0.3, 0.3, 0.2],
    ]
)
P_SOCIAL = _a([0.35, 0.3, 0.35, 0.25, 0.3, 0.45])
# Campaign responder propensity: logit = base + persona + features + noise.
RESPONDER_BASE = -2.8
RESPONDER_PERSONA = _a([1.6, 1.9, 0.3, -1.8, -0.4, -1.2])
RESPONDER_NOISE = 0.3
# Mean revenue (pounds) of a campaign conversion.
CONVERSION_REVENUE = _a([80, 30, 40, 50, 400, 25])
# Category weights (order of catalog.CATEGORIES) for lines not drawn from favourites,
# and for choosing favourites.
CATEGORY_WEIGHTS = _a(
    [
        # groc bake dairy bev snack house pcare elec appar home toys books
        [18, 8, 12, 10, 6, 8, 8, 3, 5, 4, 2, 3],
        [16, 6, 8, 10, 14, 12, 10, 3, 6, 4, 3, 2],
        [14, 6, 8, 10, 10, 6, 8, 6, 8, 6, 3, 4],
        [18, 8, 10, 10, 8, 8, 8, 3, 5, 4, 2, 3],
        [1, 0.5, 0.5, 1, 0.5, 1, 1, 55, 10, 25, 3, 1.5],
        [3, 2, 2, 5, 6, 2, 5, 6, 28, 6, 18, 17],
        [14, 6, 8, 10, 10, 6, 8, 8, 8, 8, 6, 6],
    ]
)


def persona_shares(shares: Mapping[str, float] | None) -> np.ndarray:
    """Shares in `PERSONAS` order, normalised; unknown names are an error."""
    given = dict(DEFAULT_SHARES if shares is None else shares)
    unknown = set(given) - set(PERSONAS)
    if unknown:
        raise ValueError(f"unknown persona(s) {sorted(unknown)}; known: {', '.join(PERSONAS)}")
    w = np.array([float(given.get(p, 0.0)) for p in PERSONAS])
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("persona shares must be >= 0 and not all 0")
    return w / w.sum()


def allocate(n: int, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Persona codes for n customers: counts by largest remainder, order shuffled."""
    raw = shares * n
    counts = np.floor(raw).astype(np.int64)
    rest = n - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return rng.permutation(np.repeat(np.arange(len(shares)), counts))


def choose_rows(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of the probability matrix p (n x k)."""
    cum = np.cumsum(p, axis=1)
    u = rng.random(len(p)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), p.shape[1] - 1)
