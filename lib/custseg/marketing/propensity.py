"""Response propensity per campaign goal: point-in-time features, two MLlib models, the better kept.

Leakage is the trap here: a model trained on today's features to predict a response
to a send three months ago learns from what happened after the send. So every
training row gets features *as of its campaign's first send date* (orders, complaints
and earlier campaign responses strictly before that day), and scoring uses the same
function as of the day after the snapshot. The features are recomputed from silver
rather than read from earlier ``gold.customer_features`` snapshots: those exist only
for dates the feature job ran, and mixing feature definitions between training and
scoring would skew the model. Definitions follow ``custseg.features.rfm`` (completed
orders, net revenue, 365-day window); all cutoffs are evaluated in one pass, joined on
``customer_key`` with a range condition, so the orders table is scanned once.

Labels: ``converted`` of *treatment* sends (the response to being contacted); sends
younger than ``outcome_days`` at the snapshot are left out (their outcome is not in yet).
Validation is a hash split by customer (a customer in several campaigns stays on one
side). Logistic regression and gradient-boosted trees are fitted; the higher validation
AUC wins (ties: logistic). Only bounded aggregates reach the driver: counts, AUCs and
the calibration table (one row per decile).

Without campaign history (a retailer who brings only transactions) a goal falls back to a
**behavioural** model (custseg.marketing.behaviour): "bought again within N days" learnt
from back-dated snapshots of the transactions themselves, validated on the latest one; its
probability, scaled to ``fallback_response_rate`` on average, ranks the campaigns. Only
when that is impossible too does a goal get a constant rate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.marketing.campaigns import glob_regex

log = logging.getLogger(__name__)

WINDOW_DAYS = 365
NEVER_RECENCY = 1000  # recency of a customer who never bought (days), before log1p

PROPENSITY_FEATURES = [
    "has_purchased",
    "log_recency",
    "frequency",
    "log_frequency",
    "log_monetary",
    "orders_last_90",
    "orders_prev_90",
    "log_tenure",
    "avg_order_value",
    "discount_order_share",
    "discount_rate",
    "avg_lines",
    "avg_units",
    "return_share",
    "complaints",
    "past_sends",
    "past_conversions",
    "past_response_rate",
    "opt_in_email",
    "tier_level",
    "age_level",
]
# Ordinal codes of coarse CRM attributes; unknown values get the middle of the scale.
TIER_LEVELS = {"bronze": 0.0, "silver": 1.0, "gold": 2.0, "platinum": 3.0}
AGE_LEVELS = {"<18": 0.0, "18-24": 1.0, "25-34": 2.0, "35-44": 3.0, "45-54": 4.0, "55-64": 5.0, "65+": 6.0}
FEATURE_COLUMNS = ["customer_key", "cutoff_date", *PROPENSITY_FEATURES]
QUALITY_SCHEMA = T.StructType(
    [
        T.StructField("goal", T.StringType(), False),
        T.StructField("model", T.StringType(), False),
        T.StructField("chosen", T.BooleanType(), False),
        T.StructField("training_source", T.StringType(), False),
        T.StructField("auc_validation", T.DoubleType(), True),
        T.StructField("n_train", T.LongType(), False),
        T.StructField("n_validation", T.LongType(), False),
        T.StructField("positives", T.LongType(), False),
        T.StructField("decile", T.IntegerType(), True),
        T.StructField("n", T.LongType(), True),
        T.StructField("mean_predicted", T.DoubleType(), True),
        T.StructField("observed_rate", T.DoubleType(), True),
        T.StructField("lift", T.DoubleType(), True),
        T.StructField("label", T.StringType(), True),
    ]
)
RESPONSE_LABEL = "converted after a treatment send"


@dataclass(frozen=True)
class PropensityParams:
    models: tuple[str, ...] = ("logistic", "gbt")
    seed: int = 42
    validation_share: float = 0.3
    outcome_days: int = 14
    min_training_rows: int = 200
    min_positives: int = 20
    fallback_response_rate: float = 0.02
    calibration_bins: int = 10
    logistic_reg_param: float = 0.01
    logistic_elastic_net: float = 0.0
    logistic_max_iter: int = 100
    gbt_max_depth: int = 4
    gbt_max_iter: int = 40
    gbt_step_size: float = 0.1
    behaviour_enabled: bool = True
    behaviour_label_days: int = 90
    behaviour_snapshots: int = 4
    behaviour_step_days: int = 30

    @classmethod
    def from_conf(cls, section) -> PropensityParams:
        """From ``conf.marketing.propensity`` (keys as the field names; ``behaviour.*`` nested)."""
        values = {k: section[k] for k in cls.__dataclass_fields__ if k in section and not k.startswith("behaviour")}
        nested = section.get("behaviour", None)
        if nested is not None:
            b = nested.to_dict() if hasattr(nested, "to_dict") else dict(nested)
            for key, field_name in (
                ("enabled", "behaviour_enabled"),
                ("label_days", "behaviour_label_days"),
                ("snapshots", "behaviour_snapshots"),
                ("step_days", "behaviour_step_days"),
            ):
                if key in b:
                    values[field_name] = b[key]
        if "models" in values:
            values["models"] = tuple(values["models"])
        return cls(**values)


# --- point-in-time features -----------------------------------------------------------


def _days_before(cutoff: str, days: int) -> Column:
    return F.date_sub(F.col(cutoff), days)


def point_in_time_features(
    orders: DataFrame,
    customers: DataFrame,
    responses: DataFrame | None = None,
    feedback: DataFrame | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """(customer_key, cutoff_date) pairs -> ``PROPENSITY_FEATURES`` from data strictly before the cutoff."""

    def transform(population: DataFrame) -> DataFrame:
        pop = population.select("customer_key", F.col("cutoff_date").cast("date")).distinct()
        o = orders.where(F.col("customer_key").isNotNull()).select(
            F.col("customer_key").alias("_ck"),
            F.to_date("order_ts").alias("_d"),
            "order_id",
            "status",
            F.col("net_revenue").cast("double").alias("_rev"),
            F.coalesce(F.col("discount_amount").cast("double"), F.lit(0.0)).alias("_disc"),
            F.col("gross_revenue").cast("double").alias("_gross"),
            F.col("n_lines").cast("double").alias("_lines"),
            F.col("n_units").cast("double").alias("_units"),
        )
        before = (F.col("customer_key") == F.col("_ck")) & (F.col("_d") < F.col("cutoff_date"))
        done = F.col("status") == "completed"
        in_window = F.col("_d") >= _days_before("cutoff_date", WINDOW_DAYS)
        bought = done & in_window
        last_90 = done & (F.col("_d") >= _days_before("cutoff_date", 90))
        prev_90 = (
            done & (F.col("_d") >= _days_before("cutoff_date", 180)) & (F.col("_d") < _days_before("cutoff_date", 90))
        )
        order_aggs = (
            pop.join(o, before, how="inner")
            .groupBy("customer_key", "cutoff_date")
            .agg(
                F.max(F.when(done, F.col("_d"))).alias("last_purchase"),
                F.count_distinct(F.when(bought, F.col("order_id"))).alias("frequency"),
                F.sum(F.when(bought, F.col("_rev"))).alias("monetary"),
                F.count_distinct(F.when(last_90, F.col("order_id"))).alias("orders_last_90"),
                F.count_distinct(F.when(prev_90, F.col("order_id"))).alias("orders_prev_90"),
                F.count_distinct(F.when(bought & (F.col("_disc") > 0), F.col("order_id"))).alias("discounted"),
                F.sum(F.when(bought, F.col("_disc"))).alias("discount_sum"),
                F.sum(F.when(bought, F.col("_gross"))).alias("gross_sum"),
                F.avg(F.when(bought, F.col("_lines"))).alias("avg_lines"),
                F.avg(F.when(bought, F.col("_units"))).alias("avg_units"),
                F.count_distinct(F.when(in_window & (F.col("status") == "returned"), F.col("order_id"))).alias(
                    "returned"
                ),
            )
        )
        # Consent, tier and age band are CRM attributes as they are now (silver keeps no history
        # of them); they change rarely, and the generator plants them in the responder propensity.
        attrs = customers.select(
            "customer_key",
            F.col("signup_date").cast("date").alias("signup_date"),
            F.col("opt_in_email").cast("double").alias("_opt_in_email"),
            _ordinal("member_tier", TIER_LEVELS, 1.0).alias("_tier"),
            _ordinal("age_band", AGE_LEVELS, 3.0).alias("_age"),
        )
        out = pop.join(order_aggs, on=["customer_key", "cutoff_date"], how="left").join(
            attrs, on="customer_key", how="left"
        )
        if responses is not None:
            r = responses.where(F.col("group") == "treatment").select(
                F.col("customer_key").alias("_ck"),
                F.col("sent_ts"),
                F.coalesce(F.col("converted"), F.lit(False)).alias("_conv"),
                F.col("converted_ts"),
            )
            sent_before = (F.col("customer_key") == F.col("_ck")) & (F.to_date("sent_ts") < F.col("cutoff_date"))
            # A conversion counts only once it happened before the cutoff (no peeking).
            conv_before = F.col("_conv") & (F.to_date(F.coalesce("converted_ts", "sent_ts")) < F.col("cutoff_date"))
            resp_aggs = (
                pop.join(r, sent_before, how="inner")
                .groupBy("customer_key", "cutoff_date")
                .agg(
                    F.count("*").alias("past_sends"),
                    F.sum(F.when(conv_before, 1).otherwise(0)).alias("past_conversions"),
                )
            )
            out = out.join(resp_aggs, on=["customer_key", "cutoff_date"], how="left")
        else:
            out = out.withColumn("past_sends", F.lit(0)).withColumn("past_conversions", F.lit(0))
        if feedback is not None:
            fb = feedback.where(F.col("is_complaint")).select(
                F.col("customer_key").alias("_ck"), F.to_date("ts").alias("_d")
            )
            in_year = (
                (F.col("customer_key") == F.col("_ck"))
                & (F.col("_d") < F.col("cutoff_date"))
                & (F.col("_d") >= _days_before("cutoff_date", WINDOW_DAYS))
            )
            fb_aggs = (
                pop.join(fb, in_year, how="inner")
                .groupBy("customer_key", "cutoff_date")
                .agg(F.count("*").alias("complaints"))
            )
            out = out.join(fb_aggs, on=["customer_key", "cutoff_date"], how="left")
        else:
            out = out.withColumn("complaints", F.lit(0))

        freq = F.coalesce(F.col("frequency"), F.lit(0)).cast("double")
        monetary = F.coalesce(F.col("monetary"), F.lit(0.0))
        sends = F.coalesce(F.col("past_sends"), F.lit(0)).cast("double")
        convs = F.coalesce(F.col("past_conversions"), F.lit(0)).cast("double")
        finished = freq + F.coalesce(F.col("returned"), F.lit(0))
        recency = F.datediff(F.col("cutoff_date"), F.col("last_purchase"))
        tenure = F.greatest(F.datediff(F.col("cutoff_date"), F.col("signup_date")), F.lit(0))
        return out.select(
            "customer_key",
            "cutoff_date",
            F.col("last_purchase").isNotNull().cast("double").alias("has_purchased"),
            F.log1p(F.coalesce(recency, F.lit(NEVER_RECENCY)).cast("double")).alias("log_recency"),
            freq.alias("frequency"),
            F.log1p(freq).alias("log_frequency"),
            F.log1p(F.greatest(monetary, F.lit(0.0))).alias("log_monetary"),
            F.coalesce(F.col("orders_last_90"), F.lit(0)).cast("double").alias("orders_last_90"),
            F.coalesce(F.col("orders_prev_90"), F.lit(0)).cast("double").alias("orders_prev_90"),
            F.log1p(F.coalesce(tenure, F.lit(0)).cast("double")).alias("log_tenure"),
            F.when(freq > 0, monetary / freq).otherwise(F.lit(0.0)).alias("avg_order_value"),
            F.when(freq > 0, F.coalesce(F.col("discounted"), F.lit(0)) / freq)
            .otherwise(F.lit(0.0))
            .alias("discount_order_share"),
            # Depth of discount (bargain hunters) and basket size: list-price share given away, lines and units per order.
            F.coalesce(F.col("discount_sum") / F.when(F.col("gross_sum") > 0, F.col("gross_sum")), F.lit(0.0)).alias(
                "discount_rate"
            ),
            F.coalesce(F.col("avg_lines"), F.lit(0.0)).alias("avg_lines"),
            F.coalesce(F.col("avg_units"), F.lit(0.0)).alias("avg_units"),
            F.when(finished > 0, F.coalesce(F.col("returned"), F.lit(0)) / finished)
            .otherwise(F.lit(0.0))
            .alias("return_share"),
            F.coalesce(F.col("complaints"), F.lit(0)).cast("double").alias("complaints"),
            sends.alias("past_sends"),
            convs.alias("past_conversions"),
            F.when(sends > 0, convs / sends).otherwise(F.lit(0.0)).alias("past_response_rate"),
            F.coalesce(F.col("_opt_in_email"), F.lit(0.0)).alias("opt_in_email"),
            F.coalesce(F.col("_tier"), F.lit(1.0)).alias("tier_level"),
            F.coalesce(F.col("_age"), F.lit(3.0)).alias("age_level"),
        )

    return transform


def _ordinal(col: str, levels: dict[str, float], unknown: float) -> Column:
    expr = F.lit(unknown)
    mapping = F.create_map(*[F.lit(x) for kv in levels.items() for x in kv])
    return F.coalesce(mapping[F.lower(F.trim(F.col(col)))], expr)


def training_sends(outcome_before: date, history: Sequence[str] = ()) -> Callable[[DataFrame], DataFrame]:
    """campaign_responses -> one row per (campaign_id, customer_key) treatment send with its label.

    ``cutoff_date`` is the campaign's first send date (features as of then); sends on or
    after ``outcome_before`` are dropped (outcome incomplete); ``history`` globs select
    the campaigns (empty: all).
    """

    def transform(responses: DataFrame) -> DataFrame:
        sends = responses.where(
            (F.col("group") == "treatment")
            & F.col("customer_key").isNotNull()
            & (F.to_date("sent_ts") < F.lit(outcome_before))
        )
        if history:
            sends = sends.where(F.col("campaign_id").rlike(glob_regex(tuple(history))))
        starts = sends.groupBy("campaign_id").agg(F.min(F.to_date("sent_ts")).alias("cutoff_date"))
        return (
            sends.groupBy("campaign_id", "customer_key")
            .agg(F.max(F.coalesce(F.col("converted"), F.lit(False)).cast("int")).alias("label"))
            .join(F.broadcast(starts), on="campaign_id", how="inner")
            .select("campaign_id", "customer_key", "cutoff_date", F.col("label").cast("double").alias("label"))
        )

    return transform


def with_validation_flag(share: float, seed: int) -> Callable[[DataFrame], DataFrame]:
    """Adds ``is_validation`` from a stable hash of the customer (not of the row)."""

    def transform(df: DataFrame) -> DataFrame:
        bucket = stable_bucket(F.col("customer_key"), F.lit(f"validation-{seed}"))
        return df.withColumn("is_validation", bucket < F.lit(int(round(share * 10000))))

    return transform


def stable_bucket(*parts: Column) -> Column:
    """0..9999 from SHA-256 of the parts joined by '|': the same on every engine and every rerun."""
    digest = F.sha2(F.concat_ws("|", *parts), 256)
    return F.pmod(F.conv(F.substring(digest, 1, 12), 16, 10).cast("long"), F.lit(10000))


# --- models -----------------------------------------------------------------------------


@dataclass
class PropensityModel:
    """The kept model of one goal, with its validation figures (all bounded)."""

    goal: str
    chosen: str  # logistic | gbt | constant
    training_source: str  # goal | all_history | behaviour | fallback
    base_rate: float
    model: PipelineModel | None = None
    label: str = RESPONSE_LABEL  # what the model predicts (the plan says it)
    scale: float | None = None  # behavioural models: p x scale (mean p -> the assumed response rate)
    auc: dict[str, float] = field(default_factory=dict)
    n_train: int = 0
    n_validation: int = 0
    positives: int = 0
    calibration: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def auc_chosen(self) -> float | None:
        v = self.auc.get(self.chosen)
        return None if v is None or math.isnan(v) else v

    def score(self, features: DataFrame) -> DataFrame:
        """customer_key, p_response (a constant model gives everyone the base rate)."""
        if self.model is None:
            return features.select("customer_key", F.lit(float(self.base_rate)).alias("p_response"))
        p = vector_to_array(F.col("probability")).getItem(1)
        if self.scale is not None:
            p = F.least(p * F.lit(float(self.scale)), F.lit(1.0))
        return self.model.transform(features).select("customer_key", p.alias("p_response"))

    def quality_rows(self) -> list[tuple]:
        """Rows of ``propensity_quality`` (QUALITY_SCHEMA without snapshot_date)."""
        rows = []
        for name in self.auc or {self.chosen: float("nan")}:
            auc = self.auc.get(name)
            auc = None if auc is None or math.isnan(auc) else float(auc)
            head = (
                self.goal,
                name,
                name == self.chosen,
                self.training_source,
                auc,
                int(self.n_train),
                int(self.n_validation),
                int(self.positives),
            )
            deciles = self.calibration.get(name) or [{}]
            for d in deciles:
                rows.append(
                    (
                        *head,
                        d.get("decile"),
                        d.get("n"),
                        d.get("mean_predicted"),
                        d.get("observed_rate"),
                        d.get("lift"),
                        self.label,
                    )
                )
        return rows


def _pipeline(name: str, params: PropensityParams) -> Pipeline:
    assembler = VectorAssembler(inputCols=PROPENSITY_FEATURES, outputCol="raw_features", handleInvalid="keep")
    if name == "logistic":
        scaler = StandardScaler(inputCol="raw_features", outputCol="features", withMean=True, withStd=True)
        lr = LogisticRegression(
            featuresCol="features",
            labelCol="label",
            regParam=params.logistic_reg_param,
            elasticNetParam=params.logistic_elastic_net,
            maxIter=params.logistic_max_iter,
        )
        return Pipeline(stages=[assembler, scaler, lr])
    if name == "gbt":
        gbt = GBTClassifier(
            featuresCol="raw_features",
            labelCol="label",
            maxDepth=params.gbt_max_depth,
            maxIter=params.gbt_max_iter,
            stepSize=params.gbt_step_size,
            seed=params.seed,
        )
        return Pipeline(stages=[assembler, gbt])
    raise ValueError(f"unknown propensity model {name!r}; known: logistic, gbt")


def calibration_by_decile(scored: DataFrame, bins: int = 10, accuracy: int = 10000) -> list[dict]:
    """Deciles of predicted p (1 = highest): n, mean predicted, observed rate, lift vs overall.

    Cut points come from ``percentile_approx`` and the table is a groupBy: a few rows
    reach the driver, never the scored customers. Ties share a decile, so a decile may be empty.
    """
    probs = [i / bins for i in range(1, bins)]
    row = scored.agg(
        F.percentile_approx("p_response", probs, accuracy).alias("q"), F.avg("label").alias("rate")
    ).first()
    if row is None or row["q"] is None:
        return []
    overall = float(row["rate"] or 0.0)
    score = F.lit(1)
    for q in row["q"]:
        score = score + F.when(F.col("p_response") > F.lit(float(q)), 1).otherwise(0)
    table = (
        scored.withColumn("decile", F.lit(bins + 1) - score)
        .groupBy("decile")
        .agg(
            F.count("*").alias("n"), F.avg("p_response").alias("mean_predicted"), F.avg("label").alias("observed_rate")
        )
        .orderBy("decile")
        .collect()
    )
    return [
        {
            "decile": int(r["decile"]),
            "n": int(r["n"]),
            "mean_predicted": float(r["mean_predicted"]),
            "observed_rate": float(r["observed_rate"]),
            "lift": float(r["observed_rate"]) / overall if overall > 0 else None,
        }
        for r in table
    ]


def constant_model(goal: str, base_rate: float, source: str = "fallback") -> PropensityModel:
    return PropensityModel(
        goal=goal, chosen="constant", training_source=source, base_rate=float(base_rate), label="none (constant rate)"
    )


def fit_propensity(
    labelled: DataFrame, goal: str, params: PropensityParams, source: str = "goal"
) -> PropensityModel | None:
    """Fit every configured model on ``labelled`` (features + label); None when data are too thin.

    ``labelled`` has ``customer_key``, ``label`` (0/1) and ``PROPENSITY_FEATURES``; with an
    ``is_validation`` column of its own (a split in time) that split is used, else a stable
    hash of the customer decides.
    """
    if "is_validation" not in labelled.columns:
        labelled = labelled.transform(with_validation_flag(params.validation_share, params.seed))
    split = labelled.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {
            (bool(r["is_validation"])): (int(r["n"]), int(r["pos"] or 0))
            for r in split.groupBy("is_validation").agg(F.count("*").alias("n"), F.sum("label").alias("pos")).collect()
        }
        n_train, pos_train = counts.get(False, (0, 0))
        n_valid, pos_valid = counts.get(True, (0, 0))
        n, pos = n_train + n_valid, pos_train + pos_valid
        if n < params.min_training_rows or pos < params.min_positives or pos_train == 0 or pos_train == n_train:
            log.info("propensity %s (%s): %d rows, %d positives: too few to fit", goal, source, n, pos)
            return None
        train, valid = split.where(~F.col("is_validation")), split.where(F.col("is_validation"))
        evaluator = BinaryClassificationEvaluator(
            labelCol="label", rawPredictionCol="rawPrediction", metricName="areaUnderROC"
        )
        both_classes = 0 < pos_valid < n_valid
        fitted: dict[str, PipelineModel] = {}
        auc: dict[str, float] = {}
        calibration: dict[str, list[dict]] = {}
        for name in params.models:
            model = _pipeline(name, params).fit(train)
            fitted[name] = model
            if both_classes:
                pred = model.transform(valid)
                auc[name] = float(evaluator.evaluate(pred))
                scored = pred.select(vector_to_array(F.col("probability")).getItem(1).alias("p_response"), "label")
                calibration[name] = calibration_by_decile(scored, params.calibration_bins)
            else:
                auc[name] = float("nan")
        # Highest validation AUC wins; on a tie (or no AUC) the first listed (simpler) model.
        chosen = max(params.models, key=lambda m: (auc[m] if not math.isnan(auc[m]) else -1.0, -params.models.index(m)))
        log.info(
            "propensity %s (%s): train %d (%d pos), validation %d (%d pos), AUC %s -> %s",
            goal,
            source,
            n_train,
            pos_train,
            n_valid,
            pos_valid,
            ", ".join(f"{k}={v:.3f}" for k, v in auc.items()),
            chosen,
        )
        return PropensityModel(
            goal=goal,
            chosen=chosen,
            training_source=source,
            base_rate=pos / n,
            model=fitted[chosen],
            auc=auc,
            n_train=n_train,
            n_validation=n_valid,
            positives=pos,
            calibration=calibration,
        )
    finally:
        split.unpersist()


def fit_goal(
    goal: str,
    responses: DataFrame | None,
    features_at: Callable[[DataFrame], DataFrame],
    snapshot: date,
    params: PropensityParams,
    history: Sequence[str] = (),
    behaviour: Callable[[], PropensityModel | None] | None = None,
) -> PropensityModel:
    """The model of one goal: its own campaigns' history, else all history, else the
    behavioural model (``behaviour()``, fitted once and shared by the goals), else a constant rate.

    ``features_at`` is ``point_in_time_features(...)``; every fallback is logged.
    """

    def without_history(why: str, rate: float) -> PropensityModel:
        model = behaviour() if behaviour is not None and params.behaviour_enabled else None
        if model is not None:
            log.warning("propensity %s: %s; ranking by the behavioural model (%s)", goal, why, model.label)
            return replace(model, goal=goal)
        log.warning("propensity %s: %s; constant rate %.4f", goal, why, rate)
        return constant_model(goal, rate)

    if responses is None:
        return without_history("no silver.campaign_responses", params.fallback_response_rate)
    outcome_before = date.fromordinal(snapshot.toordinal() - params.outcome_days + 1)
    attempts = [(tuple(history), "goal")] if history else []
    attempts.append(((), "all_history"))
    base_rate = params.fallback_response_rate
    for patterns, source in attempts:
        sends = responses.transform(training_sends(outcome_before, patterns))
        labelled = sends.join(
            sends.select("customer_key", "cutoff_date").transform(features_at),
            on=["customer_key", "cutoff_date"],
            how="inner",
        )
        model = fit_propensity(labelled, goal, params, source)
        if model is not None:
            return model
        if source == "goal":
            log.warning(
                "propensity %s: too little history for patterns %s; training on all campaigns", goal, list(patterns)
            )
        else:
            row = sends.agg(F.count("*").alias("n"), F.avg("label").alias("rate")).first()
            if row and row["n"]:
                base_rate = float(row["rate"])
    return without_history("too little campaign history to fit a response model", base_rate)
