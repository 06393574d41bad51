"""Audiences: eligibility, suppressions, offers, expected profit, a stable holdout, the budget cut.

For each campaign: customers matching its eligibility, minus those suppressed (contacted
recently, over the frequency cap, complained, no consent on any of its channels), each
assigned the first of the campaign's channels they consented to, scored with
expected profit = P(response) x margin_per_response x clv_factor - cost_per_contact, ranked by it, and
taken in rank order while the contact cost of the treatment group stays within budget
(customers with expected profit <= 0 are never taken). The holdout is decided by a
stable hash of (customer_key, campaign_id, salt) before the cut, so the control group is
a random slice of the same ranked audience and a rerun gives the same control group.

``clv_factor`` (``with_clv_factor``) values a response by who answers: the customer's CLV over
the mean CLV of the base, clamped to [min_factor, max_factor], so a retained high-value customer
is worth more than a one-off buyer at the same response probability; a customer without a CLV
(or ``marketing.clv_value.enabled: false``) counts at factor 1, the campaign's flat margin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from custseg.config import Config, validator
from custseg.marketing.campaigns import CHANNEL_CONSENT, Campaign, Eligibility, FeatureFilter, Offer
from custseg.marketing.propensity import stable_bucket

# Columns the base carries beside the feature columns (null when an input lacks them).
BASE_COLUMNS: dict[str, T.DataType] = {
    "customer_key": T.StringType(),
    "rfm_segment": T.StringType(),
    "segment_id": T.IntegerType(),
    "segment_name": T.StringType(),
    "value_class": T.StringType(),
    "clv": T.DoubleType(),
    "preferred_category": T.StringType(),
    "weekday_lunch_share": T.DoubleType(),
    "weekday_evening_share": T.DoubleType(),
    "weekend_share": T.DoubleType(),
    "cross_sell_item": T.StringType(),
    "reco_item": T.StringType(),
    "opt_in_email": T.BooleanType(),
    "opt_in_sms": T.BooleanType(),
    "opt_in_ads": T.BooleanType(),
    "email_key": T.StringType(),
    "phone_key": T.StringType(),
    "email_sha256": T.StringType(),
    "phone_sha256": T.StringType(),
    "city": T.StringType(),
    "region": T.StringType(),
    "age_band": T.StringType(),
    "member_tier": T.StringType(),
}
FLAG_COLUMNS = [
    "campaign_id",
    "customer_key",
    "channel",
    "suppressed_contact",
    "suppressed_cap",
    "suppressed_complaint",
    "suppressed_consent",
    "eligible",
    "p_response",
    "clv_factor",
]
SCORED_COLUMNS = [
    "campaign_id",
    "goal",
    "customer_key",
    "channel",
    "p_response",
    "contact_cost",
    "expected_profit",
    "group",
    "budget",
    "max_contacts",
    "response_margin",
]
AUDIENCE_COLUMNS = [
    "campaign_id",
    "goal",
    "customer_key",
    "group",
    "channel",
    "rank",
    "p_response",
    "expected_profit",
    "contact_cost",
]
OFFER_COLUMNS = [
    "customer_key",
    "offer_type",
    "offer_category",
    "offer_item",
    "offer_discount",
    "offer_daypart",
    "offer_valid_from",
    "offer_valid_until",
]


@dataclass(frozen=True)
class ClvValue:
    """``marketing.clv_value``: how a customer's CLV scales the margin of their response."""

    enabled: bool = True
    min_factor: float = 0.25
    max_factor: float = 4.0

    @classmethod
    def from_config(cls, conf: Config) -> ClvValue:
        d, p = cls(), "marketing.clv_value."
        enabled = conf.get_path(p + "enabled", d.enabled)
        if not isinstance(enabled, bool):
            raise conf.error(p + "enabled", f"must be true or false; got {enabled!r}")
        lo, hi = conf.get_path(p + "min_factor", d.min_factor), conf.get_path(p + "max_factor", d.max_factor)
        for key, v in (("min_factor", lo), ("max_factor", hi)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise conf.error(p + key, f"must be a number > 0; got {v!r}")
        if lo > hi:
            raise conf.error(p + "min_factor", f"({lo}) cannot exceed {p}max_factor ({hi})")
        return cls(enabled, float(lo), float(hi))


@validator
def _check_clv_value(conf: Config) -> None:
    if conf.get_path("marketing", None) is not None:
        ClvValue.from_config(conf)


def with_clv_factor(settings: ClvValue) -> Callable[[DataFrame], DataFrame]:
    """Adds ``clv_factor`` = clv / mean clv of the base, clamped; 1.0 without a CLV, a positive mean or when off.

    The mean is one aggregate joined back (broadcast), not a window over every customer.
    """

    def transform(base: DataFrame) -> DataFrame:
        if not settings.enabled or "clv" not in base.columns:
            return base.withColumn("clv_factor", F.lit(1.0))
        mean = base.agg(F.avg(F.col("clv").cast("double")).alias("_mean_clv"))
        raw = F.col("clv").cast("double") / F.col("_mean_clv")
        clamped = F.least(F.greatest(raw, F.lit(settings.min_factor)), F.lit(settings.max_factor))
        # greatest/least skip nulls: without the guard a missing CLV would become min_factor.
        factor = F.when(F.col("clv").isNotNull() & (F.col("_mean_clv") > 0), clamped)
        return (
            base.crossJoin(F.broadcast(mean)).withColumn("clv_factor", F.coalesce(factor, F.lit(1.0))).drop("_mean_clv")
        )

    return transform


def col_or_null(df: DataFrame, name: str, dtype: T.DataType) -> Column:
    """The column cast to ``dtype``, or a typed null when an optional input lacks it."""
    return F.col(name).cast(dtype) if name in df.columns else F.lit(None).cast(dtype)


def customer_base(
    customers: DataFrame,
    segments: DataFrame | None = None,
    cross_sell: DataFrame | None = None,
    recommendations: DataFrame | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """Features of one snapshot -> one row per customer with segments, offer inputs, consent and hashes.

    ``segments`` is ``gold.customer_segments`` of one snapshot; ``cross_sell`` and
    ``recommendations`` (``gold.cross_sell``, ``gold.recommendations``: ALS, else the
    segment's popular items) give the customer's top (rank 1) item as ``cross_sell_item``
    and ``reco_item``; any of them may be None. Every feature column is kept so campaign
    filters can use any of them.
    """

    def transform(features: DataFrame) -> DataFrame:
        df = features.drop("snapshot_date")
        if segments is not None:
            seg_cols = [
                c
                for c in ("segment_id", "segment_name", "value_class", "churn_risk", "clv")
                if c in segments.columns and c not in df.columns
            ]
            df = df.join(segments.select("customer_key", *seg_cols), on="customer_key", how="left")
        if cross_sell is not None:
            top = cross_sell.where(F.col("rank") == 1).select(
                "customer_key", F.col("item").cast("string").alias("cross_sell_item")
            )
            df = df.join(top.dropDuplicates(["customer_key"]), on="customer_key", how="left")
        if recommendations is not None:
            top = recommendations.where(F.col("rank") == 1).select(
                "customer_key", F.col("item").cast("string").alias("reco_item")
            )
            df = df.join(top.dropDuplicates(["customer_key"]), on="customer_key", how="left")
        cust_cols = [c for c in BASE_COLUMNS if c in customers.columns and c != "customer_key" and c not in df.columns]
        df = df.join(customers.select("customer_key", *cust_cols), on="customer_key", how="left")
        extra = [c for c in df.columns if c not in BASE_COLUMNS]
        return df.select(*[col_or_null(df, c, t).alias(c) for c, t in BASE_COLUMNS.items()], *extra)

    return transform


def contact_history(as_of: date, windows: Sequence[int]) -> Callable[[DataFrame], DataFrame]:
    """campaign_responses -> customer_key, last_contact_date, contacts_<d>d for each window.

    Only treatment sends are contacts (the control group was never messaged).
    """

    def transform(responses: DataFrame) -> DataFrame:
        sent = F.to_date("sent_ts")
        sends = responses.where(
            (F.col("group") == "treatment") & F.col("customer_key").isNotNull() & (sent <= F.lit(as_of))
        )
        counts = [
            F.sum(F.when(sent > F.lit(as_of - timedelta(days=d)), 1).otherwise(0)).cast("int").alias(f"contacts_{d}d")
            for d in sorted(set(windows))
        ]
        return (
            sends.groupBy("customer_key")
            .agg(F.max(sent).alias("last_contact_date"), *counts)
            .select("customer_key", "last_contact_date", *[f"contacts_{d}d" for d in sorted(set(windows))])
        )

    return transform


def complaint_history(as_of: date) -> Callable[[DataFrame], DataFrame]:
    """silver.feedback -> customer_key, last_complaint_date (complaints up to the snapshot)."""

    def transform(feedback: DataFrame) -> DataFrame:
        day = F.to_date("ts")
        return (
            feedback.where(F.col("is_complaint") & F.col("customer_key").isNotNull() & (day <= F.lit(as_of)))
            .groupBy("customer_key")
            .agg(F.max(day).alias("last_complaint_date"))
            .select("customer_key", "last_complaint_date")
        )

    return transform


def with_history(
    contacts: DataFrame | None, complaints: DataFrame | None, windows: Sequence[int]
) -> Callable[[DataFrame], DataFrame]:
    """Adds last_contact_date, contacts_<d>d and last_complaint_date to the base (zeros/nulls when absent)."""

    def transform(base: DataFrame) -> DataFrame:
        df = base
        cols = [f"contacts_{d}d" for d in sorted(set(windows))]
        if contacts is not None:
            df = df.join(contacts, on="customer_key", how="left")
        else:
            df = df.withColumn("last_contact_date", F.lit(None).cast("date"))
        for c in cols:
            df = df.withColumn(c, F.coalesce(F.col(c), F.lit(0)) if c in df.columns else F.lit(0))
        if complaints is not None:
            df = df.join(complaints, on="customer_key", how="left")
        else:
            df = df.withColumn("last_complaint_date", F.lit(None).cast("date"))
        return df.select(*base.columns, "last_contact_date", *cols, "last_complaint_date")

    return transform


def filter_expr(f: FeatureFilter) -> Column:
    c = F.col(f.column)
    ops = {
        "<": lambda: c < F.lit(f.value),
        "<=": lambda: c <= F.lit(f.value),
        ">": lambda: c > F.lit(f.value),
        ">=": lambda: c >= F.lit(f.value),
        "==": lambda: c == F.lit(f.value),
        "!=": lambda: c != F.lit(f.value),
        "in": lambda: c.isin(list(f.value)),
        "not_in": lambda: ~c.isin(list(f.value)),
        "between": lambda: c.between(f.value[0], f.value[1]),
        "is_null": lambda: c.isNull(),
        "not_null": lambda: c.isNotNull(),
    }
    return ops[f.op]()


def eligibility_expr(e: Eligibility, columns: Sequence[str], campaign_id: str = "") -> Column:
    """True where every condition holds; null comparisons count as false (never eligible by accident)."""
    missing = sorted({f.column for f in e.filters} - set(columns))
    if missing:
        raise ValueError(
            f"campaign {campaign_id}: eligibility filters use column(s) {missing} that the customer base "
            f"does not have (gold.customer_features / customer_segments columns)"
        )
    cond = F.lit(True)
    for values, col in (
        (e.segments, "segment_name"),
        (e.rfm_segments, "rfm_segment"),
        (e.value_classes, "value_class"),
    ):
        if values:
            cond = cond & F.col(col).isin(list(values))
    for f in e.filters:
        cond = cond & filter_expr(f)
    return F.coalesce(cond, F.lit(False))


def reachable(channel: str, by_key: bool = False) -> Column:
    """Consent given and an identifier to reach the customer on that channel.

    ``by_key``: the base has ``reach_by_key`` (custseg.marketing.consent): where it is true,
    the customer key is enough for e-mail and SMS (the retailer's CRM resolves it to an
    address); ads always need a hashed address, since the ad platform cannot resolve our key.
    """
    ident = {
        "email": F.col("email_key").isNotNull(),
        "sms": F.col("phone_key").isNotNull(),
        "ads": F.col("email_sha256").isNotNull() | F.col("phone_sha256").isNotNull(),
    }[channel]
    if by_key and channel in ("email", "sms"):
        ident = ident | (F.coalesce(F.col("reach_by_key"), F.lit(False)) & F.col("customer_key").isNotNull())
    return F.coalesce(F.col(CHANNEL_CONSENT[channel]), F.lit(False)) & ident


def assigned_channel(channels: Sequence[str], by_key: bool = False) -> Column:
    """The first channel of the campaign's list the customer consented to (null: none)."""
    expr = None
    for ch in channels:
        ok = reachable(ch, by_key)
        expr = F.when(ok, F.lit(ch)) if expr is None else expr.when(ok, F.lit(ch))
    return expr


def flag_campaign(campaign: Campaign, as_of: date, p_col: str | None = None) -> Callable[[DataFrame], DataFrame]:
    """Base with history -> the customers matching eligibility, with suppression flags and a channel.

    Suppression reasons are kept as separate flags (a customer may have several) so the
    plan can report how many each one removed; ``eligible`` is true when none applies.
    ``p_col`` (the goal's propensity column of the base) comes along as ``p_response``.
    """

    def transform(base: DataFrame) -> DataFrame:
        s, cap = campaign.suppression, campaign.frequency_cap
        recent = (
            F.col("last_contact_date") > F.lit(as_of - timedelta(days=s.contacted_within_days))
            if s.contacted_within_days > 0
            else F.lit(False)
        )
        over_cap = F.col(f"contacts_{cap.days}d") >= F.lit(cap.max_contacts)
        complained = (
            F.col("last_complaint_date") > F.lit(as_of - timedelta(days=s.complaint_lookback_days))
            if s.complained
            else F.lit(False)
        )
        channel = assigned_channel(campaign.channels, by_key="reach_by_key" in base.columns)
        flags = (
            base.where(eligibility_expr(campaign.eligibility, base.columns, campaign.id))
            .withColumn("channel", channel)
            .withColumn("suppressed_contact", F.coalesce(recent, F.lit(False)))
            .withColumn("suppressed_cap", F.coalesce(over_cap, F.lit(False)))
            .withColumn("suppressed_complaint", F.coalesce(complained, F.lit(False)))
            .withColumn("suppressed_consent", F.col("channel").isNull())
        )
        any_flag = (
            F.col("suppressed_contact")
            | F.col("suppressed_cap")
            | F.col("suppressed_complaint")
            | F.col("suppressed_consent")
        )
        p = F.col(p_col).cast("double") if p_col else F.lit(None).cast("double")
        return flags.select(
            F.lit(campaign.id).alias("campaign_id"),
            *FLAG_COLUMNS[1:-3],
            (~any_flag).alias("eligible"),
            p.alias("p_response"),
            F.coalesce(col_or_null(flags, "clv_factor", T.DoubleType()), F.lit(1.0)).alias("clv_factor"),
        )

    return transform


def holdout_group(campaign_id: Column | str, share: Column | float, salt: str) -> Column:
    """'control' when sha2(customer_key|campaign_id|salt) mod 10000 < share x 10000, else 'treatment'."""
    cid = F.col(campaign_id) if isinstance(campaign_id, str) else campaign_id
    share_col = share if isinstance(share, Column) else F.lit(float(share))
    bucket = stable_bucket(F.col("customer_key"), cid, F.lit(salt))
    return F.when(bucket < F.round(share_col * 10000), F.lit("control")).otherwise(F.lit("treatment"))


def score_campaign(campaign: Campaign, salt: str) -> Callable[[DataFrame], DataFrame]:
    """Eligible flagged rows (with ``p_response``) -> expected profit, holdout group and the budget terms.

    ``response_margin`` = margin_per_response x clv_factor (1 where the flagged rows have none, or
    the campaign says ``response_value: flat``): the value of this customer's response, so
    expected profit = p x response_margin - cost.
    """

    def transform(flagged: DataFrame) -> DataFrame:
        p = F.coalesce(F.col("p_response").cast("double"), F.lit(0.0))
        cost = F.lit(float(campaign.cost_per_contact))
        factor = (
            F.coalesce(col_or_null(flagged, "clv_factor", T.DoubleType()), F.lit(1.0))
            if campaign.response_value == "clv"
            else F.lit(1.0)
        )
        margin = F.lit(float(campaign.margin_per_response)) * factor
        return flagged.where(F.col("eligible")).select(
            "campaign_id",
            F.lit(campaign.goal).alias("goal"),
            "customer_key",
            "channel",
            p.alias("p_response"),
            cost.alias("contact_cost"),
            (p * margin - cost).alias("expected_profit"),
            holdout_group(F.lit(campaign.id), campaign.holdout_share, salt).alias("group"),
            F.lit(float(campaign.budget)).alias("budget"),
            F.lit(int(campaign.max_contacts)).alias("max_contacts"),
            margin.alias("response_margin"),
        )

    return transform


def arbitrate(max_per_customer: int) -> Callable[[DataFrame], DataFrame]:
    """Across campaigns: keep a customer's ``max_per_customer`` most profitable ones (0: all).

    Only customers with positive expected profit compete; ties go to the campaign id first
    in sort order, so the outcome is deterministic.
    """

    def transform(scored: DataFrame) -> DataFrame:
        positive = scored.where(F.col("expected_profit") > 0)
        # response_margin is optional (scored frames built before CLV valuation lack it)
        cols = [c for c in SCORED_COLUMNS if c in scored.columns]
        if max_per_customer <= 0:
            return positive.select(*cols)
        w = Window.partitionBy("customer_key").orderBy(F.col("expected_profit").desc(), F.col("campaign_id"))
        return positive.withColumn("_k", F.row_number().over(w)).where(F.col("_k") <= max_per_customer).select(*cols)

    return transform


def select_under_budget(scored: DataFrame) -> DataFrame:
    """Rank by expected profit within each campaign; take rows while treatment cost fits the budget.

    A row is taken when the treatment cost of the rows ranked above it plus its own
    contact cost is within ``budget`` (and, with ``max_contacts`` > 0, the treatment count
    too). Control rows cost nothing but are taken by the same rule, so the control group
    covers exactly the ranks the treatment group covers.
    """
    w = Window.partitionBy("campaign_id").orderBy(F.col("expected_profit").desc(), F.col("customer_key"))
    before = w.rowsBetween(Window.unboundedPreceding, -1)
    is_treat = F.col("group") == "treatment"
    prior_cost = F.coalesce(F.sum(F.when(is_treat, F.col("contact_cost")).otherwise(0.0)).over(before), F.lit(0.0))
    prior_n = F.coalesce(F.sum(F.when(is_treat, 1).otherwise(0)).over(before), F.lit(0))
    # A small tolerance so a budget of exactly N x cost admits N contacts despite float sums.
    fits = prior_cost + F.col("contact_cost") <= F.col("budget") + F.lit(1e-9)
    under_cap = (F.col("max_contacts") == 0) | (prior_n + 1 <= F.col("max_contacts"))
    return (
        scored.where(F.col("expected_profit") > 0)
        .withColumn("rank", F.row_number().over(w))
        .withColumn("_take", fits & under_cap)
        .where(F.col("_take"))
        .select(*AUDIENCE_COLUMNS)
    )


def _preferred_daypart(min_share: float) -> Column:
    shares = [
        ("weekday_lunch", "weekday_lunch_share"),
        ("weekday_evening", "weekday_evening_share"),
        ("weekend", "weekend_share"),
    ]
    best = F.greatest(*[F.coalesce(F.col(c), F.lit(0.0)) for _, c in shares])
    expr = F.when(best < F.lit(min_share), F.lit("any"))
    for name, c in shares:
        expr = expr.when(F.coalesce(F.col(c), F.lit(0.0)) == best, F.lit(name))
    return expr.otherwise(F.lit("any"))


def offer_columns(
    offer: Offer,
    as_of: date,
    daypart_min_share: float = 0.3,
    strategy: DataFrame | None = None,
    segment_col: str = "segment_name",
) -> Callable[[DataFrame], DataFrame]:
    """Base -> the personal offer: category (preferred or fixed), cross-sell item, day-part, validity.

    E.g. a 15% coupon on the customer's preferred category, valid at weekday lunch for two
    weeks; a cross-sell offer names the customer's top item from ``gold.cross_sell``, else their
    top recommendation from ``gold.recommendations``.

    ``strategy`` (``offers: from_strategy``; custseg.marketing.strategy.strategy_offers: segment_name,
    strategy_offer_type, strategy_discount): the type and discount come from the row of the
    customer's segment (``segment_col`` of the base; ``unsegmented`` where null); a customer whose
    segment has no row keeps ``offer``'s.
    """

    def transform(base: DataFrame) -> DataFrame:
        offer_type, discount = F.lit(offer.type), F.lit(float(offer.discount))
        if strategy is not None:
            rows = strategy.select(
                F.col("segment_name").alias("_strategy_segment"), "strategy_offer_type", "strategy_discount"
            )
            # null segment: the strategy's "unsegmented" row (custseg.marketing.strategy.UNSEGMENTED)
            seg = F.coalesce(col_or_null(base, segment_col, T.StringType()), F.lit("unsegmented"))
            base = base.join(F.broadcast(rows), seg == F.col("_strategy_segment"), how="left")
            offer_type = F.coalesce(F.col("strategy_offer_type"), offer_type)
            discount = F.coalesce(F.col("strategy_discount").cast("double"), discount)
        fallback = F.lit(offer.fallback_category).cast("string")
        category = (
            F.coalesce(F.col("preferred_category"), fallback)
            if offer.category == "preferred"
            else F.lit(offer.category)
        )
        # A rule-based cross-sell item first (it says why: "bought X, often buy Y"); without
        # one, the customer's top recommendation, so no cross-sell offer goes out empty.
        item = F.when(
            offer_type == F.lit("cross_sell"),
            F.coalesce(
                col_or_null(base, "cross_sell_item", T.StringType()), col_or_null(base, "reco_item", T.StringType())
            ),
        )
        daypart = _preferred_daypart(daypart_min_share) if offer.daypart == "preferred" else F.lit(offer.daypart)
        return base.select(
            "customer_key",
            offer_type.cast("string").alias("offer_type"),
            category.cast("string").alias("offer_category"),
            item.cast("string").alias("offer_item"),
            discount.alias("offer_discount"),
            daypart.alias("offer_daypart"),
            F.lit(as_of + timedelta(days=1)).alias("offer_valid_from"),
            F.lit(as_of + timedelta(days=offer.valid_days)).alias("offer_valid_until"),
        )

    return transform


def seed_audience(campaign: Campaign) -> Callable[[DataFrame], DataFrame]:
    """Look-alike seed: the campaign's best customers (seed eligibility, by CLV then monetary), ads-consented.

    Bounded by ``seed_max_size`` rows (a top-N, the size an ad platform wants for a seed).
    """

    def transform(base: DataFrame) -> DataFrame:
        if campaign.seed is None:
            return base.limit(0).select("customer_key", "email_sha256", "phone_sha256")
        value = [F.col(c).desc_nulls_last() for c in ("clv", "monetary") if c in base.columns]
        return (
            base.where(eligibility_expr(campaign.seed, base.columns, campaign.id) & reachable("ads"))
            .orderBy(*value, F.col("customer_key"))
            .limit(campaign.seed_max_size)
            .select("customer_key", "email_sha256", "phone_sha256")
        )

    return transform
