"""The landing zone: ``<landing>/<source>/<YYYY-MM-DD>/*``.

Listing goes through Hadoop's FileSystem API when the path has a scheme other than
``file`` (s3://, abfss://, dbfs:/ ...), so the same code lists a laptop folder and a bucket.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession


def batch_path(landing: str, source: str, batch_date: str) -> str:
    return f"{landing.rstrip('/')}/{source}/{batch_date}"


SUCCESS_MARKER = "_SUCCESS"


def _hidden(relative: str) -> bool:
    """A file or any folder on its way under the batch folder starts with ``_`` or ``.``:
    markers (``_SUCCESS``), checksums (``.crc``) and in-flight uploads (``_temporary/``,
    ``.staging/``), which Spark's readers skip too."""
    return any(part.startswith((".", "_")) for part in relative.replace("\\", "/").split("/") if part)


def list_files(spark: SparkSession, path: str) -> list[tuple[str, int]]:
    """(path, size) of the data files in a batch folder; [] when it does not exist.

    Files in, or under, a folder starting with ``_`` or ``.`` are left out (``_hidden``).
    """
    scheme = urlparse(path).scheme
    if scheme in ("", "file"):
        local = Path(path.removeprefix("file:"))
        if not local.is_dir():
            return []
        return sorted(
            (str(p), p.stat().st_size)
            for p in local.rglob("*")
            if p.is_file() and not _hidden(str(p.relative_to(local)))
        )
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # noqa: SLF001
    if not fs.exists(hpath):
        return []
    out = []
    root = fs.makeQualified(hpath).toString().rstrip("/") + "/"
    it = fs.listFiles(hpath, True)
    while it.hasNext():
        st = it.next()
        full = st.getPath().toString()
        if not _hidden(full.removeprefix(root)):
            out.append((full, st.getLen()))
    return sorted(out)


def has_success_marker(spark: SparkSession, path: str) -> bool:
    """Whether the batch folder holds ``_SUCCESS`` (the sender's mark of a complete delivery)."""
    marker = f"{path.rstrip('/')}/{SUCCESS_MARKER}"
    if urlparse(path).scheme in ("", "file"):
        return Path(marker.removeprefix("file:")).is_file()
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    hpath = jvm.org.apache.hadoop.fs.Path(marker)
    return bool(hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(hpath))  # noqa: SLF001


def read_bytes(spark: SparkSession, path: str, size: int, head: int, tail: int) -> tuple[bytes, bytes]:
    """(first ``head`` bytes, last ``tail`` bytes) of one file, without reading the rest.

    Local files are read directly; other schemes through Hadoop's FileSystem API (a seek
    and a bounded read on the JVM side, so only these bytes cross to the driver).
    """
    n_head, tail_from = min(head, size), max(0, size - tail)
    scheme = urlparse(path).scheme
    if scheme in ("", "file"):
        with open(path.removeprefix("file:"), "rb") as fh:
            first = fh.read(n_head)
            fh.seek(tail_from)
            return first, fh.read()
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # noqa: SLF001
    ioutils = jvm.org.apache.commons.io.IOUtils
    stream = fs.open(hpath)
    try:
        first = bytes(ioutils.toByteArray(stream, n_head)) if n_head else b""
        stream.seek(tail_from)
        last = bytes(ioutils.toByteArray(stream, size - tail_from)) if size > tail_from else b""
    finally:
        stream.close()
    return first, last


def available_dates(landing: str, source: str) -> list[str]:
    """Batch dates present locally for a source (used by `custseg demo` and tests)."""
    root = Path(landing) / source
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and len(p.name) == 10)


def ensure_dir(path: str) -> None:
    if urlparse(path).scheme in ("", "file"):
        os.makedirs(path.removeprefix("file:"), exist_ok=True)
