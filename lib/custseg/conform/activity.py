"""bronze -> silver for the activity sources: events, feedback, social, campaign responses.

Every row gets the ``customer_key`` of docs/tables.md. Clickstream rows carry a customer_id
only after login; a device seen in a login event is attributed to that customer, so its
anonymous browsing (before or after the login) is attributed too. A device that logged in as
two different customers is attributed to neither: never merge people on a shared device.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from custseg.pii import identity_key, normalize_email
from custseg.sources.base import parse_ts

EVENT_COLUMNS = [
    "event_id", "customer_key", "device_key", "session_id", "ts", "event_date", "event_type", "sku",
    "category", "page", "duration_ms", "utm_source", "utm_medium", "utm_campaign",
]
FEEDBACK_COLUMNS = ["feedback_id", "customer_key", "ts", "channel", "rating", "nps", "nps_band", "is_complaint"]
SOCIAL_COLUMNS = ["customer_key", "platform", "handle_key", "followers", "posts", "shares", "mentions", "observed_at"]
RESPONSE_COLUMNS = [
    "campaign_id", "customer_key", "channel", "group", "sent_ts", "opened_ts", "clicked_ts", "converted_ts",
    "converted", "revenue",
]


def _blank_to_null(col: str):
    return F.nullif(F.trim(col), F.lit(""))


def latest_by(key: str) -> Callable[[DataFrame], DataFrame]:
    """One row per id: the copy from the latest batch wins (ids are unique per source)."""

    def transform(df: DataFrame) -> DataFrame:
        w = Window.partitionBy(F.trim(key)).orderBy(F.col("_batch_date").desc(), F.col("_source_file").desc())
        return df.withColumn("_r", F.row_number().over(w)).where(F.col("_r") == 1).drop("_r")

    return transform


def known_customer_key(salt: str, known: DataFrame, id_col: str = "customer_id") -> Callable[[DataFrame], DataFrame]:
    """Adds ``customer_key`` when the row's customer_id is a CRM customer (null otherwise)."""
    keys = known.select(F.col("customer_key").alias("_known"))

    def transform(df: DataFrame) -> DataFrame:
        cid_key = identity_key("customer_id", _blank_to_null(id_col), salt)
        return (
            df.withColumn("_cid_key", cid_key)
            .join(keys, F.col("_cid_key") == F.col("_known"), how="left")
            .withColumn("customer_key", F.col("_known"))
            .drop("_cid_key", "_known")
        )

    return transform


def device_owners(events: DataFrame, salt: str) -> DataFrame:
    """device_key -> customer_key for devices that logged in as exactly one customer."""
    logins = events.where(F.col("customer_key").isNotNull()).select("device_key", "customer_key").distinct()
    return (
        logins.groupBy("device_key")
        .agg(F.min("customer_key").alias("owner_key"), F.count("*").alias("_n"))
        .where(F.col("_n") == 1)
        .select("device_key", "owner_key")
    )


def conform_events(salt: str, customers: DataFrame) -> Callable[[DataFrame], DataFrame]:
    def transform(bronze: DataFrame) -> DataFrame:
        typed = (
            bronze.transform(latest_by("event_id"))
            .transform(known_customer_key(salt, customers))
            .withColumn("device_key", identity_key("device", _blank_to_null("device_id"), salt))
        )
        owners = device_owners(typed, salt)
        ts = parse_ts("ts")
        return typed.join(owners, on="device_key", how="left").select(
            F.trim("event_id").alias("event_id"),
            F.coalesce("customer_key", "owner_key").alias("customer_key"),
            "device_key",
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


def conform_feedback(salt: str, customers: DataFrame) -> Callable[[DataFrame], DataFrame]:
    def transform(bronze: DataFrame) -> DataFrame:
        nps = F.col("nps").try_cast("int")
        rating = F.col("rating").try_cast("int")
        band = F.when(nps >= 9, "promoter").when(nps >= 7, "passive").when(nps.isNotNull(), "detractor")
        return (
            bronze.transform(latest_by("feedback_id"))
            .transform(known_customer_key(salt, customers))
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


def conform_social(salt: str, customers: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Social profiles matched to customers through the hashed normalized e-mail."""
    by_email = (
        customers.where(F.col("email_key").isNotNull())
        .groupBy("email_key")
        .agg(F.min("customer_key").alias("customer_key"), F.count("*").alias("_n"))
        .where(F.col("_n") == 1)
        .drop("_n")
    )

    def transform(bronze: DataFrame) -> DataFrame:
        w = Window.partitionBy(F.lower(F.trim("platform")), F.lower(F.trim("handle"))).orderBy(
            parse_ts("observed_at").desc_nulls_last(), F.col("_batch_date").desc()
        )
        latest = bronze.withColumn("_r", F.row_number().over(w)).where(F.col("_r") == 1)
        keyed = latest.withColumn("email_key", identity_key("email", normalize_email("email"), salt))
        return keyed.join(by_email, on="email_key", how="left").select(
            "customer_key",
            F.lower(F.trim("platform")).alias("platform"),
            identity_key("handle", F.lower(F.trim("handle")), salt).alias("handle_key"),
            *[F.col(c).try_cast("long").alias(c) for c in ("followers", "posts", "shares", "mentions")],
            parse_ts("observed_at").alias("observed_at"),
        )

    return transform


def conform_responses(salt: str, customers: DataFrame) -> Callable[[DataFrame], DataFrame]:
    def transform(bronze: DataFrame) -> DataFrame:
        w = Window.partitionBy(F.trim("campaign_id"), F.trim("customer_id")).orderBy(
            F.col("_batch_date").desc(), F.col("_source_file").desc()
        )
        converted_ts = parse_ts(_blank_to_null("converted_ts"))
        return (
            bronze.withColumn("_r", F.row_number().over(w))
            .where(F.col("_r") == 1)
            .transform(known_customer_key(salt, customers))
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


def identity_map(customers: DataFrame, events: DataFrame) -> DataFrame:
    """Every hashed identifier linked to a customer: (id_type, id_key, customer_key)."""
    parts = [
        customers.select(F.lit("customer_id").alias("id_type"), F.col("customer_key").alias("id_key"), "customer_key"),
        customers.select(F.lit("email").alias("id_type"), F.col("email_key").alias("id_key"), "customer_key"),
        customers.select(F.lit("phone").alias("id_type"), F.col("phone_key").alias("id_key"), "customer_key"),
        events.where(F.col("customer_key").isNotNull()).select(
            F.lit("device").alias("id_type"), F.col("device_key").alias("id_key"), "customer_key"
        ),
    ]
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out.where(F.col("id_key").isNotNull()).distinct().select("id_type", "id_key", "customer_key")
