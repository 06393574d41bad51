"""Activation files as the tools import them: CSV with a header, numbered parts, gzip, escaped formulas.

``write_csv_parts`` writes one frame as ``<folder>/<stem>-part-00001.csv[.gz]``, ...: at most
``max_rows`` data rows per file (each with its own header, so every part loads alone), rows in
the frame's order, RFC 4180 quoting (a ``"`` inside a cell is doubled, as spreadsheets and the
csv module expect), empty cells for nulls, the profile's encoding, and string cells that a
spreadsheet would run as formulas escaped (``export.escape_formulas``) except validated
identifier columns. One Spark job writes every part: rows are numbered once, the part number
is a partition column, and each part lands in exactly one task (one file).

Publication, shared by the batch exports (``stages.marketing.write_exports``) and the hourly
real-time export (``realtime.export``): everything is written to a staging folder,
``file_digests`` gives each file's bytes and SHA-256 for the manifest, ``_SUCCESS`` is written
last, and ``publish_folder`` swaps the staging folder in, keeping the last good export on failure.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Collection

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from custseg import fileio
from custseg.marketing.export import escape_formulas

PART = "part_no"


def part_name(stem: str, index: int, extension: str) -> str:
    """``google_customer_match-part-00001.csv.gz``: 1-based, zero-padded so names sort in order."""
    return f"{stem}-part-{index:05d}.{extension}"


def write_csv_parts(
    spark: SparkSession,
    df: DataFrame,
    folder: str,
    stem: str,
    rows: int,
    max_rows: int,
    compress: bool = False,
    encoding: str = "utf-8",
    unescaped: Collection[str] = (),
) -> list[dict]:
    """Writes ``df`` (``rows`` rows, counted by the caller) as numbered CSV parts under ``folder``.

    Returns one entry per file: ``path``, ``part`` (1-based), ``parts``, ``rows``.
    An empty frame still gets one header-only part: a loader sees "no one this time", not "no file".
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1; got {max_rows}")
    extension = "csv.gz" if compress else "csv"
    parts = max(1, math.ceil(rows / max_rows))
    headers = df.columns
    if rows == 0:
        path = f"{folder}/{part_name(stem, 1, extension)}"
        header = (_csv_line(headers) + "\n").encode(encoding)
        fileio.write_bytes(path, gzip.compress(header, mtime=0) if compress else header)
        return [{"path": path, "part": 1, "parts": 1, "rows": 0}]

    escaped = df.transform(lambda d: escape_formulas(d, skip=unescaped))
    # The frame arrives sorted; monotonically_increasing_id keeps that order, row_number makes it dense.
    # One window without a partition: the rows of one export file set, bounded by the audience.
    ordered = escaped.withColumn("_seq", F.monotonically_increasing_id())
    numbered = ordered.withColumn("_rn", F.row_number().over(Window.orderBy("_seq"))).withColumn(
        PART, F.floor((F.col("_rn") - 1) / F.lit(max_rows)).cast("int") + 1
    )
    tmp = f"{folder}/_tmp-{stem}"
    writer = (
        numbered.repartition(parts, PART)
        .sortWithinPartitions(PART, "_rn")
        .select(*[F.col(f"`{h}`") for h in headers], PART)
        .write.mode("overwrite")
        .partitionBy(PART)
        .option("header", True)
        .option("encoding", encoding)
        .option("escape", '"')
        .option("emptyValue", "")
        .option("maxRecordsPerFile", 0)
    )
    if compress:
        writer = writer.option("compression", "gzip")
    writer.csv(tmp)
    found = {}
    for path, _ in fileio.list_files(spark, tmp, hidden=lambda rel: rel.rsplit("/", 1)[-1].startswith((".", "_"))):
        folder_name = path.rstrip("/").rsplit("/", 2)[-2]
        if folder_name.startswith(f"{PART}="):
            index = int(folder_name.split("=", 1)[1])
            if index in found:
                raise RuntimeError(f"part {index} of {stem} was written as more than one file under {tmp}")
            found[index] = path
    if sorted(found) != list(range(1, parts + 1)):
        raise RuntimeError(f"{stem}: expected parts 1..{parts} under {tmp}, found {sorted(found)}")
    out = []
    for index in range(1, parts + 1):
        target = f"{folder}/{part_name(stem, index, extension)}"
        fileio.move(found[index], target)
        n = min(max_rows, rows - (index - 1) * max_rows)
        out.append({"path": target, "part": index, "parts": parts, "rows": n})
    fileio.delete_tree(tmp)
    return out


def uri(path: str) -> str:
    """A path as ``binaryFile`` reports it (``file:`` for local paths)."""
    return path if "://" in path or path.startswith("file:") else f"file:{path}"


def file_digests(spark: SparkSession, paths: list[str]) -> dict[str, tuple[int, str]]:
    """path -> (bytes, SHA-256 hex) of each file, read where the files are (``binaryFile``):
    one row per file reaches the driver, never the content."""
    if not paths:
        return {}
    sums = {
        r["path"]: (int(r["length"]), r["sha256"])
        for r in spark.read.format("binaryFile")
        .load(paths)
        .select(F.col("path"), F.col("length"), F.sha2(F.col("content"), 256).alias("sha256"))
        .collect()  # one row per export file
    }
    return {p: sums[uri(p)] if uri(p) in sums else sums[p] for p in paths}


def publish_folder(staging: str, target: str) -> None:
    """Swaps a complete export folder in for ``target``: the old one is moved aside, the new one
    renamed into place, then the old one deleted (on object stores a rename is a copy: the
    window without a folder is as short as the copy)."""
    old = f"{staging}.replaced"
    had_old = fileio.is_dir(target)
    if had_old:
        try:
            fileio.move(target, old)
        except OSError as exc:
            raise OSError(f"could not move the previous export {target} aside: {exc}") from exc
    try:
        fileio.move(staging, target)
    except OSError as exc:
        if had_old:
            fileio.move(old, target)  # put the last good export back
        raise OSError(f"could not move the new export {staging} to {target}: {exc}") from exc
    if had_old:
        fileio.delete_tree(old)


def _csv_line(cells: list[str]) -> str:
    """One RFC 4180 line (quotes where needed), as Spark writes the header."""
    out = []
    for c in cells:
        needs = any(ch in c for ch in ',"\r\n') or c != c.strip()
        out.append('"' + c.replace('"', '""') + '"' if needs else c)
    return ",".join(out)
