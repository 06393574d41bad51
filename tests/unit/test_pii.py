"""PII: HMAC-SHA256 equals Python's hmac and keeps its key out of plans; normalization; the salt's rules."""

import contextlib
import hashlib
import hmac
import io
import logging
import pickle
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from custseg.config import load_config
from custseg.entrypoints import STAGES as ENTRY_STAGES
from custseg.pii import (
    MissingSaltError,
    PiiKey,
    hmac_sha256,
    identity_key,
    normalize_email,
    normalize_phone,
    resolve_pii_key,
    sha256_hex,
)

PLANTED = "planted-salt-Zq8vX2-0123456789-abcdefghij"


def secret_forms(salt: str) -> list[str]:
    """Every spelling of ``salt`` a plan or log could print: as is, hex, and its HMAC ipad / opad blocks."""
    key = salt.encode()
    key = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\x00")
    forms = [salt, key.rstrip(b"\x00").hex()]
    for pad in (0x36, 0x5C):
        padded = bytes(b ^ pad for b in key)
        forms += [padded.hex()[:32], padded[:16].decode("latin-1")]
    return forms


def _expected(spark, values, salt):
    return spark.createDataFrame(
        [(v, None if v is None else hmac.new(salt.encode(), v.encode(), hashlib.sha256).hexdigest()) for v in values],
        "v string, h string",
    )


def test_hmac_matches_python(spark):
    salts = ["s", "a-much-longer-salt-" * 5]  # > 64 bytes exercises the hashed-key branch of HMAC
    values = ["customer_id:C0000001", "émail@exämple.com", "", None]
    for salt in salts:
        df = spark.createDataFrame([(v,) for v in values], "v string")
        actual = df.select("v", hmac_sha256("v", salt).alias("h"))
        assert_df_equality(actual, _expected(spark, values, salt), ignore_row_order=True, ignore_nullable=True)


def test_worker_env_delivery_reads_the_executors_variable(spark, monkeypatch):
    """worker_env: the executors' CUSTSEG_PII_SALT (conftest set it before the JVM started) keys the hash."""
    import os

    salt = os.environ["CUSTSEG_PII_SALT"]
    values = ["customer_id:C1", None]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    key = PiiKey(salt, delivery="worker_env")
    actual = df.select("v", hmac_sha256("v", key).alias("h"))
    assert_df_equality(actual, _expected(spark, values, salt), ignore_row_order=True, ignore_nullable=True)


def test_worker_env_delivery_refuses_an_executor_salt_that_differs(spark):
    df = spark.createDataFrame([("customer_id:C1",)], "v string")
    other = PiiKey("not-the-executors-salt-0123456789abcdef", delivery="worker_env")
    with pytest.raises(Exception, match="differs from the driver's PII salt"):
        df.select(hmac_sha256("v", other).alias("h")).collect()


@pytest.mark.parametrize("delivery", ["closure", "worker_env"])
def test_the_key_is_in_no_plan(spark, delivery):
    """explain(extended): parsed, analyzed, optimized and physical plans, as the SQL tab and event log print them."""
    df = spark.createDataFrame([("C1", "a@b.com")], "customer_id string, email string")
    keyed = df.select(
        identity_key("customer_id", "customer_id", PiiKey(PLANTED, delivery=delivery)).alias("k"),
        identity_key("email", normalize_email("email"), PiiKey(PLANTED, delivery=delivery)).alias("e"),
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        keyed.explain(mode="extended")
        keyed.explain(mode="formatted")
    plans = out.getvalue()
    assert "hmac_sha256" in plans  # the plan was printed
    leaked = [f for f in secret_forms(PLANTED) if f.lower() in plans.lower()]
    assert leaked == [], f"the PII key is readable in the plan: {leaked}"


def test_pii_key_never_shows_its_secret():
    key = PiiKey(PLANTED, source="environment variable X")
    logged = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", (key,), None).getMessage()
    for text in (repr(key), str(key), f"{key}", logged):
        assert PLANTED not in text and key.fingerprint in text
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(key)
    assert (
        key.fingerprint
        == hmac.new(PLANTED.encode(), b"custseg:pii-key-fingerprint:v1", hashlib.sha256).hexdigest()[:16]
    )
    assert key == PiiKey(PLANTED) and key != PiiKey(PLANTED + "x")


# -- where the salt comes from ---------------------------------------------------------------


def _conf(name="local.yaml"):
    return load_config(name, env={})


def test_a_missing_salt_fails_every_real_job():
    with pytest.raises(MissingSaltError, match="CUSTSEG_PII_SALT is not set"):
        resolve_pii_key(_conf("local.yaml"), demo=False, env={})
    for name in ("cluster.yaml", "databricks.yaml", "emr.yaml"):
        with pytest.raises(MissingSaltError, match="CUSTSEG_PII_SALT is not set"):
            resolve_pii_key(_conf(name), demo=False, env={})


def test_the_salt_comes_from_the_variable_the_conf_names():
    conf = _conf().with_overrides({"pii.salt_env": "MY_SALT"})
    key = resolve_pii_key(conf, env={"MY_SALT": PLANTED, "CUSTSEG_PII_SALT": "ignored-" * 8})
    assert key == PiiKey(PLANTED) and key.source == "environment variable MY_SALT"


def test_a_short_salt_is_refused_naming_the_key():
    with pytest.raises(MissingSaltError, match=r"is 10 bytes.*at least 32.*pii\.salt_min_length"):
        resolve_pii_key(_conf(), env={"CUSTSEG_PII_SALT": "0123456789"})


def test_the_demo_salt_never_reaches_a_real_run():
    conf = _conf()
    with pytest.raises(MissingSaltError, match="public demo salt"):
        resolve_pii_key(conf, demo=False, env={"CUSTSEG_PII_SALT": conf.pii.demo_salt})
    # the demo with the demo config falls back to it (closure: executors do not have it) ...
    key = resolve_pii_key(conf, demo=True, env={})
    assert key == PiiKey(conf.pii.demo_salt) and key.delivery == "closure"
    # ... the demo with any other config refuses instead of writing demo-salted keys
    for name in ("cluster.yaml", "databricks.yaml", "emr.yaml"):
        with pytest.raises(MissingSaltError, match="does not allow the demo salt"):
            resolve_pii_key(_conf(name), demo=True, env={})


def test_demo_with_a_production_conf_refuses_before_generating(tmp_path, monkeypatch):
    from custseg.demo import main

    monkeypatch.delenv("CUSTSEG_PII_SALT", raising=False)
    monkeypatch.setenv("CUSTSEG_HOME", str(tmp_path))  # main sets it; restored after the test
    assert main(["--home", str(tmp_path), "--conf", "cluster.yaml", "--customers", "50", "--days", "10"]) == 2
    assert not (tmp_path / "landing").exists() and not (tmp_path / "tables").exists()


def test_salt_secret_store_reference_is_checked():
    conf = _conf().with_overrides({"pii.salt_secret": "vault:x"})
    with pytest.raises(MissingSaltError, match="databricks:<scope>/<key>"):
        resolve_pii_key(conf, env={})


def test_the_public_demo_salt_is_refused_outside_the_demo_whatever_the_conf_calls_its_demo_salt(tmp_path):
    """A config may name its own ``pii.demo_salt``; the one printed in this repository stays refused."""
    from custseg.config import DEFAULT_CONF_DIR

    public = _conf("cluster.yaml").pii.demo_salt
    own = tmp_path / "prod.yaml"
    own.write_text(
        f"extends: {DEFAULT_CONF_DIR / 'cluster.yaml'}\npii:\n  demo_salt: our-own-demo-salt-0123456789-abcdefgh\n"
    )
    conf = load_config(own, env={})
    assert conf.pii.demo_salt != public
    for salt in (public, conf.pii.demo_salt):
        with pytest.raises(MissingSaltError, match="public demo salt") as err:
            resolve_pii_key(conf, demo=False, env={"CUSTSEG_PII_SALT": salt})
        assert salt not in str(err.value)


def test_the_demo_salt_from_a_secret_store_is_refused_outside_the_demo(monkeypatch):
    _stub_dbutils(monkeypatch, lambda scope, key: _conf().pii.demo_salt)
    conf = _conf("databricks.yaml").with_overrides({"pii.salt_secret": "databricks:custseg/pii_salt"})
    with pytest.raises(MissingSaltError, match="secret store databricks:custseg/pii_salt holds the public demo salt"):
        resolve_pii_key(conf, demo=False, env={})


class _SessionAsked(Exception):
    """The job passed its start-up checks and asked for a Spark session."""


# (job, extra arguments) for every job the wheel, jobs/*.py and spark-submit.sh run, and --stages subsets
JOBS = [(stage, ()) for stage in ENTRY_STAGES] + [
    ("pipeline", ("--stages", "ingest,conform")),
    ("pipeline", ("--stages", "features,segment,basket,marketing,report")),
    *[("conform", ("--conf", name)) for name in ("cluster.yaml", "databricks.yaml", "emr.yaml")],
]


@pytest.mark.parametrize(("stage", "args"), JOBS, ids=[" ".join((s, *a)) for s, a in JOBS])
def test_without_a_salt_every_job_that_makes_keys_stops_at_start_up_naming_the_variable(
    monkeypatch, tmp_path, caplog, stage, args
):
    """No salt in the environment: a job that runs conform (the stage that makes identity keys)
    exits 2 before it asks for a Spark session or writes a table, and its one error names the
    variable, the config keys and the config file; a job without conform never reads the salt."""
    from custseg import session
    from custseg.cli import job_main
    from custseg.stages import pipeline_stages

    def no_session(*_a, **_k):
        raise _SessionAsked

    monkeypatch.setattr(session, "get_session", no_session)
    monkeypatch.setenv("CUSTSEG_HOME", str(tmp_path))
    monkeypatch.delenv("CUSTSEG_PII_SALT", raising=False)
    monkeypatch.delenv("CUSTSEG_CONF", raising=False)
    with caplog.at_level(logging.ERROR, logger="custseg"):
        try:
            rc = job_main(stage, ["--date", "2026-06-30", *args])
        except _SessionAsked:
            rc = None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    chosen = args[1].split(",") if args[:1] == ("--stages",) else pipeline_stages() if stage == "pipeline" else [stage]
    if "conform" in chosen:
        assert rc == 2, errors
        (error,) = errors
        assert error.startswith("CUSTSEG_PII_SALT is not set (config keys 'pii.salt_env' / 'pii.salt_secret' in /")
        named = Path(error.split(" in ", 1)[1].split(")", 1)[0])
        assert named.name.endswith(".yaml") and named.is_file()
    else:
        assert rc is None and errors == [], "a job without conform has no use for the salt"
    assert list(tmp_path.iterdir()) == [], "nothing written"


# -- ad-platform hashes and normalization ----------------------------------------------------


def test_sha256_matches_python(spark):
    df = spark.createDataFrame([("a@b.com",), (None,)], "v string")
    got = {r.v: r.h for r in df.select("v", sha256_hex("v").alias("h")).collect()}
    assert got == {"a@b.com": hashlib.sha256(b"a@b.com").hexdigest(), None: None}


def test_normalize_email_and_phone(spark):
    df = spark.createDataFrame(
        [
            ("  Ann.Lee@Example.COM ", "+44 7700 900123"),
            ("no-at-sign", "07700 900123"),
            (None, "(0)7700-900123"),
            ("x@y.org", "447700900123"),
            ("x@y.org", "0044 7700 900123"),
            ("x@y.org", "123"),
            ("x@y.org", None),
        ],
        "email string, phone string",
    )
    actual = df.select(normalize_email("email").alias("email"), normalize_phone("phone").alias("phone"))
    expected = spark.createDataFrame(
        [
            ("ann.lee@example.com", "+447700900123"),
            (None, "+447700900123"),
            (None, "+447700900123"),
            ("x@y.org", "+447700900123"),
            ("x@y.org", "+447700900123"),
            ("x@y.org", None),
            ("x@y.org", None),
        ],
        "email string, phone string",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_identity_key_is_namespaced_hmac(spark):
    df = spark.createDataFrame([("C1",)], "v string")
    got = df.select(identity_key("customer_id", F.col("v"), PLANTED).alias("k")).first()["k"]
    assert got == hmac.new(PLANTED.encode(), b"customer_id:C1", hashlib.sha256).hexdigest()


def test_a_pipeline_without_a_salt_stops_before_any_stage(spark, tmp_path, monkeypatch):
    """The pipeline would otherwise ingest, then fail at conform: it refuses at start-up instead."""
    from custseg.cli import parse_job_args, run_job

    monkeypatch.setenv("CUSTSEG_HOME", str(tmp_path))
    monkeypatch.delenv("CUSTSEG_PII_SALT", raising=False)
    (tmp_path / "landing" / "feedback" / "2026-06-30").mkdir(parents=True)
    assert run_job(parse_job_args(None, ["pipeline", "--date", "2026-06-30"]), spark=spark) == 2
    assert run_job(parse_job_args(None, ["conform", "--date", "2026-06-30"]), spark=spark) == 2
    assert not (tmp_path / "tables").exists(), "nothing written, not even a job_runs row"
    # the demo run of the demo config falls back to the demo salt instead
    monkeypatch.setenv("CUSTSEG_PII_SALT", "")
    assert resolve_pii_key(_conf(), demo=True).source.startswith("demo salt")


def test_salt_from_a_databricks_secret_scope(monkeypatch):
    """pii.salt_secret: databricks:<scope>/<key> is read with dbutils when the variable is unset."""
    calls = []
    _stub_dbutils(monkeypatch, lambda scope, key: calls.append((scope, key)) or PLANTED)
    conf = _conf().with_overrides({"pii.salt_secret": "databricks:custseg/pii_salt"})
    key = resolve_pii_key(conf, env={})
    assert key == PiiKey(PLANTED) and calls == [("custseg", "pii_salt")]
    assert key.source == "secret store databricks:custseg/pii_salt" and PLANTED not in repr(key)


def _stub_dbutils(monkeypatch, get) -> None:
    """A Databricks runtime whose ``dbutils.secrets.get(scope=, key=)`` is ``get``."""
    import sys
    import types

    runtime = types.ModuleType("databricks.sdk.runtime")
    runtime.dbutils = types.SimpleNamespace(secrets=types.SimpleNamespace(get=get))
    for name, module in {
        "databricks": types.ModuleType("databricks"),
        "databricks.sdk": types.ModuleType("databricks.sdk"),
        "databricks.sdk.runtime": runtime,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
