"""A consent export as a source (``marketing.consent.policy: from_file``), mapped by conf like flat files.

Retailers who bring only transactions usually hold consent in a separate export: customer
id, channel, opted in yes / no, when. ``marketing.consent.file`` maps it the way
``flat_transactions`` maps a line-item file (custseg.sources.mapping): ingest reads
``<landing>/<source_name>/<date>/*.csv(.gz)`` into ``bronze.consent`` under the canonical
columns below, with bad rows quarantined, and conform (custseg.conform.consent) keys it into
``silver.consent``. Two layouts:

- **long**: one row per customer, channel and change (``columns.channel`` and
  ``columns.opted_in``); the file's channel names map to custseg's through ``channel_values``;
- **wide**: one row per customer and change with one column per channel (``columns.opt_in_email``
  / ``opt_in_sms`` / ``opt_in_ads``, ``columns.channel: ""``); an empty cell records nothing.

A value is an opt-in when it is one of ``opt_in_values``, an opt-out when one of
``opt_out_values`` (trimmed, any case); anything else is quarantined.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import Column
from pyspark.sql import functions as F

from custseg.config import Config
from custseg.sources.base import SourceSpec, bad_ts, missing, strings
from custseg.sources.mapping import check_file_format, check_required_columns, mapped_columns, named_columns

SECTION = "marketing.consent.file"
FROM_FILE = "from_file"  # the marketing.consent.policy that reads this source
TABLE = "bronze.consent"
CHANNELS = ("email", "sms", "ads")
WIDE = {f"opt_in_{ch}": ch for ch in CHANNELS}  # canonical column -> channel (wide layout)
COLUMNS = ("customer_id", "channel", "opted_in", *WIDE, "consent_ts")


def _norm(col: str) -> Column:
    return F.nullif(F.lower(F.trim(F.col(col))), F.lit(""))


@dataclass(frozen=True)
class ConsentFileSettings:
    source_name: str = "consent"
    delimiter: str = ","
    columns: dict[str, str] = field(
        default_factory=lambda: {
            "customer_id": "customer_id",
            "channel": "channel",
            "opted_in": "opted_in",
            **{c: "" for c in WIDE},
            "consent_ts": "updated_at",
        }
    )
    ts_format: str = "yyyy-MM-dd HH:mm:ss"
    id_suffix: str = ".0"
    # the file's channel name (lower case) -> custseg channel
    channel_values: dict[str, str] = field(default_factory=lambda: {ch: ch for ch in CHANNELS})
    opt_in_values: tuple[str, ...] = ("yes", "y", "true", "1")
    opt_out_values: tuple[str, ...] = ("no", "n", "false", "0")

    @classmethod
    def from_config(cls, conf: Config) -> ConsentFileSettings:
        g, d = conf.get_path, cls()

        def values(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(str(v).strip().lower() for v in g(f"{SECTION}.{key}", list(default)))

        channel_values = g(f"{SECTION}.channel_values", d.channel_values)
        return cls(
            source_name=str(g(f"{SECTION}.source_name", d.source_name)),
            delimiter=str(g(f"{SECTION}.delimiter", d.delimiter)),
            columns=mapped_columns(conf, SECTION, COLUMNS, d.columns),
            ts_format=str(g(f"{SECTION}.ts_format", d.ts_format)),
            id_suffix=str(g(f"{SECTION}.id_suffix", d.id_suffix) or ""),
            channel_values={str(k).strip().lower(): str(v) for k, v in dict(channel_values).items()},
            opt_in_values=values("opt_in_values", d.opt_in_values),
            opt_out_values=values("opt_out_values", d.opt_out_values),
        )

    @property
    def mapped(self) -> set[str]:
        return {c for c, h in self.columns.items() if h}

    @property
    def long(self) -> bool:
        """One row per channel (a channel column) rather than one column per channel."""
        return "channel" in self.mapped

    @property
    def wide_columns(self) -> dict[str, str]:
        """Canonical opt-in column -> channel, for the channels the wide file has a column for."""
        return {c: ch for c, ch in WIDE.items() if c in self.mapped}

    def opted_in(self, col: str) -> Column:
        """True / False for a known value, null otherwise (ingest quarantined those)."""
        v = _norm(col)
        return F.when(v.isin(*self.opt_in_values), F.lit(True)).when(v.isin(*self.opt_out_values), F.lit(False))


def from_file(conf: Config) -> bool:
    """Whether consent comes from the mapped export (ingest and conform then handle it as a source)."""
    return conf.get_path("marketing.consent.policy", "crm") == FROM_FILE


def consent_spec(s: ConsentFileSettings) -> SourceSpec:
    """The source spec of the configured consent export.

    Reasons: ``missing_customer_id``; ``unknown_channel`` (long: not a key of channel_values);
    ``missing_opted_in`` (long: empty; wide: every channel cell empty); ``bad_opted_in`` (a value
    neither opt-in nor opt-out); ``bad_consent_ts`` (missing or not ``ts_format``); and, as for
    every source, ``future_consent_ts``."""
    known = (*s.opt_in_values, *s.opt_out_values)
    cells = ["opted_in"] if s.long else list(s.wide_columns)

    def no_value() -> Column:
        return F.coalesce(*[_norm(c) for c in cells]).isNull()

    def bad_value() -> Column:
        bad = F.lit(False)
        for c in cells:
            bad = bad | F.coalesce(~_norm(c).isin(*known), F.lit(False))
        return bad

    rules = [
        ("missing_customer_id", missing("customer_id")),
        ("unknown_channel", lambda: F.coalesce(~_norm("channel").isin(*s.channel_values), F.lit(True))),
        ("missing_opted_in", no_value),
        ("bad_opted_in", bad_value),
        ("bad_consent_ts", bad_ts("consent_ts", formats=(s.ts_format,))),
    ]
    return SourceSpec(
        name=s.source_name,
        fmt="csv",
        schema=strings(*COLUMNS),
        key=None,  # a change record has no id of its own; the latest per customer and channel wins in conform
        rules=[(code, rule) for code, rule in rules if code != "unknown_channel" or s.long],
        ts_cols=("consent_ts",),
        ts_formats=(s.ts_format,),
        delimiter=s.delimiter,
        header_names=dict(s.columns),
    )


def check_consent_file(conf: Config) -> None:
    """``marketing.consent.file`` (called by custseg.marketing.consent.check_consent under from_file)."""
    g = conf.get_path
    named = named_columns(conf, SECTION)
    check_required_columns(conf, SECTION, ["customer_id", "consent_ts"])
    wide = named & set(WIDE)
    if "channel" in named:
        if "opted_in" not in named:
            raise conf.error(f"{SECTION}.columns.opted_in", "must name the opted-in column when columns.channel is set")
        if wide:
            raise conf.error(
                f"{SECTION}.columns.channel",
                f'is set, so the file has one row per channel: {", ".join(sorted(wide))} must then be ""',
            )
    elif not wide:
        raise conf.error(
            f"{SECTION}.columns.channel",
            "is empty, so the file has one column per channel: name at least one of "
            + ", ".join(f"columns.{c}" for c in WIDE),
        )
    mapping = g(f"{SECTION}.channel_values", {})
    if not isinstance(mapping, Mapping) or not mapping or not set(mapping.values()) <= set(CHANNELS):
        shown = dict(mapping) if isinstance(mapping, Mapping) else mapping
        raise conf.error(
            f"{SECTION}.channel_values", f"must map the file's channel names to {', '.join(CHANNELS)}; got {shown!r}"
        )
    ins = {str(v).strip().lower() for v in g(f"{SECTION}.opt_in_values", []) or []}
    outs = {str(v).strip().lower() for v in g(f"{SECTION}.opt_out_values", []) or []}
    if not ins or not outs:
        raise conf.error(f"{SECTION}.opt_in_values", "and opt_out_values must both list at least one value")
    if ins & outs:
        raise conf.error(f"{SECTION}.opt_out_values", f"shares {sorted(ins & outs)} with opt_in_values")
    flat = g("flat_transactions.source_name", "flat_transactions") if g("flat_transactions.enabled", False) else None
    check_file_format(conf, SECTION, ConsentFileSettings.source_name, taken=[flat] if flat else [])
