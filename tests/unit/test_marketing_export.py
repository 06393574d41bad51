"""Exports: only treatment customers, only with consent for the channel, only hashed identifiers."""

from __future__ import annotations

import hashlib
import re
from datetime import date

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from custseg.marketing.export import (
    EXPORT_COLUMNS,
    ads_export,
    crm_export,
    email_export,
    exports_for,
    manifest,
    seed_export,
    sms_export,
)

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# A run of digits with phone punctuation, not glued to letters (so not a piece of a hex digest).
PHONE_RE = re.compile(r"(?<![0-9A-Za-z])\+?\(?\d[\d\s().-]{7,}\d(?![0-9A-Za-z])")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def looks_like_phone(text: str) -> bool:
    """At least 10 digits in a phone-shaped run (dates like 2026-07-01 have 8)."""
    return any(sum(ch.isdigit() for ch in m.group()) >= 10 for m in PHONE_RE.finditer(text))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


CONTACTS = StructType(
    [
        StructField("campaign_id", StringType()),
        StructField("customer_key", StringType()),
        StructField("group", StringType()),
        StructField("channel", StringType()),
        StructField("rank", IntegerType()),
        StructField("p_response", DoubleType()),
        StructField("expected_profit", DoubleType()),
        StructField("segment_name", StringType()),
        StructField("rfm_segment", StringType()),
        StructField("value_class", StringType()),
        StructField("city", StringType()),
        StructField("region", StringType()),
        StructField("age_band", StringType()),
        StructField("member_tier", StringType()),
        StructField("offer_type", StringType()),
        StructField("offer_category", StringType()),
        StructField("offer_item", StringType()),
        StructField("offer_discount", DoubleType()),
        StructField("offer_daypart", StringType()),
        StructField("offer_valid_from", DateType()),
        StructField("offer_valid_until", DateType()),
        StructField("opt_in_email", BooleanType()),
        StructField("opt_in_sms", BooleanType()),
        StructField("opt_in_ads", BooleanType()),
        StructField("email_key", StringType()),
        StructField("phone_key", StringType()),
        StructField("email_sha256", StringType()),
        StructField("phone_sha256", StringType()),
    ]
)


def _contacts(spark):
    offer = ("coupon", "dairy", None, 0.15, "weekday_lunch", date(2026, 7, 1), date(2026, 7, 14))
    attrs = ("seg", "At Risk", "general", "Leeds", "Yorkshire", "35-44", "gold")

    ann_email_sha, ann_phone_sha = sha("ann@example.com"), sha("+447700900123")

    def row(
        key,
        group,
        channel,
        rank,
        e,
        s,
        a,
        email_key="ek" + "0" * 62,
        phone_key="pk" + "0" * 62,
        email_sha=ann_email_sha,
        phone_sha=ann_phone_sha,
    ):
        return (
            "camp",
            key,
            group,
            channel,
            rank,
            0.3,
            5.0,
            *attrs,
            *offer,
            e,
            s,
            a,
            email_key,
            phone_key,
            email_sha,
            phone_sha,
        )

    rows = [
        row("t_email", "treatment", "email", 1, True, False, False),
        row("t_email_no_consent", "treatment", "email", 2, False, True, True),  # consent withdrawn since
        row("t_sms", "treatment", "sms", 3, False, True, False),
        row("t_ads", "treatment", "ads", 4, False, False, True),
        row(
            "t_ads_raw",
            "treatment",
            "ads",
            5,
            False,
            False,
            True,
            email_sha="ann@example.com",
            phone_sha="+44 7700 900123",
        ),
        row("t_ads_no_consent", "treatment", "ads", 6, True, True, False),
        row("t_ads_null", "treatment", "ads", 7, False, False, None),
        row("c_email", "control", "email", 8, True, True, True),  # holdout: never exported
    ]
    # the offer variant the plan assigned (abtest.with_variant): treated customers only
    return spark.createDataFrame(rows, CONTACTS).withColumn("variant", F.when(F.col("group") == "treatment", "a"))


def test_scanners_catch_raw_values():
    assert EMAIL_RE.search("x,Ann.Lee123@Example.co.uk,y")
    for phone in ("+447700900123", "+44 7700 900123", "(0)7182-843115", "07700 900123"):
        assert looks_like_phone(f"a,{phone},b"), phone
    for fine in ("2026-07-01", sha("+447700900123"), "12345678901234567890abcdef"[:20] + "x", "0.1234"):
        assert not looks_like_phone(fine), fine


def _values(df):
    return [v for r in df.collect() for v in r.asDict().values() if isinstance(v, str)]


def test_channel_exports_hold_only_consented_treatment_customers(spark):
    contacts = _contacts(spark)
    crm, email, sms, ads = (f(contacts) for f in (crm_export, email_export, sms_export, ads_export))
    assert crm.columns == EXPORT_COLUMNS["crm"] and ads.columns == ["email_sha256", "phone_sha256"]
    assert [r["customer_key"] for r in crm.collect()] == ["t_email", "t_sms", "t_ads", "t_ads_raw"]
    assert [r["customer_key"] for r in email.collect()] == ["t_email"]
    assert [r["customer_key"] for r in sms.collect()] == ["t_sms"]
    # t_ads has both hashes; t_ads_raw carried raw values in the hash columns: nulled, then dropped
    assert [tuple(r) for r in ads.collect()] == [(sha("ann@example.com"), sha("+447700900123"))]


def test_no_export_holds_a_raw_email_or_phone(spark):
    contacts = _contacts(spark)
    for f in (crm_export, email_export, sms_export, ads_export):
        for v in _values(f(contacts)):
            assert not EMAIL_RE.search(v), (f.__name__, v)
            assert not looks_like_phone(v), (f.__name__, v)
    for r in ads_export(contacts).collect():
        assert all(v is None or HEX64.match(v) for v in r)


def test_seed_export_needs_ads_consent(spark):
    seed = spark.createDataFrame(
        [("a", sha("a@x.com"), None, True), ("b", sha("b@x.com"), sha("+441"), False), ("c", None, None, True)],
        "customer_key string, email_sha256 string, phone_sha256 string, opt_in_ads boolean",
    )
    assert [tuple(r) for r in seed_export(seed).collect()] == [(sha("a@x.com"), None)]


def test_exports_for_and_manifest():
    assert exports_for(("email", "ads")) == ["crm", "email", "ads"]
    files = [
        {"campaign_id": "b", "export": "crm", "format": "csv", "rows": 3, "bytes": 10, "sha256": "x"},
        {"campaign_id": "a", "export": "email", "format": "parquet", "rows": 2, "bytes": 99, "sha256": "y"},
        {"campaign_id": "a", "export": "email", "format": "csv", "rows": 2, "bytes": 20, "sha256": "z"},
    ]
    doc = manifest("2026-06-30", files)
    assert doc["snapshot_date"] == "2026-06-30"
    assert [(f["campaign_id"], f["format"]) for f in doc["files"]] == [("a", "csv"), ("a", "parquet"), ("b", "csv")]
    assert doc["rows_by_campaign"] == {"a": {"email": 2}, "b": {"crm": 3}}


# --- files: formula escaping, and a failed export leaves the last good one --------------------


def test_formula_like_string_cells_are_escaped(spark):
    from custseg.marketing.export import escape_formulas

    df = spark.createDataFrame(
        [
            ('=HYPERLINK("http://x")', 1.0),
            ("+44 7700", -3.0),
            ("-2+3", 0.0),
            ("@SUM(A1)", 0.0),
            ("\tcmd", 0.0),
            ("Leeds", 0.0),
            ("a=b", 0.0),
            (None, None),
        ],
        "city string, score double",
    )
    got = [tuple(r) for r in df.transform(escape_formulas).collect()]
    assert got == [
        ('\'=HYPERLINK("http://x")', 1.0),
        ("'+44 7700", -3.0),  # numbers are not strings: untouched
        ("'-2+3", 0.0),
        ("'@SUM(A1)", 0.0),
        ("'\tcmd", 0.0),
        ("Leeds", 0.0),
        ("a=b", 0.0),
        (None, None),
    ]


def test_csv_export_file_holds_escaped_cells(spark, tmp_path):
    from custseg.stages.marketing import _write_single_file

    df = spark.createDataFrame([("c1", "=1+1", -2)], "customer_key string, city string, n int")
    target = str(tmp_path / "crm.csv")
    _write_single_file(spark, df, "csv", target)
    assert (tmp_path / "crm.csv").read_text().splitlines() == ["customer_key,city,n", "c1,'=1+1,-2"]
    _write_single_file(spark, df, "parquet", str(tmp_path / "crm.parquet"))  # typed files keep values
    assert spark.read.parquet(str(tmp_path / "crm.parquet")).first()["city"] == "=1+1"


def _export_args(spark, tmp_path, monkeypatch):
    from custseg.config import load_config
    from custseg.stages.context import StageContext

    monkeypatch.setenv("CUSTSEG_HOME", str(tmp_path))
    ctx = StageContext(spark, load_config("local.yaml"), "2026-06-30", None, None)
    cols = "customer_key string, opt_in_email boolean, opt_in_sms boolean, opt_in_ads boolean, email_key string, "
    cols += "phone_key string, email_sha256 string, phone_sha256 string, city string, region string, "
    cols += "age_band string, member_tier string, consent_basis string"
    base = spark.createDataFrame([], cols)
    audience = spark.createDataFrame([], "customer_key string, campaign_id string")
    return ctx, [], audience, base


def test_a_failed_export_leaves_the_last_good_one_and_no_staging(spark, tmp_path, monkeypatch):
    import json

    import custseg.stages.marketing as stage

    old = tmp_path / "exports" / "2026-06-30"
    (old / "camp").mkdir(parents=True)
    (old / "camp" / "crm.csv").write_text("last good export\n")
    (old / "manifest.json").write_text('{"old": true}')
    args = _export_args(spark, tmp_path, monkeypatch)

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(stage, "manifest", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        stage.write_exports(*args)
    assert (old / "camp" / "crm.csv").read_text() == "last good export\n"
    assert json.loads((old / "manifest.json").read_text()) == {"old": True}
    assert not list((tmp_path / "exports" / "_staging").glob("*"))

    monkeypatch.undo()
    monkeypatch.setenv("CUSTSEG_HOME", str(tmp_path))
    assert stage.write_exports(*args) == []
    assert not (old / "camp").exists(), "the date's folder is replaced as a whole"
    assert json.loads((old / "manifest.json").read_text())["snapshot_date"] == "2026-06-30"
    assert (old / "_SUCCESS").is_file(), "the marker comes with a complete export"
    assert not list((tmp_path / "exports" / "_staging").glob("*"))


def test_manifest_adds_up_parts_and_keeps_activation_summaries():
    files = [
        {"campaign_id": "c", "export": "braze_users", "format": "csv", "part": 2, "rows": 3, "file": "c/b-2"},
        {"campaign_id": "c", "export": "braze_users", "format": "csv", "part": 1, "rows": 5, "file": "c/b-1"},
        {"campaign_id": "c", "export": "crm", "format": "csv", "rows": 9, "file": "c/crm.csv"},
        {"campaign_id": "c", "export": "crm", "format": "parquet", "rows": 9, "file": "c/crm.parquet"},
    ]
    summary = {"campaign_id": "c", "profile": "braze_users", "rows": 8, "excluded_by_consent_field": {"opt_in_sms": 2}}
    doc = manifest("2026-06-30", files, None, [summary])
    assert doc["rows_by_campaign"] == {"c": {"braze_users": 8, "crm": 9}}
    assert [f["file"] for f in doc["files"]] == ["c/b-1", "c/b-2", "c/crm.csv", "c/crm.parquet"]
    assert doc["activation"] == [summary]
    assert "activation" not in manifest("2026-06-30", files)
