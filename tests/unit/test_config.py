"""Config layering, interpolation, and errors that name the key and the file."""

import json
import re

import pytest

from custseg.config import ConfigError, load_config
from custseg.redaction import MASK


def _write(path, text):
    path.write_text(text)
    return path


@pytest.fixture()
def conf_dir(tmp_path):
    _write(
        tmp_path / "base.yaml",
        "paths:\n  tables: ${HOME_DIR:-/tmp/default}/tables\n  landing: ${LANDING}\n"
        "storage:\n  engine: auto\n  schema_evolution: false\n"
        "rfm:\n  window_days: 365\n  bins: 5\n  binning: quantile\n  segments: []\n"
        "spark:\n  conf: {}\n",
    )
    return tmp_path


def test_overlay_overrides_and_interpolates(conf_dir):
    over = _write(
        conf_dir / "prod.yaml", "extends: base.yaml\nrfm:\n  window_days: 180\nspark:\n  conf:\n    spark.x: 1\n"
    )
    conf = load_config(over, env={"HOME_DIR": "/data", "LANDING": "/landing"})
    assert conf.rfm.window_days == 180
    assert conf.rfm.bins == 5
    assert conf.paths.tables == "/data/tables"
    assert conf.paths.landing == "/landing"
    assert conf.spark.conf["spark.x"] == 1  # open map: new keys allowed
    assert conf.source_of("rfm.window_days") == over.resolve()


def test_default_used_when_env_missing(conf_dir):
    conf = load_config(conf_dir / "base.yaml", env={"LANDING": "/l"})
    assert conf.paths.tables == "/tmp/default/tables"


def test_missing_env_var_names_key_and_file(conf_dir):
    with pytest.raises(ConfigError, match=r"base\.yaml: key 'paths\.landing' needs environment variable LANDING"):
        load_config(conf_dir / "base.yaml", env={})


def test_unknown_key_fails_with_file_and_key(conf_dir):
    over = _write(conf_dir / "bad.yaml", "extends: base.yaml\nrfm:\n  windows_days: 10\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'rfm\.windows_days'"):
        load_config(over, env={"LANDING": "/l"})


def test_mistyped_value_fails_with_file_and_key(conf_dir):
    over = _write(conf_dir / "bad.yaml", "extends: base.yaml\nrfm:\n  window_days: a year\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 'rfm\.window_days' must be a number, got string"):
        load_config(over, env={"LANDING": "/l"})


def test_semantic_check_names_file(conf_dir):
    over = _write(conf_dir / "bad.yaml", "extends: base.yaml\nstorage:\n  engine: parquet\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 'storage\.engine' must be one of"):
        load_config(over, env={"LANDING": "/l"})


def test_bad_segment_rule_rejected(conf_dir):
    over = _write(
        conf_dir / "bad.yaml", "extends: base.yaml\nrfm:\n  segments:\n    - {name: X, r: [0, 9], f: [1, 1]}\n"
    )
    with pytest.raises(ConfigError, match=r"rfm\.segments\[0\]\.r must be \[low, high\] within 1\.\.5"):
        load_config(over, env={"LANDING": "/l"})


def test_invalid_yaml_names_file(conf_dir):
    bad = _write(conf_dir / "broken.yaml", "rfm: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: invalid YAML"):
        load_config(bad)


def test_secrets_are_redacted_in_logged_config(tmp_path):
    _write(
        tmp_path / "base.yaml",
        "pii:\n  salt_env: CUSTSEG_PII_SALT\n  demo_salt: d\n"
        "spark:\n  conf: {}\n"
        "ads:\n  api_key: ${K:-}\n  credentials_json: ${K:-}\n",
    )
    over = _write(
        tmp_path / "over.yaml",
        "extends: base.yaml\nspark:\n  conf:\n"
        "    fs.azure.account.key.acct.dfs.core.windows.net: ${K}\n"
        "    fs.s3a.encryption.key: ${K}\n"
        "    fs.s3a.secret.key: ${K}\n"
        "    spark.executorEnv.CUSTSEG_PII_SALT: ${K}\n"
        "    spark.sql.shuffle.partitions: '4'\n",
    )
    conf = load_config(over, env={"K": "s3cret-value"})
    logged = json.dumps(conf.redacted())
    assert "s3cret-value" not in logged
    red = conf.redacted()
    assert red["spark"]["conf"]["spark.sql.shuffle.partitions"] == "4"  # not a secret: shown
    assert red["pii"]["salt_env"] == "CUSTSEG_PII_SALT"  # the variable's name is no secret
    assert set(red["spark"]["conf"].values()) == {"4", MASK}


@pytest.mark.parametrize(
    "key", ["pii.salt", "pii.demo_salt", "spark.conf.fs.s3a.secret.key", "spark.conf.spark.executorEnv.X_SALT"]
)
def test_set_refuses_secrets_on_the_command_line(key):
    conf = load_config("local.yaml", env={})
    with pytest.raises(ConfigError, match=rf"'{re.escape(key)}' is a secret"):
        conf.with_overrides({key: "x" * 40})


def test_set_refuses_unknown_keys_but_not_open_maps():
    conf = load_config("local.yaml", env={})
    with pytest.raises(ConfigError, match=r"unknown key 'rfm\.binz'"):
        conf.with_overrides({"rfm.binz": 5})
    with pytest.raises(ConfigError, match=r"unknown key 'nope\.x'"):
        conf.with_overrides({"nope.x": 1})
    opened = conf.with_overrides({"spark.conf.spark.sql.shuffle.partitions": "8", "pii.key_delivery": "worker_env"})
    assert opened.spark.conf["spark.sql.shuffle.partitions"] == "8" and opened.pii.key_delivery == "worker_env"
    with pytest.raises(ConfigError, match=r"key 'pii\.key_delivery' must be 'closure' or 'worker_env'"):
        conf.with_overrides({"pii.key_delivery": "broadcast"})


def test_repo_configs_all_load():
    env = {"CUSTSEG_PII_SALT": "x"}
    for name in ("local.yaml", "cluster.yaml", "databricks.yaml", "emr.yaml"):
        conf = load_config(name, env=env)
        assert conf.rfm.bins == 5, name
    assert load_config("databricks.yaml", env=env).storage.engine == "spark-delta"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"ingest.on_unknown_fields": "drop"}, "ingest.on_unknown_fields"),
        ({"sources": {"orders": {"on_unknown_fields": "ignore"}}}, "sources.orders.on_unknown_fields"),
        ({"sources": {"orders": {"require_success_marker": "yes"}}}, "sources.orders.require_success_marker"),
        ({"sources": {"orders": {"on_unknown_field": "fail"}}}, "sources.orders"),
    ],
)
def test_source_settings_are_checked_naming_the_key(overrides, key):
    conf = load_config("local.yaml", env={})
    with pytest.raises(ConfigError, match=rf"key '{re.escape(key)}'"):
        conf.with_overrides(overrides)
