"""Campaign plan: precision targeting beside blanket targeting and a random audience of the same size.

Per campaign three strategies:
- ``precision``: the selected treatment audience (ranked by expected profit, within budget);
- ``blanket``: every eligible customer (after suppressions), whatever the budget;
- ``random``: an audience of the precision size drawn uniformly from the eligible, in
  expectation: contacts x the blanket response rate.
Expected responses are sums of P(response); the expected margin is the sum of P(response) x the
customer's ``response_margin`` (the campaign's margin x their CLV factor, custseg.marketing.audience),
so ``margin_per_response`` of a strategy is that sum over its responses (the campaign's flat margin
where the scored rows carry none); then, for every strategy,
cost = contacts x cost per contact, response rate = responses / contacts,
revenue = responses x revenue_per_response, margin = responses x margin_per_response,
profit = margin - cost, ROI = profit / cost, cost per response = cost / responses.
The classic case: blanket 20,000 contacts at 5 (cost 100,000) with 474 responses (2.37%)
against 2,000 precise contacts at 12.5 (cost 25,000) with 222 responses (11.1%).
A campaign with designed arms (custseg.marketing.arms) adds one row per arm it contacts,
``blanket_arm`` and ``precise_arm``, with the arm's own cost per contact and its control in ``holdout``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.marketing.campaigns import Campaign

STRATEGIES = ("precision", "blanket", "random")
TOTALS_COLUMNS = [
    "campaign_id",
    "strategy",
    "contacts",
    "cost",
    "expected_responses",
    "revenue_per_response",
    "margin_per_response",
    "budget",
]
PLAN_METRICS = [
    "campaign_id",
    "strategy",
    "contacts",
    "cost_per_contact",
    "cost",
    "expected_responses",
    "response_rate",
    "revenue",
    "margin",
    "profit",
    "roi",
    "cost_per_response",
    "budget",
    "within_budget",
]
CAMPAIGN_SCHEMA = T.StructType(
    [
        T.StructField("campaign_id", T.StringType(), False),
        T.StructField("goal", T.StringType(), False),
        T.StructField("campaign_name", T.StringType(), True),
        T.StructField("channels", T.StringType(), False),
        T.StructField("cost_per_contact", T.DoubleType(), False),
        T.StructField("revenue_per_response", T.DoubleType(), False),
        T.StructField("margin_per_response", T.DoubleType(), False),
        T.StructField("budget", T.DoubleType(), False),
        T.StructField("holdout_share", T.DoubleType(), False),
        T.StructField("model", T.StringType(), True),
        T.StructField("auc_validation", T.DoubleType(), True),
        T.StructField("propensity_source", T.StringType(), True),
        T.StructField("propensity_label", T.StringType(), True),
        T.StructField("consent_basis", T.StringType(), True),
    ]
)
PLAN_COLUMNS = [
    "campaign_id",
    "goal",
    "campaign_name",
    "channels",
    "strategy",
    "contacts",
    "holdout",
    "cost_per_contact",
    "cost",
    "expected_responses",
    "response_rate",
    "revenue",
    "margin",
    "profit",
    "roi",
    "cost_per_response",
    "budget",
    "within_budget",
    "matching",
    "suppressed_contact",
    "suppressed_cap",
    "suppressed_complaint",
    "suppressed_consent",
    "eligible",
    "model",
    "auc_validation",
    "propensity_source",
    "propensity_label",
    "consent_basis",
]


def _safe_div(num, den):
    return F.when(den != 0, num / den)


def with_plan_metrics() -> Callable[[DataFrame], DataFrame]:
    """Strategy totals (``TOTALS_COLUMNS``) -> the plan's arithmetic (``PLAN_METRICS``).

    Ratios are null where their denominator is 0 (no contacts, no cost, no responses).
    """

    def transform(totals: DataFrame) -> DataFrame:
        contacts = F.col("contacts").cast("double")
        cost = F.col("cost").cast("double")
        responses = F.col("expected_responses").cast("double")
        margin = responses * F.col("margin_per_response")
        profit = margin - cost
        return totals.select(
            "campaign_id",
            "strategy",
            F.col("contacts").cast("long").alias("contacts"),
            _safe_div(cost, contacts).alias("cost_per_contact"),
            cost.alias("cost"),
            responses.alias("expected_responses"),
            _safe_div(responses, contacts).alias("response_rate"),
            (responses * F.col("revenue_per_response")).alias("revenue"),
            margin.alias("margin"),
            profit.alias("profit"),
            _safe_div(profit, cost).alias("roi"),
            _safe_div(cost, responses).alias("cost_per_response"),
            F.col("budget").cast("double").alias("budget"),
            (cost <= F.col("budget") + F.lit(1e-6)).alias("within_budget"),
        )

    return transform


def campaigns_frame(
    spark: SparkSession,
    campaigns: Sequence[Campaign],
    models: dict[str, tuple],
    consent_basis: str | None = None,
) -> DataFrame:
    """The campaigns' parameters as a small DataFrame.

    ``models``: goal -> (model name, AUC[, training source, label]); ``consent_basis``: where
    the consent came from (the policy, with the assumption spelt out when one is made).
    """

    def model_field(goal: str, i: int):
        m = models.get(goal, ())
        return m[i] if len(m) > i else None

    rows = [
        (
            c.id,
            c.goal,
            c.name,
            ",".join(c.channels),
            float(c.cost_per_contact),
            float(c.revenue_per_response),
            float(c.margin_per_response),
            float(c.budget),
            float(c.holdout_share),
            model_field(c.goal, 0),
            model_field(c.goal, 1),
            model_field(c.goal, 2),
            model_field(c.goal, 3),
            consent_basis,
        )
        for c in campaigns
    ]
    return spark.createDataFrame(rows, CAMPAIGN_SCHEMA)


def strategy_totals(scored: DataFrame, audience: DataFrame, params: DataFrame) -> DataFrame:
    """Per campaign and strategy: contacts, cost, expected responses (``TOTALS_COLUMNS`` + holdout).

    ``scored``: the eligible customers (after suppressions) with ``p_response``; ``audience``: the selected rows (treatment and control);
    ``params``: ``campaigns_frame``.
    """
    has_margin = "response_margin" in scored.columns
    value = F.col("p_response") * F.col("response_margin") if has_margin else F.lit(None).cast("double")
    blanket = scored.groupBy("campaign_id").agg(
        F.count("*").alias("b_contacts"), F.sum("p_response").alias("b_responses"), F.sum(value).alias("b_margin")
    )
    if "arm" in audience.columns:  # a designed blanket arm is no part of the precision audience
        audience = audience.where(F.coalesce(F.col("arm"), F.lit("precise")) == "precise")
    treat = F.col("group") == "treatment"
    if has_margin and "response_margin" not in audience.columns:
        margins = scored.select("campaign_id", "customer_key", "response_margin")
        audience = audience.join(margins, on=["campaign_id", "customer_key"], how="left")
    precise = audience.groupBy("campaign_id").agg(
        F.sum(F.when(treat, 1).otherwise(0)).alias("p_contacts"),
        F.sum(F.when(~treat, 1).otherwise(0)).alias("p_holdout"),
        F.sum(F.when(treat, F.col("p_response")).otherwise(0.0)).alias("p_responses"),
        F.sum(F.when(treat, value)).alias("p_margin"),
    )
    df = (
        params.join(blanket, on="campaign_id", how="left")
        .join(precise, on="campaign_id", how="left")
        .select(
            "campaign_id",
            "cost_per_contact",
            "revenue_per_response",
            "margin_per_response",
            "budget",
            F.coalesce("b_contacts", F.lit(0)).cast("long").alias("b_contacts"),
            F.coalesce("b_responses", F.lit(0.0)).alias("b_responses"),
            F.coalesce("p_contacts", F.lit(0)).cast("long").alias("p_contacts"),
            F.coalesce("p_holdout", F.lit(0)).cast("long").alias("p_holdout"),
            F.coalesce("p_responses", F.lit(0.0)).alias("p_responses"),
            "b_margin",
            "p_margin",
        )
    )
    blanket_rate = F.coalesce(_safe_div(F.col("b_responses"), F.col("b_contacts")), F.lit(0.0))
    flat = F.col("margin_per_response")
    # The response-weighted mean margin; a random audience answers like the blanket one.
    blanket_margin = F.coalesce(_safe_div(F.col("b_margin"), F.col("b_responses")), flat)
    per_strategy = {
        "precision": (
            F.col("p_contacts"),
            F.col("p_responses"),
            F.col("p_holdout"),
            F.coalesce(_safe_div(F.col("p_margin"), F.col("p_responses")), flat),
        ),
        "blanket": (F.col("b_contacts"), F.col("b_responses"), F.lit(0).cast("long"), blanket_margin),
        "random": (F.col("p_contacts"), F.col("p_contacts") * blanket_rate, F.lit(0).cast("long"), blanket_margin),
    }
    parts = [
        df.select(
            "campaign_id",
            F.lit(name).alias("strategy"),
            contacts.alias("contacts"),
            (contacts * F.col("cost_per_contact")).alias("cost"),
            responses.cast("double").alias("expected_responses"),
            "revenue_per_response",
            margin.cast("double").alias("margin_per_response"),
            "budget",
            holdout.alias("holdout"),
        )
        for name, (contacts, responses, holdout, margin) in per_strategy.items()
    ]
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out.select(*TOTALS_COLUMNS, "holdout")


def suppression_counts(flagged: DataFrame) -> DataFrame:
    """Per campaign: customers matching eligibility, how many each suppression removed, eligible."""
    n = lambda c: F.sum(F.col(c).cast("int")).cast("long").alias(c)  # noqa: E731
    return flagged.groupBy("campaign_id").agg(
        F.count("*").alias("matching"),
        n("suppressed_contact"),
        n("suppressed_cap"),
        n("suppressed_complaint"),
        n("suppressed_consent"),
        n("eligible"),
    )


def campaign_plan(
    flagged: DataFrame,
    scored: DataFrame,
    audience: DataFrame,
    params: DataFrame,
    arm_totals: DataFrame | None = None,
) -> DataFrame:
    """The ``campaign_plan`` rows (``PLAN_COLUMNS``): three strategies per campaign with their arithmetic,
    plus the designed arms' rows when ``arm_totals`` (``arms.arm_totals``) is given."""
    totals = strategy_totals(scored, audience, params)
    if arm_totals is not None:
        totals = totals.unionByName(arm_totals.select(*TOTALS_COLUMNS, "holdout"))
    metrics = totals.transform(with_plan_metrics())
    counts = suppression_counts(flagged)
    zero = F.lit(0).cast("long")
    out = (
        metrics.join(totals.select("campaign_id", "strategy", "holdout"), on=["campaign_id", "strategy"], how="inner")
        .join(
            params.select(
                "campaign_id",
                "goal",
                "campaign_name",
                "channels",
                "model",
                "auc_validation",
                "propensity_source",
                "propensity_label",
                "consent_basis",
            ),
            on="campaign_id",
            how="inner",
        )
        .join(counts, on="campaign_id", how="left")
    )
    for c in (
        "matching",
        "suppressed_contact",
        "suppressed_cap",
        "suppressed_complaint",
        "suppressed_consent",
        "eligible",
    ):
        out = out.withColumn(c, F.coalesce(F.col(c), zero))
    return out.select(*PLAN_COLUMNS)
