"""PII normalization and keyed hashing as Spark SQL expressions (no Python UDFs).

HMAC-SHA256 is built from Spark's ``sha2`` over binary: HMAC(K, m) =
H((K ^ opad) || H((K ^ ipad) || m)). The padded keys are computed once on the
driver from the salt, so the per-row work is two SHA-256 calls in the JVM.
"""

from __future__ import annotations

import hashlib
import logging
import os

from pyspark.sql import Column
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

_BLOCK = 64  # SHA-256 block size in bytes


class MissingSaltError(RuntimeError):
    pass


def resolve_salt(conf, allow_demo: bool = False) -> str:
    """The PII salt from the environment (via conf ``pii.salt``); demo salt only if allowed."""
    salt = conf.get_path("pii.salt", "") or os.environ.get("CUSTSEG_PII_SALT", "")
    if salt:
        return salt
    if allow_demo:
        log.warning(
            "CUSTSEG_PII_SALT is not set: using the DEMO salt. Keys made with it are not "
            "protected; set CUSTSEG_PII_SALT (from a secret store) for real data."
        )
        return conf.pii.demo_salt
    raise MissingSaltError(
        "CUSTSEG_PII_SALT is not set (config key 'pii.salt'). Set it from your secret store; "
        "the demo salt is only used by `custseg demo`."
    )


def _padded_keys(salt: str) -> tuple[bytes, bytes]:
    key = salt.encode("utf-8")
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\x00")
    inner = bytes(b ^ 0x36 for b in key)
    outer = bytes(b ^ 0x5C for b in key)
    return inner, outer


def hmac_sha256(value: Column | str, salt: str) -> Column:
    """Hex HMAC-SHA256 of a string column; null stays null."""
    col = F.col(value) if isinstance(value, str) else value
    inner_key, outer_key = _padded_keys(salt)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_key), F.encode(col, "UTF-8")), 256))
    return F.when(col.isNull(), F.lit(None)).otherwise(F.sha2(F.concat(F.lit(outer_key), inner), 256))


def sha256_hex(value: Column | str) -> Column:
    """Plain SHA-256 (hex) as ad platforms require for hashed e-mails and phones."""
    col = F.col(value) if isinstance(value, str) else value
    return F.when(col.isNull(), F.lit(None)).otherwise(F.sha2(F.encode(col, "UTF-8"), 256))


def normalize_email(value: Column | str) -> Column:
    """Trimmed, lower-cased e-mail; null when it does not look like one."""
    col = F.lower(F.trim(F.col(value) if isinstance(value, str) else value))
    return F.when(col.rlike(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), col)


def normalize_phone(value: Column | str, country_code: str = "44") -> Column:
    """E.164 (``+447700900123``) from common national / international spellings."""
    digits = F.regexp_replace(F.col(value) if isinstance(value, str) else value, r"[^0-9]", "")
    national = (
        F.when(digits.startswith("00"), F.substring(digits, 3, 64))
        .when(digits.startswith("0"), F.concat(F.lit(country_code), F.substring(digits, 2, 64)))
        .when(digits.startswith(country_code) & (F.length(digits) > 10), digits)
        .otherwise(F.concat(F.lit(country_code), digits))
    )
    e164 = F.concat(F.lit("+"), national)
    # E.164 allows at most 15 digits; fewer than 8 is not a phone number.
    return F.when(F.length(national).between(8, 15), e164)


def identity_key(kind: str, value: Column | str, salt: str) -> Column:
    """Keyed hash of a normalized identifier, namespaced by its kind (customer_id, email, ...)."""
    col = F.col(value) if isinstance(value, str) else value
    return hmac_sha256(F.concat(F.lit(f"{kind}:"), col), salt)
