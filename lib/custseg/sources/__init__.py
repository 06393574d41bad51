"""Landing sources: raw schemas, formats and validation rules, one spec per source."""

from custseg.sources.base import SourceSpec, parse_date, parse_ts
from custseg.sources.catalog import SOURCES, get_source

__all__ = ["SOURCES", "SourceSpec", "get_source", "parse_date", "parse_ts"]
