"""No raw PII past bronze: scan every silver and gold table of the shared pipeline run.

The needles are the generated raw e-mails, phones and names (every spelling the landing CRM
files and the planted truth hold) plus their normalized forms. Every string (and integer)
value of every column, including the leaves inside arrays, maps and structs, is compared in
Spark: as a whole, and through the e-mail-like substrings and long digit runs it contains.
The same scan on bronze.crm_customers must find them (the detector itself works).
"""

from __future__ import annotations

from functools import reduce

import pytest
from chispa import assert_df_equality
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.pii import normalize_email, normalize_phone

pytestmark = pytest.mark.slow

EMAIL_LIKE = r"[^@\s\"',;<>()\[\]{}]+@[^@\s\"',;<>()\[\]{}]+\.[a-z]{2,}"
DIGIT_RUN = r"[0-9]{9,}"
HIT_SCHEMA = "table string, column string, value string"


def _strings(spark, path: str, *fields: str) -> DataFrame:
    return spark.read.option("header", True).csv(path).select(*fields)


def _needles(spark, home) -> DataFrame:
    """Raw and normalized forms of every generated e-mail, phone and name: one `needle` column."""
    crm = _strings(
        spark, str(home / "landing" / "crm_customers" / "*" / "*.csv"), "email", "phone", "name"
    )
    ids = _strings(spark, str(home / "truth" / "identities.csv"), "identifier_type", "identifier")
    emails = crm.select(F.col("email").alias("v")).unionByName(
        ids.where(F.col("identifier_type") == "email").select(F.col("identifier").alias("v"))
    )
    phones = crm.select(F.col("phone").alias("v")).unionByName(
        ids.where(F.col("identifier_type") == "phone").select(F.col("identifier").alias("v"))
    )
    e164 = normalize_phone("v", "44")
    forms = [
        emails.select(F.col("v").alias("needle")),
        emails.select(normalize_email("v").alias("needle")),
        phones.select(F.col("v").alias("needle")),
        phones.select(e164.alias("needle")),
        phones.select(F.substring(e164, 2, 20).alias("needle")),  # 447700900123
        phones.select(
            F.concat(F.lit("0"), F.substring(e164, 4, 20)).alias("needle")
        ),  # 07700900123
        phones.select(F.substring(e164, 4, 20).alias("needle")),  # 7700900123
        crm.select(F.col("name").alias("needle")),
    ]
    return (
        reduce(DataFrame.unionByName, forms)
        .select(F.lower(F.trim("needle")).alias("needle"))
        .where(F.length("needle") >= 6)
        .distinct()
    )


def _leaves(col: Column, dtype: T.DataType) -> Column | None:
    """array<string> of the string (and integer, as text) values inside ``col``; None if it holds none."""
    empty = F.array().cast("array<string>")
    if isinstance(dtype, T.StringType | T.VarcharType | T.CharType):
        return F.array(col)
    if isinstance(dtype, T.IntegralType):
        return F.array(col.cast("string"))
    if isinstance(dtype, T.StructType):
        parts = [_leaves(col.getField(f.name), f.dataType) for f in dtype.fields]
        parts = [F.coalesce(p, empty) for p in parts if p is not None]
        return F.concat(*parts) if parts else None
    if isinstance(dtype, T.ArrayType):
        probe = _leaves(F.lit(None).cast(dtype.elementType), dtype.elementType)
        if probe is None:
            return None
        return F.flatten(
            F.transform(col, lambda x: F.coalesce(_leaves(x, dtype.elementType), empty))
        )
    if isinstance(dtype, T.MapType):
        parts = [
            _leaves(F.map_keys(col), T.ArrayType(dtype.keyType)),
            _leaves(F.map_values(col), T.ArrayType(dtype.valueType)),
        ]
        parts = [F.coalesce(p, empty) for p in parts if p is not None]
        return F.concat(*parts) if parts else None
    return None


def _tag(column: str):
    # F.transform passes (element, index) to a two-argument lambda: bind the name in a closure.
    return lambda v: F.struct(F.lit(column).alias("column"), v.alias("value"))


def _values(name: str, df: DataFrame) -> DataFrame | None:
    """(table, column, value) for every leaf value of every column of ``df``."""
    per_column = []
    for field in df.schema.fields:
        leaves = _leaves(F.col(f"`{field.name}`"), field.dataType)
        if leaves is not None:
            tagged = F.transform(leaves, _tag(field.name))
            per_column.append(
                F.coalesce(tagged, F.array().cast("array<struct<column:string,value:string>>"))
            )
    if not per_column:
        return None
    return (
        df.select(F.explode(F.concat(*per_column)).alias("cell"))
        .select(
            F.lit(name).alias("table"),
            F.col("cell.column").alias("column"),
            F.col("cell.value").alias("value"),
        )
        .where(F.col("value").isNotNull())
    )


def _hits(values: DataFrame, needles: DataFrame) -> DataFrame:
    """Values equal to a needle, or holding an e-mail-like substring or a digit run that is one."""
    low = F.lower(F.trim("value"))
    squeezed = F.regexp_replace(low, r"[\s()+.\-]", "")
    tokens = values.select(
        "table",
        "column",
        "value",
        F.array_distinct(
            F.concat(
                F.array(low),
                F.regexp_extract_all(low, F.lit(EMAIL_LIKE), F.lit(0)),
                F.regexp_extract_all(squeezed, F.lit(DIGIT_RUN), F.lit(0)),
            )
        ).alias("tokens"),
    ).select("table", "column", "value", F.explode("tokens").alias("needle"))
    return (
        tokens.join(needles, on="needle", how="left_semi")
        .select("table", "column", "value")
        .distinct()
    )


def _tables(home, layers: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{p.parent.parent.name}.{p.parent.name}"
        for layer in layers
        for p in (home / "tables" / layer).glob("*/_delta_log")
    )


def test_no_raw_email_phone_or_name_in_silver_or_gold(spark, demo_run):
    from custseg.storage import StorageSettings, Tables

    home, _, _ = demo_run
    tables = Tables(spark, StorageSettings(root=str(home / "tables")))
    needles = _needles(spark, home).localCheckpoint(eager=True)
    assert needles.count() > 5000  # ~2.5k customers x (spellings + normalized forms + name)

    names = _tables(home, ("silver", "gold"))
    assert {
        "silver.customers",
        "silver.identity_map",
        "silver.events",
        "silver.social",
        "gold.customer_segments",
    } <= set(names)
    scanned = [v for v in (_values(n, tables.read(n)) for n in names) if v is not None]
    assert len(scanned) == len(names), "every table has at least one string or integer column"
    hits = _hits(reduce(DataFrame.unionByName, scanned), needles)
    assert_df_equality(hits, spark.createDataFrame([], HIT_SCHEMA), ignore_nullable=True)

    # Positive control: the same scan over bronze finds the raw values where they belong.
    bronze = _hits(_values("bronze.crm_customers", tables.read("bronze.crm_customers")), needles)
    found = (
        bronze.groupBy("column").agg(F.count("*").cast("long").alias("n")).where(F.col("n") > 1000)
    )
    assert_df_equality(
        found.select("column"),
        spark.createDataFrame([("email",), ("phone",), ("name",)], "column string"),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_scanner_finds_values_nested_embedded_and_respelled(spark):
    needles = spark.createDataFrame(
        [("bob.smith1@mail.com",), ("07700900123",), ("bob smith",)], "needle string"
    )
    df = spark.createDataFrame(
        [
            (
                "k1",
                ["x", " Bob.Smith1@MAIL.com "],
                {"note": "call +44 (0)7700-900123?"},
                ("ok", 7700900124),
            ),
            ("k2", [], {"ok": "fine"}, ("Bob Smith", 1)),
            ("k3", None, None, None),
        ],
        "key string, tags array<string>, attrs map<string,string>, who struct<label:string,num:long>",
    )
    hits = _hits(_values("t", df), needles)
    expected = spark.createDataFrame(
        [("t", "tags", " Bob.Smith1@MAIL.com "), ("t", "who", "Bob Smith")],
        HIT_SCHEMA,
    )
    # The map's phone is spelled with (0) after the country code: squeezed it is 440770..., not a needle.
    assert_df_equality(hits, expected, ignore_row_order=True, ignore_nullable=True)
