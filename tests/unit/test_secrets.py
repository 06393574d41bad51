"""--secret reads a named secret into the environment at start; the value never travels as an argument."""

from __future__ import annotations

import pytest

from custseg.secrets import SecretError, load_secrets, parse_secret


def test_parse_secret():
    assert parse_secret("CUSTSEG_PII_SALT=custseg/pii_salt") == ("CUSTSEG_PII_SALT", "custseg", "pii_salt")
    for bad in ("CUSTSEG_PII_SALT", "X=scope", "=s/k", "X=/k", "X=s/"):
        with pytest.raises(SecretError, match="ENV=scope/key"):
            parse_secret(bad)


def test_load_secrets_sets_what_is_missing_and_keeps_what_is_set(monkeypatch):
    monkeypatch.delenv("CS_TEST_A", raising=False)
    monkeypatch.setenv("CS_TEST_B", "from-env")
    calls = []

    def getter(scope, key):
        calls.append((scope, key))
        return f"{scope}:{key}"

    assert load_secrets(["CS_TEST_A=s1/k1", "CS_TEST_B=s2/k2"], getter) == ["CS_TEST_A"]
    import os

    assert os.environ["CS_TEST_A"] == "s1:k1" and os.environ["CS_TEST_B"] == "from-env"
    assert calls == [("s1", "k1")]


def test_load_secrets_names_scope_and_key_on_failure(monkeypatch):
    monkeypatch.delenv("CS_TEST_C", raising=False)

    def missing(scope, key):
        raise KeyError("no such secret")

    with pytest.raises(SecretError, match="key 'k' of secret scope 's'"):
        load_secrets(["CS_TEST_C=s/k"], missing)
    with pytest.raises(SecretError, match="is empty"):
        load_secrets(["CS_TEST_C=s/k"], lambda s, k: "")


def test_job_arguments_take_run_id_secret_and_remote():
    from custseg.cli import parse_job_args

    args = parse_job_args(
        "ingest",
        ["--date", "2026-06-30", "--run-id", "123", "--secret", "A=s/k", "--remote", "sc://127.0.0.1:15002"],
    )
    assert (args.external_run_id, args.secrets, args.remote) == ("123", ["A=s/k"], "sc://127.0.0.1:15002")
    assert parse_job_args("ingest", ["--date", "2026-06-30"]).remote is None
