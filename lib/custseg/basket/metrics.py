"""Association-rule metrics from exact counts.

For a rule A -> C over N baskets, with a = #baskets containing A, c = #baskets
containing C and u = #baskets containing both (all exact integer counts):

- support = u / N
- confidence = u / a                       = P(C | A)
- lift = u N / (a c)                       = confidence / P(C)
- leverage = u / N - (a / N)(c / N)        (Piatetsky-Shapiro)
- conviction = (1 - c / N) / (1 - u / a)   = (N - c) a / (N (a - u)); infinite when u = a
  (the consequent always follows). It is stored as **null** then, so the column stays a
  plain double that sorts and averages; ``conviction_cap`` replaces it with a number instead.
- normalized_lift: the *standardised lift* of McNicholas, Murphy & O'Regan (2008),
  "Standardising the lift of an association rule", Computational Statistics & Data
  Analysis 52(10):4712-4721. Lift is bounded by the marginals:
  L = max(P(A) + P(C) - 1, 1/N) / (P(A) P(C)) <= lift <= U = 1 / max(P(A), P(C)),
  and ``(lift - L) / (U - L)`` maps it onto [0, 1], so rules on items of very different
  popularity compare. Null when U = L (no room for the lift to vary).

Counts are turned into doubles before any product, so nothing overflows a long.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

METRIC_COLUMNS = ["support", "confidence", "lift", "leverage", "conviction", "normalized_lift"]


def _d(name: str) -> Column:
    return F.col(name).cast("double")


def with_rule_metrics(
    n_baskets: int | Column | str, conviction_cap: float | None = None
) -> Callable[[DataFrame], DataFrame]:
    """Adds the metrics above to rows with antecedent_count, consequent_count, union_count.

    ``n_baskets`` is a number, or a column (name) when rules of several scopes share a frame.
    """

    def transform(rules: DataFrame) -> DataFrame:
        n = (
            F.col(n_baskets).cast("double")
            if isinstance(n_baskets, str)
            else (n_baskets.cast("double") if isinstance(n_baskets, Column) else F.lit(float(n_baskets)))
        )
        a, c, u = _d("antecedent_count"), _d("consequent_count"), _d("union_count")
        s_a, s_c = a / n, c / n
        conviction = F.when(a > u, (n - c) * a / (n * (a - u)))
        if conviction_cap is not None:
            conviction = F.coalesce(conviction, F.lit(float(conviction_cap)))
        lift = u * n / (a * c)
        lower = F.greatest(s_a + s_c - F.lit(1.0), F.lit(1.0) / n) / (s_a * s_c)
        upper = F.lit(1.0) / F.greatest(s_a, s_c)
        normalized = F.when(upper > lower, (lift - lower) / (upper - lower))
        return rules.select(
            "*",
            (u / n).alias("support"),
            (u / a).alias("confidence"),
            lift.alias("lift"),
            (u / n - s_a * s_c).alias("leverage"),
            conviction.alias("conviction"),
            normalized.alias("normalized_lift"),
        )

    return transform
