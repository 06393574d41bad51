"""Consent from a file (marketing.consent.policy: from_file): ingest, conform and the marketing base.

Hand-made rows: the latest record per customer and channel wins (an opt-out after an opt-in
is an opt-out, a tie is an opt-out), ids are cleaned and keyed like the transactions', bad rows
are quarantined with their reasons, and a customer absent from the file is not opted in.
"""

from __future__ import annotations

import os
from datetime import date, datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from custseg.pii import identity_key
from tests.unit import ingest_helpers
from tests.unit.ingest_helpers import csv_json, land, quarantine, quarantine_df, reconciliation, run, tables

DAY = "2010-12-01"
HEADER = "CustomerID,Channel,Subscribed,ChangedAt"
GOOD = [
    "17850,email,yes,2010-11-01 10:00:00",
    "17850,email,no,2010-11-20 10:00:00",  # the later opt-out wins
    "17850,SMS,Y,2010-11-02 10:00:00",  # channel and value in any case
    "14527.0,E-Mail,yes,2010-10-01 09:00:00",  # id suffix removed; the file's own channel name
    "14527,email,No,2010-09-01 09:00:00",  # an older opt-out loses
    "15311,email,yes,2010-11-05 12:00:00",  # the same moment both ways: opt-out
    "15311,email,no,2010-11-05 12:00:00",
    "99999,email,yes,2010-11-05 12:00:00",  # an id the customers do not know: dropped
]
BAD = [
    ("missing_customer_id", ",email,yes,2010-11-01 10:00:00"),
    ("unknown_channel", "16000,fax,yes,2010-11-01 10:00:00"),
    ("bad_opted_in", "16000,email,maybe,2010-11-01 10:00:00"),
    ("missing_opted_in", "16000,email,,2010-11-01 10:00:00"),
    ("bad_consent_ts", "16000,email,yes,01/11/2010 10:00"),
    # after the batch day plus ingest.future_tolerance_hours (48)
    ("future_consent_ts", "16000,email,yes,2010-12-05 10:00:00"),
]
SETS = [
    "marketing.consent.policy=from_file",
    "marketing.consent.file.source_name=crm_consent",
    "marketing.consent.file.columns.customer_id=CustomerID",
    "marketing.consent.file.columns.channel=Channel",
    "marketing.consent.file.columns.opted_in=Subscribed",
    "marketing.consent.file.columns.consent_ts=ChangedAt",
    "marketing.consent.file.channel_values.e-mail=email",
]

home = ingest_helpers.home


def _key(spark, customer_id: str) -> str:
    df = spark.createDataFrame([(customer_id,)], "cid string")
    return df.select(identity_key("customer_id", F.col("cid"), os.environ["CUSTSEG_PII_SALT"]).alias("k")).first()["k"]


def test_consent_file_lands_quarantines_and_keeps_the_latest_per_channel(spark, home):
    from custseg.config import load_config
    from custseg.conform.consent import consent_records, latest_consent
    from custseg.sources.consent_file import ConsentFileSettings

    land(home, "crm_consent", "consent.csv", "\n".join([HEADER, *GOOD, *(line for _, line in BAD)]) + "\n", date=DAY)
    assert run(spark, "ingest", *SETS, "ingest.max_reject_rate=1.0", date=DAY) == 0
    assert reconciliation(spark, home, "crm_consent", DAY) == (14, 8, 6)
    expected_q = quarantine_df(spark, [(reason, csv_json(HEADER, line), "consent.csv") for reason, line in BAD])
    assert_df_equality(quarantine(spark, home, "crm_consent"), expected_q, ignore_row_order=True, ignore_nullable=True)

    # conform's transforms (the stage runs them in tests/integration/test_consent_from_file.py), with
    # the identity map conform builds from the transactions' customers: their ids key to themselves.
    k1, k2, k3, k4 = (_key(spark, c) for c in ("17850", "14527", "15311", "16000"))
    identity_map = spark.createDataFrame(
        [("customer_id", k, k) for k in (k1, k2, k3, k4)], "id_type string, id_key string, customer_key string"
    )
    settings = ConsentFileSettings.from_config(load_config().with_overrides(dict(s.split("=", 1) for s in SETS)))
    bronze = tables(spark, home).read("bronze.consent")
    silver = bronze.transform(consent_records(settings)).transform(
        latest_consent(os.environ["CUSTSEG_PII_SALT"], identity_map)
    )
    ts = datetime.fromisoformat
    expected = spark.createDataFrame(
        [
            (k1, "email", False, ts("2010-11-20 10:00:00")),
            (k1, "sms", True, ts("2010-11-02 10:00:00")),
            (k2, "email", True, ts("2010-10-01 09:00:00")),
            (k3, "email", False, ts("2010-11-05 12:00:00")),
        ],
        "customer_key string, channel string, opted_in boolean, consent_ts timestamp",
    )
    assert "customer_id" not in silver.columns  # keyed: the raw id stays in bronze
    assert_df_equality(
        silver.drop("batch_date"), expected, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True
    )


def test_wide_layout_one_column_per_channel(spark):
    from custseg.conform.consent import consent_records
    from custseg.sources.consent_file import ConsentFileSettings, consent_spec

    s = ConsentFileSettings(
        columns={
            "customer_id": "id",
            "channel": "",
            "opted_in": "",
            "opt_in_email": "EmailOK",
            "opt_in_sms": "SmsOK",
            "opt_in_ads": "",
            "consent_ts": "ts",
        }
    )
    rows = [  # customer_id, channel, opted_in, opt_in_email, opt_in_sms, opt_in_ads, consent_ts
        ("1", None, None, "yes", "no", None, "2010-11-01 10:00:00"),
        ("2.0", None, None, "TRUE", "", None, "2010-11-01 10:00:00"),  # an empty cell records nothing
        ("3", None, None, "", "", None, "2010-11-01 10:00:00"),
        ("4", None, None, "yes", "perhaps", None, "2010-11-01 10:00:00"),
    ]
    cols = "customer_id string, channel string, opted_in string, opt_in_email string, opt_in_sms string, "
    bronze = spark.createDataFrame(rows, cols + "opt_in_ads string, consent_ts string")
    reasons = {
        r["customer_id"]: [code for code, _ in spec_rules if r[code]]
        for spec_rules in [consent_spec(s).rules]
        for r in bronze.select("customer_id", *[rule().alias(code) for code, rule in consent_spec(s).rules]).collect()
    }
    assert reasons == {"1": [], "2.0": [], "3": ["missing_opted_in"], "4": ["bad_opted_in"]}

    good = bronze.where(F.col("customer_id").isin("1", "2.0")).select(
        "*", F.lit(date(2010, 12, 1)).alias("_batch_date"), F.lit("f.csv").alias("_source_file")
    )
    expected = spark.createDataFrame(
        [("1", "email", True), ("1", "sms", False), ("2", "email", True)],
        "customer_id string, channel string, opted_in boolean",
    )
    got = good.transform(consent_records(s)).select("customer_id", "channel", "opted_in")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_from_file_base_absent_customers_are_not_opted_in(spark):
    from custseg.marketing.consent import ConsentPolicy, with_consent

    # The CRM columns say c and d opted in: under from_file only the file counts.
    base = spark.createDataFrame(
        [("a", None, None, None), ("b", None, None, None), ("c", True, True, True), ("d", True, None, None)],
        "customer_key string, opt_in_email boolean, opt_in_sms boolean, opt_in_ads boolean",
    )
    file_consent = spark.createDataFrame(
        [("a", "email", True), ("a", "sms", False), ("c", "ads", True), ("x", "email", True)],
        "customer_key string, channel string, opted_in boolean",
    )
    got = base.transform(with_consent(ConsentPolicy(policy="from_file", file_source="consent"), file_consent))
    expected = spark.createDataFrame(
        [
            ("a", True, False, False, "file", True),
            ("b", False, False, False, "file", True),  # absent from the file: not opted in
            ("c", False, False, True, "file", True),
            ("d", False, False, False, "file", True),
        ],
        "customer_key string, opt_in_email boolean, opt_in_sms boolean, opt_in_ads boolean, "
        "consent_basis string, reach_by_key boolean",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # No silver.consent at all (nothing landed yet): nobody is opted in.
    none = base.transform(with_consent(ConsentPolicy(policy="from_file"), None))
    assert none.where("opt_in_email OR opt_in_sms OR opt_in_ads").count() == 0
    assert {r["consent_basis"] for r in none.collect()} == {"file"}


@pytest.mark.parametrize(
    ("file_block", "key", "problem"),
    [
        ({"columns": {"channel": ""}}, "marketing.consent.file.columns.channel", "one column per channel"),
        ({"columns": {"consent_ts": ""}}, "marketing.consent.file.columns.consent_ts", "must name"),
        ({"columns": {"opt_in_email": "Email"}}, "marketing.consent.file.columns.channel", "must then be"),
        ({"channel_values": {"mail": "post"}}, "marketing.consent.file.channel_values", "must map"),
        ({"opt_out_values": ["yes"]}, "marketing.consent.file.opt_out_values", "shares"),
        ({"source_name": "orders"}, "marketing.consent.file.source_name", "other than"),
        ({"delimiter": ";;"}, "marketing.consent.file.delimiter", "one character"),
    ],
)
def test_consent_file_config_fails_naming_key_and_file(tmp_path, file_block, key, problem):
    import yaml

    import custseg.marketing.campaigns  # noqa: F401 - registers the marketing validator (consent included)
    from custseg.config import DEFAULT_CONF_DIR, ConfigError, load_config

    bad = tmp_path / "bad.yaml"
    doc = {
        "extends": str(DEFAULT_CONF_DIR / "base.yaml"),
        "marketing": {"consent": {"policy": "from_file", "file": file_block}},
    }
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=rf"{bad}: key '{key}' .*{problem}"):
        load_config(bad)
