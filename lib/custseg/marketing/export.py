"""Export frames for downstream tools, per campaign and channel; the manifest that lists them.

- ``crm``: every treatment customer of the campaign with its channel, score, segment,
  coarse attributes and offer: the list a CRM or marketing-automation tool runs.
- ``email`` / ``sms``: treatment customers assigned that channel who opted in, with the
  keyed hash of the address (``email_key`` / ``phone_key``) that the sending tool
  resolves in its own store: no raw address leaves the platform.
- ``ads``: treatment customers assigned the ads channel who opted in to ads, as SHA-256
  of the normalized e-mail (trimmed, lower case) and of the E.164 phone (``+447...``),
  the format Google Customer Match takes; no customer key goes to the ad platform.
- ``ads_seed`` (acquisition by look-alike): the seed audience, hashed the same way.
Control-group customers are never exported: they are the holdout. Suppressions are
already applied upstream (audience.flag_campaign); consent is checked again here so an
export can never hold a customer who did not consent to that channel.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

OFFER_FIELDS = [
    "variant",  # the A/B/n offer variant (custseg.marketing.abtest), for the tool's own reporting
    "offer_type",
    "offer_category",
    "offer_item",
    "offer_discount",
    "offer_daypart",
    "offer_valid_from",
    "offer_valid_until",
]
# What the CRM file (and the activation profiles) may carry about a customer besides keys.
CUSTOMER_ATTRIBUTES = ["segment_name", "rfm_segment", "value_class", "city", "region", "age_band", "member_tier"]
EXPORT_COLUMNS: dict[str, list[str]] = {
    "crm": [
        "campaign_id",
        "customer_key",
        "channel",
        "rank",
        "p_response",
        "expected_profit",
        *CUSTOMER_ATTRIBUTES,
        *OFFER_FIELDS,
        "consent_basis",
    ],
    "email": ["campaign_id", "customer_key", "email_key", *OFFER_FIELDS],
    "sms": ["campaign_id", "customer_key", "phone_key", *OFFER_FIELDS],
    "ads": ["email_sha256", "phone_sha256"],
    "ads_seed": ["email_sha256", "phone_sha256"],
}
HEX64 = r"^[0-9a-f]{64}$"


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_formulas(df: DataFrame, skip: Collection[str] = ()) -> DataFrame:
    """String cells that a spreadsheet would run as a formula get a leading ``'`` (OWASP's
    CSV-injection defence); other columns and cells are unchanged. For CSV exports only:
    a CRM field such as a city of ``=HYPERLINK(...)`` would otherwise run on the marketer's machine.
    ``skip``: columns of validated identifiers (hex digests, E.164 phones) a ``'`` would break."""
    risky = r"^[=+\-@\t\r]"  # FORMULA_STARTS

    def cell(name: str, dtype: str) -> Column:
        col = F.col(f"`{name}`")
        if dtype != "string" or name in skip:
            return col
        return F.when(col.rlike(risky), F.concat(F.lit("'"), col)).otherwise(col).alias(name)

    return df.select(*[cell(name, dtype) for name, dtype in df.dtypes])


def _hash_or_null(col: str) -> Column:
    """Only a well-formed SHA-256 hex string passes; anything else becomes null."""
    return F.when(F.col(col).rlike(HEX64), F.col(col))


def _treated(contacts: DataFrame, channel: str | None = None) -> DataFrame:
    df = contacts.where(F.col("group") == "treatment")
    return df if channel is None else df.where(F.col("channel") == channel)


def crm_export(contacts: DataFrame) -> DataFrame:
    """Audience rows joined to the customer base -> the CRM file (treatment only)."""
    consented = (
        ((F.col("channel") == "email") & F.coalesce(F.col("opt_in_email"), F.lit(False)))
        | ((F.col("channel") == "sms") & F.coalesce(F.col("opt_in_sms"), F.lit(False)))
        | ((F.col("channel") == "ads") & F.coalesce(F.col("opt_in_ads"), F.lit(False)))
    )
    # Downstream tools want readable figures, not 17 significant digits of a model score.
    rounded = {"p_response": F.round("p_response", 4), "expected_profit": F.round("expected_profit", 2)}
    if "consent_basis" not in contacts.columns:  # consent as recorded in the CRM
        contacts = contacts.withColumn("consent_basis", F.lit("recorded"))
    cols = [rounded[c].alias(c) if c in rounded else F.col(c) for c in EXPORT_COLUMNS["crm"]]
    return _treated(contacts).where(consented).select(*cols).orderBy("rank")


def email_export(contacts: DataFrame) -> DataFrame:
    return (
        _treated(contacts, "email")
        .where(F.coalesce(F.col("opt_in_email"), F.lit(False)) & F.col("email_key").isNotNull())
        .orderBy("rank")
        .select(*EXPORT_COLUMNS["email"])
    )


def sms_export(contacts: DataFrame) -> DataFrame:
    return (
        _treated(contacts, "sms")
        .where(F.coalesce(F.col("opt_in_sms"), F.lit(False)) & F.col("phone_key").isNotNull())
        .orderBy("rank")
        .select(*EXPORT_COLUMNS["sms"])
    )


def hashed_audience(frame: DataFrame) -> DataFrame:
    """Ads-consented rows -> SHA-256 e-mail and phone; rows with neither are dropped."""
    hashed = frame.where(F.coalesce(F.col("opt_in_ads"), F.lit(False))).select(
        _hash_or_null("email_sha256").alias("email_sha256"), _hash_or_null("phone_sha256").alias("phone_sha256")
    )
    return hashed.where(F.col("email_sha256").isNotNull() | F.col("phone_sha256").isNotNull()).select(
        *EXPORT_COLUMNS["ads"]
    )


def ads_export(contacts: DataFrame) -> DataFrame:
    return hashed_audience(_treated(contacts, "ads").orderBy("rank"))


def seed_export(seed: DataFrame) -> DataFrame:
    """Look-alike seed (``audience.seed_audience`` joined to consent) -> hashed identifiers."""
    return hashed_audience(seed).select(*EXPORT_COLUMNS["ads_seed"])


EXPORTS: dict[str, Callable[[DataFrame], DataFrame]] = {
    "crm": crm_export,
    "email": email_export,
    "sms": sms_export,
    "ads": ads_export,
}


def exports_for(channels: Sequence[str]) -> list[str]:
    """The export kinds of a campaign: crm always, then one per contact channel."""
    return ["crm", *[c for c in channels if c in EXPORTS]]


def manifest(
    snapshot_date: str,
    files: Sequence[Mapping],
    consent: Mapping | None = None,
    activation: Sequence[Mapping] | None = None,
) -> dict:
    """The manifest document: one entry per file (campaign, kind, format, path, rows, bytes, sha256;
    activation files also part, parts, profile), the consent policy the audiences were built under
    (``consent``, when given) and, per campaign and tool profile, the activation summary: columns,
    rows by the consent field that allowed them, contacts excluded per consent field."""
    entries = sorted(
        (dict(f) for f in files), key=lambda f: (f["campaign_id"], f["export"], f["format"], f.get("part", 1))
    )
    per_format: dict[tuple[str, str, str], int] = {}
    for f in entries:  # the parts of one format add up; every format of one export holds the same rows
        k = (f["campaign_id"], f["export"], f["format"])
        per_format[k] = per_format.get(k, 0) + int(f["rows"])
    totals: dict[str, dict[str, int]] = {}
    for (campaign, export, _), rows in per_format.items():
        totals.setdefault(campaign, {})[export] = rows
    doc = {"snapshot_date": snapshot_date, "files": entries, "rows_by_campaign": totals}
    if consent is not None:
        doc["consent"] = dict(consent)
    if activation:
        doc["activation"] = sorted((dict(a) for a in activation), key=lambda a: (a["campaign_id"], a["profile"]))
    return doc
