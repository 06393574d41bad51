"""Timestamps that follow a customer's day-part habit inside an activity window."""

from __future__ import annotations

import numpy as np

from custseg.datagen.context import DAY

# Seconds of the day each habit covers: weekday lunch, evening, weekend daytime, morning.
HABIT_HOURS = np.array([[11.5, 14.0], [18.0, 22.5], [9.0, 18.0], [7.0, 9.5]]) * 3600
ANY_HOURS = np.array([8.0, 22.0]) * 3600
WEEKDAY_HABITS = (0, 3)
WEEKEND_HABIT = 2


def weekday(day: np.ndarray) -> np.ndarray:
    """Monday = 0 for epoch days (1970-01-01 was a Thursday)."""
    return (day + 3) % 7


def draw_times(
    rng: np.random.Generator,
    lo: np.ndarray,
    hi: np.ndarray,
    habit: np.ndarray,
    follow: float = 0.8,
) -> np.ndarray:
    """Epoch seconds, one per row, in days [lo, hi]; with probability `follow` in the habit."""
    n = len(lo)
    day = lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(np.int64)
    keep = rng.random(n) < follow
    wd = weekday(day)
    to_weekend = keep & (habit == WEEKEND_HABIT) & (wd < 5)
    day = np.where(to_weekend, day - wd + 5 + rng.integers(0, 2, n), day)
    to_weekday = keep & np.isin(habit, WEEKDAY_HABITS) & (wd >= 5)
    day = np.where(to_weekday, day - wd + rng.integers(0, 5, n), day)
    day = np.clip(day, lo, hi)
    span = np.where(keep[:, None], HABIT_HOURS[habit], ANY_HOURS)
    tod = span[:, 0] + rng.random(n) * (span[:, 1] - span[:, 0])
    return day * DAY + tod.astype(np.int64)
