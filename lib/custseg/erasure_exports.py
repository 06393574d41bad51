"""Erasure in the export files: the person's rows are cut out of every file still held.

Every dated export folder under ``paths.exports`` is scanned (``_staging`` and other ``_`` /
``.`` folders are skipped), the hourly real-time ones (``realtime/<date>/<HH>/``) included. A CSV
(``.csv``, ``.csv.gz``) or Parquet file that holds a row with one of the person's values in any
cell (raw id, normalized e-mail or phone, key, SHA-256) is rewritten without those rows,
atomically, and the nearest ``manifest.json`` above it gets the file's new rows, bytes and
SHA-256 (an hourly one also its totals) plus an ``erasures`` entry (when, how many rows; never who).
Why rewrite rather than delete the date's folder: the other customers' hand-off stays valid
and verifiable against its manifest, and nothing of the person survives in it. Files already
loaded into a downstream tool are out of reach here: the DPO's request to that tool is
separate (docs/security.md, "Erasure").
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from custseg import fileio
from custseg.erasure import Person
from custseg.stages.context import StageContext, absolute

log = logging.getLogger(__name__)


def _files(root: str) -> list[str]:
    from pyarrow import fs as pafs

    fs, key = fileio._arrow_fs(root)
    infos = fs.get_file_info(pafs.FileSelector(key, recursive=True))
    return sorted(i.path[len(key) :].lstrip("/") for i in infos if i.type == pafs.FileType.File)


def _read(root: str, rel: str) -> bytes:
    fs, key = fileio._arrow_fs(f"{root}/{rel}")
    with fs.open_input_stream(key) as f:
        return f.read()


def _cut_csv(data: bytes, needles: frozenset[str], compressed: bool) -> tuple[bytes, int]:
    text = (gzip.decompress(data) if compressed else data).decode("utf-8", errors="surrogateescape")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    dropped = 0
    for i, row in enumerate(csv.reader(io.StringIO(text, newline=""))):
        if i > 0 and any(cell.strip().lower() in needles for cell in row):
            dropped += 1
            continue
        writer.writerow(row)
    if not dropped:
        return data, 0
    body = out.getvalue().encode("utf-8", errors="surrogateescape")
    return (gzip.compress(body, mtime=0) if compressed else body), dropped


def _cut_parquet(data: bytes, needles: frozenset[str]) -> tuple[bytes, int]:
    table = pq.read_table(pa.BufferReader(data))
    hit = pa.array([False] * table.num_rows, pa.bool_())
    values = pa.array(sorted(needles), pa.string())
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            lowered = pc.utf8_lower(pc.utf8_trim_whitespace(column.cast(pa.string())))
            hit = pc.or_kleene(hit, pc.fill_null(pc.is_in(lowered, value_set=values), False))
    dropped = int(pc.sum(hit).as_py() or 0)
    if not dropped:
        return data, 0
    sink = pa.BufferOutputStream()
    pq.write_table(table.filter(pc.invert(hit)), sink)
    return sink.getvalue().to_pybytes(), dropped


def erase_from_exports(ctx: StageContext, person: Person, country_code: str = "44") -> int:
    """Rows of the person cut out of the export files; returns how many."""
    root = absolute(ctx.conf.paths.exports).rstrip("/")
    if not fileio.is_dir(root) or not person.needles:
        return 0
    total = 0
    for rel in _files(root):
        parts = rel.split("/")
        if any(p.startswith(("_", ".")) for p in parts[:-1]):
            continue
        lower = rel.lower()
        if lower.endswith((".csv", ".csv.gz")):
            new, dropped = _cut_csv(_read(root, rel), person.needles, lower.endswith(".gz"))
        elif lower.endswith(".parquet"):
            new, dropped = _cut_parquet(_read(root, rel), person.needles)
        else:
            continue
        if not dropped:
            continue
        fileio.write_bytes(f"{root}/{rel}", new)
        depth = _manifest_depth(root, parts)
        _update_manifest(root, "/".join(parts[:depth]), "/".join(parts[depth:]), new, dropped)
        log.info("erasure: %d rows cut from export %s", dropped, rel)
        total += dropped
    return total


def _manifest_depth(root: str, parts: list[str]) -> int:
    """How many leading folders of a file's path lead to its manifest: the nearest folder above
    the file with a ``manifest.json`` (``<date>/`` for the batch exports, whose files sit in
    campaign folders; ``realtime/<date>/<HH>/`` for the hourly real-time export), else the first."""
    for depth in range(len(parts) - 1, 0, -1):
        if fileio.exists(f"{root}/{'/'.join(parts[:depth])}/manifest.json"):
            return depth
    return 1


def _recount_hour(root: str, folder: str, doc: dict) -> None:
    """An hourly real-time manifest's totals after a cut: rows, by channel and by trigger, from its
    parts (one hour of offers, read with the csv module)."""
    by_channel: dict[str, int] = {}
    by_trigger: dict[str, int] = {}
    for entry in doc.get("files", []):
        data = _read(root, f"{folder}/{entry['file']}")
        text = (gzip.decompress(data) if entry["file"].endswith(".gz") else data).decode("utf-8")
        for row in csv.DictReader(io.StringIO(text, newline="")):
            by_channel[row["channel"] or "none"] = by_channel.get(row["channel"] or "none", 0) + 1
            by_trigger[row["trigger"] or "none"] = by_trigger.get(row["trigger"] or "none", 0) + 1
    doc.update(rows=sum(by_channel.values()), rows_by_channel=by_channel, rows_by_trigger=by_trigger)


def _update_manifest(root: str, folder: str, file: str, new: bytes, dropped: int) -> None:
    path = f"{root}/{folder}/manifest.json"
    if not fileio.exists(path):
        return
    doc = json.loads(_read(root, f"{folder}/manifest.json"))
    for entry in doc.get("files", []):
        if entry.get("file") == file:
            entry.update(
                rows=int(entry.get("rows", 0)) - dropped, bytes=len(new), sha256=hashlib.sha256(new).hexdigest()
            )
            campaign, export = entry.get("campaign_id"), entry.get("export")
            by = doc.get("rows_by_campaign", {}).get(campaign, {})
            if export in by and entry.get("format") == "csv":
                by[export] = int(by[export]) - dropped
    if doc.get("export") == "realtime_offers":
        _recount_hour(root, folder, doc)
    doc.setdefault("erasures", []).append(
        {"file": file, "rows_deleted": dropped, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    )
    fileio.write_text(path, json.dumps(doc, indent=1, sort_keys=True))


__all__ = ["erase_from_exports"]
