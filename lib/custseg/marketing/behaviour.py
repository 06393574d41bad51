"""A behavioural propensity for retailers without campaign history: "bought again within N days".

A response model needs past sends and their outcomes; a retailer who brings only its
transactions has none. What the transactions do show is who comes back: at a back-dated
snapshot (cutoff) every customer who had bought before it is an example, labelled 1 when
they bought again within ``label_days`` from the cutoff. Snapshots are taken every
``step_days`` back from the newest one whose label window is complete by the run date;
the model (the same point-in-time features and MLlib models as the response models) is
fitted on the earlier snapshots and validated on the latest, the way it will be used:
trained on the past, scored on what comes next. AUC and calibration by decile are reported
in ``gold.propensity_quality`` like a response model's.

The probability of coming back is not the probability of answering a campaign: campaigns
rank customers by it, and ``p_response`` is it scaled so that its mean over the examples
equals ``fallback_response_rate`` (the response rate assumed without history), which keeps
the plan's expected responses, profit and ROI on the scale of a campaign.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from custseg.marketing.propensity import PropensityModel, PropensityParams, fit_propensity

log = logging.getLogger(__name__)

EXAMPLE_COLUMNS = ["customer_key", "cutoff_date", "label", "is_validation"]


def behaviour_label(label_days: int) -> str:
    return f"bought again within {label_days} days"


def behaviour_cutoffs(as_of: date, label_days: int, snapshots: int, step_days: int) -> list[date]:
    """Snapshot dates, newest first: the newest is the last whose label window
    [cutoff, cutoff + label_days) ends by the end of ``as_of``."""
    newest = as_of + timedelta(days=1) - timedelta(days=label_days)
    return [newest - timedelta(days=i * step_days) for i in range(snapshots)]


def repurchase_examples(cutoffs: Sequence[date], label_days: int) -> Callable[[DataFrame], DataFrame]:
    """silver.orders -> one row per (customer, cutoff) who bought before the cutoff:
    ``label`` 1.0 when they bought again in [cutoff, cutoff + label_days); ``is_validation``
    on the newest cutoff. Purchases are completed orders of known customers."""
    if not cutoffs:
        raise ValueError("behaviour: at least one cutoff is needed")
    newest = max(cutoffs)

    def transform(orders: DataFrame) -> DataFrame:
        spark = orders.sparkSession
        cuts = spark.createDataFrame([(c,) for c in cutoffs], "cutoff_date date")
        bought = orders.where((F.col("status") == "completed") & F.col("customer_key").isNotNull()).select(
            "customer_key", F.to_date("order_ts").alias("_d")
        )
        horizon = F.date_add(F.col("cutoff_date"), label_days)
        return (
            bought.join(F.broadcast(cuts), F.col("_d") < horizon, how="inner")
            .groupBy("customer_key", "cutoff_date")
            .agg(
                F.max((F.col("_d") < F.col("cutoff_date")).cast("int")).alias("_before"),
                F.max((F.col("_d") >= F.col("cutoff_date")).cast("int")).alias("_again"),
            )
            .where(F.col("_before") == 1)
            .select(
                "customer_key",
                "cutoff_date",
                F.col("_again").cast("double").alias("label"),
                (F.col("cutoff_date") == F.lit(newest)).alias("is_validation"),
            )
        )

    return transform


def fit_behaviour(
    orders: DataFrame,
    features_at: Callable[[DataFrame], DataFrame],
    as_of: date,
    params: PropensityParams,
) -> PropensityModel | None:
    """The behavioural model (goal ``behaviour``), or None when the history is too short or thin.

    Needs at least two snapshots (one to train on, one to validate); they are dropped, oldest
    first, when they would start before the first purchase.
    """
    label_days = params.behaviour_label_days
    cutoffs = behaviour_cutoffs(as_of, label_days, params.behaviour_snapshots, params.behaviour_step_days)
    first = orders.where(F.col("status") == "completed").agg(F.min(F.to_date("order_ts")).alias("d")).first()["d"]
    if first is None:
        log.warning("behaviour: no completed orders; no behavioural model")
        return None
    cutoffs = [c for c in cutoffs if c > first]
    if len(cutoffs) < 2:
        log.warning(
            "behaviour: the orders (from %s) are too short a history for two %d-day snapshots %d days apart "
            "before %s; no behavioural model",
            first,
            label_days,
            params.behaviour_step_days,
            as_of,
        )
        return None
    label = behaviour_label(label_days)
    examples = orders.transform(repurchase_examples(cutoffs, label_days))
    labelled = examples.join(
        examples.select("customer_key", "cutoff_date").transform(features_at),
        on=["customer_key", "cutoff_date"],
        how="inner",
    )
    log.info(
        "behaviour: label %r at snapshots %s (validation: %s)", label, ", ".join(map(str, cutoffs[1:])), cutoffs[0]
    )
    model = fit_propensity(labelled, "behaviour", params, source="behaviour")
    if model is None:
        return None
    scale = params.fallback_response_rate / model.base_rate if model.base_rate > 0 else None
    return replace(model, label=label, scale=scale)
