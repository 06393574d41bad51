"""Whole-file checks of a landing batch, on the first and last bytes of each file.

A file that fails one is quarantined as a whole (none of its records reaches bronze) with
a file-level reason code. The checks read at most ``HEAD_BYTES`` + ``TAIL_BYTES`` per file
on the driver (batches hold few files); per-record work stays in Spark.

Reason codes, in the order they are tried:
- ``empty_file``: no bytes, or only white space.
- ``unreadable_file``: a compressed file whose first bytes do not decompress.
- ``invalid_utf8``: the first bytes are not UTF-8 (a BOM is allowed).
- ``wrong_delimiter`` (CSV): the header is one field with the configured delimiter but
  splits on another common one (``;``, tab, ``|``).
- ``missing_column:<header name>`` (CSV): a declared column is not in the header.
- ``truncated_last_line`` (uncompressed files): no newline at the end and the last line is
  not a complete record (JSON Lines: not a JSON object; CSV: fewer fields than the header, an
  open quote, or, with ``csv_require_final_newline``, any CSV without a final newline: a
  value cut inside its last field looks complete), i.e. the file was cut short in transfer.
- ``corrupt_gzip`` (compressed files, checked by reading the whole stream in Spark): the
  stream ends early or fails its CRC, which would otherwise abort the whole ingest. It wins
  over a reason found in the first lines (a cut file with a bad header): its lines cannot be read.
- ``duplicate_file``: the file's content (SHA-256) was already delivered, in this batch or
  an earlier one (``meta.landed_files``), so a re-delivered file cannot count twice.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import zlib
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from custseg.landing import read_bytes
from custseg.sources.base import WHITESPACE, SourceSpec

log = logging.getLogger(__name__)

HEAD_BYTES = 64 * 1024
TAIL_BYTES = 64 * 1024
OTHER_DELIMITERS = (";", "\t", "|")
# Reasons after which the file has no lines worth reading: it becomes one quarantine row.
SINGLE_ROW_REASONS = ("empty_file", "unreadable_file", "corrupt_gzip")


@dataclass(frozen=True)
class FileCheck:
    path: str
    size: int
    reason: str | None = None  # file-level reason code; None = the file is usable
    header: tuple[str, ...] = ()  # CSV: the header's fields (stripped)
    header_line: str = ""  # CSV: the header line as text (BOM and line end removed)
    extra_columns: tuple[str, ...] = ()  # CSV: header fields the source does not declare

    @property
    def ok(self) -> bool:
        return self.reason is None


def _decompress_head(raw: bytes) -> tuple[bytes, bool]:
    """(decompressed bytes, whole stream seen) of the first bytes of a gzip file."""
    d = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    return d.decompress(raw, HEAD_BYTES), d.eof


def _split_csv(line: str, delimiter: str) -> list[str]:
    if delimiter == WHITESPACE:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter), [])


def inspect(
    spec: SourceSpec, path: str, size: int, head: bytes, tail: bytes, csv_require_final_newline: bool = False
) -> FileCheck:
    """The file-level verdict on one file from its first and last bytes (pure; no I/O)."""
    compressed = path.endswith((".gz", ".gzip"))
    whole = size <= len(head)
    if compressed:
        try:
            head, whole = _decompress_head(head)
        except zlib.error:
            return FileCheck(path, size, "unreadable_file")
    if not head.strip():
        return FileCheck(path, size, "empty_file")
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    lines = head.decode("utf-8", errors="replace").splitlines()
    header_line = lines[0] if spec.fmt == "csv" and lines else ""
    try:
        # final=False: a character cut at the end of the head is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
    except UnicodeDecodeError:
        return FileCheck(path, size, "invalid_utf8", header_line=header_line)
    if spec.fmt != "csv":
        return _check_tail(spec, FileCheck(path, size), tail, compressed, whole, csv_require_final_newline)

    fields = tuple(f.strip() for f in _split_csv(header_line, spec.delimiter))
    required = spec.required_headers
    missing = [h for h in required if h not in fields]
    if missing and len(fields) <= 1 and any(len(_split_csv(header_line, d)) > 1 for d in OTHER_DELIMITERS):
        return FileCheck(path, size, "wrong_delimiter", fields, header_line)
    if missing:
        log.warning("%s: %s lacks column(s) %s", spec.name, path, ", ".join(missing))
        return FileCheck(path, size, f"missing_column:{missing[0]}", fields, header_line)
    extra = tuple(f for f in fields if f not in required)
    checked = FileCheck(path, size, None, fields, header_line, extra)
    return _check_tail(spec, checked, tail, compressed, whole, csv_require_final_newline)


def _check_tail(
    spec: SourceSpec, check: FileCheck, tail: bytes, compressed: bool, whole: bool, final_newline: bool = False
) -> FileCheck:
    if compressed:
        return check  # the end of a compressed file is not seen without reading all of it
    data = tail
    if not data or data.endswith((b"\n", b"\r")):
        return check
    cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
    if cut < 0 and not whole:
        return check  # the last line is longer than the tail read: cannot judge, trust the records
    last = data[cut + 1 :].decode("utf-8", errors="replace").strip().lstrip("\ufeff")
    if not last or (spec.fmt == "csv" and cut < 0):
        return check  # a CSV that is only a header, without a newline
    if _incomplete(spec, check, last) or (spec.fmt == "csv" and final_newline):
        return FileCheck(check.path, check.size, "truncated_last_line", check.header, check.header_line)
    return check


def _incomplete(spec: SourceSpec, check: FileCheck, last: str) -> bool:
    if spec.fmt == "jsonl":
        try:
            return not isinstance(json.loads(last), dict)
        except ValueError:
            return True
    # An odd number of quotes: the line ends inside a quoted field (a multi-line field is
    # not read as one record here either: CSV sources are read line by line).
    return len(_split_csv(last, spec.delimiter)) < len(check.header) or last.count('"') % 2 == 1


def _gzip_readable(spark: SparkSession, path: str) -> bool:
    """Whether Spark decompresses the whole file (a cut or corrupt gzip fails the read)."""
    try:
        spark.read.text(path).agg(F.count("*")).collect()
    except Exception as exc:  # a Py4J, Connect or Spark error: the stream is unreadable
        log.warning("%s: cannot be decompressed to the end: %s", path, str(exc).splitlines()[0][:300])
        return False
    return True


def file_checksums(spark: SparkSession, paths: list[str]) -> dict[str, str]:
    """SHA-256 (hex) of each file's bytes, computed by the executors (one row per file comes back)."""
    if not paths:
        return {}
    rows = (
        spark.read.format("binaryFile")
        .option("pathGlobFilter", "*")
        .load(paths)
        .select(F.col("path"), F.sha2(F.col("content"), 256).alias("sha256"))
        .collect()
    )
    by_path = {local_form(r["path"]): r["sha256"] for r in rows}
    return {p: by_path.get(local_form(p)) for p in paths}


def local_form(path: str) -> str:
    """``file:/x``, ``file:///x`` and ``/x`` alike (Spark spells local paths several ways)."""
    if path.startswith("file:"):
        return "/" + path[len("file:") :].lstrip("/")
    return path


def check_files(
    spark: SparkSession, spec: SourceSpec, files: list[tuple[str, int]], csv_require_final_newline: bool = False
) -> list[FileCheck]:
    """FileCheck of every (path, size) of a batch; logs rejected files and unknown columns."""
    out = []
    for path, size in files:
        head, tail = read_bytes(spark, path, size, HEAD_BYTES, TAIL_BYTES)
        check = inspect(spec, path, size, head, tail, csv_require_final_newline)
        # Every compressed file whose lines will be read (accepted, or quarantined line by line
        # for another reason) must decompress to its end: a cut stream fails any read of it.
        compressed = path.endswith((".gz", ".gzip"))
        if compressed and check.reason not in SINGLE_ROW_REASONS and not _gzip_readable(spark, path):
            check = FileCheck(path, size, "corrupt_gzip", check.header, check.header_line)
        if check.reason:
            log.warning("%s: file %s quarantined as a whole: %s", spec.name, path, check.reason)
        elif check.extra_columns:
            log.warning(
                "%s: file %s has columns the source does not declare (on_unknown_fields decides): %s",
                spec.name,
                path,
                ", ".join(check.extra_columns),
            )
        out.append(check)
    return out
