"""LRFMC: tenure, recency, frequency, monetary, discount coefficient, winsorized and z-scored.

- L tenure_days: days from signup (the first purchase when CRM has no signup date) to the snapshot;
- R recency_days, F frequency, as in RFM;
- M ``features.lrfmc_monetary``: net_revenue (the RFM monetary) or units bought in the window;
- C discount_coef: price paid / list price (``behavior.item_features``).

z-scores are taken over the customers who bought in the window (frequency > 0): each
measure is clipped to its [1-q, q] quantiles (q = ``features.winsorize_quantile``; 1.0
turns clipping off), then centred and scaled by that population's mean and sample
standard deviation. Every customer with a value gets a z (clipped with the same bounds);
a null raw value stays null. Signs follow the raw measures (a high r_z is a long time since
the last purchase), as the usual LRFMC value classes read them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

LRFMC = ("l", "r", "f", "m", "c")
Z_COLUMNS = ["l_z", "r_z", "f_z", "m_z", "c_z"]


@dataclass(frozen=True)
class MeasureStats:
    low: float | None
    high: float | None
    mean: float | None
    std: float | None


def lrfmc_measures(monetary: str = "net_revenue") -> dict[str, Column]:
    """The raw L, R, F, M, C columns (as doubles) of an assembled feature row."""
    m = F.col("monetary") if monetary == "net_revenue" else F.col("units")
    return {
        "l": F.col("tenure_days").cast("double"),
        "r": F.col("recency_days").cast("double"),
        "f": F.col("frequency").cast("double"),
        "m": m.cast("double"),
        "c": F.col("discount_coef").cast("double"),
    }


def _clip(value: Column, s: MeasureStats) -> Column:
    """value clipped to [low, high]; null stays null (greatest/least would skip it)."""
    clipped = value
    if s.low is not None:
        clipped = F.greatest(clipped, F.lit(s.low))
    if s.high is not None:
        clipped = F.least(clipped, F.lit(s.high))
    return F.when(value.isNotNull(), clipped)


def lrfmc_stats(
    df: DataFrame, monetary: str = "net_revenue", quantile: float = 0.99, accuracy: int = 100000
) -> dict[str, MeasureStats]:
    """Winsorizing bounds, mean and std per measure: two small aggregate jobs over ``df``."""
    measures = lrfmc_measures(monetary)
    active = df.where(F.col("frequency") > 0)
    bounds = {k: (None, None) for k in LRFMC}
    if quantile < 1.0:
        row = active.agg(
            *[F.percentile_approx(v, [1.0 - quantile, quantile], accuracy).alias(k) for k, v in measures.items()]
        ).first()
        bounds = {k: tuple(row[k]) if row[k] else (None, None) for k in LRFMC}
    clipped = {k: _clip(v, MeasureStats(*bounds[k], None, None)) for k, v in measures.items()}
    aggs = [F.avg(v).alias(f"{k}_mean") for k, v in clipped.items()]
    aggs += [F.stddev_samp(v).alias(f"{k}_std") for k, v in clipped.items()]
    row = active.agg(*aggs).first()
    return {k: MeasureStats(bounds[k][0], bounds[k][1], row[f"{k}_mean"], row[f"{k}_std"]) for k in LRFMC}


def lrfmc_z_columns(stats: dict[str, MeasureStats], monetary: str = "net_revenue") -> list[Column]:
    """l_z .. c_z from the fitted stats; 0 where the population has no spread, null where the raw value is."""
    out = []
    for k, v in lrfmc_measures(monetary).items():
        s = stats[k]
        if s.mean is None:
            z = F.lit(None).cast("double")
        elif not s.std:
            z = F.when(v.isNotNull(), F.lit(0.0))
        else:
            z = (_clip(v, s) - F.lit(s.mean)) / F.lit(s.std)
        out.append(z.cast("double").alias(f"{k}_z"))
    return out


def with_lrfmc_z(stats: dict[str, MeasureStats], monetary: str = "net_revenue") -> Callable[[DataFrame], DataFrame]:
    """Adds l_z, r_z, f_z, m_z, c_z to rows holding tenure_days, recency_days, frequency, monetary/units, discount_coef."""

    def transform(df: DataFrame) -> DataFrame:
        return df.select(*df.columns, *lrfmc_z_columns(stats, monetary))

    return transform
