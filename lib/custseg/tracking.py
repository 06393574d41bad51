"""Optional MLflow tracking of the models the stages fit (``tracking.*`` in the config).

Off by default (``tracking.enabled: false``): the stages talk to a no-op ``Tracker`` and
mlflow is never imported. On (conf/databricks.yaml turns it on), each stage run that fits a
model (segment: KMeans / bisecting / GMM; basket: ALS and FP-Growth; marketing: the
propensity classifiers) is one MLflow run in ``tracking.experiment``, tagged with the custseg
run id of gold.job_runs, the job, the run date and the scheduler's run id. It holds the
stage's parameters, the metrics the stage writes to its gold quality table, and the fitted
Spark ML models as artifacts. The run opens at the first thing a stage logs (stages that fit
nothing make no empty runs) and closes FINISHED or FAILED with the stage.

Tracking observes; it never fails a stage. When the server cannot be reached or refuses a
call, one warning names the URI and the error, the stage's remaining tracking calls are
dropped, and the stage carries on: every figure logged here is also in the gold tables, so
only the MLflow copy is lost, while a nightly segmentation failed for a down tracking server
would publish nothing. A tracking that cannot work at all (on, but mlflow not installed) is a
deployment error and fails at start-up (``check``), before any stage runs.

Models are saved with ``model.write().overwrite().save(<staging>)`` and uploaded with
``log_artifacts``: no JVM handle, so this works over Spark Connect (``mlflow.spark.log_model``
copies through the JVM's Hadoop client). The staging folder must be one Spark writes and this
process reads: a local temporary folder for local sessions, a Unity Catalog volume on Databricks.

No secret reaches MLflow: the stages name their parameters one by one from their settings
(never the whole config), keys that look secret (``custseg.redaction``) are dropped, and so is
any value holding the PII salt or a token from the environment. The URI is logged without
its user-info and query.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

from custseg.redaction import MASK, is_secret_key

log = logging.getLogger(__name__)

# Environment variables whose values must never reach MLflow (the salt variable is added from the config).
SECRET_ENV = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
)
PARAM_MAX = 6000  # MLflow's longest parameter value (3.x); longer values are cut with a marker
BATCH = 100  # parameters / tags per log_batch call (MLflow's limit; metrics allow 1000)


class TrackingError(RuntimeError):
    """Tracking is on but cannot work in this installation (mlflow missing)."""


@dataclass(frozen=True)
class TrackingSettings:
    enabled: bool = False
    uri: str = ""
    experiment: str = "custseg"
    log_models: bool = True
    model_staging: str = ""
    http_max_retries: int = 2
    http_timeout_seconds: int = 30
    default_store: str = "./data/mlruns"  # <paths.tables>/../mlruns, for an empty uri without MLFLOW_TRACKING_URI
    salt_env: str = "CUSTSEG_PII_SALT"

    @classmethod
    def from_config(cls, conf) -> TrackingSettings:
        g = conf.get_path
        tables = str(g("paths.tables", "./data/tables")).removeprefix("file:")
        store = os.path.join(os.path.dirname(os.path.abspath(tables.rstrip("/"))), "mlruns")
        return cls(
            enabled=bool(g("tracking.enabled", False)),
            uri=str(g("tracking.uri", "") or ""),
            experiment=str(g("tracking.experiment", "custseg") or "custseg"),
            log_models=bool(g("tracking.log_models", True)),
            model_staging=str(g("tracking.model_staging", "") or ""),
            http_max_retries=int(g("tracking.http_max_retries", 2)),
            http_timeout_seconds=int(g("tracking.http_timeout_seconds", 30)),
            default_store=store,
            salt_env=str(g("pii.salt_env", "CUSTSEG_PII_SALT")),
        )

    @property
    def resolved_uri(self) -> str:
        """``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else a file store beside the tables."""
        uri = self.uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        return uri or Path(self.default_store).as_uri()


def display_uri(uri: str) -> str:
    """The URI without user-info (``user:token@``), query or fragment: safe to log."""
    p = urlparse(uri)
    if not p.scheme or not p.netloc:
        return uri
    host = p.netloc.rsplit("@", 1)[-1]
    return urlunparse((p.scheme, host, p.path, "", "", ""))


def is_file_store(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file")


class Tracker:
    """Tracking off: every call returns at once and nothing is imported or written."""

    enabled = False
    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters of the run (str() of each value); None values are skipped."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Numeric metrics; None and NaN are skipped (MLflow has no missing value)."""

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """A small JSON artifact (e.g. the scaling a KMeans model needs to be applied)."""

    def log_model(self, name: str, model: Any) -> None:
        """A fitted Spark ML model (anything with ``write()``) under ``models/<name>``."""

    def close(self, failed: bool = False) -> None:
        """End the run FINISHED (or FAILED) if one was opened."""


NO_TRACKING = Tracker()


def check(conf) -> None:
    """Fail at start-up when tracking is on but mlflow is not installed (names the extra)."""
    if not bool(conf.get_path("tracking.enabled", False)):
        return
    try:
        import mlflow  # noqa: F401
    except ImportError as exc:
        raise TrackingError(
            f"{conf.source_of('tracking.enabled')}: tracking.enabled is true but mlflow cannot be imported ({exc}); "
            "install the tracking extra (pip install 'custseg[tracking]', or mlflow-skinny) or set tracking.enabled=false"
        ) from exc


def start(conf, tags: Mapping[str, Any], run_name: str) -> Tracker:
    """The tracker of one stage run: ``NO_TRACKING`` when tracking is off (mlflow not imported)."""
    settings = TrackingSettings.from_config(conf)
    if not settings.enabled:
        return NO_TRACKING
    return MlflowTracker(settings, tags, run_name)


class MlflowTracker(Tracker):
    """One MLflow run, opened lazily; any failure of MLflow is one warning and ends tracking for the run."""

    enabled = True

    def __init__(self, settings: TrackingSettings, tags: Mapping[str, Any], run_name: str):
        self.settings = settings
        self.uri = settings.resolved_uri
        self.tags = dict(tags)
        self.run_name = run_name
        self.run_id = None
        self._client = None
        self._failed = False
        self._params: dict[str, str] = {}
        self._secrets = [
            v for v in (os.environ.get(n, "") for n in (*SECRET_ENV, settings.salt_env)) if v and len(v) >= 8
        ]
        # A user name or token in the URI itself counts as a secret too.
        netloc = urlparse(self.uri).netloc
        if "@" in netloc:
            self._secrets.append(netloc.rsplit("@", 1)[0])

    # --- the MLflow run ------------------------------------------------------------------

    def _prepare_environment(self) -> None:
        """Bounded HTTP retries (unless the environment sets them) and the file store opt-in."""
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(self.settings.http_max_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(self.settings.http_timeout_seconds))
        if is_file_store(self.uri) and "MLFLOW_ALLOW_FILE_STORE" not in os.environ:
            # MLflow 3 refuses its file store unless opted in (it points users to a database
            # backend, which mlflow-skinny cannot run). A local file store is what tracking
            # needs without a server, so custseg opts in for it.
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
            log.info("MLflow: file store %s (MLFLOW_ALLOW_FILE_STORE=true)", display_uri(self.uri))

    def _open(self) -> bool:
        """Open the run on first use; False once tracking has failed for this run."""
        if self._failed:
            return False
        if self.run_id is not None:
            return True
        try:
            self._prepare_environment()
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.uri)
            name = self.settings.experiment
            experiment = client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment is not None else client.create_experiment(name)
            tags = {k: str(v) for k, v in self.tags.items() if v is not None and self._allowed(k, v)}
            run = client.create_run(experiment_id, tags=tags, run_name=self.run_name)
        except Exception as exc:
            self._give_up("could not start a run", exc)
            return False
        self._client, self.run_id = client, run.info.run_id
        log.info("MLflow: run %s in experiment %r at %s (%s)", self.run_id, name, display_uri(self.uri), self.run_name)
        return True

    def _give_up(self, what: str, exc: BaseException) -> None:
        self._failed = True
        log.warning(
            "MLflow tracking at %s %s (%s: %s); the stage goes on without tracking (tracking.enabled=true, "
            "tracking never fails a stage)",
            display_uri(self.uri),
            what,
            type(exc).__name__,
            self._scrub(str(exc))[:500],
        )

    def _scrub(self, text: str) -> str:
        text = text.replace(self.uri, display_uri(self.uri)) if self.uri else text
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _allowed(self, key: str, value: Any) -> bool:
        if is_secret_key(key) or any(s in str(value) for s in self._secrets):
            log.warning("MLflow: %s not logged (it looks like a secret)", key)
            return False
        return True

    def _call(self, what: str, fn) -> None:
        if not self._open():
            return
        try:
            fn()
        except Exception as exc:
            self._give_up(what, exc)

    # --- what the stages log ---------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        fresh = {}
        for key, value in params.items():
            if value is None or not self._allowed(key, value):
                continue
            text = value if isinstance(value, str) else json.dumps(value, default=str) if _nested(value) else str(value)
            if len(text) > PARAM_MAX:
                text = text[: PARAM_MAX - 15] + "...(truncated)"
            if self._params.get(key) == text:
                continue
            if key in self._params:  # MLflow refuses to change a parameter: keep the first, say so
                log.warning("MLflow: parameter %s logged twice with different values; kept the first", key)
                continue
            fresh[key] = text
        if not fresh:
            return
        items = list(fresh.items())

        def send():
            for i in range(0, len(items), BATCH):
                self._client.log_batch(self.run_id, params=[Param(k, v) for k, v in items[i : i + BATCH]])
            self._params.update(fresh)

        self._call("could not log parameters", send)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = []
        for key, value in metrics.items():
            if value is None or isinstance(value, bool | str):
                continue
            number = float(value)
            if math.isnan(number) or not self._allowed(key, value):
                continue
            values.append(Metric(key, number, now, int(step or 0)))
        if not values:
            return

        def send():
            for i in range(0, len(values), 1000):
                self._client.log_batch(self.run_id, metrics=values[i : i + 1000])

        self._call("could not log metrics", send)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        self._call("could not log " + artifact_file, lambda: self._client.log_dict(self.run_id, obj, artifact_file))

    def log_model(self, name: str, model: Any) -> None:
        if not self.settings.log_models or model is None or not self._open():
            return
        staging = self.settings.model_staging
        base = os.path.join(staging, f"custseg-{self.run_id}") if staging else tempfile.mkdtemp(prefix="custseg-model-")
        local = os.path.join(base, name)
        try:
            # Spark writes the model (its executors, on a cluster): a local folder is named
            # file:// so a cluster whose default file system is HDFS does not take it for one of its own.
            target = Path(local).absolute().as_uri() if not staging and not urlparse(local).scheme else local
            model.write().overwrite().save(target)
            if not os.path.isdir(local) or not any(os.scandir(local)):
                raise FileNotFoundError(
                    f"the model was saved to {local} but this process cannot see it there; on a cluster, set "
                    "tracking.model_staging to a folder both Spark and the driver see (e.g. a Unity Catalog volume)"
                )
            self._client.log_artifacts(self.run_id, local, artifact_path=f"models/{name}")
            log.info("MLflow: model %s (%s) logged", name, type(model).__name__)
        except Exception as exc:
            # A model that cannot be logged does not end tracking: the figures are still worth having.
            log.warning(
                "MLflow: model %s not logged (%s: %s); the stage goes on",
                name,
                type(exc).__name__,
                self._scrub(str(exc))[:500],
            )
        finally:
            shutil.rmtree(base, ignore_errors=True)

    def close(self, failed: bool = False) -> None:
        if self.run_id is None or self._failed:
            return
        status = "FAILED" if failed else "FINISHED"
        try:
            self._client.set_terminated(self.run_id, status)
        except Exception as exc:
            self._give_up("could not end the run", exc)


def _nested(value: Any) -> bool:
    return isinstance(value, dict | list | tuple)
