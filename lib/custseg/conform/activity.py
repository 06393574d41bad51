"""bronze -> silver for the activity sources: events, feedback, social, campaign responses.

Every row gets the ``customer_key`` of docs/tables.md from ``silver.identity_map``
(custseg.conform.identity): feedback and campaign responses by customer_id, social profiles
by the hashed normalized e-mail, clickstream by customer_id after login, else by its device:
a device seen in a login event belongs to that customer, so its anonymous browsing (before or
after the login) is attributed too. A device that logged in as two different customers is
ambiguous in the identity graph and attributed to neither: never merge people on a shared device.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from custseg.conform.identity import (
    CUSTOMER_ID,
    DEVICE,
    EMAIL,
    customer_id_key,
    device_key,
    email_key,
    with_customer_key,
)
from custseg.pii import PiiKey, identity_key
from custseg.sources.base import parse_ts

EVENT_COLUMNS = [
    "event_id",
    "customer_key",
    "device_key",
    "session_id",
    "ts",
    "event_date",
    "event_type",
    "sku",
    "category",
    "page",
    "duration_ms",
    "utm_source",
    "utm_medium",
    "utm_campaign",
]
FEEDBACK_COLUMNS = ["feedback_id", "customer_key", "ts", "channel", "rating", "nps", "nps_band", "is_complaint"]
SOCIAL_COLUMNS = ["customer_key", "platform", "handle_key", "followers", "posts", "shares", "mentions", "observed_at"]
RESPONSE_COLUMNS = [
    "campaign_id",
    "customer_key",
    "channel",
    "group",
    "sent_ts",
    "opened_ts",
    "clicked_ts",
    "converted_ts",
    "converted",
    "revenue",
]


def _blank_to_null(col: str):
    return F.nullif(F.trim(col), F.lit(""))


def latest_by(key: str) -> Callable[[DataFrame], DataFrame]:
    """One row per id: the copy from the latest batch wins (ids are unique per source)."""

    def transform(df: DataFrame) -> DataFrame:
        w = Window.partitionBy(F.trim(key)).orderBy(F.col("_batch_date").desc(), F.col("_source_file").desc())
        return df.withColumn("_r", F.row_number().over(w)).where(F.col("_r") == 1).drop("_r")

    return transform


def _by_customer_id(salt: PiiKey | str, identity_map: DataFrame) -> Callable[[DataFrame], DataFrame]:
    return with_customer_key(identity_map, (CUSTOMER_ID, customer_id_key("customer_id", salt)))


def conform_events(salt: PiiKey | str, identity_map: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Attributed by customer_id (after login), else by the device's owner in the identity map."""

    def transform(bronze: DataFrame) -> DataFrame:
        typed = bronze.transform(latest_by("event_id")).transform(
            with_customer_key(
                identity_map,
                (CUSTOMER_ID, customer_id_key("customer_id", salt)),
                (DEVICE, device_key("device_id", salt)),
            )
        )
        ts = parse_ts("ts")
        return typed.select(
            F.trim("event_id").alias("event_id"),
            "customer_key",
            device_key("device_id", salt).alias("device_key"),
            _blank_to_null("session_id").alias("session_id"),
            ts.alias("ts"),
            F.to_date(ts).alias("event_date"),
            F.lower(F.trim("event_type")).alias("event_type"),
            _blank_to_null("sku").alias("sku"),
            F.lower(_blank_to_null("category")).alias("category"),
            _blank_to_null("page").alias("page"),
            F.col("duration_ms").try_cast("long").alias("duration_ms"),
            _blank_to_null("utm_source").alias("utm_source"),
            _blank_to_null("utm_medium").alias("utm_medium"),
            _blank_to_null("utm_campaign").alias("utm_campaign"),
        )

    return transform


def conform_feedback(salt: PiiKey | str, identity_map: DataFrame) -> Callable[[DataFrame], DataFrame]:
    def transform(bronze: DataFrame) -> DataFrame:
        nps = F.col("nps").try_cast("int")
        rating = F.col("rating").try_cast("int")
        band = F.when(nps >= 9, "promoter").when(nps >= 7, "passive").when(nps.isNotNull(), "detractor")
        return (
            bronze.transform(latest_by("feedback_id"))
            .transform(_by_customer_id(salt, identity_map))
            .select(
                F.trim("feedback_id").alias("feedback_id"),
                "customer_key",
                parse_ts("ts").alias("ts"),
                F.lower(F.trim("channel")).alias("channel"),
                rating.alias("rating"),
                nps.alias("nps"),
                band.alias("nps_band"),
                # Free text can hold PII: silver keeps only what features need from it.
                (F.coalesce(rating <= 2, F.lit(False)) | F.coalesce(nps <= 3, F.lit(False))).alias("is_complaint"),
            )
        )

    return transform


def conform_social(salt: PiiKey | str, identity_map: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Social profiles matched to customers through the hashed normalized e-mail."""

    def transform(bronze: DataFrame) -> DataFrame:
        w = Window.partitionBy(F.lower(F.trim("platform")), F.lower(F.trim("handle"))).orderBy(
            parse_ts("observed_at").desc_nulls_last(), F.col("_batch_date").desc()
        )
        latest = bronze.withColumn("_r", F.row_number().over(w)).where(F.col("_r") == 1)
        keyed = latest.transform(with_customer_key(identity_map, (EMAIL, email_key("email", salt))))
        return keyed.select(
            "customer_key",
            F.lower(F.trim("platform")).alias("platform"),
            identity_key("handle", F.lower(F.trim("handle")), salt).alias("handle_key"),
            *[F.col(c).try_cast("long").alias(c) for c in ("followers", "posts", "shares", "mentions")],
            parse_ts("observed_at").alias("observed_at"),
        )

    return transform


def conform_responses(salt: PiiKey | str, identity_map: DataFrame) -> Callable[[DataFrame], DataFrame]:
    def transform(bronze: DataFrame) -> DataFrame:
        w = Window.partitionBy(F.trim("campaign_id"), F.trim("customer_id")).orderBy(
            F.col("_batch_date").desc(), F.col("_source_file").desc()
        )
        converted_ts = parse_ts(_blank_to_null("converted_ts"))
        return (
            bronze.withColumn("_r", F.row_number().over(w))
            .where(F.col("_r") == 1)
            .transform(_by_customer_id(salt, identity_map))
            .select(
                F.trim("campaign_id").alias("campaign_id"),
                "customer_key",
                F.lower(F.trim("channel")).alias("channel"),
                F.lower(F.trim("group")).alias("group"),
                parse_ts("sent_ts").alias("sent_ts"),
                parse_ts(_blank_to_null("opened_ts")).alias("opened_ts"),
                parse_ts(_blank_to_null("clicked_ts")).alias("clicked_ts"),
                converted_ts.alias("converted_ts"),
                converted_ts.isNotNull().alias("converted"),
                F.coalesce(F.col("revenue").try_cast("decimal(14,2)"), F.lit(0).cast("decimal(14,2)")).alias("revenue"),
            )
        )

    return transform
