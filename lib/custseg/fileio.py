"""Files outside the Delta tables (landing listing, export files, the report), Connect-safe.

The jobs run in classic sessions and over Spark Connect (Databricks serverless and standard
access, Databricks Connect, a Spark Connect server), where the driver's JVM and its Hadoop
FileSystem are out of reach. So:

- local paths (``/x``, ``file:/x``, Databricks ``/Volumes/...`` and ``/dbfs/...`` mounts)
  use Python's own file API;
- other schemes (``s3://``, ``abfss://``, ``gs://``, ``hdfs://``) are listed and read through
  Spark's ``binaryFile`` source (the cluster's credentials, the same view the readers get), and
  written, moved and deleted with ``pyarrow.fs`` (credentials of the process, e.g. an instance
  profile on EMR).

Nothing here touches ``sparkContext`` or the JVM; a test scans lib/ for that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from custseg import faults


def is_local(path: str) -> bool:
    """Whether Python's file API reaches ``path`` directly (plain paths, ``file:``, FUSE mounts)."""
    return urlparse(path).scheme in ("", "file")


def local_path(path: str) -> str:
    """``file:///x`` / ``file:/x`` -> ``/x``; other local paths unchanged."""
    if path.startswith("file://"):
        return path[len("file://") :]
    return path.removeprefix("file:")


def hidden_part(relative: str) -> bool:
    """Whether a file, or a folder on its way under the listed root, starts with ``.`` or ``_``:
    markers (``_SUCCESS``), checksums (``.crc``), in-flight uploads (``_temporary/``), which
    Spark's readers skip too."""
    return any(part.startswith((".", "_")) for part in relative.replace("\\", "/").split("/") if part)


def list_files(spark: SparkSession, path: str, hidden=hidden_part) -> list[tuple[str, int]]:
    """(path, size) of the data files under ``path`` (recursively), sorted; [] when it does not exist.

    ``hidden(relative_path)`` says which to leave out (default: any part starting with ``.``/``_``).
    """
    if is_local(path):
        root = Path(local_path(path))
        if not root.is_dir():
            return []
        return sorted(
            (str(p), p.stat().st_size)
            for p in root.rglob("*")
            if p.is_file() and not hidden(p.relative_to(root).as_posix())
        )
    return spark_list_files(spark, path, hidden)


def spark_list_files(spark: SparkSession, path: str, hidden=hidden_part) -> list[tuple[str, int]]:
    """Listing through Spark's ``binaryFile`` source: works over Connect and on any scheme Spark reads.

    Only ``path`` and ``length`` are selected, so no file content is read; one row per file
    comes back (a listing, bounded by the number of files, not by their size).
    """
    from pyspark.errors import AnalysisException

    try:
        rows = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .load(path)
            .select("path", "length")
            .collect()
        )
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            return []
        raise
    root = path.rstrip("/").split("://", 1)[-1].lstrip("/")  # Spark may qualify the scheme (file:/x)
    out = []
    for r in rows:
        full = r["path"]
        bare = full.split(":", 1)[-1].lstrip("/") if ":" in full else full.lstrip("/")
        relative = bare[len(root) :].lstrip("/") if bare.startswith(root) else full.rsplit("/", 1)[-1]
        if not hidden(relative):
            out.append((full, int(r["length"])))
    return sorted(out)


def walk(path: str) -> list[str]:
    """Relative paths of every file under ``path``, markers (``_SUCCESS``) and hidden files included,
    sorted; [] when it does not exist. A listing only (Python's file API, or one pyarrow.fs LIST on
    object stores): no Spark job, cheap enough for a check every micro-batch."""
    if is_local(path):
        root = Path(local_path(path))
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    from pyarrow import fs as pafs

    fs, key = _arrow_fs(path)
    infos = fs.get_file_info(pafs.FileSelector(key, recursive=True, allow_not_found=True))
    key = key.rstrip("/")
    return sorted(i.path[len(key) :].lstrip("/") for i in infos if i.type == pafs.FileType.File)


def exists(path: str) -> bool:
    """Whether a file exists (local paths with Python, others with pyarrow.fs)."""
    if is_local(path):
        return os.path.isfile(local_path(path))
    from pyarrow import fs as pafs

    fs, key = _arrow_fs(path)
    return fs.get_file_info(key).type == pafs.FileType.File


def read_bytes(spark: SparkSession, path: str, size: int, head: int, tail: int) -> tuple[bytes, bytes]:
    """(first ``head`` bytes, last ``tail`` bytes) of one file.

    Local files are read with a seek; others through ``binaryFile``, where the executor reads
    the file and only these bytes cross to the driver.
    """
    n_head, tail_from = min(head, size), max(0, size - tail)
    if is_local(path):
        with open(local_path(path), "rb") as fh:
            first = fh.read(n_head)
            fh.seek(tail_from)
            return first, fh.read()
    return spark_read_bytes(spark, path, size, head, tail)


def spark_read_bytes(spark: SparkSession, path: str, size: int, head: int, tail: int) -> tuple[bytes, bytes]:
    n_head, tail_from = min(head, size), max(0, size - tail)
    content = F.col("content")
    row = (
        spark.read.format("binaryFile")
        .load(path)
        .select(
            F.substring(content, 1, max(n_head, 1)).alias("head"),
            F.substring(content, tail_from + 1, max(size - tail_from, 1)).alias("tail"),
        )
        .first()
    )
    if row is None:
        raise FileNotFoundError(path)
    first = bytes(row["head"])[:n_head]
    last = bytes(row["tail"]) if size > tail_from else b""
    return first, last


def read_text(spark: SparkSession, path: str) -> str | None:
    """A small text file whole (a manifest), or None when it does not exist. Local paths with
    Python; others through Spark's text source (``wholetext``: one row, the file)."""
    if is_local(path):
        local = local_path(path)
        if not os.path.isfile(local):
            return None
        with open(local, encoding="utf-8") as fh:
            return fh.read()
    from pyspark.errors import AnalysisException

    try:
        row = spark.read.option("wholetext", True).text(path).first()
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            return None
        raise
    return None if row is None else row[0]


def _arrow_fs(path: str):
    from pyarrow import fs as pafs

    try:
        return pafs.FileSystem.from_uri(path)
    except Exception as exc:  # pyarrow names what it lacks (scheme, credentials, libhdfs)
        raise OSError(
            f"cannot write {path!r}: pyarrow.fs does not reach this scheme here ({exc}); "
            "use a local or mounted path (e.g. /Volumes/<catalog>/<schema>/<volume>/...)"
        ) from exc


def write_text(path: str, text: str, encoding: str = "utf-8") -> None:
    """Write a text file atomically where the filesystem allows (readers never see half a file)."""
    write_bytes(path, text.encode(encoding))


def write_bytes(path: str, data: bytes) -> None:
    """Write a file atomically where the filesystem allows (readers never see half a file):
    a failed write (a full disk) leaves the file as it was and no temporary file behind."""
    fault = faults.before_write(path)  # a test hook: None unless CUSTSEG_FAULT is set
    if is_local(path):
        local = local_path(path)
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        tmp = f"{local}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as fh:
                if fault == "disk-full":
                    fh.write(data[: len(data) // 2])
                    raise faults.disk_full_error(tmp)
                fh.write(data)
            os.replace(tmp, local)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        faults.after_write(path)
        return
    fs, key = _arrow_fs(path)
    with fs.open_output_stream(key) as out:  # object stores publish the object on close
        if fault == "disk-full":
            raise faults.disk_full_error(path)
        out.write(data)
    faults.after_write(path)


def move(src: str, dst: str) -> None:
    """Move a file (replacing ``dst``) or a folder (``dst`` must not exist) to ``dst``."""
    if is_local(src) and is_local(dst):
        os.makedirs(os.path.dirname(local_path(dst).rstrip("/")) or ".", exist_ok=True)
        os.replace(local_path(src), local_path(dst))
        return
    from pyarrow import fs as pafs

    fs, src_key = _arrow_fs(src)
    _, dst_key = _arrow_fs(dst)
    if fs.get_file_info(src_key).type != pafs.FileType.Directory:
        fs.move(src_key, dst_key)
        return
    # object stores have no folder rename: move file by file (a copy each), then drop the source;
    # a _SUCCESS marker goes last, so a reader never sees it before the files it vouches for
    files = [
        i.path for i in fs.get_file_info(pafs.FileSelector(src_key, recursive=True)) if i.type == pafs.FileType.File
    ]
    for path in sorted(files, key=lambda p: p.rsplit("/", 1)[-1] == "_SUCCESS"):
        fs.move(path, dst_key + path[len(src_key) :])
    fs.delete_dir(src_key)


def is_dir(path: str) -> bool:
    """Whether ``path`` is an existing folder (local paths with Python, others with pyarrow.fs)."""
    if is_local(path):
        return os.path.isdir(local_path(path))
    from pyarrow import fs as pafs

    fs, key = _arrow_fs(path)
    return fs.get_file_info(key).type == pafs.FileType.Directory


def delete_tree(path: str) -> None:
    """Delete a folder (or file) and everything under it; nothing when it does not exist."""
    if is_local(path):
        local = local_path(path)
        if os.path.isdir(local):
            shutil.rmtree(local)
        elif os.path.exists(local):
            os.remove(local)
        return
    from pyarrow import fs as pafs

    fs, key = _arrow_fs(path)
    info = fs.get_file_info(key)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(key)
    elif info.type == pafs.FileType.File:
        fs.delete_file(key)
