"""``report.*`` settings: how many rules to show, which features make the centres, plot DPI."""

from __future__ import annotations

from dataclasses import dataclass, field

from custseg.config import Config, validator

DEFAULT_CENTRE_FEATURES = ("recency_days", "frequency", "monetary")


@dataclass(frozen=True)
class ReportSettings:
    top_rules: int = 15
    centre_features: tuple[str, ...] = field(default=DEFAULT_CENTRE_FEATURES)
    dpi: int = 96

    @classmethod
    def from_config(cls, conf: Config) -> ReportSettings:
        return cls(
            top_rules=int(conf.get_path("report.top_rules", cls.top_rules)),
            centre_features=tuple(conf.get_path("report.centre_features", list(DEFAULT_CENTRE_FEATURES))),
            dpi=int(conf.get_path("report.dpi", cls.dpi)),
        )


@validator
def check_report(conf: Config) -> None:
    """Fail at start-up, naming the key, rather than after the pipeline ran for an hour."""
    top = conf.get_path("report.top_rules", 15)
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 200:
        raise conf.error("report.top_rules", f"must be an integer from 1 to 200; got {top!r}")
    feats = conf.get_path("report.centre_features", list(DEFAULT_CENTRE_FEATURES))
    if not isinstance(feats, list) or not feats or not all(isinstance(f, str) and f for f in feats):
        raise conf.error("report.centre_features", f"must be a non-empty list of column names; got {feats!r}")
    dpi = conf.get_path("report.dpi", 96)
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 40 <= dpi <= 300:
        raise conf.error("report.dpi", f"must be an integer from 40 to 300; got {dpi!r}")
