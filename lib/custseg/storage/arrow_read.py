"""Read a Delta table into Arrow or pandas outside Spark, in a process that exits cleanly.

The one place in the project that reads Delta data without Spark (the demo summary, tests,
notebooks, benchmarks). ``deltalake`` still reads the log: the snapshot (optionally an older
version), its add actions and the partition values they carry, and the pruning of files by a
partition filter. The Parquet data is read by ``pyarrow.dataset`` through pyarrow's own
filesystem, never through deltalake's.

Why not ``DeltaTable.to_pandas`` / ``to_pyarrow_table``: their default filesystem calls back
from Arrow's I/O threads into delta-rs, and a process that read that way and then exits
dies with ``terminate called without an active exception`` (SIGABRT, exit 134) in about
one run in four (delta-rs issue 2184; measured figures in ``bench/results/exit_codes.md``).
Routed as below it exits 0 every time; ``tests/unit/test_arrow_read_exit.py`` guards that.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.dataset as pads
    from deltalake import DeltaTable

# deltalake's tuple filters: [(column, op, value), ...] (AND), or a list of those (OR of ANDs).
PartitionFilter = Sequence[tuple[str, str, Any]] | Sequence[Sequence[tuple[str, str, Any]]]


def read_table(
    path: str | os.PathLike,
    *,
    columns: Sequence[str] | None = None,
    partitions: PartitionFilter | None = None,
    version: int | None = None,
) -> pa.Table:
    """The table's rows (or those of ``version``) as one Arrow table.

    ``partitions`` takes deltalake's tuple filters on partition columns only, e.g.
    ``[("snapshot_date", "=", "2026-01-31")]`` or ``[("region", "in", ["north", "south"])]``;
    ``""`` matches a null partition value. ``columns`` selects and orders the columns
    (partition columns included). Same rows and schema as ``DeltaTable.to_pyarrow_table``.
    """
    cols = list(columns) if columns is not None else None
    return dataset(path, partitions=partitions, version=version).to_table(columns=cols)


def read_pandas(
    path: str | os.PathLike,
    *,
    columns: Sequence[str] | None = None,
    partitions: PartitionFilter | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """``read_table`` as a pandas DataFrame (what ``DeltaTable.to_pandas`` returns)."""
    return read_table(path, columns=columns, partitions=partitions, version=version).to_pandas()


def dataset(
    path: str | os.PathLike,
    *,
    partitions: PartitionFilter | None = None,
    version: int | None = None,
) -> pads.Dataset:
    """A lazy ``pyarrow.dataset`` over the snapshot's files (for scanners that stream batches)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = os.fspath(path)
    try:
        table = DeltaTable(uri, version=version)
    except TableNotFoundError as exc:
        raise FileNotFoundError(f"no Delta table at {uri}: {exc}") from exc
    _check_partition_filter(uri, table, partitions)
    # An explicit pyarrow filesystem keeps deltalake's Python-to-Rust file handler, the
    # source of the aborts at exit, out of the data path; deltalake still lists the
    # snapshot's files, prunes them by partition and attaches each file's partition values.
    return table.to_pyarrow_dataset(  # the project's only deltalake data scan (see module doc)
        filesystem=_filesystem(uri), file_pruning_predicate=_as_list(partitions)
    )


def _filesystem(uri: str) -> pafs.FileSystem:
    """A pyarrow filesystem rooted at the table folder (data file paths are relative to it)."""
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("", "file"):
        local = uri[len("file://") :] if uri.startswith("file://") else uri
        return pafs.SubTreeFileSystem(os.path.abspath(local), pafs.LocalFileSystem())
    fs, root = pafs.FileSystem.from_uri(uri)  # s3://, gs://, abfs://, hdfs://: credentials from the environment
    return pafs.SubTreeFileSystem(root, fs)


def _as_list(partitions: PartitionFilter | None) -> list | None:
    return None if partitions is None else list(partitions)


def _check_partition_filter(uri: str, table: DeltaTable, partitions: PartitionFilter | None) -> None:
    """Filters on data columns would only prune files by statistics (rows would leak): refuse them."""
    if not partitions:
        return
    flat = [f for group in partitions for f in (group if isinstance(group, list) else [group])]
    part_cols = set(table.metadata().partition_columns)
    for f in flat:
        if not (isinstance(f, tuple) and len(f) == 3):
            raise ValueError(f"partition filter {f!r} on table {uri}: expected a (column, op, value) tuple")
        if f[0] not in part_cols:
            raise ValueError(
                f"partition filter on {f[0]!r} for table {uri}: not a partition column "
                f"(partition columns: {sorted(part_cols) or 'none'}); filter rows after reading"
            )
