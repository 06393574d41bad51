"""bronze.crm_customers -> silver.customers: latest row per customer, typed, no raw PII."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from custseg.pii import PiiKey, identity_key, normalize_email, normalize_phone, sha256_hex
from custseg.sources.base import parse_date, parse_ts

AGE_BANDS = [(18, "18-24"), (25, "25-34"), (35, "35-44"), (45, "45-54"), (55, "55-64"), (65, "65+")]


def _bool(col: str):
    return F.lower(F.trim(col)).isin("true", "1", "yes", "y", "t")


def age_band(birth_date, as_of: date):
    """Coarse age band: the exact birth date never leaves bronze."""
    age = F.floor(F.months_between(F.lit(as_of), birth_date) / 12)
    expr = F.when(age.isNull(), F.lit(None)).when(age < 18, F.lit("<18"))
    for (low, label), nxt in zip(AGE_BANDS, [*AGE_BANDS[1:], (200, None)], strict=True):
        expr = expr.when((age >= low) & (age < nxt[0]), F.lit(label))
    return expr


def latest_crm_rows(bronze: DataFrame) -> DataFrame:
    """The latest bronze CRM row per (trimmed) customer_id: by updated_at, then batch, then file."""
    latest = Window.partitionBy("customer_id").orderBy(
        parse_ts("updated_at").desc_nulls_last(), F.col("_batch_date").desc(), F.col("_source_file").desc()
    )
    return (
        bronze.withColumn("customer_id", F.trim("customer_id"))
        .withColumn("_rank", F.row_number().over(latest))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )


def conform_activation_ids(salt: PiiKey | str) -> Callable[[DataFrame], DataFrame]:
    """bronze.crm_customers -> ``silver.activation_ids``: customer_key -> the source system's own
    customer id, the one restricted pseudonym table (docs/security.md). Exports join it at export
    time, for consented treatment customers only; no other silver or gold table holds the id."""

    def transform(bronze: DataFrame) -> DataFrame:
        return (
            bronze.transform(latest_crm_rows)
            .where(F.col("customer_id").isNotNull() & (F.col("customer_id") != ""))
            .select(
                identity_key("customer_id", "customer_id", salt).alias("customer_key"),
                F.lit("crm").alias("source"),
                F.col("customer_id"),
            )
        )

    return transform


def conform_customers(salt: PiiKey | str, as_of: date, country_code: str = "44") -> Callable[[DataFrame], DataFrame]:
    """Latest CRM row per customer_id (by updated_at, then batch), keyed and hashed."""

    def transform(bronze: DataFrame) -> DataFrame:
        email = normalize_email("email")
        phone = normalize_phone("phone", country_code)
        return bronze.transform(latest_crm_rows).select(
            identity_key("customer_id", "customer_id", salt).alias("customer_key"),
            identity_key("email", email, salt).alias("email_key"),
            identity_key("phone", phone, salt).alias("phone_key"),
            # Ad platforms match on plain SHA-256 of the normalized value (exports only).
            sha256_hex(email).alias("email_sha256"),
            sha256_hex(phone).alias("phone_sha256"),
            F.upper(F.trim("gender")).alias("gender"),
            age_band(parse_date("birth_date"), as_of).alias("age_band"),
            F.initcap(F.trim("city")).alias("city"),
            F.initcap(F.trim("region")).alias("region"),
            parse_date("signup_date").alias("signup_date"),
            F.lower(F.trim("member_tier")).alias("member_tier"),
            _bool("opt_in_email").alias("opt_in_email"),
            _bool("opt_in_sms").alias("opt_in_sms"),
            _bool("opt_in_ads").alias("opt_in_ads"),
            parse_ts("updated_at").alias("updated_at"),
        )

    return transform
