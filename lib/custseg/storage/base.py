"""The Tables facade: one API over Delta tables, whichever engine writes them.

Jobs name tables ``layer.table`` and never see paths, engines or Delta options.
The facade owns everything both engines must agree on, so the contract holds
whichever engine runs: name validation, partitioning rules, schema enforcement and
evolution (columns aligned by name), and the check that an overwrite with ``where``
only writes rows of the partitions it replaces. Engines only move data and commit.
"""

from __future__ import annotations

import abc
import datetime as dt
import decimal
import errno
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg import faults

if TYPE_CHECKING:
    from custseg.config import Config

log = logging.getLogger(__name__)

ENGINES = ("auto", "delta-rs", "spark-delta")
LAYERS = ("bronze", "silver", "gold", "meta")  # where tables live (meta: bookkeeping tables)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# Put into the error a `where` guard raises inside Spark, so the facade can tell
# "a row does not belong to the replaced partitions" from any other job failure.
WHERE_GUARD_MARKER = "custseg-storage-where-mismatch"


class StorageError(Exception):
    """A table operation that cannot be done; the message names the table."""


class SchemaMismatchError(StorageError):
    """The DataFrame's columns or types do not fit the table."""


class CommitConflictError(StorageError):
    """Another writer committed first in a way this write cannot be reconciled with."""


class DiskFullError(StorageError):
    """A write ran out of space (ENOSPC) before its commit: the table is unchanged."""


@dataclass(frozen=True)
class StorageSettings:
    """Where tables live and how they are written (``storage.*`` in conf/)."""

    root: str
    engine: str = "auto"
    schema_evolution: bool = False
    catalog: str = ""
    schema_prefix: str = ""
    target_file_bytes: int = 128 * 1024 * 1024
    optimize_write: bool = True
    # Files no commit refers to (a write in flight, or one that died before its commit) are
    # vacuumed only once older than this, whatever retention a vacuum is asked for.
    orphan_retention_hours: int = 168

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise StorageError(f"storage engine must be one of {', '.join(ENGINES)}; got {self.engine!r}")
        if not isinstance(self.orphan_retention_hours, int) or self.orphan_retention_hours < 1:
            raise StorageError(
                f"storage.orphan_retention_hours must be a whole number of hours >= 1 (a write in flight "
                f"must outlive it); got {self.orphan_retention_hours!r}"
            )

    @classmethod
    def from_config(cls, conf: Config) -> StorageSettings:
        """Settings from ``paths.tables`` and ``storage.*`` of a loaded config."""
        return cls(
            root=str(conf.get_path("paths.tables")),
            engine=str(conf.get_path("storage.engine", "auto")),
            schema_evolution=bool(conf.get_path("storage.schema_evolution", False)),
            catalog=str(conf.get_path("storage.catalog", "") or ""),
            schema_prefix=str(conf.get_path("storage.schema_prefix", "") or ""),
            target_file_bytes=int(conf.get_path("storage.target_file_bytes", cls.target_file_bytes)),
            optimize_write=bool(conf.get_path("storage.optimize_write", True)),
            orphan_retention_hours=int(conf.get_path("storage.orphan_retention_hours", cls.orphan_retention_hours)),
        )


@dataclass(frozen=True)
class WriteId:
    """Delta's idempotent-write identifiers (``txnAppId`` / ``txnVersion``).

    A table remembers the highest ``version`` committed per ``app_id``; a write carrying an
    ``app_id`` whose version is already there (or a lower one) commits nothing, so a retried
    task (Databricks ``max_retries``, an orchestrator's rerun of the same run) never appends
    twice. ``for_run`` derives the app id from job, run date and table, and takes the run's
    number, which must stay the same across retries of one run and grow between runs.
    """

    app_id: str
    version: int

    def __post_init__(self) -> None:
        if not self.app_id or not isinstance(self.version, int) or self.version < 0:
            raise StorageError(f"write id needs an app id and a version >= 0, got {self.app_id!r}, {self.version!r}")

    @classmethod
    def for_run(cls, job: str, run_date: dt.date | str, table: str, run: int) -> WriteId:
        return cls(f"custseg/{job}/{run_date}/{table}", int(run))

    @property
    def tag(self) -> str:
        """How the commit that carried it is recognised in the table history."""
        return f"{self.app_id}@{self.version}"


@dataclass(frozen=True)
class TableRef:
    """One table as the engines see it: its name, folder and SQL identifier."""

    name: str
    layer: str
    table: str
    path: str
    identifier: str  # `catalog`.`schema`.`table` in catalog mode, else delta.`<path>`
    in_catalog: bool


@dataclass(frozen=True)
class WriteRequest:
    """A write planned and validated by the facade, for an engine to carry out."""

    ref: TableRef
    df: DataFrame  # columns aligned with `schema`, where-guard applied
    mode: str  # "append" | "overwrite"
    partition_by: list[str]
    schema: T.StructType  # the table schema after this write (all nullable)
    create: bool  # the table did not exist when the write was planned
    add_columns: list[T.StructField] = field(default_factory=list)  # schema evolution
    where: dict[str, list[str | None]] | None = None  # partition values as Delta strings
    predicate: str | None = None  # `where` as a Spark SQL predicate
    txn: WriteId | None = None  # skip the write if this id already committed
    # Table properties the table must have before this write's files are described (set in
    # the creating commit, or by a commit of their own on an older table that lacks them).
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def evolves(self) -> bool:
        return bool(self.add_columns)


class Engine(abc.ABC):
    """What an engine must do; the facade has already validated the request."""

    name: str = ""

    def __init__(self, spark: SparkSession, settings: StorageSettings):
        self.spark = spark
        self.settings = settings

    @abc.abstractmethod
    def exists(self, ref: TableRef) -> bool: ...

    @abc.abstractmethod
    def schema(self, ref: TableRef) -> T.StructType: ...

    @abc.abstractmethod
    def partition_columns(self, ref: TableRef) -> list[str]: ...

    @abc.abstractmethod
    def read(self, ref: TableRef, version: int | None) -> DataFrame: ...

    @abc.abstractmethod
    def write(self, req: WriteRequest) -> int: ...

    @abc.abstractmethod
    def history(self, ref: TableRef) -> list[dict]: ...

    @abc.abstractmethod
    def version(self, ref: TableRef) -> int: ...

    @abc.abstractmethod
    def vacuum(self, ref: TableRef, retention_hours: int, orphan_hours: int) -> None:
        """Delete files that commits removed more than ``retention_hours`` ago, and files no
        commit refers to whose modification time is more than ``orphan_hours`` ago
        (``orphan_hours >= retention_hours``)."""

    @abc.abstractmethod
    def optimize(self, ref: TableRef) -> dict: ...


# --- helpers shared by the engines ----------------------------------------------------


def quote_ident(name: str) -> str:
    """A column or table name as a Spark SQL identifier (dots and backticks survive)."""
    return "`" + name.replace("`", "``") + "`"


def col(name: str) -> Column:
    """``F.col`` that takes the name literally (``a.b`` is a column, not a struct field)."""
    return F.col(quote_ident(name))


def as_nullable(data_type: T.DataType) -> T.DataType:
    """The type with every field and element nullable, as Delta stores DataFrame writes."""
    if isinstance(data_type, T.StructType):
        return T.StructType(
            [T.StructField(f.name, as_nullable(f.dataType), True, f.metadata) for f in data_type.fields]
        )
    if isinstance(data_type, T.ArrayType):
        return T.ArrayType(as_nullable(data_type.elementType), True)
    if isinstance(data_type, T.MapType):
        return T.MapType(as_nullable(data_type.keyType), as_nullable(data_type.valueType), True)
    return data_type


def same_type(a: T.DataType, b: T.DataType) -> bool:
    """Equal types, ignoring nullability and field metadata."""
    return _shape(a) == _shape(b)


def _shape(data_type: T.DataType) -> Any:
    if isinstance(data_type, T.StructType):
        return ("struct", tuple((f.name, _shape(f.dataType)) for f in data_type.fields))
    if isinstance(data_type, T.ArrayType):
        return ("array", _shape(data_type.elementType))
    if isinstance(data_type, T.MapType):
        return ("map", _shape(data_type.keyType), _shape(data_type.valueType))
    return data_type.simpleString()


def partition_string(value: Any) -> str | None:
    """A partition value as the Delta log writes it (``partitionValues`` are strings)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float, decimal.Decimal, str)):
        return str(value)
    raise StorageError(f"unsupported partition value {value!r} ({type(value).__name__})")


def sql_string(value: str) -> str:
    """A Spark SQL string literal (backslash is the escape character by default)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def where_predicate(where: Mapping[str, list[str | None]], schema: T.StructType) -> str:
    """``where`` as a SQL predicate with typed literals, e.g. for Delta's ``replaceWhere``."""
    types = {f.name: f.dataType for f in schema.fields}
    terms = []
    for key, values in where.items():
        name = quote_ident(key)
        type_sql = types[key].simpleString()
        literals = [f"CAST({sql_string(v)} AS {type_sql})" for v in values if v is not None]
        parts = []
        if literals:
            parts.append(f"{name} = {literals[0]}" if len(literals) == 1 else f"{name} IN ({', '.join(literals)})")
        if any(v is None for v in values):
            parts.append(f"{name} IS NULL")
        terms.append(parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")")
    return " AND ".join(terms)


STATS_COLUMNS_KEY = "delta.dataSkippingStatsColumns"
NUM_INDEXED_KEY = "delta.dataSkippingNumIndexedCols"
# Delta's default number of leading leaf columns with statistics.
DEFAULT_INDEXED_COLUMNS = 32


# Types Delta accepts in delta.dataSkippingStatsColumns (it refuses arrays, maps, ... and booleans:
# DELTA_COLUMN_DATA_SKIPPING_NOT_SUPPORTED_TYPE, e.g. silver.customers' opt_in_email on Delta 4.4).
_STATS_TYPES = (T.NumericType, T.StringType, T.DateType, T.TimestampType, T.TimestampNTZType)


def stats_properties(
    layer: str, schema: T.StructType, partition_by: Sequence[str] = (), existing: Collection[str] | None = None
) -> dict[str, str]:
    """Table properties that keep identifiers out of the Delta log's per-file statistics.

    Delta writes each file's min / max of its leading columns into the log, and the log keeps
    removed files' entries for ``delta.logRetentionDuration`` (30 days), beyond VACUUM's reach:
    an erased person's raw id would stay there. Bronze (raw PII, quarantined raw records)
    collects no column statistics at all: it is read by ``_batch_date`` partition. Other
    layers collect none on identifier columns (``custseg.erasure``: keys, hashes, raw ids):
    HMAC keys and hashes are uniform, so their min / max never skip a file anyway.

    ``existing``: the columns of a table made before the property, which gets it set before
    a write that may add columns: Delta refuses a statistics column the table does not have
    yet, so only these are named (the added ones get no statistics, never an identifier).
    """
    if layer == "bronze":
        return {NUM_INDEXED_KEY: "0"}
    from custseg.erasure import HASHED_COLUMNS, RAW_COLUMNS, RAW_TEXT_COLUMNS

    identifiers = {*HASHED_COLUMNS, *RAW_COLUMNS, *RAW_TEXT_COLUMNS}
    names = schema.fieldNames()
    if not identifiers.intersection(names):
        return {}
    kept = [
        f.name
        for f in schema.fields
        if f.name not in identifiers
        and f.name not in partition_by
        and isinstance(f.dataType, _STATS_TYPES)
        and (existing is None or f.name in existing)
    ][:DEFAULT_INDEXED_COLUMNS]
    if not kept:
        return {NUM_INDEXED_KEY: "0"}
    return {STATS_COLUMNS_KEY: ",".join(n if _IDENT.fullmatch(n) else quote_ident(n) for n in kept)}


def missing_properties(config: Mapping[str, str | None], wanted: Mapping[str, str]) -> dict[str, str]:
    """The statistics properties to set on a table whose configuration is ``config``: none
    if it already chose which columns get statistics (ours or its owner's choice)."""
    if not wanted or STATS_COLUMNS_KEY in config or NUM_INDEXED_KEY in config:
        return {}
    return dict(wanted)


def commit_engine(commit: Mapping[str, Any]) -> str:
    """Which engine made a commit, from its commitInfo (``DeltaTable.history()`` of deltalake).

    JVM Delta records ``engineInfo`` "Apache-Spark/x Delta-Lake/y"; delta-rs "delta-rs:py-z".
    """
    info = str(commit.get("engineInfo") or commit.get("clientVersion") or "")
    if "Delta-Lake" in info:
        return "spark-delta"
    if "delta-rs" in info:
        return "delta-rs"
    return info or "unknown"


def is_local_path(path: str) -> bool:
    return not _URI_SCHEME.match(path) or path.startswith("file:")


# --- the facade -------------------------------------------------------------------------


class Tables:
    """Read and write ``layer.table`` Delta tables through the configured engine."""

    def __init__(self, spark: SparkSession, settings: StorageSettings | Config):
        if not isinstance(settings, StorageSettings):
            settings = StorageSettings.from_config(settings)
        root = settings.root
        if is_local_path(root):
            # Spark, deltalake and the rename into place must agree on one absolute path.
            root = os.path.abspath(root.removeprefix("file://").removeprefix("file:"))
        self.settings = StorageSettings(
            root=root.rstrip("/") or "/",
            engine=settings.engine,
            schema_evolution=settings.schema_evolution,
            catalog=settings.catalog,
            schema_prefix=settings.schema_prefix,
            target_file_bytes=settings.target_file_bytes,
            optimize_write=settings.optimize_write,
            orphan_retention_hours=settings.orphan_retention_hours,
        )
        self.spark = spark
        self._engine = _make_engine(spark, self.settings)
        self.engine_name: str = self._engine.name
        log.info("tables under %s with engine %s", self.settings.root, self.engine_name)

    # names

    def path(self, name: str) -> str:
        """Folder of the table: ``<root>/<layer>/<table>``."""
        layer, table = _split_name(name)
        return f"{self.settings.root}/{layer}/{table}"

    def identifier(self, name: str) -> str:
        """The table as a Spark SQL identifier (catalog name or ``delta.`path```)."""
        return self._ref(name).identifier

    def _ref(self, name: str) -> TableRef:
        layer, table = _split_name(name)
        path = self.path(name)
        s = self.settings
        if s.catalog:
            ident = ".".join(quote_ident(p) for p in (s.catalog, f"{s.schema_prefix}{layer}", table))
            return TableRef(name, layer, table, path, ident, True)
        return TableRef(name, layer, table, path, f"delta.{quote_ident(path)}", False)

    # reads

    def exists(self, name: str) -> bool:
        return self._engine.exists(self._ref(name))

    def read(self, name: str, version: int | None = None) -> DataFrame:
        """The table (at ``version`` if given) as a DataFrame with the table's schema."""
        ref = self._require(name)
        if version is not None and (not isinstance(version, int) or version < 0):
            raise StorageError(f"table {name}: version must be a non-negative integer, got {version!r}")
        return self._engine.read(ref, version)

    def schema(self, name: str) -> T.StructType:
        return self._engine.schema(self._require(name))

    def partition_columns(self, name: str) -> list[str]:
        return self._engine.partition_columns(self._require(name))

    def history(self, name: str) -> list[dict]:
        """Commits newest first: ``version``, ``timestamp`` (UTC), ``operation``, ``parameters``, ``metrics``."""
        return self._engine.history(self._require(name))

    def version(self, name: str) -> int:
        return self._engine.version(self._require(name))

    def vacuum(self, name: str, retention_hours: int = 168) -> None:
        """Delete the files no version within ``retention_hours`` needs, and orphans of failed writes.

        Two clocks, so that a short retention (``forget`` with ``erasure.retention_hours=0``)
        erases at once without touching a concurrent writer's files:

        - a file a commit removed goes once that commit is older than ``retention_hours``
          (time travel to any version inside the retention keeps working);
        - a file no commit refers to (a write still in flight, or one that died before its
          commit) goes only once its modification time is older than
          ``max(retention_hours, storage.orphan_retention_hours)`` (default 7 days), whatever
          retention was asked for: its writer may still be about to commit it.
        """
        if retention_hours < 0:
            raise StorageError(f"table {name}: retention_hours must be >= 0, got {retention_hours}")
        if retention_hours < 168:
            log.warning(
                "vacuum %s with retention %sh (< 7 days): readers of versions older than that lose "
                "their files (files of writes not yet committed are kept %sh)",
                name,
                retention_hours,
                max(retention_hours, self.settings.orphan_retention_hours),
            )
        orphan_hours = max(retention_hours, self.settings.orphan_retention_hours)
        self._engine.vacuum(self._require(name), retention_hours, orphan_hours)

    def optimize(self, name: str) -> dict:
        """Compact small files into larger ones (bin-packing per partition; a small table
        becomes one file). A new version with the same rows; older versions stay readable
        until vacuumed. Returns ``{"files_removed": n, "files_added": m}``."""
        result = self._engine.optimize(self._require(name))
        log.info("optimize %s: %s", name, result)
        return result

    def delete_rows(self, name: str, keep: Callable[[DataFrame], DataFrame]) -> dict[str, Any]:
        """Delete the rows of ``name`` that ``keep`` drops; the same on both engines.

        ``keep(df)`` returns the rows of ``df`` to keep (a filter or an anti-join, same
        columns): a join against a small lookup frame keeps the values to delete out of the
        plan's literals. Copy-on-write, like Delta's DELETE: only the partitions that hold a
        deleted row are rewritten, by an overwrite ``where`` those partitions (the whole table
        when it is not partitioned), so the commit's predicate names partition values only,
        never the deleted values. Nothing matches: nothing is committed.

        Returns ``{"rows": deleted, "version": the new version or None}``. The removed rows
        stay in the files of older versions until ``vacuum`` passes their retention.
        """
        ref = self._require(name)
        current = self._engine.read(ref, self._engine.version(ref))
        parts = self._engine.partition_columns(ref)
        kept = keep(current)
        if list(kept.columns) != list(current.columns):
            raise StorageError(f"table {name}: delete_rows' keep must return the table's columns")
        if not parts:
            deleted = current.count() - kept.count()
            if deleted <= 0:
                return {"rows": 0, "version": None}
            return {"rows": deleted, "version": self.overwrite(kept, name)}
        # Rows per partition before and after: bounded by the number of partitions, not rows.
        keys = [col(p) for p in parts]
        before = current.groupBy(*keys).agg(F.count(F.lit(1)).alias("_before"))
        after = kept.groupBy(*keys).agg(F.count(F.lit(1)).alias("_after"))
        touched = (
            before.join(after, on=parts, how="left")
            .where(F.col("_before") > F.coalesce(F.col("_after"), F.lit(0)))
            .select(*keys, (F.col("_before") - F.coalesce(F.col("_after"), F.lit(0))).alias("_deleted"))
            .collect()
        )
        if not touched:
            return {"rows": 0, "version": None}
        deleted = sum(int(r["_deleted"]) for r in touched)
        # One overwrite per distinct value of the first partition column, each replacing exactly
        # the touched partitions under it (a `where` with lists is a cross product of values).
        version = None
        groups: dict[Any, list[Any]] = {}
        for r in touched:
            groups.setdefault(r[parts[0]], []).append(r)
        if len(parts) == 1:
            where = {parts[0]: [r[parts[0]] for r in touched]}
            version = self._overwrite_kept(kept, name, where)
        else:
            for rows in groups.values():
                where = {p: sorted({r[p] for r in rows}, key=lambda v: (v is None, str(v))) for p in parts}
                version = self._overwrite_kept(kept, name, where)
        log.info("deleted %d rows from %s (%d partitions rewritten)", deleted, name, len(touched))
        return {"rows": deleted, "version": version}

    def _overwrite_kept(self, kept: DataFrame, name: str, where: dict[str, list[Any]]) -> int:
        normalized = _normalize_where(name, where, list(where))
        predicate = where_predicate(normalized, self.schema(name))
        return self.overwrite(kept.where(F.expr(predicate)), name, where=where)

    def names(self) -> list[str]:
        """The ``layer.table`` names of the Delta tables that exist (path mode on a local
        or mounted root, or catalog mode)."""
        s = self.settings
        if s.catalog:
            found = []
            for layer in LAYERS:
                schema = f"{s.catalog}.{s.schema_prefix}{layer}"
                if not self.spark.catalog.databaseExists(schema):
                    continue
                # SHOW TABLES, not catalog.listTables: on Spark 4.2 with Delta's catalog the latter
                # fails to decode its Table rows (EXPRESSION_DECODING_FAILED) once Delta tables exist.
                rows = self.spark.sql(f"SHOW TABLES IN {quote_ident(s.catalog)}.{quote_ident(s.schema_prefix + layer)}")
                found += [f"{layer}.{r['tableName']}" for r in rows.collect() if not r["isTemporary"]]
            return sorted(n for n in found if self.exists(n))
        if not is_local_path(s.root):
            raise StorageError(
                f"cannot list the tables under {s.root} (not a local path): name them (maintenance.tables)"
            )
        return sorted(
            f"{p.parent.parent.name}.{p.parent.name}"
            for p in Path(s.root).glob("*/*/_delta_log")
            if _IDENT.fullmatch(p.parent.name) and _IDENT.fullmatch(p.parent.parent.name)
        )

    def _require(self, name: str) -> TableRef:
        ref = self._ref(name)
        if not self._engine.exists(ref):
            where = ref.identifier if ref.in_catalog else ref.path
            raise StorageError(f"table {name} does not exist (looked at {where})")
        return ref

    # writes

    def append(
        self, df: DataFrame, name: str, partition_by: list[str] | None = None, txn: WriteId | None = None
    ) -> int:
        """Add the rows of ``df``; creates the table on first write. Returns the version this
        write committed (with ``txn`` already committed: that earlier commit's version)."""
        return self._write(df, name, "append", partition_by, None, txn)

    def overwrite(
        self,
        df: DataFrame,
        name: str,
        partition_by: list[str] | None = None,
        where: Mapping[str, Any] | None = None,
        txn: WriteId | None = None,
    ) -> int:
        """Replace the table, or only the partitions matching ``where`` (values may be lists).

        Every row of ``df`` must fall in those partitions, as with Delta's ``replaceWhere``,
        so a job cannot silently write outside the slice it claims to replace.
        """
        return self._write(df, name, "overwrite", partition_by, where, txn)

    def _write(
        self,
        df: DataFrame,
        name: str,
        mode: str,
        partition_by: Sequence[str] | None,
        where: Mapping[str, Any] | None,
        txn: WriteId | None = None,
    ) -> int:
        ref = self._ref(name)
        fault = faults.before_write(name)  # a test hook: None unless CUSTSEG_FAULT is set
        if partition_by is not None and (
            isinstance(partition_by, str) or not all(isinstance(p, str) for p in partition_by)
        ):
            raise StorageError(f"table {name}: partition_by must be a list of column names, got {partition_by!r}")
        _check_writable_types(name, df.schema)
        exists = self._engine.exists(ref)
        if exists:
            table_schema = self._engine.schema(ref)
            parts = self._engine.partition_columns(ref)
            if partition_by is not None and list(partition_by) != parts:
                raise StorageError(
                    f"table {name} is partitioned by {parts}; cannot write it with partition_by={list(partition_by)}"
                )
            aligned, schema, new = _conform(df, table_schema, name, self.settings.schema_evolution)
        else:
            parts = list(partition_by or [])
            schema = as_nullable(df.schema)
            aligned, new = df, []
            _check_partitioning(name, parts, schema)
        where_values = predicate = None
        if where is not None:
            where_values = _normalize_where(name, where, parts)
            _check_where_types(name, where_values, schema)
            predicate = where_predicate(where_values, schema)
            # Fail the write (not filter) on a row outside the replaced partitions.
            guard = F.when(F.expr(predicate), F.lit(True)).otherwise(
                F.raise_error(F.lit(f"{WHERE_GUARD_MARKER}: a row of the data for {name} does not match {predicate}"))
            )
            aligned = aligned.filter(guard)
        if self.settings.optimize_write:
            # Optimized write (as Databricks' optimizeWrite): one shuffle by the partition
            # columns, whose small partitions adaptive execution merges up to its advisory
            # size, so a small table is one file per partition, not one per upstream task
            # (products at m scale: 396 rows had gone into 64 files).
            aligned = aligned.hint("rebalance", *parts)
        if fault == "disk-full":
            aligned = aligned.filter(faults.disk_full_rows())
        props = stats_properties(ref.layer, schema, parts, table_schema.fieldNames() if exists else None)
        req = WriteRequest(ref, aligned, mode, parts, schema, not exists, new, where_values, predicate, txn, props)
        try:
            version = self._engine.write(req)
        except StorageError:
            raise
        except Exception as exc:
            if WHERE_GUARD_MARKER in str(exc):
                raise StorageError(
                    f"table {name}: overwrite where {dict(where or {})} got rows outside those partitions "
                    f"(every row must satisfy {predicate}); nothing was written"
                ) from exc
            if _disk_full(exc):
                raise DiskFullError(
                    f"table {name}: no space left on the device while writing its data files; nothing was "
                    f"committed, the table is as it was (free space or raise the quota, then rerun the job): "
                    f"{_first_line(exc)}"
                ) from exc
            raise
        faults.after_write(name)
        return version


def _disk_full(exc: BaseException) -> bool:
    """Whether a failure is, or wraps, ENOSPC (Python's OSError, or Hadoop's IOException in a task)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    at = text.find("No space left on device")
    start = max(0, text.rfind("\n", 0, at) + 1) if at >= 0 else 0
    return text[start:].splitlines()[0][:300] if text[start:] else type(exc).__name__


def _split_name(name: str) -> tuple[str, str]:
    parts = name.split(".") if isinstance(name, str) else []
    if len(parts) != 2 or not all(_IDENT.fullmatch(p) for p in parts):
        raise StorageError(f"bad table name {name!r}: expected 'layer.table', two identifiers like 'silver.orders'")
    return parts[0], parts[1]


def _check_writable_types(name: str, schema: T.StructType) -> None:
    names = [f.name for f in schema.fields]
    dupes = sorted({n for n in names if [m.lower() for m in names].count(n.lower()) > 1})
    if dupes:
        raise SchemaMismatchError(f"table {name}: duplicate column names (case-insensitive): {dupes}")
    void = [f.name for f in schema.fields if isinstance(f.dataType, T.NullType)]
    if void:
        raise SchemaMismatchError(
            f"table {name}: columns {void} have no type (void, e.g. F.lit(None)); cast them to a type"
        )


def _check_partitioning(name: str, parts: list[str], schema: T.StructType) -> None:
    types = {f.name: f.dataType for f in schema.fields}
    missing = [p for p in parts if p not in types]
    if missing:
        raise StorageError(f"table {name}: partition columns {missing} are not columns of the data")
    if len(set(parts)) != len(parts):
        raise StorageError(f"table {name}: partition columns repeat: {parts}")
    if parts and len(parts) == len(types):
        raise StorageError(f"table {name}: cannot partition by every column {parts}")
    bad = [p for p in parts if isinstance(types[p], (T.StructType, T.ArrayType, T.MapType, T.BinaryType))]
    if bad:
        raise StorageError(f"table {name}: partition columns must be atomic types, not {bad}")


def _conform(
    df: DataFrame, table: T.StructType, name: str, evolve: bool
) -> tuple[DataFrame, T.StructType, list[T.StructField]]:
    """Align ``df`` to the table by column name; the new schema and the added columns.

    Like Delta without ``mergeSchema``, any difference is an error; with schema evolution
    new columns are added as nullable and table columns absent from ``df`` come back null.
    A type change is never allowed: it would need a rewrite, not an append.
    """
    incoming = {f.name: f for f in df.schema.fields}
    existing = {f.name: f for f in table.fields}
    lower = {n.lower(): n for n in existing}
    case_only = [f"{n} (table has {lower[n.lower()]})" for n in incoming if n not in existing and n.lower() in lower]
    changed = [
        f"{n}: table {existing[n].dataType.simpleString()}, data {incoming[n].dataType.simpleString()}"
        for n in incoming
        if n in existing and not same_type(existing[n].dataType, incoming[n].dataType)
    ]
    extra = [n for n in incoming if n not in existing and n.lower() not in lower]
    missing = [n for n in existing if n not in incoming]
    problems = []
    if case_only:
        problems.append(f"columns differing only in case: {case_only}")
    if changed:
        problems.append(f"type changes: {changed}")
    if not evolve and extra:
        problems.append(f"new columns {extra} (set storage.schema_evolution to add them)")
    if not evolve and missing:
        problems.append(f"missing columns {missing}")
    if problems:
        raise SchemaMismatchError(f"table {name}: data does not fit the table schema: " + "; ".join(problems))
    new = [T.StructField(n, as_nullable(incoming[n].dataType), True, incoming[n].metadata) for n in extra]
    schema = T.StructType(list(table.fields) + new)
    exprs = [
        col(f.name) if f.name in incoming else F.lit(None).cast(f.dataType).alias(f.name) for f in table.fields
    ] + [col(f.name) for f in new]
    if new or missing:
        log.info("table %s: schema evolves, adding %s, filling %s with nulls", name, extra, missing)
    return df.select(*exprs), schema, new


def _normalize_where(name: str, where: Mapping[str, Any], parts: list[str]) -> dict[str, list[str | None]]:
    if not isinstance(where, Mapping) or not where:
        raise StorageError(f"table {name}: where must be a non-empty mapping of partition column to value(s)")
    not_parts = [k for k in where if k not in parts]
    if not_parts:
        raise StorageError(f"table {name}: where keys {not_parts} are not partition columns (partitioned by {parts})")
    out: dict[str, list[str | None]] = {}
    for key, value in where.items():
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if not values:
            raise StorageError(f"table {name}: where {key!r} has an empty list of values")
        out[key] = [partition_string(v) for v in values]
    return out


_PARSERS: dict[type, Any] = {
    T.ByteType: int,
    T.ShortType: int,
    T.IntegerType: int,
    T.LongType: int,
    T.FloatType: float,
    T.DoubleType: float,
    T.DecimalType: decimal.Decimal,
    T.DateType: dt.date.fromisoformat,
    T.TimestampType: dt.datetime.fromisoformat,
    T.TimestampNTZType: dt.datetime.fromisoformat,
    T.BooleanType: lambda s: {"true": True, "false": False}[s.lower()],
}


def _check_where_types(name: str, where: dict[str, list[str | None]], schema: T.StructType) -> None:
    """Reject a value the partition column cannot hold before any Spark job runs."""
    types = {f.name: f.dataType for f in schema.fields}
    for key, values in where.items():
        parse = _PARSERS.get(type(types[key]))
        for value in values:
            if value is None or parse is None:
                continue
            try:
                parse(value)
            except (ValueError, KeyError, ArithmeticError) as exc:
                raise StorageError(
                    f"table {name}: where {key}={value!r} is not a valid {types[key].simpleString()} value"
                ) from exc


def _make_engine(spark: SparkSession, settings: StorageSettings) -> Engine:
    from custseg.session import has_jvm_delta

    jvm_delta = has_jvm_delta(spark)
    choice = settings.engine
    if choice == "auto":
        choice = "spark-delta" if jvm_delta else "delta-rs"
    if choice == "spark-delta":
        if not jvm_delta:
            raise StorageError(
                "storage engine 'spark-delta' needs JVM Delta Lake, but the Delta jars are not on the "
                "class path of this Spark session (add io.delta:delta-spark via spark.jars.packages and "
                "set spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension), or use engine "
                "'delta-rs' / 'auto'"
            )
        from custseg.storage.spark_delta import SparkDeltaEngine

        return SparkDeltaEngine(spark, settings)
    if settings.catalog:
        raise StorageError(
            f"catalog mode (storage.catalog={settings.catalog!r}) needs the spark-delta engine; "
            "the delta-rs engine only writes tables by path"
        )
    from custseg.storage.delta_rs import DeltaRsEngine

    return DeltaRsEngine(spark, settings)
