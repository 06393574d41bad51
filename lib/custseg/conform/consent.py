"""bronze.consent -> silver.consent: the latest consent per customer and channel, keyed, no raw id.

Every change record of the consent export (custseg.sources.consent_file) becomes one row per
channel it records; its customer id is cleaned as the transactions' ids are
(custseg.conform.flat.clean_id: trimmed, without ``id_suffix``) and keyed through
``silver.identity_map`` (HMAC with the PII salt, as every source's customer_id), so the key is
the one the transactions' customers carry. A record of an id unknown to the customers resolves
to no one and is dropped (counted by the stage).

Per customer and channel the latest record wins, by its timestamp, then by batch: an opt-out
after an opt-in is an opt-out. Two records of one moment that disagree resolve to the opt-out.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from custseg.conform.flat import clean_id
from custseg.conform.identity import CUSTOMER_ID, customer_id_key, with_customer_key
from custseg.pii import PiiKey
from custseg.sources.consent_file import ConsentFileSettings

RECORD_COLUMNS = ["customer_id", "channel", "opted_in", "consent_ts", "_batch_date", "_source_file"]
SILVER_COLUMNS = ["customer_key", "channel", "opted_in", "consent_ts", "batch_date"]


def consent_records(s: ConsentFileSettings) -> Callable[[DataFrame], DataFrame]:
    """bronze.consent -> one row per (record, channel): cleaned customer id, channel, opted_in, consent_ts."""

    def transform(bronze: DataFrame) -> DataFrame:
        if s.long:
            mapping = F.create_map(*[F.lit(x) for kv in s.channel_values.items() for x in kv])
            pairs = F.array(
                F.struct(mapping[F.lower(F.trim("channel"))].alias("channel"), s.opted_in("opted_in").alias("opted_in"))
            )
        else:  # one column per channel: an empty cell records nothing
            pairs = F.array(
                *[
                    F.struct(F.lit(ch).alias("channel"), s.opted_in(c).alias("opted_in"))
                    for c, ch in s.wide_columns.items()
                ]
            )
        return (
            bronze.select(
                clean_id("customer_id", s.id_suffix).alias("customer_id"),
                F.explode(pairs).alias("p"),
                F.try_to_timestamp(F.trim("consent_ts"), F.lit(s.ts_format)).alias("consent_ts"),
                "_batch_date",
                "_source_file",
            )
            .select("customer_id", "p.channel", "p.opted_in", "consent_ts", "_batch_date", "_source_file")
            .where(F.col("customer_id").isNotNull() & F.col("channel").isNotNull() & F.col("opted_in").isNotNull())
            .select(*RECORD_COLUMNS)
        )

    return transform


def latest_consent(salt: PiiKey | str, identity_map: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Consent records (``consent_records``) -> silver.consent: the latest per customer_key and channel.

    Rows whose id resolves to no customer are dropped."""

    def transform(records: DataFrame) -> DataFrame:
        latest = Window.partitionBy("customer_key", "channel").orderBy(
            F.col("consent_ts").desc(),
            F.col("opted_in").asc(),
            F.col("_batch_date").desc(),
            F.col("_source_file").desc(),
        )
        return (
            records.transform(with_customer_key(identity_map, (CUSTOMER_ID, customer_id_key("customer_id", salt))))
            .where(F.col("customer_key").isNotNull())
            .withColumn("_r", F.row_number().over(latest))
            .where(F.col("_r") == 1)
            .select(
                "customer_key",
                "channel",
                F.col("opted_in").cast("boolean").alias("opted_in"),
                F.col("consent_ts").cast("timestamp").alias("consent_ts"),
                F.col("_batch_date").cast("date").alias("batch_date"),
            )
        )

    return transform
