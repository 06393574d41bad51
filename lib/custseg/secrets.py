"""Secrets read from a secret store at start, for platforms without environment variables.

Databricks serverless jobs have no cluster environment variables, and a secret must never
travel as a task parameter (it would show in the run page and the process list). So a job
names the secret instead (``--secret CUSTSEG_PII_SALT=<scope>/<key>``), and the value is read
here from the Databricks secret scope into the process environment, where the config's
``${CUSTSEG_PII_SALT}`` finds it. A variable already set wins (a job cluster sets it from the
same scope).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class SecretError(RuntimeError):
    pass


def parse_secret(text: str) -> tuple[str, str, str]:
    """``ENV=scope/key`` -> (ENV, scope, key)."""
    env, sep, ref = text.partition("=")
    scope, slash, key = ref.partition("/")
    if not sep or not slash or not env.strip() or not scope.strip() or not key.strip():
        raise SecretError(f"--secret takes ENV=scope/key, got {text!r}")
    return env.strip(), scope.strip(), key.strip()


def load_secrets(specs: list[str], getter=None) -> list[str]:
    """Put each named secret into the environment unless it is set there; the names set.

    ``getter(scope, key)`` reads one secret; by default Databricks' ``dbutils.secrets.get``.
    """
    done = []
    for text in specs:
        env, scope, key = parse_secret(text)
        if os.environ.get(env):
            log.info("secret %s: already set in the environment", env)
            continue
        get = getter or _databricks_getter()
        try:
            value = get(scope, key)
        except Exception as exc:
            raise SecretError(f"--secret {env}: cannot read key {key!r} of secret scope {scope!r}: {exc}") from None
        if not value:
            raise SecretError(f"--secret {env}: key {key!r} of secret scope {scope!r} is empty")
        os.environ[env] = value
        done.append(env)
        log.info("secret %s: read from secret scope %s", env, scope)  # the name only, never the value
    return done


def _databricks_getter():
    try:
        from databricks.sdk.runtime import dbutils
    except Exception as exc:
        raise SecretError(
            "--secret reads Databricks secret scopes (databricks-sdk's dbutils), which this environment "
            f"lacks ({exc}); set the variable in the environment instead"
        ) from None
    return dbutils.secrets.get
