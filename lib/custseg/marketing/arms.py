"""Designed arms: a blanket arm beside the precise arm, each with its control (textbook table 9.1).

The textbook compares blanket marketing (20,000 contacts at 5, 474 responses) with precision
marketing (2,000 contacts at 12.5, 222 responses), 210 revenue per response, and reads the
return as revenue / cost: 99,540 / 100,000 = 99% against 46,620 / 25,000 = 186%. Run as an
experiment, one campaign contacts both audiences in the same period:
- ``blanket``: a random sample of the eligible (after suppressions), drawn by a stable hash of
  (customer_key, campaign_id, salt, 'blanket'), so a rerun draws the same sample; ``size``
  contacts (customers taken in hash order) or a ``fraction`` of the eligible;
- ``precise``: the model-chosen audience (ranked by expected profit within budget), chosen from
  the eligible left after the blanket draw, so no customer is in both arms;
- control: the campaign's hash holdout applies inside both arms, so each contacted arm has a
  control drawn exactly like it and its lift is measured against that control.

Responses come back with the campaign id and the customer; ``with_arm`` gives each response the
arm (and the cost per contact) of the audience row it was sent from: the campaign's latest
``gold.campaign_audiences`` snapshot up to the send date.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from custseg.marketing.audience import AUDIENCE_COLUMNS
from custseg.marketing.campaigns import Campaign
from custseg.marketing.plan import TOTALS_COLUMNS
from custseg.marketing.propensity import stable_bucket

ARMS = ("precise", "blanket")
ARM_AUDIENCE_COLUMNS = [*AUDIENCE_COLUMNS, "arm"]


def _blanket_digest(salt: str) -> Column:
    return F.sha2(F.concat_ws("|", F.col("customer_key"), F.col("campaign_id"), F.lit(salt), F.lit("blanket")), 256)


def blanket_arm(campaign: Campaign, salt: str) -> Callable[[DataFrame], DataFrame]:
    """Scored eligible rows of one campaign (``audience.score_campaign``) -> its blanket arm (``ARM_AUDIENCE_COLUMNS``).

    Customers are ordered by the hash, which is a uniformly random order fixed per campaign;
    with ``size`` the rows are taken while the treatment count stays within it (control rows
    by the same rule, so the control covers the same draw), with ``fraction`` every customer
    whose hash bucket falls under it. ``rank`` is the position in the hash order; every
    customer is taken whatever the model thinks of them (that is what blanket means).
    """
    arms = campaign.arms

    def transform(scored: DataFrame) -> DataFrame:
        if arms is None or not arms.has_blanket:
            raise ValueError(f"campaign {campaign.id} declares no blanket arm (arms.blanket.size or fraction)")
        cost = F.lit(float(arms.blanket_cost_per_contact))
        # The customer's response value where scoring gave one (CLV-weighted), else the flat margin.
        margin = (
            F.col("response_margin") if "response_margin" in scored.columns else F.lit(campaign.margin_per_response)
        )
        rows = scored.where(F.col("campaign_id") == F.lit(campaign.id))
        if arms.blanket_size <= 0:
            bucket = stable_bucket(F.col("customer_key"), F.col("campaign_id"), F.lit(salt), F.lit("blanket"))
            rows = rows.where(bucket < F.lit(int(round(arms.blanket_fraction * 10000))))
        w = Window.partitionBy("campaign_id").orderBy(_blanket_digest(salt), F.col("customer_key"))
        ranked = rows.withColumn("rank", F.row_number().over(w))
        if arms.blanket_size > 0:
            before = w.rowsBetween(Window.unboundedPreceding, -1)
            prior_n = F.coalesce(F.sum(F.when(F.col("group") == "treatment", 1).otherwise(0)).over(before), F.lit(0))
            ranked = ranked.withColumn("_prior", prior_n).where(F.col("_prior") + 1 <= F.lit(int(arms.blanket_size)))
        return ranked.select(
            "campaign_id",
            "goal",
            "customer_key",
            "group",
            "channel",
            "rank",
            "p_response",
            (F.col("p_response") * margin - cost).alias("expected_profit"),
            cost.alias("contact_cost"),
            F.lit("blanket").alias("arm"),
        )

    return transform


def without(taken: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Scored rows minus the (campaign_id, customer_key) pairs already in an arm."""

    def transform(scored: DataFrame) -> DataFrame:
        return scored.join(
            taken.select("campaign_id", "customer_key"), on=["campaign_id", "customer_key"], how="left_anti"
        )

    return transform


def arm_totals(audience: DataFrame, params: DataFrame, campaign_ids: Sequence[str]) -> DataFrame:
    """Per campaign with arms and per arm, the plan's totals (``TOTALS_COLUMNS`` + holdout), strategy ``<arm>_arm``.

    Predictions from the audience the stage selected: contacts and cost of the arm's treatment
    rows (at the arm's own cost per contact), expected responses = sum of P(response), holdout =
    the arm's control rows. The budget binds the precise arm only (null on the blanket arm).
    """
    treat = F.col("group") == "treatment"
    sums = (
        audience.where(F.col("campaign_id").isin(list(campaign_ids)) & F.col("arm").isin(*ARMS))
        .groupBy("campaign_id", "arm")
        .agg(
            F.sum(F.when(treat, 1).otherwise(0)).cast("long").alias("contacts"),
            F.sum(F.when(~treat, 1).otherwise(0)).cast("long").alias("holdout"),
            F.sum(F.when(treat, F.col("contact_cost")).otherwise(0.0)).cast("double").alias("cost"),
            F.sum(F.when(treat, F.coalesce(F.col("p_response"), F.lit(0.0))).otherwise(0.0))
            .cast("double")
            .alias("expected_responses"),
        )
    )
    return (
        sums.join(
            params.select("campaign_id", "revenue_per_response", "margin_per_response", "budget"),
            on="campaign_id",
            how="inner",
        )
        .select(
            "campaign_id",
            F.concat(F.col("arm"), F.lit("_arm")).alias("strategy"),
            "contacts",
            "cost",
            "expected_responses",
            "revenue_per_response",
            "margin_per_response",
            F.when(F.col("arm") == "precise", F.col("budget")).cast("double").alias("budget"),
            "holdout",
        )
        .select(*TOTALS_COLUMNS, "holdout")
    )


def with_arm(audiences: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Responses -> the same rows plus ``arm`` from the audience they were sent from (null: not planned here).

    The audience row is the campaign's latest ``gold.campaign_audiences`` snapshot on or
    before the send date that holds the customer; responses of campaigns planned elsewhere
    (or before arms existed) keep a null arm.
    """

    def transform(responses: DataFrame) -> DataFrame:
        planned = audiences.select(
            F.col("campaign_id").alias("_cid"),
            F.col("customer_key").alias("_ck"),
            F.col("snapshot_date").alias("_planned"),
            (F.col("arm") if "arm" in audiences.columns else F.lit("precise")).alias("_arm"),
        )
        rid = responses.withColumn("_rid", F.monotonically_increasing_id())
        cond = (
            (F.col("campaign_id") == F.col("_cid"))
            & (F.col("customer_key") == F.col("_ck"))
            & (F.col("_planned") <= F.to_date("sent_ts"))
        )
        w = Window.partitionBy("_rid").orderBy(F.col("_planned").desc_nulls_last())
        return (
            rid.join(planned, on=cond, how="left")
            .withColumn("_k", F.row_number().over(w))
            .where(F.col("_k") == 1)
            .select(*responses.columns, F.col("_arm").alias("arm"))
        )

    return transform


def arm_costs(campaigns: Sequence[Campaign]) -> Mapping[tuple[str, str], float]:
    """(campaign id, arm) -> cost per contact, for every campaign (the precise arm at the campaign's cost)."""
    out: dict[tuple[str, str], float] = {}
    for c in campaigns:
        out[(c.id, "precise")] = float(c.cost_per_contact)
        if c.arms is not None and c.arms.has_blanket:
            out[(c.id, "blanket")] = float(c.arms.blanket_cost_per_contact)
    return out
