"""Consent policy: where a customer's permission to be contacted comes from.

``marketing.consent.policy``:

- ``crm`` (default, the safe one): the opt-in columns of ``silver.customers`` (the CRM feed).
  A customer without them (a source with no consent data, e.g. bare transactions) is
  never contacted: campaigns then report 0 eligible, with ``suppressed_consent`` saying why.
- ``assume_opted_in``: customers **without recorded consent** count as opted in to
  ``marketing.consent.channels``, and may be reached through their customer key (the
  retailer's CRM resolves it to an address; the ``crm`` export is the file to act on).
  Recorded consent, where there is any, still wins. The assumption is logged as a warning
  at every run, written to the plan (``consent_basis``), to every row of the ``crm``
  export and to the export manifest: only use it when the consent was collected
  elsewhere (e.g. at checkout) and the law of your market allows it.
- ``from_file``: the retailer's consent export (``marketing.consent.file``, mapped like the
  flat transaction files: custseg.sources.consent_file), landed and keyed into
  ``silver.consent`` (latest record per customer and channel). It is the only source of
  consent: a customer's opt-in to a channel is the file's latest record for it, and a
  customer or channel absent from the file is **not** opted in (the safe default). The
  customers are reachable by customer key (the retailer's CRM resolves it, as the export is
  keyed by the same id).

``consent_basis`` per customer: ``recorded`` (some opt-in column is set), ``assumed``
(none is, and the policy assumed it), ``file`` (policy from_file, for every customer: the file
decided, absence included) or ``none``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from custseg.marketing.campaigns import CHANNEL_CONSENT
from custseg.sources.consent_file import FROM_FILE, ConsentFileSettings, check_consent_file

log = logging.getLogger(__name__)

POLICIES = ("crm", "assume_opted_in", FROM_FILE)
ASSUMED_WARNING = (
    "CONSENT ASSUMED: marketing.consent.policy=assume_opted_in treats customers without recorded consent "
    "as opted in to {channels}; their contact lists carry consent_basis=assumed. Use it only where consent "
    "was collected outside the data this pipeline reads."
)


@dataclass(frozen=True)
class ConsentPolicy:
    policy: str = "crm"
    channels: tuple[str, ...] = ("email",)
    file_source: str | None = None  # from_file: the consent export's source name

    @classmethod
    def from_config(cls, conf) -> ConsentPolicy:
        g = conf.get_path
        policy = str(g("marketing.consent.policy", cls.policy))
        return cls(
            policy=policy,
            channels=tuple(g("marketing.consent.channels", list(cls.channels))),
            file_source=ConsentFileSettings.from_config(conf).source_name if policy == FROM_FILE else None,
        )

    @property
    def assumes(self) -> bool:
        return self.policy == "assume_opted_in"

    @property
    def from_file(self) -> bool:
        return self.policy == FROM_FILE

    def warning(self) -> str | None:
        return ASSUMED_WARNING.format(channels=", ".join(self.channels)) if self.assumes else None

    def basis(self) -> str:
        """Where the consent of a campaign's audience came from, as the plan states it."""
        if self.assumes:
            return f"assumed opted in ({', '.join(self.channels)}) where none recorded"
        if self.from_file:
            return f"file ({self.file_source}): customers absent from it not opted in"
        return "crm"

    def summary(self) -> dict:
        out = {"policy": self.policy, "channels": list(self.channels), "warning": self.warning()}
        if self.from_file:
            out = {"policy": self.policy, "file": self.file_source, "basis": self.basis(), "warning": None}
        return out


def with_consent(policy: ConsentPolicy, file_consent: DataFrame | None = None) -> Callable[[DataFrame], DataFrame]:
    """Customer base -> the same with ``consent_basis`` and ``reach_by_key``; under
    ``assume_opted_in`` the opt-ins of the policy's channels are true where nothing was recorded;
    under ``from_file`` they come from ``file_consent`` (silver.consent; None: nobody opted in)."""
    opt_ins: Sequence[str] = list(CHANNEL_CONSENT.values())

    def transform(base: DataFrame) -> DataFrame:
        if policy.from_file:
            return base.transform(_from_file(file_consent))
        recorded = F.lit(False)
        for c in opt_ins:
            recorded = recorded | F.col(c).isNotNull()
        if not policy.assumes:
            basis = F.when(recorded, F.lit("recorded")).otherwise(F.lit("none"))
            return base.withColumn("consent_basis", basis).withColumn("reach_by_key", F.lit(False))
        out = base.withColumn("_recorded", recorded)
        for ch in policy.channels:
            col = CHANNEL_CONSENT[ch]
            out = out.withColumn(col, F.when(F.col("_recorded"), F.col(col)).otherwise(F.lit(True)))
        return (
            out.withColumn("consent_basis", F.when(F.col("_recorded"), F.lit("recorded")).otherwise(F.lit("assumed")))
            .withColumn("reach_by_key", ~F.col("_recorded"))
            .drop("_recorded")
        )

    return transform


def _from_file(file_consent: DataFrame | None) -> Callable[[DataFrame], DataFrame]:
    """Opt-ins from silver.consent (one row per customer_key and channel): a missing one is false."""

    def transform(base: DataFrame) -> DataFrame:
        out = base.drop(*CHANNEL_CONSENT.values())
        if file_consent is not None:
            per_customer = file_consent.groupBy("customer_key").agg(
                *[
                    F.max(F.when(F.col("channel") == ch, F.col("opted_in"))).alias(c)
                    for ch, c in CHANNEL_CONSENT.items()
                ]
            )
            out = out.join(per_customer, on="customer_key", how="left")
        for c in CHANNEL_CONSENT.values():
            out = out.withColumn(c, F.coalesce(F.col(c), F.lit(False)) if c in out.columns else F.lit(False))
        return out.select(
            *[F.col(c) for c in base.columns],
            F.lit("file").alias("consent_basis"),
            F.lit(True).alias("reach_by_key"),
        )

    return transform


def check_consent(conf) -> None:
    """Semantic checks of ``marketing.consent`` (called by the marketing validator)."""
    policy = conf.get_path("marketing.consent.policy", "crm")
    if policy not in POLICIES:
        raise conf.error("marketing.consent.policy", f"must be one of {', '.join(POLICIES)}; got {policy!r}")
    channels = conf.get_path("marketing.consent.channels", ["email"])
    if not isinstance(channels, list) or not channels or not set(channels) <= set(CHANNEL_CONSENT):
        raise conf.error(
            "marketing.consent.channels", f"must be a non-empty list of {', '.join(CHANNEL_CONSENT)}; got {channels!r}"
        )
    if policy == FROM_FILE:
        check_consent_file(conf)
