"""Activation profiles: each tool's file read back with the csv module, checked against hand-computed rows.

The hashes are computed here with hashlib from hand-normalised values; for Meta they are also
the SHA-256 forms Meta publishes for its own examples (customer information parameters:
``John_Smith@gmail.com`` and the US phone ``(650)555-1212``, first name ``Mary``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from custseg.config import ConfigError, load_config
from custseg.marketing.profiles import (
    activation_contacts,
    consent_counts,
    crm_identities,
    identity_columns,
    load_profiles,
    profile_frame,
)
from custseg.stages.export_files import write_csv_parts


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Meta's published examples (developers.facebook.com, Conversions API customer information parameters)
META_EMAIL_SHA = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"  # john_smith@gmail.com
META_PHONE_SHA = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"  # 16505551212
META_FN_SHA = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"  # mary

CRM = (
    "customer_id string, name string, email string, phone string, updated_at string, "
    "_batch_date date, _source_file string"
)
CONTACTS = (
    "customer_key string, campaign_id string, group string, channel string, rank int, p_response double, "
    "expected_profit double, segment_name string, rfm_segment string, value_class string, city string, "
    "region string, age_band string, member_tier string, offer_type string, offer_category string, "
    "offer_item string, offer_discount double, offer_daypart string, offer_valid_from date, "
    "offer_valid_until date, opt_in_email boolean, opt_in_sms boolean, opt_in_ads boolean, consent_basis string"
)
D1, D2 = date(2026, 6, 1), date(2026, 6, 2)
FROM, UNTIL = date(2026, 7, 1), date(2026, 7, 14)


def _crm(spark):
    return spark.createDataFrame(
        [
            # C1: an older row with another address, then the latest (messy spellings to normalise)
            (" C1 ", "Old Name", "old@example.com", "(650)555-0000", "2026-05-01 00:00:00", D1, "a.csv"),
            (
                "C1",
                "  Mary   Smith-Jones ",
                " John_Smith@Gmail.COM ",
                "(650)555-1212",
                "2026-06-01 00:00:00",
                D2,
                "b.csv",
            ),
            ("C2", "Valéry O'Brien", "v.obrien@example.org", "650 555 3434", "2026-06-01 00:00:00", D2, "b.csv"),
            ("C3", "No Consent", "noconsent@example.org", "650 555 9999", "2026-06-01 00:00:00", D2, "b.csv"),
            ("C4", "Control Person", "control@example.org", "650 555 8888", "2026-06-01 00:00:00", D2, "b.csv"),
            ("C5", "Sms Assumed", "assumed@example.org", "650 555 7777", "2026-06-01 00:00:00", D2, "b.csv"),
        ],
        CRM,
    )


def _contacts(spark):
    def row(key, group, channel, rank, e, s, a, basis="recorded", segment="Loyal", city="St. Albans"):
        return (
            key,
            "camp",
            group,
            channel,
            rank,
            0.123456,
            7.891,
            segment,
            "545",
            "general",
            city,
            "Herts",
            "35-44",
            "gold",
            "coupon",
            "dairy",
            None,
            0.15,
            "weekday_lunch",
            FROM,
            UNTIL,
            e,
            s,
            a,
            basis,
        )

    return spark.createDataFrame(
        [
            row("k1", "treatment", "ads", 1, False, False, True),
            row("k2", "treatment", "email", 2, True, True, False, segment="=HYPERLINK(x)"),
            row("k3", "treatment", "ads", 3, True, True, False),  # no ads consent
            row("k4", "control", "ads", 4, True, True, True),  # the holdout: never exported
            row("k5", "treatment", "sms", 5, False, True, False, basis="assumed"),
            row("k6", "treatment", "ads", 6, False, False, True),  # no source row: no identifier
        ],
        CONTACTS,
    ).withColumn("variant", F.when(F.col("group") == "treatment", "a"))


def _activation_ids(spark):
    rows = [("k1", "crm", "C1"), ("k2", "crm", "C2"), ("k3", "crm", "C3"), ("k4", "crm", "C4"), ("k5", "crm", "C5")]
    return spark.createDataFrame(rows, "customer_key string, source string, customer_id string")


@pytest.fixture(scope="module")
def ready(spark):
    """Consented treatment contacts joined to their identities, as the marketing stage builds them."""
    ids = identity_columns(crm_identities(_crm(spark), country_code="1"), _activation_ids(spark), "US")
    return _contacts(spark).transform(activation_contacts).join(ids, on="customer_key", how="left").cache()


@pytest.fixture(scope="module")
def profiles():
    return {p.name: p for p in load_profiles(load_config())}


def _write(spark, df, folder: Path, profile, max_rows=None):
    rows = df.count()
    return write_csv_parts(
        spark,
        df,
        str(folder),
        profile.name,
        rows,
        max_rows or profile.max_rows_per_file,
        compress=profile.gzip,
        encoding=profile.encoding,
        unescaped=profile.unescaped_headers,
    )


def _read(path: str, encoding="utf-8") -> list[list[str]]:
    raw = Path(path).read_bytes()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    return list(csv.reader(io.StringIO(raw.decode(encoding), newline="")))


def _produce(spark, tmp_path, ready, profile) -> list[list[str]]:
    files = _write(spark, ready.transform(profile_frame(profile)), tmp_path / profile.name, profile)
    assert [Path(f["path"]).name for f in files] == [f"{profile.name}-part-00001.csv"]
    return _read(files[0]["path"])


def test_google_customer_match(spark, tmp_path, ready, profiles):
    got = _produce(spark, tmp_path, ready, profiles["google_customer_match"])
    assert got[0] == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
    # Only k1: treatment, ads channel, ads consent, with an identity (k3 lacks consent, k4 is control,
    # k6 has no source row). E-mail trimmed and lower-cased; phone E.164; names lower case without spaces.
    assert got[1:] == [
        [sha("john_smith@gmail.com"), sha("+16505551212"), sha("mary"), sha("smith-jones"), "us", ""],
    ]
    assert got[1][0] == META_EMAIL_SHA  # the same normalised e-mail Meta publishes


def test_meta_custom_audience(spark, tmp_path, ready, profiles):
    got = _produce(spark, tmp_path, ready, profiles["meta_custom_audience"])
    assert got[0] == ["email", "phone", "fn", "ln", "ct", "country"]
    # Phone: digits with the country code, no '+'; names and city without spaces or punctuation.
    assert got[1:] == [[META_EMAIL_SHA, META_PHONE_SHA, META_FN_SHA, sha("smithjones"), sha("stalbans"), sha("us")]]
    assert sha("16505551212") == META_PHONE_SHA


def test_braze_users(spark, tmp_path, ready, profiles):
    got = _produce(spark, tmp_path, ready, profiles["braze_users"])
    assert got[0] == [
        "external_id", "campaign_id", "channel", "segment", "offer_type", "offer_category",
        "offer_item", "offer_discount", "offer_daypart", "offer_valid_until",
    ]  # fmt: skip
    # e-mail and sms contacts with consent, in rank order; a formula-like segment is escaped.
    assert got[1:] == [
        ["C2", "camp", "email", "'=HYPERLINK(x)", "coupon", "dairy", "", "0.15", "weekday_lunch", "2026-07-14"],
        ["C5", "camp", "sms", "Loyal", "coupon", "dairy", "", "0.15", "weekday_lunch", "2026-07-14"],
    ]


def test_sfmc_data_extension(spark, tmp_path, ready, profiles):
    got = _produce(spark, tmp_path, ready, profiles["sfmc_data_extension"])
    assert got[0][:3] == ["SubscriberKey", "CampaignId", "Segment"]
    assert [r[:3] for r in got[1:]] == [["C2", "camp", "'=HYPERLINK(x)"]]  # e-mail channel only


def test_generic_csv_raw_addresses_only_with_recorded_consent(spark, tmp_path, ready, profiles):
    got = _produce(spark, tmp_path, ready, profiles["generic_csv"])
    head = got[0]
    assert head[:5] == ["customer_id", "email", "phone", "campaign_id", "channel"]
    assert head[-1] == "consent_field"
    rows = [dict(zip(head, r, strict=True)) for r in got[1:]]
    # k2: recorded e-mail and sms consent -> both raw addresses; k5: sms consent only assumed -> no address.
    assert [(r["customer_id"], r["email"], r["phone"], r["consent_field"]) for r in rows] == [
        ("C2", "v.obrien@example.org", "+16505553434", "opt_in_email"),
        ("C5", "", "", "opt_in_sms"),
    ]
    everything = " ".join(" ".join(r) for r in got)
    for absent in ("noconsent@", "control@", "assumed@", "old@"):
        assert absent not in everything


def test_parts_gzip_and_empty(spark, tmp_path, ready, profiles):
    p = profiles["braze_users"]
    gz = type(p)(**{**p.__dict__, "gzip": True})
    files = _write(spark, ready.transform(profile_frame(gz)), tmp_path / "gz", gz, max_rows=1)
    assert [(Path(f["path"]).name, f["part"], f["parts"], f["rows"]) for f in files] == [
        ("braze_users-part-00001.csv.gz", 1, 2, 1),
        ("braze_users-part-00002.csv.gz", 2, 2, 1),
    ]
    parts = [_read(f["path"]) for f in files]
    assert [r[0] for r in parts] == [p.headers, p.headers]  # every part carries the header
    assert [r[1][0] for r in parts] == ["C2", "C5"]  # rank order across parts
    assert sorted(x.name for x in (tmp_path / "gz").iterdir()) == [Path(f["path"]).name for f in files]

    empty = ready.where("false").transform(profile_frame(p))
    files = _write(spark, empty, tmp_path / "empty", p)
    assert _read(files[0]["path"]) == [p.headers]


def test_consent_counts(spark, profiles):
    got = consent_counts(profiles["google_customer_match"], _contacts(spark)).collect()
    assert {r["consent_field"]: (r["contacts"], r["excluded_no_consent"]) for r in got} == {"opt_in_ads": (3, 1)}


BAD_PROFILES = [
    (
        "braze_users:\n  columns:\n    external_id: nope",
        r"braze_users\.columns\.external_id' names an unknown field 'nope'",
    ),
    ("braze_users:\n  channels: [fax]", r"braze_users\.channels' must be a non-empty list"),
    ("x:\n  channels: [ads]\n  columns: {segment: segment_name}", r"x\.columns' needs at least one identifier"),
    ("x:\n  channels: [ads]\n  colums: {}", r"x\.colums' is not a profile setting"),
    ("braze_users:\n  max_rows_per_file: 0", r"braze_users\.max_rows_per_file' must be an integer >= 1"),
    ("braze_users:\n  encoding: klingon", r"braze_users\.encoding' is not a known text encoding"),
]


@pytest.mark.parametrize(("profile", "match"), BAD_PROFILES)
def test_bad_profile_names_key_and_file(tmp_path, profile, match):
    base = Path(__file__).resolve().parents[2] / "conf" / "base.yaml"
    over = tmp_path / "bad.yaml"
    body = "".join(f"      {line}\n" for line in profile.splitlines())
    over.write_text(f"extends: {base}\nmarketing:\n  export:\n    profiles:\n{body}")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 'marketing\.export\.profiles\." + match):
        load_config(over, env={})


def test_bad_default_country(tmp_path):
    base = Path(__file__).resolve().parents[2] / "conf" / "base.yaml"
    over = tmp_path / "bad.yaml"
    over.write_text(f"extends: {base}\nmarketing:\n  export:\n    default_country: GBR\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 'marketing\.export\.default_country' must be a two-letter"):
        load_config(over, env={})
