"""custseg.tracking without Spark: where the URI comes from, what is never logged, and that
tracking off imports no mlflow. The stages' runs against a file store: tests/integration/test_tracking.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from custseg.config import load_config
from custseg.redaction import MASK
from custseg.tracking import NO_TRACKING, MlflowTracker, TrackingSettings, display_uri, start

ROOT = Path(__file__).resolve().parents[2]


def test_uri_from_config_else_environment_else_a_file_store_beside_the_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSEG_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    conf = load_config(None)
    assert TrackingSettings.from_config(conf).resolved_uri == (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert TrackingSettings.from_config(conf).resolved_uri == "http://mlflow.internal:5000"
    on = conf.with_overrides({"tracking.uri": "databricks"})
    assert TrackingSettings.from_config(on).resolved_uri == "databricks"


def test_databricks_turns_tracking_on_and_the_base_leaves_it_off(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    base = TrackingSettings.from_config(load_config(None))
    dbx = TrackingSettings.from_config(load_config(ROOT / "conf" / "databricks.yaml"))
    assert not base.enabled and start(load_config(None), {}, "x") is NO_TRACKING
    assert dbx.enabled and (dbx.resolved_uri, dbx.experiment) == ("databricks", "/Shared/custseg")
    assert dbx.model_staging.startswith("/Volumes/")


def test_credentials_in_the_uri_are_masked_in_the_effective_config_and_in_messages():
    conf = load_config(None).with_overrides({"tracking.uri": "https://svc:s3cr3t-token@mlflow.example.com/path?x=1"})
    text = json.dumps(conf.redacted())
    assert "s3cr3t-token" not in text and f"https://{MASK}@mlflow.example.com/path?x=1" in text
    assert display_uri("https://svc:s3cr3t-token@mlflow.example.com/path?x=1") == "https://mlflow.example.com/path"
    assert display_uri("databricks") == "databricks"


def test_secrets_never_reach_a_param_tag_or_metric(tmp_path, monkeypatch, caplog):
    from mlflow.tracking import MlflowClient

    salt = "unit-salt-that-must-not-leak-0123456789"
    monkeypatch.setenv("CUSTSEG_PII_SALT", salt)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "store").as_uri()
    conf = load_config(None).with_overrides({"tracking.enabled": True, "tracking.uri": uri})
    tracker = start(conf, {"custseg.job": "segment", "custseg.note": f"salt={salt}"}, "segment 2026-06-30")
    assert isinstance(tracker, MlflowTracker)
    tracker.log_params({"k": 4, "pii.salt": "anything", "api_key": "abc", "comment": f"x{salt}x", "skip": None})
    tracker.log_params({"k": 5})  # MLflow cannot change a parameter: the first value stays, with a warning
    tracker.log_metrics({"silhouette": 0.5, "missing": None, "nan": float("nan"), "flag": True})
    tracker.close()
    run = MlflowClient(uri).get_run(tracker.run_id)
    assert run.data.params == {"k": "4"}
    assert run.data.metrics == {"silhouette": 0.5}
    assert run.data.tags["custseg.job"] == "segment" and "custseg.note" not in run.data.tags
    assert run.info.status == "FINISHED"
    stored = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert salt.encode() not in stored and b"anything" not in stored
    assert not [r for r in caplog.records if salt in r.getMessage()]
    assert any("logged twice" in r.getMessage() for r in caplog.records)


def test_tracking_off_never_imports_mlflow():
    code = (
        "import sys\n"
        "from custseg.config import load_config\n"
        "from custseg import tracking\n"
        "import custseg.cli, custseg.stages.segment, custseg.stages.basket, custseg.stages.marketing\n"
        "conf = load_config(None)\n"
        "tracking.check(conf)\n"
        "t = tracking.start(conf, {'custseg.job': 'segment'}, 'segment')\n"
        "t.log_params({'k': 3}); t.log_metrics({'wss': 1.0}); t.log_dict({}, 'a.json'); t.log_model('m', object())\n"
        "t.close()\n"
        "assert not t.enabled and t.run_id is None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_bad_tracking_settings_fail_naming_the_key():
    import pytest

    from custseg.config import ConfigError

    conf = load_config(None)
    for key, value in (
        ("tracking.experiment", " "),
        ("tracking.http_max_retries", 50),
        ("tracking.http_timeout_seconds", 0),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            conf.with_overrides({key: value})
