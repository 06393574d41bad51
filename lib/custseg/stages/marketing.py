"""Stage ``marketing``: features, segments, cross-sell and campaign history -> campaign tables and exports.

Writes, for the run date (partition ``snapshot_date``, replaced on rerun):
- ``gold.churn_alerts``: customers flagged as declining, overdue or at high churn risk, with the
  reasons (custseg.marketing.alerts); campaigns select them with the base column ``churn_alert``;
- ``gold.propensity_quality``: per goal and model, validation AUC and calibration by decile;
- ``gold.segment_strategy``: per segment the 4P (product, price, place, promotion) with the
  evidence of each choice (custseg.marketing.strategy); ``offers: from_strategy`` campaigns take
  their offer type and discount from it;
- ``gold.campaign_audiences``: the selected customers per campaign, treatment and control;
- ``gold.campaign_plan``: precision vs blanket vs random, with cost, responses, profit, ROI;
- ``gold.campaign_results``: measured lift of the campaigns in ``silver.campaign_responses``;
- ``gold.variant_results``: per offer variant, lift against the control with p-values corrected
  across the campaign's variants and segments (custseg.marketing.abtest);
- ``gold.kpi_trends``: active, new, retained and churned customers, revenue, AOV, satisfaction, NPS
  and complaints for the last periods, overall and per segment (custseg.marketing.kpis);
- ``gold.campaign_funnel``: sent, delivered, opened, clicked, converted per campaign, variant and
  segment (custseg.marketing.funnel);
and the export files ``<paths.exports>/<date>/<campaign>/<export>.{csv,parquet}`` with
``<paths.exports>/<date>/manifest.json`` (rows, bytes, SHA-256 of every file).
Optional inputs (segments, cross-sell, recommendations, responses, feedback) may be absent: each absence
is logged and the stage does without.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, replace
from datetime import date, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from custseg import fileio
from custseg.marketing.abtest import (
    DEFAULT_VARIANT,
    VARIANT_RESULTS_COLUMNS,
    TestSettings,
    latest_assignments,
    variant_results,
    with_power,
    with_variant,
)
from custseg.marketing.alerts import ALERT_COLUMNS, AlertSettings, churn_alerts, with_alert_flag
from custseg.marketing.arms import arm_costs, arm_totals, blanket_arm, with_arm, without
from custseg.marketing.audience import (
    ClvValue,
    arbitrate,
    complaint_history,
    contact_history,
    customer_base,
    flag_campaign,
    offer_columns,
    score_campaign,
    seed_audience,
    select_under_budget,
    with_clv_factor,
    with_history,
)
from custseg.marketing.behaviour import fit_behaviour
from custseg.marketing.campaigns import Campaign, Offer, Variant, load_campaigns
from custseg.marketing.consent import ConsentPolicy, with_consent
from custseg.marketing.evaluate import EvaluationParams, campaign_results, known_by
from custseg.marketing.export import EXPORTS, escape_formulas, exports_for, manifest, seed_export
from custseg.marketing.funnel import FUNNEL_COLUMNS, campaign_funnel
from custseg.marketing.kpis import KPI_COLUMNS, KpiSettings, kpi_trends
from custseg.marketing.plan import campaign_plan, campaigns_frame
from custseg.marketing.profiles import (
    CONSENT_FIELD,
    Profile,
    activation_contacts,
    consent_counts,
    crm_identities,
    default_country,
    identity_columns,
    load_profiles,
    profile_frame,
    without_identity,
)
from custseg.marketing.propensity import (
    QUALITY_SCHEMA,
    PropensityModel,
    PropensityParams,
    fit_goal,
    point_in_time_features,
)
from custseg.marketing.strategy import STRATEGY_COLUMNS, StrategySettings, segment_strategy, strategy_offers
from custseg.runtime import pin
from custseg.stages.context import StageContext, absolute
from custseg.stages.export_files import file_digests, publish_folder, write_csv_parts
from custseg.stages.flat_inputs import bronze_with_flat

log = logging.getLogger(__name__)

FEATURES = "gold.customer_features"
SEGMENTS = "gold.customer_segments"
CROSS_SELL = "gold.cross_sell"
RECOMMENDATIONS = "gold.recommendations"
QUALITY = "gold.propensity_quality"
ALERTS = "gold.churn_alerts"
AUDIENCES = "gold.campaign_audiences"
PLAN = "gold.campaign_plan"
RESULTS = "gold.campaign_results"
KPIS = "gold.kpi_trends"
FUNNEL = "gold.campaign_funnel"
STRATEGY = "gold.segment_strategy"
VARIANTS = "gold.variant_results"
AUDIENCE_TABLE_COLUMNS = [
    "snapshot_date",
    "campaign_id",
    "goal",
    "customer_key",
    "group",
    "variant",
    "channel",
    "rank",
    "p_response",
    "expected_profit",
    "contact_cost",
    "segment_name",
    "rfm_segment",
    "value_class",
    "offer_type",
    "offer_category",
    "offer_item",
    "offer_discount",
    "offer_daypart",
    "offer_valid_from",
    "offer_valid_until",
    "model",
    "arm",
]


def _optional(ctx: StageContext, name: str, why: str) -> DataFrame | None:
    if ctx.tables.exists(name):
        return ctx.tables.read(name)
    log.warning("marketing: optional input %s is absent: %s", name, why)
    return None


def _snapshot(df: DataFrame, as_of: date, name: str, exact: bool) -> DataFrame | None:
    """One snapshot: exactly ``as_of``, or the latest one up to it (a bounded max reaches the driver)."""
    if exact:
        return df.where(F.col("snapshot_date") == F.lit(as_of))
    latest = df.where(F.col("snapshot_date") <= F.lit(as_of)).agg(F.max("snapshot_date").alias("d")).first()["d"]
    if latest is None:
        log.warning("marketing: %s has no snapshot up to %s; doing without it", name, as_of)
        return None
    if latest != as_of:
        log.info("marketing: using %s of %s (latest up to %s)", name, latest, as_of)
    return df.where(F.col("snapshot_date") == F.lit(latest))


def _fit_models(
    ctx: StageContext, campaigns: list[Campaign], features_at, responses: DataFrame | None, orders: DataFrame
) -> dict[str, PropensityModel]:
    params = PropensityParams.from_conf(ctx.conf.marketing.propensity)
    models: dict[str, PropensityModel] = {}
    fitted: dict[tuple[str, ...], PropensityModel] = {}  # goals with the same history share one fit
    behaviour: list[PropensityModel | None] = []  # fitted at most once, for every goal without history

    def behavioural() -> PropensityModel | None:
        if not behaviour:
            with ctx.recorder.stage("propensity behaviour"):
                behaviour.append(fit_behaviour(orders, features_at, ctx.as_of, params))
        return behaviour[0]

    for goal in sorted({c.goal for c in campaigns}):
        history = tuple(sorted({p for c in campaigns if c.goal == goal for p in c.history}))
        if history in fitted:
            log.info("propensity %s: same training history as %s; reusing its model", goal, fitted[history].goal)
            models[goal] = replace(fitted[history], goal=goal)
            continue
        with ctx.recorder.stage(f"propensity {goal}"):
            models[goal] = fitted[history] = fit_goal(
                goal, responses, features_at, ctx.as_of, params, history, behaviour=behavioural
            )
    ctx.recorder.details["propensity"] = {
        g: {"model": mm.chosen, "source": mm.training_source, "label": mm.label, "auc": mm.auc_chosen}
        for g, mm in models.items()
    }
    rows = [r for m in models.values() for r in m.quality_rows()]
    quality = ctx.spark.createDataFrame(rows, QUALITY_SCHEMA).withColumn("snapshot_date", F.lit(ctx.as_of))
    version = ctx.tables.overwrite(
        quality, QUALITY, partition_by=["snapshot_date"], where={"snapshot_date": ctx.run_date}
    )
    if ctx.tracker.enabled:
        _track_propensity(ctx, params, models, version)
    return models


def _track_propensity(ctx: StageContext, params: PropensityParams, models: dict[str, PropensityModel], version) -> None:
    """The propensity models in MLflow: settings, per goal the kept model, its validation AUC of every
    candidate and calibration by decile (the figures of gold.propensity_quality), and the fitted pipelines."""
    tr = ctx.tracker
    tr.log_params(
        {
            "run_date": ctx.run_date,
            **{f"propensity.{k}": v for k, v in asdict(params).items()},
            f"version.{QUALITY}": version,
        }
    )
    logged: dict[int, str] = {}  # goals with one training history share one fitted model: log it once
    for goal, m in sorted(models.items()):
        key = f"propensity.{goal}"
        artifact = None
        if m.model is not None:
            artifact = logged.get(id(m.model))
            if artifact is None:
                artifact = logged[id(m.model)] = f"propensity_{goal}"
                tr.log_model(artifact, m.model)
        tr.log_params(
            {
                f"{key}.model": m.chosen,
                f"{key}.training_source": m.training_source,
                f"{key}.label": m.label,
                f"{key}.artifact": f"models/{artifact}" if artifact else None,
            }
        )
        tr.log_metrics(
            {
                f"{key}.base_rate": m.base_rate,
                f"{key}.n_train": m.n_train,
                f"{key}.n_validation": m.n_validation,
                f"{key}.positives": m.positives,
                f"{key}.auc": m.auc_chosen,
                **{f"{key}.auc.{name}": auc for name, auc in m.auc.items()},
            }
        )
        for name, deciles in m.calibration.items():
            for d in deciles:
                tr.log_metrics(
                    {
                        f"{key}.{name}.calibration.mean_predicted": d["mean_predicted"],
                        f"{key}.{name}.calibration.observed_rate": d["observed_rate"],
                        f"{key}.{name}.calibration.n": d["n"],
                    },
                    step=d["decile"],
                )


def run(ctx: StageContext) -> None:
    t, conf, rec, as_of = ctx.tables, ctx.conf, ctx.recorder, ctx.as_of
    m = conf.marketing
    campaigns = load_campaigns(conf)
    testing = TestSettings.from_config(conf)
    if not campaigns:
        log.warning(
            "marketing: no campaigns configured (marketing.campaigns_file / marketing.campaigns); nothing to do"
        )
        return
    log.info("marketing: %d campaigns: %s", len(campaigns), ", ".join(f"{c.id} ({c.goal})" for c in campaigns))
    # Settings read before any work, so a bad value fails fast naming its key and file.
    strategy_settings = StrategySettings.from_config(conf)
    clv_value = ClvValue.from_config(conf)

    features = _snapshot(t.read(FEATURES), as_of, FEATURES, exact=True)
    if features.limit(1).count() == 0:
        raise RuntimeError(f"{FEATURES} has no snapshot for {ctx.run_date}: run the features stage for that date first")
    segments_all = _optional(
        ctx, SEGMENTS, "eligibility by segment / value class matches nobody; results per RFM segment"
    )
    segments = _snapshot(segments_all, as_of, SEGMENTS, exact=False) if segments_all is not None else None
    cross_all = _optional(ctx, CROSS_SELL, "cross-sell offers carry no item")
    cross_sell = _snapshot(cross_all, as_of, CROSS_SELL, exact=False) if cross_all is not None else None
    recos_all = _optional(ctx, RECOMMENDATIONS, "cross-sell offers without a rule-based item carry no item")
    recos = _snapshot(recos_all, as_of, RECOMMENDATIONS, exact=False) if recos_all is not None else None
    customers = t.read("silver.customers")
    orders = t.read("silver.orders")
    responses = _optional(
        ctx, "silver.campaign_responses", "no propensity training, no suppression by past contact, no results"
    )
    responses_landed = responses  # with the columns known_by drops (variant, delivery), for the funnel
    if responses is not None:
        responses = responses.transform(known_by(as_of))
    feedback = _optional(ctx, "silver.feedback", "no suppression of complainers")

    features_at = point_in_time_features(orders, customers, responses, feedback)
    models = _fit_models(ctx, campaigns, features_at, responses, orders)
    consent = ConsentPolicy.from_config(conf)
    if consent.assumes:
        log.warning("marketing: %s", consent.warning())
    file_consent = None
    if consent.from_file:
        file_consent = _optional(
            ctx, "silver.consent", "consent policy from_file without a landed file: nobody opted in"
        )
        log.info(
            "marketing: consent from the consent file (%s); customers absent from it are not contacted",
            consent.file_source,
        )
    rec.details["consent"] = consent.summary()

    with rec.stage("score"):
        cutoff = as_of + timedelta(days=1)  # everything up to the end of the snapshot day
        snap = customers.select("customer_key", F.lit(cutoff).alias("cutoff_date")).transform(features_at)
        snap = _materialise(snap)
        scores = None
        for goal, model in models.items():
            s = model.score(snap).withColumnRenamed("p_response", f"p_{goal}")
            scores = s if scores is None else scores.join(s, on="customer_key", how="full")

    with rec.stage("churn_alerts"):
        labelled = features
        if segments is not None and "segment_name" in segments.columns:
            labelled = features.join(segments.select("customer_key", "segment_name"), on="customer_key", how="left")
        alerts = labelled.transform(churn_alerts(AlertSettings.from_config(conf), as_of)).select(*ALERT_COLUMNS)
        t.overwrite(alerts, ALERTS, partition_by=["snapshot_date"], where={"snapshot_date": ctx.run_date})
        alerts = t.read(ALERTS).where(F.col("snapshot_date") == F.lit(as_of))
        rec.details["churn_alerts"] = alerts.count()
        log.info("marketing: %d customers on the churn alert list (%s)", rec.details["churn_alerts"], ALERTS)

    windows = sorted({c.frequency_cap.days for c in campaigns})
    contacts = responses.transform(contact_history(as_of, windows)) if responses is not None else None
    complaints = feedback.transform(complaint_history(as_of)) if feedback is not None else None
    base = (
        features.transform(customer_base(customers, segments, cross_sell, recos))
        .transform(with_consent(consent, file_consent))
        .transform(with_history(contacts, complaints, windows))
        .join(scores, on="customer_key", how="left")
        .transform(with_alert_flag(alerts))
        .transform(with_clv_factor(clv_value))
        .transform(_materialise)
    )
    rec.rows_in += base.count()

    # Without a segmentation, strategies (and from_strategy offers) are per RFM segment.
    seg_col = "segment_name" if segments is not None else "rfm_segment"
    with rec.stage("strategy"):
        strategy = segment_strategy(base, responses, cross_sell, recos, strategy_settings, as_of, seg_col)
        t.overwrite(
            strategy.select(*STRATEGY_COLUMNS),
            STRATEGY,
            partition_by=["snapshot_date"],
            where={"snapshot_date": ctx.run_date},
        )
        strategy = t.read(STRATEGY).where(F.col("snapshot_date") == F.lit(as_of))
        promos = strategy.groupBy("promotion").count().collect()  # at most one row per promotion type
        rec.details["segment_strategy"] = {r["promotion"]: r["count"] for r in promos}
        log.info("marketing: %s: segments per promotion %s", STRATEGY, rec.details["segment_strategy"])

    with rec.stage("audiences"):
        salt = m.holdout_salt
        flagged_parts = [base.transform(flag_campaign(c, as_of, f"p_{c.goal}")) for c in campaigns]
        flagged = _materialise(_union(flagged_parts))
        scored = _materialise(
            _union([flagged.where(F.col("campaign_id") == c.id).transform(score_campaign(c, salt)) for c in campaigns])
        )
        # Designed arms: each blanket sample is drawn first from the eligible, the precise arm from the rest.
        blanket = [scored.transform(blanket_arm(c, salt)) for c in campaigns if c.arms and c.arms.has_blanket]
        pool = scored.transform(without(_union(blanket))) if blanket else scored
        selected = (
            pool.transform(arbitrate(m.max_campaigns_per_customer))
            .transform(select_under_budget)
            .withColumn("arm", F.lit("precise"))
        )
        if blanket:
            selected = _union([selected, *blanket])
        # Offer variants split the treated rows of every arm alike.
        selected = selected.transform(with_variant(campaigns, salt))
        # Each variant carries its own offer; the control group (no variant) the campaign's.
        offers = _union(
            [
                selected.where((F.col("campaign_id") == c.id) & F.col("variant").eqNullSafe(F.lit(vid))).join(
                    base.transform(
                        offer_columns(
                            offer,
                            as_of,
                            m.offer.daypart_min_share,
                            strategy_offers(strategy) if c.offers_from_strategy else None,
                            seg_col,
                        )
                    ),
                    on="customer_key",
                    how="left",
                )
                for c in campaigns
                for vid, offer in _variant_offers(c)
            ]
        )
        model_of = {c.id: models[c.goal].chosen for c in campaigns}
        model_col = F.create_map(*[F.lit(x) for kv in model_of.items() for x in kv])
        audience = (
            offers.join(
                base.select("customer_key", "segment_name", "rfm_segment", "value_class"), on="customer_key", how="left"
            )
            .withColumn("model", model_col[F.col("campaign_id")])
            .withColumn("snapshot_date", F.lit(as_of))
            .select(*AUDIENCE_TABLE_COLUMNS)
        )
        t.overwrite(audience, AUDIENCES, partition_by=["snapshot_date"], where={"snapshot_date": ctx.run_date})
        audience = t.read(AUDIENCES).where(F.col("snapshot_date") == F.lit(as_of))

    with rec.stage("plan"):
        basis = consent.basis()
        params = campaigns_frame(
            ctx.spark,
            campaigns,
            {g: (mm.chosen, mm.auc_chosen, mm.training_source, mm.label) for g, mm in models.items()},
            basis,
        )
        with_arms = [c.id for c in campaigns if c.arms is not None]
        arms_plan = arm_totals(audience, params, with_arms) if with_arms else None
        plan = (
            campaign_plan(flagged, scored, audience, params, arms_plan)
            .transform(with_power(testing, campaigns))
            .withColumn("snapshot_date", F.lit(as_of))
        )
        t.overwrite(plan, PLAN, partition_by=["snapshot_date"], where={"snapshot_date": ctx.run_date})
        summary = (
            t.read(PLAN).where(F.col("snapshot_date") == F.lit(as_of)).orderBy("campaign_id", "strategy").collect()
        )
        for r in summary:
            log.info(
                "plan %s %-9s contacts=%d cost=%.2f responses=%.1f rate=%s profit=%.2f roi=%s",
                r["campaign_id"],
                r["strategy"],
                r["contacts"],
                r["cost"],
                r["expected_responses"],
                "-" if r["response_rate"] is None else f"{r['response_rate']:.2%}",
                r["profit"],
                "-" if r["roi"] is None else f"{r['roi']:.2f}",
            )
        for r in summary:
            if r["strategy"] == "precision" and r["underpowered"]:
                log.warning(
                    "plan %s is underpowered: with %d contacts in %d variant(s) and %d held out it detects a "
                    "relative lift of %s at best, not marketing.testing.target_lift %.0f%%",
                    r["campaign_id"],
                    r["contacts"],
                    r["variants"],
                    r["holdout"],
                    "-" if r["mde_rel"] is None else f"{r['mde_rel']:.0%}",
                    100 * testing.target_lift,
                )
        rec.details["plan"] = {
            f"{r['campaign_id']}/{r['strategy']}": {"contacts": r["contacts"], "profit": round(r["profit"], 2)}
            for r in summary
        }
        rec.rows_out += sum(
            r["contacts"] + r["holdout"] for r in summary if r["strategy"] in ("precision", "blanket_arm")
        )

    if responses is not None:
        with rec.stage("results"):
            ev = m.evaluation
            eparams = EvaluationParams(ev.confidence, ev.margin_rate, ev.default_cost_per_contact, ev.attribution_days)
            costs = {
                c.id: (
                    c.cost_per_contact,
                    c.margin_per_response / c.revenue_per_response if c.revenue_per_response else ev.margin_rate,
                )
                for c in campaigns
            }
            seg_col = "segment_name" if segments is not None else "rfm_segment"
            with_seg = responses.join(base.select("customer_key", seg_col), on="customer_key", how="left")
            # Each response's arm from the audience it was sent from (planned up to this date).
            planned = t.read(AUDIENCES).where(F.col("snapshot_date") <= F.lit(as_of))
            with_seg = with_seg.transform(with_arm(planned))
            results = campaign_results(
                ctx.spark, with_seg, as_of, eparams, costs, seg_col, arm_costs(campaigns)
            ).withColumn("snapshot_date", F.lit(as_of))
            t.overwrite(results, RESULTS, partition_by=["snapshot_date"], where={"snapshot_date": ctx.run_date})
            assigned = latest_assignments(t.read(AUDIENCES), as_of)
            variants = (
                variant_results(ctx.spark, with_seg, assigned, testing, ev.confidence, seg_col)
                .withColumn("snapshot_date", F.lit(as_of))
                .select("snapshot_date", *VARIANT_RESULTS_COLUMNS)
            )
            t.overwrite(variants, VARIANTS, partition_by=["snapshot_date"], where={"snapshot_date": ctx.run_date})
    else:
        log.warning("marketing: no campaign responses yet: %s not written for %s", RESULTS, ctx.run_date)

    members = (
        segments.select("customer_key", "segment_name")
        if segments is not None and "segment_name" in segments.columns
        else None
    )
    with rec.stage("kpis"):
        kpis = kpi_trends(orders, feedback, members, as_of, KpiSettings.from_config(conf)).select(*KPI_COLUMNS)
        t.overwrite(kpis, KPIS, partition_by=["snapshot_date"], where={"snapshot_date": ctx.run_date})
    if responses_landed is not None:
        with rec.stage("funnel"):
            funnel = campaign_funnel(responses_landed, members, as_of).select(*FUNNEL_COLUMNS)
            t.overwrite(funnel, FUNNEL, partition_by=["snapshot_date"], where={"snapshot_date": ctx.run_date})

    with rec.stage("exports"):
        files = write_exports(ctx, campaigns, audience, base, consent)
        rec.details["exports"] = len(files)
    # snap, base, flagged and scored are local checkpoints: Spark's context cleaner frees
    # their blocks once these frames are unreachable, i.e. when the stage returns.


def _variant_offers(c: Campaign) -> list[tuple[str | None, Offer]]:
    """(variant id, offer) pairs of a campaign's audience rows: None is the control group."""
    return [(None, c.offer), *((v.id, v.offer) for v in (c.variants or [Variant(DEFAULT_VARIANT, offer=c.offer)]))]


def _materialise(df: DataFrame) -> DataFrame:
    """Computed once and cut from its lineage: the frames below are reused once per campaign,
    and without the cut every union branch carries the whole feature and scoring plan again
    (the plan, not the data, then outgrows the driver's memory)."""
    return pin(df)


def _union(frames: list[DataFrame]) -> DataFrame:
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


# --- export files -----------------------------------------------------------------------


def write_exports(
    ctx: StageContext,
    campaigns: list[Campaign],
    audience: DataFrame,
    base: DataFrame,
    consent: ConsentPolicy | None = None,
) -> list[dict]:
    """Every campaign's export files and the date's manifest (with the consent policy and,
    when consent is assumed, its warning).

    Everything is written to ``<exports>/_staging/<date>-<id>/`` first and swapped in for the
    date's folder only once the manifest is written, so a failure leaves the last good export
    as it was (downstream tools never see half an export), and readers that skip ``_`` folders
    never see the staging one.
    """
    exports = absolute(ctx.conf.paths.exports).rstrip("/")
    final_root = f"{exports}/{ctx.run_date}"
    root = f"{exports}/_staging/{ctx.run_date}-{uuid.uuid4().hex[:12]}"
    try:
        written = _write_export_files(ctx, root, campaigns, audience, base, consent)
        publish_folder(root, final_root)
    finally:
        fileio.delete_tree(root)
    for w in written:
        w["path"] = f"{final_root}/{w['file']}"
    log.info("marketing: %d export files under %s", len(written), final_root)
    return written


def _write_export_files(
    ctx: StageContext,
    root: str,
    campaigns: list[Campaign],
    audience: DataFrame,
    base: DataFrame,
    consent: ConsentPolicy | None,
) -> list[dict]:
    spark = ctx.spark
    formats = list(ctx.conf.marketing.export.formats)
    ident = base.select(
        "customer_key",
        "opt_in_email",
        "opt_in_sms",
        "opt_in_ads",
        "email_key",
        "phone_key",
        "email_sha256",
        "phone_sha256",
        "city",
        "region",
        "age_band",
        "member_tier",
        "consent_basis",
    )
    contacts = audience.join(ident, on="customer_key", how="left").persist(StorageLevel.MEMORY_AND_DISK)
    profiles = [p for p in load_profiles(ctx.conf) if any(ch in p.channels for c in campaigns for ch in c.channels)]
    activation = _activation_contacts(ctx, contacts, profiles)
    written: list[dict] = []
    activated: list[dict] = []
    try:
        for c in campaigns:
            mine = contacts.where(F.col("campaign_id") == c.id)
            frames = {kind: EXPORTS[kind](mine) for kind in exports_for(c.channels)}
            if c.seed is not None:
                frames["ads_seed"] = seed_export(
                    base.transform(seed_audience(c)).join(
                        ident.select("customer_key", "opt_in_ads"), on="customer_key", how="left"
                    )
                )
            for kind, df in frames.items():
                df = df.persist(StorageLevel.MEMORY_AND_DISK)
                rows = df.count()
                for fmt in formats:
                    path = f"{root}/{c.id}/{kind}.{fmt}"
                    _write_single_file(spark, df, fmt, path)
                    written.append({"campaign_id": c.id, "export": kind, "format": fmt, "path": path, "rows": rows})
                df.unpersist()
            for p in profiles:
                if any(ch in p.channels for ch in c.channels):
                    files, summary = _write_profile(ctx, root, c.id, p, mine, activation)
                    written.extend(files)
                    activated.append(summary)
    finally:
        contacts.unpersist()
        if activation is not None:
            activation.unpersist()
    sums = file_digests(spark, [w["path"] for w in written])
    for w in written:
        size, digest = sums[w["path"]]
        w.update(bytes=size, sha256=digest, file=w["path"][len(root) + 1 :])
    doc = manifest(
        ctx.run_date,
        [{k: v for k, v in w.items() if k != "path"} for w in written],
        consent.summary() if consent is not None else None,
        activated,
    )
    fileio.write_text(f"{root}/manifest.json", json.dumps(doc, indent=1, sort_keys=True))
    fileio.write_text(f"{root}/_SUCCESS", "")  # last: a loader that waits for it sees a complete export
    return written


def _activation_contacts(ctx: StageContext, contacts: DataFrame, profiles: list[Profile]) -> DataFrame | None:
    """Consented treatment contacts joined, at export time, to their source identity: the source
    customer id (``silver.activation_ids``) and the latest bronze CRM row's e-mail, phone and name.
    Only these contacts reach the bronze join; nothing of it is stored in a table."""
    if not profiles:
        return None
    eligible = contacts.transform(activation_contacts)
    identities = None
    if any(p.needs_identity for p in profiles):
        identities = _identities(ctx)
    joined = (
        eligible.join(identities, on="customer_key", how="left")
        if identities is not None
        else eligible.transform(without_identity)
    )
    return joined.persist(StorageLevel.MEMORY_AND_DISK)


def _identities(ctx: StageContext) -> DataFrame | None:
    t = ctx.tables
    if not t.exists("silver.activation_ids"):
        log.warning(
            "marketing: silver.activation_ids is absent (run conform for %s): activation files carry no source "
            "ids nor addresses, and profiles that need them get no rows",
            ctx.run_date,
        )
        return None
    try:
        bronze = bronze_with_flat(ctx, "crm_customers").where(F.col("_batch_date") <= F.lit(ctx.as_of))
    except Exception as exc:  # no CRM and no flat file: ids only
        log.warning("marketing: no CRM rows for activation files (%s): source ids only", exc)
        bronze = None
    ids = t.read("silver.activation_ids")
    cc = ctx.conf.pii.default_country_code
    country = default_country(ctx.conf)
    if bronze is None:
        empty = ids.select("customer_id").where(F.lit(False))
        crm = empty.select("customer_id", *[F.lit(None).cast("string").alias(c) for c in ("email", "phone", "name")])
    else:
        crm = crm_identities(bronze, cc)
    return identity_columns(crm, ids, country)


def _write_profile(
    ctx: StageContext, root: str, campaign_id: str, p: Profile, mine: DataFrame, activation: DataFrame
) -> tuple[list[dict], dict]:
    """One campaign's file(s) for one tool, and the manifest's summary of them: rows by the consent
    field that allowed them, contacts each consent field excluded, contacts without an identifier."""
    framed = (
        activation.where(F.col("campaign_id") == campaign_id)
        .transform(profile_frame(p, with_consent_field=True))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        allowed = {
            r[CONSENT_FIELD]: int(r["n"]) for r in framed.groupBy(CONSENT_FIELD).agg(F.count("*").alias("n")).collect()
        }
        rows = sum(allowed.values())
        files = write_csv_parts(
            ctx.spark,
            framed.drop(CONSENT_FIELD),
            f"{root}/{campaign_id}",
            p.name,
            rows,
            p.max_rows_per_file,
            compress=p.gzip,
            encoding=p.encoding,
            unescaped=p.unescaped_headers,
        )
    finally:
        framed.unpersist()
    counts = {
        r["consent_field"]: (int(r["contacts"]), int(r["excluded_no_consent"]))
        for r in consent_counts(p, mine).collect()
    }
    consented = sum(n - x for n, x in counts.values())
    summary = {
        "campaign_id": campaign_id,
        "profile": p.name,
        "channels": list(p.channels),
        "columns": p.headers,
        "fields": dict(p.columns),
        "encoding": p.encoding,
        "gzip": p.gzip,
        "rows": rows,
        "files": len(files),
        "rows_by_consent_field": allowed,
        "excluded_by_consent_field": {k: x for k, (_, x) in counts.items() if k is not None},
        "excluded_no_identifier": consented - rows,
    }
    log.info(
        "marketing: %s / %s: %d rows in %d file(s); excluded without consent: %s; without identifier: %d",
        campaign_id,
        p.name,
        rows,
        len(files),
        summary["excluded_by_consent_field"] or "none",
        summary["excluded_no_identifier"],
    )
    entries = [
        {
            "campaign_id": campaign_id,
            "export": p.name,
            "format": p.extension,
            "path": f["path"],
            "rows": f["rows"],
            "part": f["part"],
            "parts": f["parts"],
            "profile": p.name,
        }
        for f in files
    ]
    return entries, summary


def _write_single_file(spark: SparkSession, df: DataFrame, fmt: str, target: str) -> None:
    """One file at ``target`` (not a folder): written to a temporary folder, then moved into place."""
    tmp = f"{target}._tmp"
    writer = df.coalesce(1).write.mode("overwrite")
    if fmt == "csv":  # CSV opens in spreadsheets: formula-like cells are escaped
        writer = df.transform(escape_formulas).coalesce(1).write.mode("overwrite")
        writer.option("header", True).option("emptyValue", "").csv(tmp)
    else:
        writer.parquet(tmp)
    parts = [p for p, _ in fileio.list_files(spark, tmp) if p.rsplit("/", 1)[-1].startswith("part-")]
    if parts:
        fileio.move(parts[0], target)
    else:  # an empty frame writes no part file: a header-only CSV keeps downstream loaders happy
        fileio.write_text(target, ",".join(df.columns) + "\n" if fmt == "csv" else "")
    fileio.delete_tree(tmp)
