"""The landing zone: ``<landing>/<source>/<YYYY-MM-DD>/*``.

Listing goes through Spark's ``binaryFile`` source when the path has a scheme other than
``file`` (s3://, abfss://, gs:// ...), so the same code lists a laptop folder and a bucket,
in a classic session or over Spark Connect.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from custseg import fileio


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

    Files in, or under, a folder starting with ``_`` or ``.`` are left out (``_hidden``). Local
    folders are listed with Python, others through Spark's ``binaryFile`` source (``custseg.fileio``).
    """
    return fileio.list_files(spark, path, hidden=_hidden)


def has_success_marker(spark: SparkSession, path: str) -> bool:
    """Whether the batch folder holds ``_SUCCESS`` (the sender's mark of a complete delivery)."""
    return fileio.exists(f"{path.rstrip('/')}/{SUCCESS_MARKER}")


def read_bytes(spark: SparkSession, path: str, size: int, head: int, tail: int) -> tuple[bytes, bytes]:
    """(first ``head`` bytes, last ``tail`` bytes) of one file (``custseg.fileio``)."""
    return fileio.read_bytes(spark, path, size, head, tail)


def available_dates(landing: str, source: str) -> list[str]:
    """Batch dates present locally for a source (used by `custseg demo` and tests)."""
    root = Path(landing) / source
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and len(p.name) == 10)


def ensure_dir(path: str) -> None:
    if urlparse(path).scheme in ("", "file"):
        os.makedirs(path.removeprefix("file:"), exist_ok=True)
