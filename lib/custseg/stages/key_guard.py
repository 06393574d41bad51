"""One PII key per table: the fingerprint of the key that wrote each keyed table, checked before writing.

Keys made with two salts never join: a table rebuilt with another salt would silently
orphan every snapshot, feature and export keyed with the old one. ``meta.pii_key_fingerprints``
holds one row per keyed table with the fingerprint (``PiiKey.fingerprint``: 16 hex digits of
HMAC(key, constant), which identifies a key without revealing it). A run whose key differs
fails before it writes anything; the first run over a table records its key (trust on first use).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructField, StructType, TimestampType

from custseg.pii import PiiKey

log = logging.getLogger(__name__)

FINGERPRINTS = "meta.pii_key_fingerprints"
FINGERPRINTS_SCHEMA = StructType(
    [
        StructField("table", StringType(), False),
        StructField("fingerprint", StringType(), False),
        StructField("run_date", DateType(), False),
        StructField("recorded_at", TimestampType(), False),
    ]
)


class PiiKeyMismatchError(RuntimeError):
    """The run's PII key is not the key that wrote the tables."""


def recorded_fingerprints(tables, names: list[str]) -> dict[str, set[str]]:
    """Fingerprints on record for ``names`` (one row per table and key: bounded, safe to collect)."""
    if not tables.exists(FINGERPRINTS):
        return {}
    rows = tables.read(FINGERPRINTS).where(F.col("table").isin(names)).select("table", "fingerprint").distinct()
    out: dict[str, set[str]] = {}
    for r in rows.collect():
        out.setdefault(r["table"], set()).add(r["fingerprint"])
    return out


def check_pii_key(tables, key: PiiKey, names: list[str]) -> set[str]:
    """Raises ``PiiKeyMismatchError`` when a table of ``names`` was written with another key; returns those on record."""
    known = recorded_fingerprints(tables, names)
    wrong = sorted(t for t, fps in known.items() if fps != {key.fingerprint})
    if wrong:
        others = sorted(set().union(*(known[t] for t in wrong)) - {key.fingerprint})
        raise PiiKeyMismatchError(
            f"the PII key of this run (fingerprint {key.fingerprint}, from {key.source}) is not the key that wrote "
            f"{', '.join(wrong)} (fingerprint {', '.join(others)}, in {FINGERPRINTS}). Keys made with two salts never "
            "join: run with the salt those tables were written with, or rebuild every keyed table from bronze "
            f"after deleting their rows in {FINGERPRINTS}. Nothing was written."
        )
    return set(known)


def record_pii_key(spark: SparkSession, tables, key: PiiKey, names: list[str], run_date: date, known: set[str]) -> None:
    """Records ``key`` for the tables of ``names`` not yet on record."""
    new = [n for n in names if n not in known]
    if not new:
        return
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [(n, key.fingerprint, run_date, now) for n in new]
    tables.append(spark.createDataFrame(rows, FINGERPRINTS_SCHEMA), FINGERPRINTS)
    log.info("PII key fingerprint %s recorded for %s", key.fingerprint, ", ".join(new))
