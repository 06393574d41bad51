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

``consent_basis`` per customer: ``recorded`` (some opt-in column is set), ``assumed``
(none is, and the policy assumed it) or ``none``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from custseg.marketing.campaigns import CHANNEL_CONSENT

log = logging.getLogger(__name__)

POLICIES = ("crm", "assume_opted_in")
ASSUMED_WARNING = (
    "CONSENT ASSUMED: marketing.consent.policy=assume_opted_in treats customers without recorded consent "
    "as opted in to {channels}; their contact lists carry consent_basis=assumed. Use it only where consent "
    "was collected outside the data this pipeline reads."
)


@dataclass(frozen=True)
class ConsentPolicy:
    policy: str = "crm"
    channels: tuple[str, ...] = ("email",)

    @classmethod
    def from_config(cls, conf) -> ConsentPolicy:
        g = conf.get_path
        return cls(
            policy=str(g("marketing.consent.policy", cls.policy)),
            channels=tuple(g("marketing.consent.channels", list(cls.channels))),
        )

    @property
    def assumes(self) -> bool:
        return self.policy == "assume_opted_in"

    def warning(self) -> str | None:
        return ASSUMED_WARNING.format(channels=", ".join(self.channels)) if self.assumes else None

    def summary(self) -> dict:
        return {"policy": self.policy, "channels": list(self.channels), "warning": self.warning()}


def with_consent(policy: ConsentPolicy) -> Callable[[DataFrame], DataFrame]:
    """Customer base -> the same with ``consent_basis`` and ``reach_by_key``; under
    ``assume_opted_in`` the opt-ins of the policy's channels are true where nothing was recorded."""
    opt_ins: Sequence[str] = list(CHANNEL_CONSENT.values())

    def transform(base: DataFrame) -> DataFrame:
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
