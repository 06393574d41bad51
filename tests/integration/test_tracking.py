"""MLflow tracking (``tracking.*``, custseg.tracking) against a local file store.

The shared pipeline run (tests/integration/conftest.py) runs with tracking on into a file store
in its home; MLflow's own client reads it back. The segment, basket and marketing runs (and
only those: the other stages fit nothing) carry tags that tie them to gold.job_runs, parameters
and metrics equal to what each stage wrote to its gold quality table at the table version the
run names, and model artifacts that load back (KMeans with the chosen k, ALS with the configured
rank, the propensity pipelines). On small planted-persona features, the segment stage with an
unreachable server logs one warning and succeeds, and with tracking off imports no mlflow and
writes nothing.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from tests.integration.conftest import RUN_DATE, run_stages, tracking_on, tracking_store
from tests.integration.test_segment_e2e import persona_features

pytestmark = pytest.mark.slow

FAST = [
    "--set",
    "segment.k_min=2",
    "--set",
    "segment.k_max=4",
    "--set",
    "segment.n_init=1",
    "--set",
    "segment.max_iter=20",
]


def latest_run_row(tables, job: str, run_id: str | None = None):
    """The closing row of the latest run of ``job`` (or of the run ``run_id``) in gold.job_runs."""
    from custseg.runs import latest_runs

    runs = tables.read("gold.job_runs").where(F.col("job") == job).transform(latest_runs)
    if run_id is not None:
        runs = runs.where(F.col("run_id") == run_id)
    return runs.orderBy(F.col("started_at").desc()).first()


def only_run(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("custseg")
    assert experiment is not None, f"no experiment 'custseg' in {uri}"
    runs = client.search_runs([experiment.experiment_id])
    return client, runs


def assert_no_salt(store) -> None:
    salt = os.environ["CUSTSEG_PII_SALT"]
    files = [p for p in store.rglob("*") if p.is_file()]
    assert files
    assert not [p for p in files if salt.encode() in p.read_bytes()], "the PII salt is in the MLflow store"


@pytest.fixture(scope="module")
def segment_home(spark, tmp_path_factory):
    from custseg.storage import StorageSettings, Tables

    home = tmp_path_factory.mktemp("tracking")
    tables = Tables(spark, StorageSettings(root=str(home / "tables")))
    feats = persona_features(spark, 600, RUN_DATE, seed=11).drop("persona")
    tables.overwrite(feats, "gold.customer_features", partition_by=["snapshot_date"], where={"snapshot_date": RUN_DATE})
    return home, tables


@pytest.fixture(scope="module")
def demo_store(demo_run, demo_tables):
    """(client, {job: MLflow run}, tables, store) of the shared, tracked pipeline run."""
    home, _, _ = demo_run
    store = tracking_store(home)
    client, runs = only_run(store.as_uri())
    by_job = {r.data.tags["custseg.job"]: r for r in runs}
    # One run per stage run that fits a model; ingest, conform, features and report log nothing.
    assert sorted(r.data.tags["custseg.job"] for r in runs) == ["basket", "marketing", "segment"]
    return client, by_job, demo_tables, store


def test_segment_run_holds_what_the_stage_wrote(spark, demo_store, tmp_path):
    from pyspark.ml.clustering import KMeansModel

    client, by_job, tables, store = demo_store
    run = by_job["segment"]
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert run.info.status == "FINISHED"

    # One MLflow run per stage run, both ways linked.
    job = latest_run_row(tables, "segment", tags["custseg.run_id"])
    assert job["status"] == "succeeded"
    assert (tags["custseg.job"], tags["custseg.run_date"]) == ("segment", RUN_DATE)
    assert json.loads(job["details"])["mlflow_run_id"] == run.info.run_id

    # The figures of gold.segment_quality at the version the run names.
    version = int(params["version.gold.segment_quality"])
    quality = tables.read("gold.segment_quality", version=version).where(F.col("snapshot_date") == RUN_DATE)
    overall = {r["metric"]: r["value"] for r in quality.where("kind = 'overall'").collect()}
    assert {"silhouette", "wss", "calinski_harabasz", "rows"} <= set(overall)
    assert {m: metrics.get(m) for m in overall} == pytest.approx(overall)
    chosen = quality.where("kind = 'k_selection' AND metric = 'chosen' AND value = 1").first()["k"]
    assert params["k"] == str(chosen)
    assert (params["algorithm"], params["k_min"], params["k_max"]) == ("kmeans", "2", "8")  # pipeline_args: k_max=8
    curve = {r["k"]: r["value"] for r in quality.where("kind = 'k_selection' AND metric = 'silhouette'").collect()}
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "k_selection.silhouette")}
    assert sorted(curve) == list(range(2, 9))
    assert history == pytest.approx(curve)
    profiles = tables.read("gold.segment_profiles", version=int(params["version.gold.segment_profiles"]))
    profiles = profiles.where(F.col("snapshot_date") == RUN_DATE)
    assert profiles.count() == chosen

    # The model: a KMeans model with the chosen k, and the scaling it needs.
    model = KMeansModel.load(client.download_artifacts(run.info.run_id, "models/kmeans", str(tmp_path)))
    assert len(model.clusterCenters()) == chosen
    features = json.loads(
        Path(client.download_artifacts(run.info.run_id, "segment/features.json", str(tmp_path))).read_text()
    )
    assert set(features["feature_columns"]) == set(profiles.first()["centre_z"])
    assert features["feature_columns"] == params["feature_columns"].split(",")
    assert len(features["scaling"]["mean"]) == len(features["feature_columns"]) == model.clusterCenters()[0].size
    assert_no_salt(store)


def test_unreachable_server_is_a_warning_and_the_stage_succeeds(spark, segment_home, caplog, monkeypatch):
    import logging

    home, tables = segment_home
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    caplog.set_level(logging.INFO)
    uri = f"http://analyst:tok3n-not-for-logs@127.0.0.1:{port}"
    assert run_stages(spark, home, RUN_DATE, ["segment"], FAST + tracking_on(uri)) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "MLflow" in r.getMessage()]
    assert len(warned) == 1, warned
    assert f"http://127.0.0.1:{port}" in warned[0] and "goes on without tracking" in warned[0]
    assert not [r for r in caplog.records if "tok3n-not-for-logs" in r.getMessage()]
    job = latest_run_row(tables, "segment")
    assert job["status"] == "succeeded" and "mlflow_run_id" not in json.loads(job["details"])


def test_tracking_off_imports_no_mlflow_and_writes_nothing(spark, segment_home, tmp_path, monkeypatch, caplog):
    home, tables = segment_home
    for name in [n for n in sys.modules if n == "mlflow" or n.startswith("mlflow.")] + ["mlflow"]:
        monkeypatch.setitem(sys.modules, name, None)  # any import of mlflow now raises ImportError
    store = tmp_path / "store"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = sorted(p.name for p in home.iterdir())
    assert run_stages(spark, home, RUN_DATE, ["segment"], FAST) == 0
    assert not store.exists() and list(work.iterdir()) == []
    assert sorted(p.name for p in home.iterdir()) == before
    job = latest_run_row(tables, "segment")
    assert job["status"] == "succeeded" and "mlflow_run_id" not in json.loads(job["details"])
    # On without mlflow installed: refused at start-up, naming the extra, before the stage runs.
    version = tables.version("gold.customer_segments")
    assert run_stages(spark, home, RUN_DATE, ["segment"], FAST + ["--set", "tracking.enabled=true"]) == 2
    assert any("custseg[tracking]" in r.getMessage() for r in caplog.records)
    assert tables.version("gold.customer_segments") == version


def test_basket_run_holds_als_and_reco_quality(spark, demo_store, tmp_path):
    from pyspark.ml.recommendation import ALSModel

    from custseg.config import load_config
    from custseg.recommend.settings import RecommendSettings

    client, by_job, tables, _ = demo_store
    run = by_job["basket"]
    params, metrics = run.data.params, run.data.metrics
    als = RecommendSettings.from_config(load_config(None)).als
    assert (params["als.rank"], params["als.reg_param"], params["als.alpha"], params["als.seed"]) == (
        str(als.rank),
        str(als.reg_param),
        str(als.alpha),
        str(als.seed),
    )
    version = int(params["version.gold.reco_quality"])
    quality = tables.read("gold.reco_quality", version=version).where(F.col("snapshot_date") == RUN_DATE).collect()
    assert {r["method"] for r in quality} >= {"als", "rules", "popularity"}
    for r in quality:
        for metric in ("map", "precision", "recall", "coverage"):
            assert metrics[f"reco.{r['method']}.{metric}_at_{r['k']}"] == pytest.approx(r[metric])
    assert "reco.als.map_at_10" in metrics
    rules = tables.read("gold.association_rules", version=int(params["version.gold.association_rules"]))
    assert metrics["fp_growth.rules"] == rules.where(F.col("snapshot_date") == RUN_DATE).count()
    model = ALSModel.load(client.download_artifacts(run.info.run_id, "models/als", str(tmp_path)))
    assert model.rank == als.rank
    assert model.itemFactors.count() == metrics["als.items"]


def test_marketing_run_holds_propensity_quality_and_models(spark, demo_store, tmp_path):
    from pyspark.ml import PipelineModel

    client, by_job, tables, store = demo_store
    run = by_job["marketing"]
    params, metrics = run.data.params, run.data.metrics
    version = int(params["version.gold.propensity_quality"])
    quality = tables.read("gold.propensity_quality", version=version).where(F.col("snapshot_date") == RUN_DATE)
    rows = quality.collect()
    goals = {r["goal"] for r in rows}
    assert goals
    fitted = 0
    for goal in goals:
        mine = [r for r in rows if r["goal"] == goal]
        chosen = {r["model"] for r in mine if r["chosen"]}
        assert {params[f"propensity.{goal}.model"]} == chosen
        for r in mine:
            if r["auc_validation"] is not None:
                assert metrics[f"propensity.{goal}.auc.{r['model']}"] == pytest.approx(r["auc_validation"])
        for name in {r["model"] for r in mine if r["decile"] is not None}:
            observed = {r["decile"]: r["observed_rate"] for r in mine if r["model"] == name}
            key = f"propensity.{goal}.{name}.calibration.observed_rate"
            history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
            assert history == pytest.approx(observed)
        artifact = params.get(f"propensity.{goal}.artifact")
        if chosen != {"constant"}:
            model = PipelineModel.load(client.download_artifacts(run.info.run_id, artifact, str(tmp_path / goal)))
            assert model.stages
            fitted += 1
    assert fitted >= 1, "no fitted propensity model on the shared run"
    assert_no_salt(store)
