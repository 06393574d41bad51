"""Erasure (right to be forgotten): which columns identify a person, and the rows that hold them.

A table is covered by its schema, not by a list of names, so a new column named like an
identifier is erased without a change here. What each column name means:

- ``HASHED_COLUMNS`` (``customer_key``, ``id_key``, ``email_key``, ...): HMAC keys, compared
  with the person's keys (their ``customer_key``, every identifier key the identity map
  resolved to them, their e-mail / phone keys and plain SHA-256 from silver.customers);
- ``RAW_COLUMNS`` (bronze: ``customer_id``, ``email``, ``phone``, ``loyalty_phone``,
  ``device_id``): raw values, normalized the way conform normalizes them, compared with the
  person's raw identifiers;
- ``RAW_TEXT_COLUMNS`` (``raw_record`` of bronze.quarantine): a JSON record is parsed and its
  identifier fields compared as above; a line that is not JSON (a broken CSV row, a cut file)
  is matched on the person's identifiers appearing in it as whole tokens.

A table with none of these columns must be declared in ``CUSTOMER_FREE`` (with why); the
forget job refuses to run while a table is neither covered nor declared, so a new table
cannot silently keep a forgotten person. The comparisons are joins with small lookup frames,
never literals: no raw value of the person enters a plan, a log or the Delta history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.pii import normalize_email, normalize_phone

# Columns that hold an HMAC key or a plain SHA-256 of one of the person's identifiers.
HASHED_COLUMNS = ("customer_key", "id_key", "email_key", "phone_key", "device_key", "email_sha256", "phone_sha256")
# Raw identifier columns (bronze) and the kind of identifier each holds.
RAW_COLUMNS = {
    "customer_id": "customer_id",
    "email": "email",
    "phone": "phone",
    "loyalty_phone": "phone",
    "device_id": "device",
}
RAW_TEXT_COLUMNS = ("raw_record",)
RAW_KINDS = ("customer_id", "email", "phone", "device")
# Shorter identifiers are not searched for as tokens in unparsed raw text (too many false hits).
MIN_TOKEN_CHARS = 4

# Tables the pipeline writes that hold people, with the column(s) that find them. A table of
# this list found without them fails the job (a renamed column must not let rows escape).
PERSONAL_TABLES = {
    **{
        f"bronze.{s}": "customer_id / email / phone / loyalty_phone / device_id"
        for s in ("crm_customers", "orders", "events", "feedback", "social", "campaign_responses")
    },
    **{
        f"bronze.{s}_rt": "customer_id / loyalty_phone / device_id"  # custseg stream (docs/realtime.md)
        for s in ("orders", "events", "campaign_responses")
    },
    "bronze.flat_transactions": "customer_id",
    "bronze.consent": "customer_id",
    "bronze.quarantine": "raw_record",
    **{
        f"silver.{s}": "customer_key"
        for s in ("customers", "orders", "order_items", "events", "feedback", "social", "campaign_responses")
    },
    **{f"silver.{s}_rt": "customer_key" for s in ("orders", "order_items", "events", "campaign_responses")},
    "silver.consent": "customer_key",
    "silver.identity_map": "customer_key, id_key",
    "silver.activation_ids": "customer_key, customer_id",
    **{
        f"gold.{s}": "customer_key"
        for s in (
            "customer_features",
            "customer_segments",
            "churn_alerts",
            "cross_sell",
            "recommendations",
            "campaign_audiences",
            "realtime_offers",
        )
    },
}
# Tables that hold nobody's identifiers, and why. Anything else must have a column above.
CUSTOMER_FREE = {
    "silver.products": "the product catalogue",
    "gold.segment_profiles": "aggregates per segment",
    "gold.segment_quality": "model quality figures",
    "gold.segment_migration": "counts between segments",
    "gold.segment_models": "model comparison figures",
    "gold.segmentation_comparison": "scores per candidate segmentation",
    "gold.frequent_itemsets": "item sets with their support",
    "gold.association_rules": "rules between items",
    "gold.journey_rules": "rules between categories",
    "gold.reco_quality": "offline evaluation figures",
    "gold.propensity_quality": "model evaluation figures",
    "bronze.products": "the product catalogue as delivered",
    "gold.campaign_plan": "per campaign and segment totals",
    "gold.campaign_results": "per campaign and group totals",
    "gold.campaign_funnel": "per campaign, variant, group and segment counts",
    "gold.variant_results": "per campaign, variant and segment counts and tests",
    "gold.kpi_trends": "per period and segment totals",
    "gold.segment_strategy": "per segment choices and aggregates",
    "gold.job_runs": "run bookkeeping",
    "meta.reconciliation": "record counts per batch",
    "meta.landed_files": "file names, sizes and checksums",
    "meta.pii_key_fingerprints": "which salt wrote a table",
    "meta.identity_metrics": "resolution rates",
    "meta.silver_snapshots": "which silver versions each run date reads",
    "meta.erasure_requests": "the erasure log: keys of erased people only (docs/security.md)",
    "meta.stream_progress": "record counts per micro-batch of custseg stream",
    "gold.campaign_pulse": "per campaign, segment and variant counts (real-time pulse)",
}


class ErasureCoverageError(RuntimeError):
    """A table is neither covered by an identifier column nor declared customer-free."""


@dataclass(frozen=True)
class Person:
    """The lookups of the people to forget: small frames, one value column ``v`` each.

        ``hashes``: their keys and hashes; ``raw``: per kind, their raw identifiers normalized as
        conform normalizes them; ``tokens``: their identifiers as they may appear in raw text
        (lower case, raw spellings and normalized forms). ``needles``: every one of those values,
    on the driver, for the export files (bounded by the request, like the frames).
    """

    hashes: DataFrame
    raw: Mapping[str, DataFrame]
    tokens: DataFrame
    needles: frozenset[str] = frozenset()  # all of the above, lower case: for export files


def identifying_columns(schema: T.StructType) -> list[str]:
    """The top-level columns of ``schema`` that identify a person."""
    names = set(HASHED_COLUMNS) | set(RAW_COLUMNS) | set(RAW_TEXT_COLUMNS)
    return [f.name for f in schema.fields if f.name in names and isinstance(f.dataType, T.StringType)]


def check_coverage(schemas: Mapping[str, T.StructType]) -> dict[str, list[str]]:
    """Identifying columns per table; raises naming every table neither covered nor declared free."""
    covered = {name: identifying_columns(schema) for name, schema in schemas.items()}
    lost = sorted(n for n, cols in covered.items() if not cols and n in PERSONAL_TABLES)
    if lost:
        raise ErasureCoverageError(
            f"tables {lost} hold people ({', '.join(PERSONAL_TABLES[n] for n in lost)}) but have none of those "
            "columns any more: map the renamed column in custseg.erasure before erasing"
        )
    loose = sorted(n for n, cols in covered.items() if not cols and n not in CUSTOMER_FREE)
    if loose:
        raise ErasureCoverageError(
            f"tables {loose} have no identifier column ({', '.join(HASHED_COLUMNS + tuple(RAW_COLUMNS))}) and are "
            "not declared customer-free (custseg.erasure.CUSTOMER_FREE): declare them, or say how they hold a "
            "person, before erasing"
        )
    return {n: cols for n, cols in covered.items() if cols}


def normalize_raw(kind: str, value: Column, country_code: str) -> Column:
    """A raw identifier as conform keys it (``custseg.conform.identity``)."""
    if kind == "email":
        return normalize_email(value)
    if kind == "phone":
        return normalize_phone(value, country_code)
    return F.nullif(F.trim(value), F.lit(""))


def _anti(df: DataFrame, value: Column, lookup: DataFrame) -> DataFrame:
    keyed = df.withColumn("_erase_v", value)
    return keyed.join(F.broadcast(lookup), keyed["_erase_v"] == lookup["v"], "left_anti").drop("_erase_v")


def keep_rows(person: Person, columns: list[str], country_code: str) -> Callable[[DataFrame], DataFrame]:
    """The ``keep`` function of ``Tables.delete_rows``: drops every row that holds one of the
    person's identifiers in one of ``columns``."""

    def keep(df: DataFrame) -> DataFrame:
        out = df
        for name in columns:
            value = F.col(name)
            if name in HASHED_COLUMNS:
                out = _anti(out, F.lower(value), person.hashes)
            elif name in RAW_COLUMNS:
                kind = RAW_COLUMNS[name]
                out = _anti(out, normalize_raw(kind, value, country_code), person.raw[kind])
            else:
                out = _without_raw_text(out, name, person, country_code)
        return out.select(*df.columns)

    return keep


_RECORD = T.MapType(T.StringType(), T.StringType())


def _without_raw_text(df: DataFrame, name: str, person: Person, country_code: str) -> DataFrame:
    """Drops rows whose raw text holds the person: JSON fields compared as columns, other text by tokens."""
    parsed = F.from_json(F.col(name), _RECORD)
    out = df.withColumn("_erase_rec", parsed)
    for field, kind in RAW_COLUMNS.items():
        out = _anti(out, normalize_raw(kind, F.col("_erase_rec").getItem(field), country_code), person.raw[kind])
    # Not a JSON object: search the person's identifiers as whole tokens of the text.
    text = F.lower(F.col(name))
    pattern = F.concat(F.lit("(^|[^a-z0-9])\\Q"), F.col("v"), F.lit("\\E($|[^a-z0-9])"))
    tokens = person.tokens.where(F.length("v") >= MIN_TOKEN_CHARS)
    unparsed = F.col("_erase_rec").isNull() & F.col(name).isNotNull()
    out = out.join(F.broadcast(tokens), unparsed & F.regexp_like(text, pattern), "left_anti")
    return out.drop("_erase_rec")
