"""Feature-set assembly for clustering: missing values, log1p for skewed measures, scaling.

KMeans measures Euclidean distance, so one skewed measure in pounds would drown the
others: skewed counts and amounts go through a sign-preserving log1p, then every column
is standardised (MLlib ``StandardScaler``, mean 0 and unit variance) so each feature
weighs the same. Missing values get a fill computed once in Spark (median, or the column
maximum for "days since" measures whose null means "never": a customer who never bought
is the most lapsed one). Only the fill values and scaler statistics reach the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pyspark.ml.feature import StandardScaler, StandardScalerModel, VectorAssembler
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from custseg.segment.settings import DEFAULT_FEATURE_SETS

VECTOR = "features"
RAW_VECTOR = "_raw_vector"


def resolve_feature_columns(
    feature_set: str = "persona",
    columns: Sequence[str] = (),
    feature_sets: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """The columns to cluster on: ``columns`` if given, else the named set."""
    if columns:
        return list(columns)
    sets = dict(feature_sets or DEFAULT_FEATURE_SETS)
    if feature_set not in sets:
        raise ValueError(f"unknown feature set {feature_set!r}; known: {', '.join(sets)}")
    return list(sets[feature_set])


def missing_columns(df: DataFrame, columns: Sequence[str]) -> list[str]:
    have = set(df.columns)
    return [c for c in columns if c not in have]


def signed_log1p(c: Column) -> Column:
    """log(1 + |x|) with the sign of x: defined for the odd negative value, monotone."""
    return F.signum(c) * F.log1p(F.abs(c))


def fill_values(
    df: DataFrame,
    columns: Sequence[str],
    strategy: str = "median",
    max_columns: Sequence[str] = (),
    accuracy: int = 10000,
) -> dict[str, float]:
    """One value per column for its nulls, from a single Spark aggregate (bounded).

    ``max_columns`` take the column maximum, the others the median (``strategy="median"``)
    or 0 (``"zero"``). A column that is null everywhere gets 0.
    """
    aggs = []
    for c in columns:
        x = F.col(c).cast("double")
        if c in max_columns:
            aggs.append(F.max(x).alias(c))
        elif strategy == "median":
            aggs.append(F.percentile_approx(x, 0.5, accuracy).alias(c))
    row = df.agg(*aggs).first() if aggs else None
    out = {}
    for c in columns:
        value = row[c] if row is not None and c in row.asDict() else None
        out[c] = float(value) if value is not None else 0.0
    return out


def prepare_features(
    columns: Sequence[str],
    log1p_columns: Sequence[str] = (),
    fill: Mapping[str, float] | None = None,
    id_col: str = "customer_key",
) -> Callable[[DataFrame], DataFrame]:
    """id + each feature as double with nulls filled (``<col>``), and its transformed value
    (``_t_<col>``: log1p where listed, else the filled value) for the assembler."""
    fill = dict(fill or {})
    logged = set(log1p_columns)

    def transform(df: DataFrame) -> DataFrame:
        filled = {c: F.coalesce(F.col(c).cast("double"), F.lit(float(fill.get(c, 0.0)))) for c in columns}
        return df.select(
            id_col,
            *[filled[c].alias(c) for c in columns],
            *[(signed_log1p(filled[c]) if c in logged else filled[c]).alias(f"_t_{c}") for c in columns],
        )

    return transform


@dataclass(frozen=True)
class Scaling:
    """Scaler statistics in the transformed (log) units, for reading centres back."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    standardized: bool


def scale_features(prepared: DataFrame, columns: Sequence[str], standardize: bool = True) -> tuple[DataFrame, Scaling]:
    """Adds the ``features`` vector (scaled ``_t_<col>``) with MLlib; keeps the other columns.

    With ``standardize=False`` the transformed values are used as they are (inputs already
    z-scored, as in the airline LRFMC matrix).
    """
    assembled = VectorAssembler(
        inputCols=[f"_t_{c}" for c in columns], outputCol=RAW_VECTOR if standardize else VECTOR
    ).transform(prepared)
    if not standardize:
        d = len(columns)
        return assembled, Scaling(tuple(columns), (0.0,) * d, (1.0,) * d, False)
    model: StandardScalerModel = StandardScaler(inputCol=RAW_VECTOR, outputCol=VECTOR, withMean=True, withStd=True).fit(
        assembled
    )
    scaled = model.transform(assembled).drop(RAW_VECTOR)
    mean = tuple(float(v) for v in np.asarray(model.mean.toArray()))
    std = tuple(float(v) for v in np.asarray(model.std.toArray()))
    return scaled, Scaling(tuple(columns), mean, std, True)


__all__ = [
    "VECTOR",
    "Scaling",
    "fill_values",
    "missing_columns",
    "prepare_features",
    "resolve_feature_columns",
    "scale_features",
    "signed_log1p",
]
