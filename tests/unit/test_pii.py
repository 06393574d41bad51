"""PII: HMAC-SHA256 in Spark SQL equals Python's hmac; e-mail and phone normalization."""

import hashlib
import hmac

from chispa import assert_df_equality

from custseg.pii import hmac_sha256, normalize_email, normalize_phone, sha256_hex


def test_hmac_matches_python(spark):
    salts = ["s", "a-much-longer-salt-" * 5]  # > 64 bytes exercises the hashed-key branch
    values = ["customer_id:C0000001", "émail@exämple.com", "", None]
    for salt in salts:
        df = spark.createDataFrame([(v,) for v in values], "v string")
        actual = df.select("v", hmac_sha256("v", salt).alias("h"))
        expected = spark.createDataFrame(
            [
                (v, None if v is None else hmac.new(salt.encode(), v.encode(), hashlib.sha256).hexdigest())
                for v in values
            ],
            "v string, h string",
        )
        assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_sha256_matches_python(spark):
    df = spark.createDataFrame([("a@b.com",), (None,)], "v string")
    got = {r.v: r.h for r in df.select("v", sha256_hex("v").alias("h")).collect()}
    assert got == {"a@b.com": hashlib.sha256(b"a@b.com").hexdigest(), None: None}


def test_normalize_email_and_phone(spark):
    df = spark.createDataFrame(
        [
            ("  Ann.Lee@Example.COM ", "+44 7700 900123"),
            ("no-at-sign", "07700 900123"),
            (None, "(0)7700-900123"),
            ("x@y.org", "447700900123"),
            ("x@y.org", "0044 7700 900123"),
            ("x@y.org", "123"),
            ("x@y.org", None),
        ],
        "email string, phone string",
    )
    actual = df.select(normalize_email("email").alias("email"), normalize_phone("phone").alias("phone"))
    expected = spark.createDataFrame(
        [
            ("ann.lee@example.com", "+447700900123"),
            (None, "+447700900123"),
            (None, "+447700900123"),
            ("x@y.org", "+447700900123"),
            ("x@y.org", "+447700900123"),
            ("x@y.org", None),
            ("x@y.org", None),
        ],
        "email string, phone string",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
