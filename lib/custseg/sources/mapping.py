"""What the files a retailer maps by conf share: column mapping, delimiter, timestamp pattern, landing name.

A mapped file (bring-your-own transactions: ``flat_transactions``; a consent export:
``marketing.consent.file``) is a CSV whose header names are given per canonical column in a
``columns:`` block (``""``: the file has no such column). Ingest reads
``<landing>/<source_name>/<date>/*.csv(.gz)`` under the canonical names (custseg.ingest, through
``SourceSpec.header_names``); these helpers read and check the keys every such block has, so a
bad block fails at start-up naming the key and the file, the same way for every mapped file.
"""

from __future__ import annotations

from collections.abc import Iterable

from custseg.config import Config
from custseg.sources.base import WHITESPACE


def mapped_columns(conf: Config, section: str, canonical: Iterable[str], default: dict[str, str]) -> dict[str, str]:
    """``<section>.columns`` as canonical column -> the file's header name ("" = absent); ``default``
    when the section names no columns."""
    cols = conf.get_path(f"{section}.columns", None)
    if cols is None:
        return dict(default)
    return {c: str(cols.get(c) or "") for c in canonical}


def named_columns(conf: Config, section: str) -> set[str]:
    """Canonical columns that ``<section>.columns`` maps to a header name."""
    cols = conf.get_path(f"{section}.columns", {}) or {}
    return {c for c, v in cols.items() if isinstance(v, str) and v.strip()}


def check_required_columns(conf: Config, section: str, required: Iterable[str]) -> None:
    named = named_columns(conf, section)
    cols = conf.get_path(f"{section}.columns", {}) or {}
    for col in required:
        if col not in named:
            raise conf.error(
                f"{section}.columns.{col}", f"must name the file's column for {col}; got {cols.get(col)!r}"
            )


def check_file_format(conf: Config, section: str, default_name: str, taken: Iterable[str] = ()) -> None:
    """``delimiter``, ``ts_format`` and ``source_name`` (a plain name other than the built-in
    sources and ``taken``: it is the landing folder and the source in quarantine and reconciliation)."""
    g = conf.get_path
    delim = g(f"{section}.delimiter", ",")
    if not isinstance(delim, str) or not (len(delim) == 1 or delim == WHITESPACE):
        raise conf.error(
            f"{section}.delimiter", f"must be one character or '{WHITESPACE}' (runs of blanks); got {delim!r}"
        )
    if not str(g(f"{section}.ts_format", "") or "").strip():
        raise conf.error(f"{section}.ts_format", "must be a Spark datetime pattern, e.g. 'yyyy-MM-dd HH:mm:ss'")
    name = g(f"{section}.source_name", default_name)
    from custseg.sources.catalog import SOURCES

    if not isinstance(name, str) or not name.isidentifier() or name in SOURCES or name in set(taken):
        others = sorted({*SOURCES, *taken})
        raise conf.error(
            f"{section}.source_name",
            f"must be a plain name other than the other sources ({', '.join(others)}); got {name!r}",
        )
