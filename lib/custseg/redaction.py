"""What counts as a secret, for Spark's UI / event log and for the config custseg logs.

``SPARK_REDACTION_REGEX`` goes into ``spark.redaction.regex`` of every session custseg starts
and of every deployment (spark-submit.sh, the EMR configurations, the Databricks bundle).
Spark masks a property in the Environment tab, the event log and the history server when its
key or value matches. Spark's default (``(?i)secret|password|token|access[.]?key``) misses
the PII salt in ``spark.executorEnv.CUSTSEG_PII_SALT`` / ``spark.yarn.appMasterEnv.*``, Azure
account keys (``fs.azure.account.key.<account>...``), S3A encryption keys
(``fs.s3a.encryption.key``), API keys and credentials; this one adds them. The same pattern
masks the effective config custseg logs at start-up.
"""

from __future__ import annotations

import re
from typing import Any

SPARK_REDACTION_REGEX = (
    r"(?i)secret|password|token|access[.]?key|salt|credential|api[._-]?key"
    r"|fs\.azure\.account\.key|fs\.s3a\.[a-z0-9.]*key"
)
_SECRET = re.compile(SPARK_REDACTION_REGEX)
# custseg keys whose names look secret but hold none (a variable's name, a length, a switch).
_NOT_SECRET = re.compile(
    r"pii\.(salt_env|salt_secret|salt_min_length|key_delivery|allow_demo_salt)|marketing\.holdout_salt"
)
MASK = "*********(redacted)"
# user-info of a URL (``https://user:token@host``): a credential whatever the key is called
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def is_secret_key(key: str) -> bool:
    """Whether a (dotted) config or Spark key names a secret."""
    return bool(_SECRET.search(key)) and not _NOT_SECRET.fullmatch(key)


def redact_mapping(node: Any, path: str = "") -> Any:
    """A copy of a nested mapping with every non-empty string under a secret-looking key masked."""
    if isinstance(node, dict):
        return {k: redact_mapping(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_mapping(v, path) for v in node]
    if isinstance(node, str) and node and is_secret_key(path):
        return MASK
    if isinstance(node, str):
        return mask_url_credentials(node)
    return node


def mask_url_credentials(text: str) -> str:
    """``scheme://user:token@host`` -> ``scheme://*********(redacted)@host`` wherever it appears."""
    return _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
