"""A/B/n offer tests: variants assigned by hash, power before the send, corrected lift after it.

Assignment. A campaign's ``variants`` (campaigns.yaml) split its treated customers by
``stable_bucket(customer_key, campaign_id, 'variant', salt)``, 0..9999, cut at the cumulative
weights. The holdout draws on ``stable_bucket(customer_key, campaign_id, salt)``: a different
hash input, so the variant a customer would get is independent of whether it is held out, and
every variant is compared with the same control group. The same customer keeps its variant on
every rerun and every engine.

Power (``with_power``, in gold.campaign_plan). For each plan row, the smallest lift the test can
detect: with the smallest variant's share n_v of the contacts, the control n_c and the expected
response rate p,

    mde_abs = (z(1 - alpha / (2 m)) + z(power)) * sqrt(p (1 - p) (1 / n_v + 1 / n_c))

where m is the number of variants (the Bonferroni level, the first step of Holm's procedure:
the bar the best variant must clear). ``mde_rel = mde_abs / p``; the row is ``underpowered``
when it cannot detect ``marketing.testing.target_lift`` (relative) or has no control.

Results (``variant_results``, gold.variant_results). Responses as known at the run date
(evaluate.known_by) get the variant recorded in gold.campaign_audiences for their campaign and
customer (the latest assignment up to the run date; treated customers no plan assigned, e.g. a
campaign sent before variants existed, count under ``default``). Each variant is tested against
the campaign's control with evaluate.two_proportion_test, per campaign and per segment. The
p-values of one campaign (every variant, overall and in every segment) are one family, adjusted
with Holm's step-down (family-wise error) or Benjamini-Hochberg (false discovery rate), as
``marketing.testing.correction`` says. ``significant`` reads the adjusted p-value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy import stats

from custseg.config import Config, validator
from custseg.marketing.campaigns import Campaign
from custseg.marketing.evaluate import two_proportion_test
from custseg.marketing.propensity import stable_bucket

CORRECTIONS = ("holm", "bh")
DEFAULT_VARIANT = "default"  # treated customers of a campaign without variants
POWER_COLUMNS = ["variants", "mde_abs", "mde_rel", "underpowered"]
VARIANT_RESULTS_SCHEMA = T.StructType(
    [
        T.StructField("campaign_id", T.StringType(), False),
        T.StructField("level", T.StringType(), False),  # campaign | segment
        T.StructField("segment", T.StringType(), True),
        T.StructField("variant", T.StringType(), False),
        T.StructField("n_variant", T.LongType(), False),
        T.StructField("n_control", T.LongType(), False),
        T.StructField("conversions_variant", T.LongType(), False),
        T.StructField("conversions_control", T.LongType(), False),
        T.StructField("rate_variant", T.DoubleType(), True),
        T.StructField("rate_control", T.DoubleType(), True),
        T.StructField("lift_abs", T.DoubleType(), True),
        T.StructField("lift_abs_ci_low", T.DoubleType(), True),
        T.StructField("lift_abs_ci_high", T.DoubleType(), True),
        T.StructField("lift_rel", T.DoubleType(), True),
        T.StructField("p_value", T.DoubleType(), True),
        T.StructField("p_adjusted", T.DoubleType(), True),
        T.StructField("correction", T.StringType(), False),
        T.StructField("family_size", T.IntegerType(), False),
        T.StructField("significant", T.BooleanType(), True),
        T.StructField("revenue_variant", T.DoubleType(), False),
        T.StructField("revenue_control", T.DoubleType(), False),
        T.StructField("best", T.BooleanType(), False),
    ]
)
VARIANT_RESULTS_COLUMNS = [f.name for f in VARIANT_RESULTS_SCHEMA.fields]


@dataclass(frozen=True)
class TestSettings:
    """``marketing.testing``: the level and power of the variant tests and their correction."""

    __test__ = False  # not a pytest class

    alpha: float = 0.05
    power: float = 0.8
    correction: str = "holm"
    # Relative lift a campaign's test must be able to detect; a plan row that cannot is underpowered.
    target_lift: float = 0.2

    @classmethod
    def from_config(cls, conf: Config) -> TestSettings:
        g, d = conf.get_path, cls()
        alpha, power = g("marketing.testing.alpha", d.alpha), g("marketing.testing.power", d.power)
        correction, target = (
            g("marketing.testing.correction", d.correction),
            g("marketing.testing.target_lift", d.target_lift),
        )
        if not _number(alpha) or not 0 < alpha < 0.5:
            raise conf.error("marketing.testing.alpha", f"must be a number between 0 and 0.5; got {alpha!r}")
        if not _number(power) or not 0.5 <= power < 1:
            raise conf.error("marketing.testing.power", f"must be a number from 0.5 to 1 (exclusive); got {power!r}")
        if correction not in CORRECTIONS:
            raise conf.error(
                "marketing.testing.correction", f"must be one of {', '.join(CORRECTIONS)}; got {correction!r}"
            )
        if not _number(target) or target <= 0:
            raise conf.error("marketing.testing.target_lift", f"must be a positive number; got {target!r}")
        return cls(float(alpha), float(power), correction, float(target))


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@validator
def _check_testing(conf: Config) -> None:
    TestSettings.from_config(conf)


# --- assignment -------------------------------------------------------------------------


def variant_of(campaign: Campaign, salt: str) -> Column:
    """The variant id of a treated row of ``campaign`` (``customer_key`` column), by hash.

    Variant i takes the buckets [10000 * W(i-1) / W, 10000 * W(i) / W) of the cumulative weights W.
    """
    if not campaign.variants:
        return F.lit(DEFAULT_VARIANT)
    bucket = stable_bucket(F.col("customer_key"), F.lit(campaign.id), F.lit("variant"), F.lit(salt))
    total = sum(v.weight for v in campaign.variants)
    out, cum = None, 0.0
    for v in campaign.variants[:-1]:
        cum += v.weight
        cond = bucket < F.lit(round(10000 * cum / total))
        out = F.when(cond, F.lit(v.id)) if out is None else out.when(cond, F.lit(v.id))
    last = F.lit(campaign.variants[-1].id)
    return last if out is None else out.otherwise(last)


def with_variant(campaigns: Sequence[Campaign], salt: str) -> Callable[[DataFrame], DataFrame]:
    """Audience rows (campaign_id, customer_key, group) -> + ``variant``: null for the control group."""

    def transform(rows: DataFrame) -> DataFrame:
        expr = None
        for c in campaigns:
            cond = F.col("campaign_id") == F.lit(c.id)
            expr = F.when(cond, variant_of(c, salt)) if expr is None else expr.when(cond, variant_of(c, salt))
        assigned = F.lit(DEFAULT_VARIANT) if expr is None else expr.otherwise(F.lit(DEFAULT_VARIANT))
        return rows.withColumn("variant", F.when(F.col("group") == "treatment", assigned))

    return transform


# --- power ------------------------------------------------------------------------------


def min_detectable_lift(
    n_variant: float, n_control: float, base_rate: float, alpha: float, power: float, comparisons: int = 1
) -> float | None:
    """Smallest absolute lift a two-sided z-test at alpha / comparisons detects with ``power``."""
    if n_variant <= 0 or n_control <= 0 or not 0 < base_rate < 1:
        return None
    return float(
        _z(alpha, power, comparisons) * math.sqrt(base_rate * (1 - base_rate) * (1 / n_variant + 1 / n_control))
    )


def _z(alpha: float, power: float, comparisons: int) -> float:
    """z(1 - alpha / (2 m)) + z(power): the two-sided test at the Bonferroni level, with power."""
    return float(stats.norm.ppf(1 - alpha / (2 * comparisons)) + stats.norm.ppf(power))


def with_power(settings: TestSettings, campaigns: Sequence[Campaign]) -> Callable[[DataFrame], DataFrame]:
    """Plan rows (campaign_id, contacts, holdout, response_rate) -> + ``POWER_COLUMNS``.

    The same formula as ``min_detectable_lift``, as Spark columns: the z values are constants.
    """
    # Per campaign constants: variants m, the smallest variant's share, and the z of the test.
    consts = {c.id: (len(c.variants) or 1, _smallest_share(c)) for c in campaigns}

    def transform(plan: DataFrame) -> DataFrame:
        n_arms, share, z = F.lit(1), F.lit(1.0), F.lit(_z(settings.alpha, settings.power, 1))
        for cid, (m, s) in consts.items():
            is_c = F.col("campaign_id") == F.lit(cid)
            n_arms = F.when(is_c, F.lit(m)).otherwise(n_arms)
            share = F.when(is_c, F.lit(s)).otherwise(share)
            z = F.when(is_c, F.lit(_z(settings.alpha, settings.power, m))).otherwise(z)
        p = F.col("response_rate")
        n_v = F.col("contacts").cast("double") * share
        n_c = F.col("holdout").cast("double")
        ok = (n_v > 0) & (n_c > 0) & (p > 0) & (p < 1)
        mde = F.when(ok, z * F.sqrt(p * (F.lit(1.0) - p) * (F.lit(1.0) / n_v + F.lit(1.0) / n_c)))
        return (
            plan.withColumn("variants", n_arms.cast("int"))
            .withColumn("mde_abs", mde)
            .withColumn("mde_rel", mde / p)
            .withColumn("underpowered", F.coalesce(mde / p > F.lit(settings.target_lift), F.lit(True)))
        )

    return transform


def _smallest_share(c: Campaign) -> float:
    if not c.variants:
        return 1.0
    total = sum(v.weight for v in c.variants)
    return min(v.weight for v in c.variants) / total


# --- results ----------------------------------------------------------------------------


def adjust_pvalues(pvalues: Sequence[float | None], method: str) -> list[float | None]:
    """Holm (step-down, family-wise) or Benjamini-Hochberg (step-up, false discovery rate)
    adjusted p-values, in the input order. None (no test) stays None and is not counted."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; known: {', '.join(CORRECTIONS)}")
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(pvalues)
    if method == "holm":
        running = 0.0
        for rank, (p, i) in enumerate(tested):
            running = max(running, min(1.0, (m - rank) * p))
            out[i] = running
    else:
        running = 1.0
        for rank in range(m - 1, -1, -1):
            p, i = tested[rank]
            running = min(running, min(1.0, m * p / (rank + 1)))
            out[i] = running
    return out


def latest_assignments(audiences: DataFrame, as_of: date) -> DataFrame:
    """gold.campaign_audiences -> (campaign_id, customer_key, variant): the latest treated
    assignment up to ``as_of`` (one row per campaign and customer)."""
    rows = audiences.where((F.col("snapshot_date") <= F.lit(as_of)) & (F.col("group") == "treatment"))
    if "variant" not in rows.columns:  # audiences written before variants existed
        rows = rows.withColumn("variant", F.lit(None).cast("string"))
    return rows.groupBy("campaign_id", "customer_key").agg(
        F.max_by("variant", "snapshot_date").alias("assigned_variant")
    )


def variant_counts(segment_col: str | None = None):
    """Responses (campaign_id, customer_key, group, converted, revenue[, segment], assigned_variant)
    -> per campaign, segment and variant: customers, conversions and revenue, with the control's."""

    def transform(responses: DataFrame) -> DataFrame:
        seg = F.col(segment_col).cast("string") if segment_col else F.lit(None).cast("string")
        per_customer = (
            responses.where(F.col("customer_key").isNotNull() & F.col("group").isin("treatment", "control"))
            .withColumn("segment", seg)
            .withColumn(
                "variant",
                F.when(F.col("group") == "treatment", F.coalesce("assigned_variant", F.lit(DEFAULT_VARIANT))),
            )
            .groupBy("campaign_id", "segment", "customer_key", "group", "variant")
            .agg(
                F.max(F.coalesce(F.col("converted"), F.lit(False)).cast("int")).alias("conv"),
                F.sum(F.coalesce(F.col("revenue").cast("double"), F.lit(0.0))).alias("rev"),
            )
        )
        sums = [F.count("*").cast("long").alias("n"), F.sum("conv").cast("long").alias("x"), F.sum("rev").alias("rev")]
        treated = (
            per_customer.where(F.col("group") == "treatment").groupBy("campaign_id", "segment", "variant").agg(*sums)
        )
        control = (
            per_customer.where(F.col("group") == "control")
            .groupBy("campaign_id", "segment")
            .agg(*sums)
            .select(
                F.col("campaign_id").alias("cid_c"),
                F.col("segment").alias("seg_c"),
                *(F.col(c).alias(f"{c}_c") for c in ("n", "x", "rev")),
            )
        )
        # null-safe on the segment: the campaign level has none
        same = (treated["campaign_id"] == control["cid_c"]) & treated["segment"].eqNullSafe(control["seg_c"])
        return treated.join(control, on=same, how="left").select(
            "campaign_id",
            "segment",
            "variant",
            "n",
            "x",
            "rev",
            F.coalesce("n_c", F.lit(0)).cast("long").alias("n_c"),
            F.coalesce("x_c", F.lit(0)).cast("long").alias("x_c"),
            F.coalesce("rev_c", F.lit(0.0)).alias("rev_c"),
        )

    return transform


def variant_rows(counts: Iterable[dict], settings: TestSettings, confidence: float) -> list[tuple]:
    """``VARIANT_RESULTS_SCHEMA`` rows from ``variant_counts`` rows (each with ``level``): the
    tests, the correction within each campaign, then the best variant of each (campaign, level,
    segment): the highest rate among those with a significant positive lift."""
    rows = []
    for c in counts:
        t = two_proportion_test(int(c["x"]), int(c["n"]), int(c["x_c"]), int(c["n_c"]), confidence)
        rows.append(
            {
                "campaign_id": c["campaign_id"],
                "level": c["level"],
                "segment": c["segment"],
                "variant": c["variant"],
                "n_variant": int(c["n"]),
                "n_control": int(c["n_c"]),
                "conversions_variant": int(c["x"]),
                "conversions_control": int(c["x_c"]),
                "rate_variant": t.rate_treatment,
                "rate_control": t.rate_control,
                "lift_abs": t.lift_abs,
                "lift_abs_ci_low": t.ci_low,
                "lift_abs_ci_high": t.ci_high,
                "lift_rel": t.lift_rel,
                "p_value": t.p_value,
                "correction": settings.correction,
                "revenue_variant": float(c["rev"] or 0.0),
                "revenue_control": float(c["rev_c"] or 0.0),
                "best": False,
            }
        )
    for cid in {r["campaign_id"] for r in rows}:
        family = [r for r in rows if r["campaign_id"] == cid]
        adjusted = adjust_pvalues([r["p_value"] for r in family], settings.correction)
        tested = sum(1 for a in adjusted if a is not None)
        for r, adj in zip(family, adjusted, strict=True):
            r["p_adjusted"], r["family_size"] = adj, tested
            r["significant"] = None if adj is None else adj < settings.alpha
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["campaign_id"], r["level"], r["segment"]), []).append(r)
    for members in groups.values():
        winners = [r for r in members if r["significant"] and r["lift_abs"] > 0]
        if winners:
            max(winners, key=lambda r: r["rate_variant"])["best"] = True
    return [tuple(r[c] for c in VARIANT_RESULTS_COLUMNS) for r in rows]


def variant_results(
    spark: SparkSession,
    responses: DataFrame,
    assignments: DataFrame,
    settings: TestSettings,
    confidence: float,
    segment_col: str | None = None,
) -> DataFrame:
    """``VARIANT_RESULTS_SCHEMA`` per campaign and variant (level 'campaign') and, with
    ``segment_col``, per segment. ``responses`` are as known at the run date (evaluate.known_by,
    plus the segment column); ``assignments`` come from ``latest_assignments``."""
    joined = responses.join(assignments, on=["campaign_id", "customer_key"], how="left")
    levels: list[tuple[str, str | None]] = [("campaign", None)]
    if segment_col:
        levels.append(("segment", segment_col))
    counts = []
    for level, col in levels:
        # Bounded: campaigns x segments x variants rows reach the driver.
        counts += [{**r.asDict(), "level": level} for r in joined.transform(variant_counts(col)).collect()]
    return spark.createDataFrame(variant_rows(counts, settings, confidence), VARIANT_RESULTS_SCHEMA)
