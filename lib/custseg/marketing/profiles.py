"""Activation profiles: one export file per campaign and marketing tool, in the tool's own import format.

A profile (``marketing.export.profiles.<name>`` in conf) names the columns of the file, in
order, each filled from a *field* of the vocabulary below, and says which contact channels
it takes, whether the file may be gzipped, its text encoding and its row limit per file.
The fields implement the normalisation and hashing rules the tools publish
(docs/marketing.md, "Activation files", cites them):

- ``email_sha256``: SHA-256 (hex) of the e-mail trimmed and lower-cased (Google Customer
  Match, Meta custom audiences);
- ``phone_e164_sha256``: SHA-256 of the E.164 phone, ``+`` included (Google);
- ``phone_digits_sha256``: SHA-256 of the E.164 digits without ``+`` (Meta);
- ``first_name_sha256`` / ``last_name_sha256``: lower case, all white space removed (Google);
- ``fn_sha256`` / ``ln_sha256`` / ``ct_sha256``: lower case, white space and punctuation
  removed, UTF-8 (Meta);
- ``country``: ISO 3166-1 alpha-2, lower case; ``country_sha256`` its hash (Meta);
- ``activation_id``: the source system's own customer id (``silver.activation_ids``): Braze
  ``external_id``, Marketing Cloud ``SubscriberKey``;
- ``email`` / ``phone_e164``: the raw address, only where the customer's consent to that
  very channel is *recorded* (never assumed), for tools without their own address store;
- the audience's own columns (campaign, channel, segment, offer, score).

Every hash is Spark's built-in ``sha2`` over the UTF-8 bytes: no Python UDF. A row is kept
only if the customer is in the campaign's treatment group, was assigned one of the profile's
channels and has consent on that channel (``consent_field`` names the opt-in that allowed
it), and if at least one of its identifier columns is filled.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from custseg.conform.customers import latest_crm_rows
from custseg.marketing.campaigns import CHANNEL_CONSENT
from custseg.marketing.export import CUSTOMER_ATTRIBUTES, OFFER_FIELDS
from custseg.pii import normalize_email, normalize_phone, sha256_hex

# Columns the identity frame (``identity_columns``) adds to the contacts at export time.
IDENTITY_COLUMNS = ["id_activation", "id_email", "id_phone", "id_first_name", "id_last_name", "id_zip", "id_country"]
# A cell a spreadsheet would run as a formula may not start a raw address (see export.escape_formulas).
_FORMULA_START = r"^[=+\-@\t\r]"


def _meta_text(col: Column) -> Column:
    """Meta's rule for names and cities: lower case, no white space, no punctuation (UTF-8 kept)."""
    return F.nullif(F.regexp_replace(F.lower(col), r"[\s\p{P}\p{S}]", ""), F.lit(""))


def _google_name(col: Column) -> Column:
    """Google's rule for names: lower case, every white space removed."""
    return F.nullif(F.regexp_replace(F.lower(col), r"\s", ""), F.lit(""))


def _recorded(opt_in: str) -> Column:
    """Opted in, and the opt-in is on record (CRM or the consent export), not assumed."""
    return F.coalesce(F.col(opt_in), F.lit(False)) & F.col("consent_basis").isin("recorded", "file")


# field -> expression over the contacts joined to the identity frame
IDENTIFIERS: dict[str, Callable[[], Column]] = {
    # a source id that starts like a formula is left out rather than escaped (a ' breaks the match)
    "activation_id": lambda: F.when(~F.col("id_activation").rlike(_FORMULA_START), F.col("id_activation")),
    "customer_key": lambda: F.col("customer_key"),
    "email": lambda: F.when(_recorded("opt_in_email") & ~F.col("id_email").rlike(_FORMULA_START), F.col("id_email")),
    "phone_e164": lambda: F.when(_recorded("opt_in_sms"), F.col("id_phone")),
    "email_sha256": lambda: sha256_hex(F.col("id_email")),
    "phone_e164_sha256": lambda: sha256_hex(F.col("id_phone")),
    "phone_digits_sha256": lambda: sha256_hex(F.substring(F.col("id_phone"), 2, 32)),
}
ATTRIBUTES: dict[str, Callable[[], Column]] = {
    "first_name_sha256": lambda: sha256_hex(_google_name(F.col("id_first_name"))),
    "last_name_sha256": lambda: sha256_hex(_google_name(F.col("id_last_name"))),
    "fn_sha256": lambda: sha256_hex(_meta_text(F.col("id_first_name"))),
    "ln_sha256": lambda: sha256_hex(_meta_text(F.col("id_last_name"))),
    "ct_sha256": lambda: sha256_hex(_meta_text(F.col("city"))),
    "country": lambda: F.col("id_country"),
    "country_sha256": lambda: sha256_hex(F.col("id_country")),
    "zip": lambda: F.col("id_zip"),
    "consent_field": lambda: F.col("consent_field"),
    "p_response": lambda: F.round("p_response", 4),
    "expected_profit": lambda: F.round("expected_profit", 2),
    **{
        c: (lambda c=c: F.col(c))
        for c in (
            "campaign_id",
            "channel",
            "rank",
            *CUSTOMER_ATTRIBUTES,
            "consent_basis",
            *OFFER_FIELDS,
        )
    },
}
FIELDS = {**IDENTIFIERS, **ATTRIBUTES}
# Fields whose values are validated identifiers (hex digests, E.164, checked e-mails): never
# formula-escaped, since a leading ' would break the match (E.164 starts with +).
UNESCAPED = frozenset(IDENTIFIERS) | {f for f in ATTRIBUTES if f.endswith("_sha256")}
# Fields taken from the identity frame: the source system's row (bronze, through
# silver.activation_ids) and the configured country.
IDENTITY_FIELDS = frozenset(
    {
        *IDENTIFIERS.keys() - {"customer_key"},
        *(f for f in ATTRIBUTES if f.endswith("_sha256") and f != "ct_sha256"),
        "country",
        "zip",
    }
)

DEFAULT_MAX_ROWS = 1_000_000
PROFILE_KEYS = ("enabled", "channels", "columns", "gzip", "encoding", "max_rows_per_file")


@dataclass(frozen=True)
class Profile:
    """One tool's import format. ``columns``: (header, field) in file order."""

    name: str
    channels: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    gzip: bool = False
    encoding: str = "utf-8"
    max_rows_per_file: int = DEFAULT_MAX_ROWS
    enabled: bool = True

    @property
    def headers(self) -> list[str]:
        return [h for h, _ in self.columns]

    @property
    def identifier_headers(self) -> list[str]:
        return [h for h, f in self.columns if f in IDENTIFIERS]

    @property
    def unescaped_headers(self) -> frozenset[str]:
        return frozenset(h for h, f in self.columns if f in UNESCAPED)

    @property
    def needs_identity(self) -> bool:
        """Whether a column comes from the source system (bronze, through silver.activation_ids)."""
        return any(f in IDENTITY_FIELDS for _, f in self.columns)

    @property
    def extension(self) -> str:
        return "csv.gz" if self.gzip else "csv"


def load_profiles(conf) -> list[Profile]:
    """``marketing.export.profiles`` -> the profiles, validated (errors name key and file); enabled ones only."""
    raw = conf.get_path("marketing.export.profiles", None) or {}
    key = "marketing.export.profiles"
    if not isinstance(raw, Mapping):
        raise conf.error(key, f"must be a map of profile name -> settings; got {raw!r}")
    default_rows = conf.get_path("marketing.export.max_rows_per_file", DEFAULT_MAX_ROWS)
    if not _positive_int(default_rows):
        raise conf.error("marketing.export.max_rows_per_file", f"must be an integer >= 1; got {default_rows!r}")
    default_country(conf)
    out = []
    for name, spec in raw.items():
        p = _parse_profile(conf, f"{key}.{name}", str(name), spec, int(default_rows))
        if p.enabled:
            out.append(p)
    return out


def default_country(conf) -> str | None:
    """``marketing.export.default_country``: ISO 3166-1 alpha-2, lower case (null: none)."""
    value = conf.get_path("marketing.export.default_country", None)
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{2}", value):
        raise conf.error("marketing.export.default_country", f"must be a two-letter ISO 3166-1 code; got {value!r}")
    return value.lower()


def check_profiles(conf) -> None:
    """Validation hook for config load (``custseg.marketing.campaigns.check_marketing``)."""
    load_profiles(conf)


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _parse_profile(conf, key: str, name: str, spec, default_rows: int) -> Profile:
    if not isinstance(spec, Mapping):
        raise conf.error(key, f"must be a map with {', '.join(PROFILE_KEYS)}; got {spec!r}")
    unknown = sorted(set(spec) - set(PROFILE_KEYS))
    if unknown:
        raise conf.error(f"{key}.{unknown[0]}", f"is not a profile setting (known: {', '.join(PROFILE_KEYS)})")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise conf.error(f"{key}.enabled", f"must be true or false; got {enabled!r}")
    channels = spec.get("channels")
    if not isinstance(channels, list) or not channels or not set(channels) <= set(CHANNEL_CONSENT):
        raise conf.error(
            f"{key}.channels", f"must be a non-empty list of {', '.join(CHANNEL_CONSENT)}; got {channels!r}"
        )
    columns = spec.get("columns")
    if not isinstance(columns, Mapping) or not columns:
        raise conf.error(f"{key}.columns", f"must be a non-empty map of file header -> field; got {columns!r}")
    for header, field in columns.items():
        if not isinstance(header, str) or not header.strip() or any(ch in header for ch in "`\r\n"):
            raise conf.error(f"{key}.columns", f"has an empty header or one with a backtick or line break: {header!r}")
        if field not in FIELDS:
            raise conf.error(
                f"{key}.columns.{header}", f"names an unknown field {field!r} (known: {', '.join(sorted(FIELDS))})"
            )
    if not any(f in IDENTIFIERS for f in columns.values()):
        raise conf.error(
            f"{key}.columns", f"needs at least one identifier column ({', '.join(sorted(IDENTIFIERS))}) to match people"
        )
    gzip = spec.get("gzip", False)
    if not isinstance(gzip, bool):
        raise conf.error(f"{key}.gzip", f"must be true or false; got {gzip!r}")
    encoding = spec.get("encoding", "utf-8")
    try:
        codecs.lookup(str(encoding))
    except LookupError:
        raise conf.error(f"{key}.encoding", f"is not a known text encoding; got {encoding!r}") from None
    rows = spec.get("max_rows_per_file", default_rows)
    if not _positive_int(rows):
        raise conf.error(f"{key}.max_rows_per_file", f"must be an integer >= 1; got {rows!r}")
    return Profile(
        name=name,
        channels=tuple(channels),
        columns=tuple((str(h), str(f)) for h, f in columns.items()),
        gzip=gzip,
        encoding=str(encoding).lower(),
        max_rows_per_file=rows,
        enabled=enabled,
    )


# --- frames --------------------------------------------------------------------------------


def consent_field() -> Column:
    """The opt-in column that governs a contact's assigned channel (null for an unknown channel)."""
    expr = None
    for channel, opt_in in CHANNEL_CONSENT.items():
        cond = F.col("channel") == F.lit(channel)
        expr = F.when(cond, F.lit(opt_in)) if expr is None else expr.when(cond, F.lit(opt_in))
    return expr


def has_consent() -> Column:
    """Whether the contact opted in to its assigned channel (missing consent is no consent)."""
    expr = None
    for channel, opt_in in CHANNEL_CONSENT.items():
        cond = F.col("channel") == F.lit(channel)
        value = F.coalesce(F.col(opt_in), F.lit(False))
        expr = F.when(cond, value) if expr is None else expr.when(cond, value)
    return F.coalesce(expr.otherwise(F.lit(False)), F.lit(False))


def activation_contacts(contacts: DataFrame) -> DataFrame:
    """Audience rows joined to consent -> treatment rows with consent on their channel, plus ``consent_field``.
    Control customers (the holdout) and customers without consent never reach the identity join."""
    return contacts.where((F.col("group") == F.lit("treatment")) & has_consent()).withColumn(
        "consent_field", consent_field()
    )


def crm_identities(bronze_crm: DataFrame, country_code: str) -> DataFrame:
    """bronze.crm_customers -> the latest row per customer id with its e-mail normalised
    (trimmed, lower case, checked) and its phone as E.164 (``custseg.pii``, as conform does)."""
    latest = bronze_crm.transform(latest_crm_rows)
    extra = [c for c in ("zip", "country") if c in latest.columns]
    return latest.select(
        "customer_id",
        normalize_email("email").alias("email"),
        normalize_phone("phone", country_code).alias("phone"),
        "name",
        *extra,
    )


def identity_columns(crm_latest: DataFrame, activation_ids: DataFrame, country: str | None) -> DataFrame:
    """``silver.activation_ids`` joined to the latest CRM row per customer id -> ``customer_key`` and the
    normalised identity columns (``IDENTITY_COLUMNS``); join it only to consented treatment contacts.

    ``crm_latest``: customer_id, email, phone (E.164), name[, zip, country] (``custseg.pii``
    normalisers applied by the caller). The name's first word is the first name, the rest the last name.
    """
    name = F.regexp_replace(F.trim(F.col("name")), r"\s+", " ")
    first = F.nullif(F.regexp_extract(name, r"^(\S+)", 1), F.lit(""))
    last = F.nullif(F.regexp_extract(name, r"^\S+\s+(.+)$", 1), F.lit(""))
    cols = set(crm_latest.columns)
    zip_col = F.nullif(F.trim(F.col("zip")), F.lit("")) if "zip" in cols else F.lit(None).cast("string")
    default_country = F.lit(country.lower()) if country else F.lit(None).cast("string")
    country_col = (
        F.coalesce(F.lower(F.trim(F.col("country"))), default_country) if "country" in cols else default_country
    )
    crm = crm_latest.select(
        F.col("customer_id"),
        F.col("email").alias("id_email"),
        F.col("phone").alias("id_phone"),
        first.alias("id_first_name"),
        last.alias("id_last_name"),
        zip_col.alias("id_zip"),
        country_col.alias("id_country"),
    )
    return (
        activation_ids.select("customer_key", "customer_id")
        .join(crm, on="customer_id", how="left")
        .select("customer_key", F.col("customer_id").alias("id_activation"), *IDENTITY_COLUMNS[1:])
    )


def without_identity(contacts: DataFrame) -> DataFrame:
    """The identity columns as nulls (no silver.activation_ids): profiles fall back to what silver holds."""
    return contacts.select("*", *[F.lit(None).cast("string").alias(c) for c in IDENTITY_COLUMNS])


CONSENT_FIELD = "_consent_field"


def profile_frame(profile: Profile, with_consent_field: bool = False) -> Callable[[DataFrame], DataFrame]:
    """Consented treatment contacts with identity columns -> the tool's file rows: the profile's
    channels only, headers in the profile's order, rows without any identifier dropped, by rank.
    ``with_consent_field``: adds ``_consent_field`` (the opt-in that allowed the row) at the end,
    for the manifest's counts; drop it before writing."""

    def transform(contacts: DataFrame) -> DataFrame:
        mine = contacts.where(F.col("channel").isin(*profile.channels) & has_consent())
        cols = [FIELDS[field]().alias(header) for header, field in profile.columns]
        some_id = F.lit(False)
        for h in profile.identifier_headers:
            some_id = some_id | F.col(f"`{h}`").isNotNull()
        extra = [consent_field().alias(CONSENT_FIELD)] if with_consent_field else []
        return (
            mine.select(F.col("rank").alias("_rank"), *cols, *extra)
            .where(some_id)
            .orderBy("_rank")
            .select(*[F.col(f"`{h}`") for h in profile.headers], *[F.col(CONSENT_FIELD)] * bool(extra))
        )

    return transform


def consent_counts(profile: Profile, contacts: DataFrame) -> DataFrame:
    """Treatment contacts of the profile's channels -> per consent field: contacts, excluded for no consent."""
    mine = contacts.where((F.col("group") == F.lit("treatment")) & F.col("channel").isin(*profile.channels))
    return mine.groupBy(consent_field().alias("consent_field")).agg(
        F.count(F.lit(1)).alias("contacts"),
        F.sum(F.when(has_consent(), 0).otherwise(1)).alias("excluded_no_consent"),
    )
