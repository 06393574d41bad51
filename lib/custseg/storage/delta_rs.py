"""Engine "delta-rs": Spark writes the Parquet files, the ``deltalake`` package commits them.

For machines without the JVM Delta jars. A write goes in three steps:

1. Spark's Parquet writer writes the batch, distributed, into its own staging folder
   ``<table>/_staging/<uuid>/`` (two writers never share a ``_temporary``);
2. the driver reads the new files' Parquet footers (bounded: footers only) for the
   add actions' stats and moves the files into place with a POSIX rename;
3. the driver commits them to the Delta log with ``deltalake``.

A failure before step 3 leaves files no version refers to: reads never see them
(reads take the file list from the log) and ``vacuum`` deletes them once they are older
than ``storage.orphan_retention_hours`` (a writer still between steps 2 and 3 keeps them). They are not
deleted on a failed commit because a commit error does not always mean the commit
did not land (a post-commit hook may fail after the log entry was written).

Valid on a local or shared POSIX filesystem (rename is atomic, put-if-absent works).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import logging
import math
import os
import random
import re
import shutil
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import deltalake
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Field, Schema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, Transaction, create_table_with_add_actions
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from custseg.storage.base import (
    NUM_INDEXED_KEY,
    STATS_COLUMNS_KEY,
    CommitConflictError,
    Engine,
    StorageError,
    StorageSettings,
    TableRef,
    WriteRequest,
    col,
    is_local_path,
    missing_properties,
    same_type,
)

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"
# Delta's default for delta.dataSkippingNumIndexedCols: stats for the first 32 leaf columns.
STATS_COLUMNS = 32
# Delta truncates string stats to a prefix; a prefix is a valid minimum but not a maximum.
STATS_STRING_PREFIX = 32
COMMIT_ATTEMPTS = 20
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
# Reader features whose semantics this engine's Parquet read path would silently ignore.
UNSUPPORTED_READER_FEATURES = {"deletionVectors", "columnMapping"}
# Writer features that constrain the data itself: Spark's Parquet writer cannot enforce
# them, so committing its files would break the table's promises.
UNSUPPORTED_WRITER_FEATURES = {
    "invariants",
    "checkConstraints",
    "generatedColumns",
    "identityColumns",
    "changeDataFeed",
    "columnMapping",
    "deletionVectors",
    "rowTracking",
}
_ESCAPED = re.compile(r"%([0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class DataFile:
    """One new data file, relative to the table folder, with what its add action needs."""

    rel_path: str
    partition_values: dict[str, str | None]
    size: int
    modification_time: int  # ms since epoch
    num_records: int
    stats: str  # Delta stats JSON

    def add_action(self) -> AddAction:
        # deltalake URI-encodes the path itself: pass the file's real relative path.
        return AddAction(
            self.rel_path,
            self.size,
            self.partition_values,
            self.modification_time,
            True,
            self.stats,
        )


class DeltaRsEngine(Engine):
    """Delta tables by path on a POSIX filesystem, committed with delta-rs."""

    name = "delta-rs"

    def __init__(self, spark: SparkSession, settings: StorageSettings):
        super().__init__(spark, settings)
        if not is_local_path(settings.root):
            raise StorageError(
                f"engine delta-rs commits files by POSIX rename and needs a local or mounted path; "
                f"got root {settings.root!r} (use engine spark-delta for object stores)"
            )
        # Spark 4 still writes INT96 timestamps by default; Delta wants INT64 micros. The
        # write option below is enough on Spark 4.2; Spark 4.0 reads it only from the session.
        key = "spark.sql.parquet.outputTimestampType"
        if spark.conf.get(key, "INT96") != "TIMESTAMP_MICROS":
            log.info("delta-rs engine: setting %s=TIMESTAMP_MICROS for this session", key)
            spark.conf.set(key, "TIMESTAMP_MICROS")

    # --- metadata -----------------------------------------------------------------------

    def exists(self, ref: TableRef) -> bool:
        return DeltaTable.is_deltatable(ref.path)

    def _load(self, ref: TableRef, version: int | None = None) -> DeltaTable:
        try:
            return DeltaTable(ref.path, version=version)
        except TableNotFoundError as exc:
            raise StorageError(f"table {ref.name} does not exist at {ref.path}") from exc
        except DeltaError as exc:
            at = f" at version {version}" if version is not None else ""
            raise StorageError(f"table {ref.name}: cannot load{at}: {exc}") from exc

    def schema(self, ref: TableRef) -> T.StructType:
        return spark_schema(self._load(ref).schema())

    def partition_columns(self, ref: TableRef) -> list[str]:
        return list(self._load(ref).metadata().partition_columns)

    def version(self, ref: TableRef) -> int:
        return self._load(ref).version()

    def history(self, ref: TableRef) -> list[dict]:
        out = []
        for commit in self._load(ref).history():
            params = {k: _as_text(v) for k, v in (commit.get("operationParameters") or {}).items()}
            ours = commit.get("custseg") or {}
            # CREATE TABLE records mode ErrorIfExists; say whether the first write appended
            # or overwrote, as Delta Spark's WRITE does, and keep the replaced partitions.
            params.update({k: _as_text(v) for k, v in ours.items() if k in ("mode", "predicate")})
            metrics = {k: _as_text(v) for k, v in (commit.get("operationMetrics") or {}).items()}
            metrics.update({k: _as_text(v) for k, v in ours.items() if k.startswith("num")})
            out.append(
                {
                    "version": commit["version"],
                    "timestamp": dt.datetime.fromtimestamp(commit["timestamp"] / 1000, tz=dt.timezone.utc),
                    "operation": commit.get("operation", ""),
                    "parameters": params,
                    "metrics": metrics,
                }
            )
        return out

    def vacuum(self, ref: TableRef, retention_hours: int, orphan_hours: int) -> None:
        table = self._load(ref)
        deleted = 0
        if orphan_hours > retention_hours:
            # Lite: only the files commits removed before the retention, found from the log.
            deleted += len(
                table.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False)
            )
        # Full also lists the folder for files the log never mentioned (orphans of failed or
        # in-flight writes); deltalake keeps those whose modification time is within the
        # retention given, so a writer about to commit keeps its files.
        deleted += len(
            table.vacuum(retention_hours=orphan_hours, dry_run=False, enforce_retention_duration=False, full=True)
        )
        staged = _clean_staging(ref.path, orphan_hours)
        log.info(
            "vacuum %s: deleted %d files (retention %dh, unreferenced files %dh), %d staging folders",
            ref.name,
            deleted,
            retention_hours,
            orphan_hours,
            staged,
        )

    def optimize(self, ref: TableRef) -> dict:
        table = self._load(ref)
        _check_writable(ref, table)
        metrics = table.optimize.compact(
            target_size=self.settings.target_file_bytes,
            commit_properties=CommitProperties(max_commit_retries=0),
        )
        return {"files_removed": int(metrics["numFilesRemoved"]), "files_added": int(metrics["numFilesAdded"])}

    # --- read -----------------------------------------------------------------------------

    def read(self, ref: TableRef, version: int | None) -> DataFrame:
        table = self._load(ref, version)
        _check_readable(ref, table)
        schema = spark_schema(table.schema())
        files = data_file_paths(table, ref.path)
        log.info("read %s version %s: %d files", ref.name, table.version(), len(files))
        if not files:
            return self.spark.createDataFrame([], schema)
        # basePath turns the col=value folders back into partition columns, typed by the
        # schema; the select restores the table's column order (Spark puts them last).
        df = self.spark.read.schema(schema).option("basePath", ref.path).parquet(*files)
        return df.select(*[col(f.name) for f in schema.fields])

    # --- write ----------------------------------------------------------------------------

    def write(self, req: WriteRequest) -> int:
        ref = req.ref
        config = dict(req.properties)
        if not req.create:
            table = self._load(ref)
            _check_writable(ref, table)
            done = self._already_committed(ref, table, req)
            if done is not None:
                return done
            config = self._ensure_properties(ref, table, req.properties)
        staging = os.path.join(ref.path, STAGING_DIR, uuid.uuid4().hex)
        data_schema = T.StructType([f for f in req.schema.fields if f.name not in req.partition_by])
        _micros_timestamps(self.spark)
        try:
            writer = (
                req.df.write.mode("error")  # "errorifexists" is refused over Spark Connect
                .option("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
                .option("compression", "snappy")
            )
            if req.partition_by:
                writer = writer.partitionBy(*req.partition_by)
            writer.parquet(staging)
            files = _describe_files(staging, data_schema, req.partition_by, config)
            empty = [f for f in files if f.num_records == 0]
            for f in empty:  # Spark writes one empty file for an empty DataFrame
                os.remove(os.path.join(staging, f.rel_path))
            files = [f for f in files if f.num_records > 0]
            _move_into_place(staging, ref.path, files)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            _remove_if_empty(os.path.join(ref.path, STAGING_DIR))
        rows = sum(f.num_records for f in files)
        if not files and req.mode == "append" and not req.create and not req.evolves:
            current = self._load(ref).version()
            log.info("append %s: no rows, nothing committed (version stays %d)", ref.name, current)
            return current
        version = self._commit(req, files)
        log.info(
            "%s %s: %d rows in %d files committed as version %d%s",
            req.mode,
            ref.name,
            rows,
            len(files),
            version,
            f" (where {req.predicate})" if req.predicate else "",
        )
        return version

    def _ensure_properties(self, ref: TableRef, table: DeltaTable, wanted: dict[str, str]) -> dict[str, str]:
        """Set the statistics properties on a table created without them (one commit, once);
        returns the table's configuration, which this write's file statistics follow."""
        config = {k: v for k, v in (table.metadata().configuration or {}).items() if v is not None}
        todo = missing_properties(config, wanted)
        if todo:
            with contextlib.suppress(CommitFailedError):  # a concurrent writer set them first
                table.alter.set_table_properties(todo, commit_properties=CommitProperties(max_commit_retries=0))
            log.info("table %s: set %s", ref.name, todo)
            config = {k: v for k, v in (self._load(ref).metadata().configuration or {}).items() if v is not None}
        return config

    def _already_committed(self, ref: TableRef, table: DeltaTable, req: WriteRequest) -> int | None:
        """With ``req.txn`` committed before (same app id, same or later version): the version
        of that commit (the latest where it is out of reach), as JVM Delta skips such a write."""
        if req.txn is None:
            return None
        seen = table.transaction_version(req.txn.app_id)
        if seen is None or seen < req.txn.version:
            return None
        earlier = next(
            (c["version"] for c in table.history(100) if (c.get("custseg") or {}).get("txn") == req.txn.tag),
            table.version(),
        )
        log.info("%s %s: skipped, %s already committed as version %d", req.mode, ref.name, req.txn.tag, earlier)
        return earlier

    def _commit(self, req: WriteRequest, files: list[DataFile]) -> int:
        """Commit ``files`` and return the version made.

        Each attempt commits on a freshly loaded snapshot with deltalake's own retries off,
        so the version made is exactly snapshot + 1 and an overwrite's remove actions are
        derived from the latest snapshot; a lost race reloads and tries again.
        """
        ref = req.ref
        adds = [f.add_action() for f in files]
        meta = {
            "custseg": {
                "mode": req.mode.capitalize(),
                **({"txn": req.txn.tag} if req.txn else {}),
                **({"predicate": req.predicate} if req.predicate else {}),
                "numFiles": len(files),
                "numOutputRows": sum(f.num_records for f in files),
                "numOutputBytes": sum(f.size for f in files),
            }
        }
        target = delta_schema(req.schema)
        txns = [Transaction(req.txn.app_id, req.txn.version)] if req.txn else None
        for attempt in range(COMMIT_ATTEMPTS):
            if attempt:
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
            if not DeltaTable.is_deltatable(ref.path):
                try:
                    create_table_with_add_actions(
                        ref.path,
                        target,
                        adds,
                        mode="error",
                        partition_by=req.partition_by or None,
                        configuration=req.properties or None,
                        commit_properties=CommitProperties(
                            custom_metadata=meta, max_commit_retries=0, app_transactions=txns
                        ),
                    )
                    return 0
                except DeltaError as exc:  # CommitFailedError included
                    if "already exists" not in str(exc) and not isinstance(exc, CommitFailedError):
                        raise StorageError(f"table {ref.name}: create failed: {exc}") from exc
                    continue  # another writer created it first: write into theirs
            table = DeltaTable(ref.path)
            if list(table.metadata().partition_columns) != req.partition_by:
                raise CommitConflictError(
                    f"table {ref.name}: partitioned by {table.metadata().partition_columns} "
                    f"by a concurrent writer; this write used {req.partition_by}"
                )
            current = spark_schema(table.schema())
            evolves = not _same_fields(current, req.schema)
            if evolves:
                todo = _columns_to_add(current, req.schema)
                allowed = {f.name for f in req.add_columns}  # evolution the facade approved
                if todo is None or any(f.name not in allowed for f in todo):
                    raise CommitConflictError(
                        f"table {ref.name}: schema changed while writing (now {current.simpleString()}, "
                        f"this write expects {req.schema.simpleString()}); nothing committed, retry the write"
                    )
                why = _no_single_commit(table, todo) if req.mode == "append" else None
                if why:
                    self._add_columns_first(ref, table, todo, why)
                    continue  # reload: the data goes on top of the new schema
            done = self._already_committed(ref, table, req)
            if done is not None:  # a concurrent attempt with the same id won: ours are orphans
                log.info("table %s: %d written files left for vacuum", ref.name, len(files))
                return done
            read_version = table.version()
            if evolves and req.mode == "append":
                # deltalake's append ignores a new schema: the metaData and the adds go in one
                # commit file of our own, put if absent, so readers see both or neither.
                if commit_json(
                    ref.path, table, read_version + 1, _append_actions(table, req, files, meta, read_version)
                ):
                    log.info("table %s: added columns %s in the same commit", ref.name, [f.name for f in todo])
                    return read_version + 1
                log.info("table %s: commit race lost (attempt %d), retrying", ref.name, attempt + 1)
                continue
            try:
                # An overwrite with a wider schema writes the metaData in its own commit.
                table.create_write_transaction(
                    adds,
                    req.mode,
                    delta_schema(req.schema) if evolves else table.schema(),
                    partition_by=req.partition_by or None,
                    partition_filters=_partition_filters(req.where),
                    commit_properties=CommitProperties(
                        custom_metadata=meta, max_commit_retries=0, app_transactions=txns
                    ),
                )
                return read_version + 1
            except CommitFailedError:
                log.info("table %s: commit race lost (attempt %d), retrying", ref.name, attempt + 1)
        raise CommitConflictError(
            f"table {ref.name}: gave up committing after {COMMIT_ATTEMPTS} attempts; other writers kept "
            f"committing first. {len(files)} written files are orphans until vacuum; retry the write"
        )

    def _add_columns_first(self, ref: TableRef, table: DeltaTable, todo: list[T.StructField], why: str) -> None:
        """Schema evolution in a commit of its own, where one commit with the data cannot be made."""
        log.warning(
            "table %s: adding columns %s in a commit before the data's (%s)", ref.name, [f.name for f in todo], why
        )
        with contextlib.suppress(CommitFailedError):
            table.alter.add_columns(
                [Field.from_json(f.json()) for f in todo],
                commit_properties=CommitProperties(max_commit_retries=0),
            )


# Writer features under which a commit of add actions and a wider schema needs nothing more.
_PLAIN_COMMIT_FEATURES = {"appendOnly", "timestampNtz", "vacuumProtocolCheck", "v2Checkpoint", "domainMetadata"}


def _no_single_commit(table: DeltaTable, new_columns: list[T.StructField]) -> str | None:
    """Why this table's protocol needs more than a plain commit file (None: it does not)."""
    protocol = table.protocol()
    features = set(protocol.writer_features or [])
    if protocol.min_writer_version not in (1, 2, 7) or features - _PLAIN_COMMIT_FEATURES:
        return f"writer version {protocol.min_writer_version}, features {sorted(features)}"
    types = json.dumps([f.jsonValue() for f in new_columns])
    needs = [t for t in ("timestamp_ntz", "variant") if f'"{t}"' in types and "timestampNtz" not in features]
    return f"new column types {needs} need a protocol upgrade" if needs else None


def _append_actions(
    table: DeltaTable, req: WriteRequest, files: list[DataFile], meta: dict[str, Any], read_version: int
) -> list[dict[str, Any]]:
    """commitInfo, metaData (the wider schema), txn and add actions of an evolving append."""
    now = int(time.time() * 1000)
    md = table.metadata()
    actions: list[dict[str, Any]] = [
        {
            "commitInfo": {
                "timestamp": now,
                "operation": "WRITE",
                "operationParameters": {"mode": "Append", "partitionBy": json.dumps(req.partition_by)},
                "readVersion": read_version,
                "isolationLevel": "Serializable",
                "isBlindAppend": False,
                "engineInfo": f"custseg delta-rs (deltalake {deltalake.__version__})",
                **meta,
            }
        },
        {
            "metaData": {
                "id": md.id,
                "name": md.name,
                "description": md.description,
                "format": {"provider": "parquet", "options": {}},
                "schemaString": delta_schema(req.schema).to_json(),
                "partitionColumns": list(md.partition_columns),
                "configuration": dict(md.configuration or {}),
                "createdTime": md.created_time,
            }
        },
    ]
    if req.txn:
        actions.append({"txn": {"appId": req.txn.app_id, "version": req.txn.version, "lastUpdated": now}})
    for f in files:
        add = {
            "path": urllib.parse.quote(f.rel_path, safe="/=:@!$&'()*+,;"),
            "partitionValues": f.partition_values,
            "size": f.size,
            "modificationTime": f.modification_time,
            "dataChange": True,
            "stats": f.stats,
        }
        actions.append({"add": add})
    return actions


def commit_json(table_path: str, table: DeltaTable, version: int, actions: list[dict[str, Any]]) -> bool:
    """Write ``_delta_log/<version>.json`` if no writer made that version first (False then).

    Put-if-absent by ``link(2)``, as delta-rs itself commits on a local filesystem: the file
    is written and synced under a hidden name, then linked to its final name, which fails if
    it exists. Readers ignore the hidden name, so a crash leaves no half-written version.
    """
    log_dir = os.path.join(table_path, "_delta_log")
    target = os.path.join(log_dir, f"{version:020d}.json")
    tmp = os.path.join(log_dir, f".{version:020d}.json.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write("\n".join(json.dumps(a, separators=(",", ":")) for a in actions) + "\n")
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    finally:
        os.remove(tmp)
    interval = int((table.metadata().configuration or {}).get("delta.checkpointInterval") or 100)
    if version % interval == 0:  # what deltalake's post-commit hook would have done
        try:
            DeltaTable(table_path).create_checkpoint()
        except DeltaError as exc:  # the commit stands; readers replay the JSON log instead
            log.warning("table at %s: checkpoint of version %d failed: %s", table_path, version, exc)
    return True


def data_file_paths(table: DeltaTable, table_path: str) -> list[str]:
    """Absolute local paths of the snapshot's data files.

    The log holds URI-encoded paths, relative to the table or absolute. (``file_uris()``
    is not used: it leaves the table folder's part URI-encoded, so a root path with a
    space or ``%`` would name files that do not exist.)
    """
    paths = []
    for raw in pa.table(table.get_add_actions()).column("path").to_pylist():
        url = urllib.parse.urlparse(raw)
        if url.scheme in ("", "file") and not raw.startswith("/"):
            paths.append(os.path.join(table_path, urllib.parse.unquote(raw)))
        elif url.scheme in ("", "file"):
            paths.append(urllib.parse.unquote(url.path))
        else:
            raise StorageError(f"data file {raw!r} is not on a local filesystem")
    return paths


# --- schema conversion ---------------------------------------------------------------------


def spark_schema(schema: Schema) -> T.StructType:
    """Delta's schema JSON is Spark's StructType JSON: convert through it, losslessly."""
    return T.StructType.fromJson(json.loads(schema.to_json()))


def delta_schema(schema: T.StructType) -> Schema:
    return Schema.from_json(schema.json())


def _same_fields(a: T.StructType, b: T.StructType) -> bool:
    return a.names == b.names and all(
        same_type(x.dataType, y.dataType) for x, y in zip(a.fields, b.fields, strict=True)
    )


def _columns_to_add(current: T.StructType, target: T.StructType) -> list[T.StructField] | None:
    """The columns that turn ``current`` into ``target`` by appending, or None if none do."""
    n = len(current.fields)
    if n >= len(target.fields) or not _same_fields(current, T.StructType(target.fields[:n])):
        return None
    return list(target.fields[n:])


# --- files -------------------------------------------------------------------------------


def _unescape(text: str) -> str:
    """Undo Spark's partition folder escaping (``%XX`` for a few ASCII characters)."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def _partition_values(rel_path: str, partition_by: list[str]) -> dict[str, str | None]:
    folders = rel_path.split("/")[:-1]
    if len(folders) != len(partition_by):
        raise StorageError(f"unexpected data file {rel_path!r} for partition columns {partition_by}")
    values: dict[str, str | None] = {}
    for folder, name in zip(folders, partition_by, strict=True):
        key, sep, raw = folder.partition("=")
        if not sep or _unescape(key) != name:
            raise StorageError(f"unexpected partition folder {folder!r}, expected column {name}")
        values[name] = None if raw == HIVE_NULL else _unescape(raw)
    return values


def _micros_timestamps(spark: SparkSession) -> None:
    """Parquet timestamps as INT64 micros, which Delta requires. The writer option below is
    enough on Spark 4.2, but Spark 4.0 (Databricks Runtime 17.3, EMR) ignores it and writes
    INT96: the session setting works on both (found by the wheel-in-a-4.0-runtime test)."""
    key = "spark.sql.parquet.outputTimestampType"
    try:
        if spark.conf.get(key, None) != "TIMESTAMP_MICROS":
            spark.conf.set(key, "TIMESTAMP_MICROS")
    except Exception:  # a platform that refuses the key keeps the writer option
        log.debug("could not set %s on the session", key, exc_info=True)


def _describe_files(
    staging: str, data_schema: T.StructType, partition_by: list[str], config: dict[str, str]
) -> list[DataFile]:
    rels = []
    for folder, dirs, names in os.walk(staging):
        # As Spark's file index does: "_x" is hidden unless it is a partition folder "_x=v".
        dirs[:] = [d for d in dirs if not d.startswith(".") and (not d.startswith("_") or "=" in d)]
        rels.extend(
            os.path.relpath(os.path.join(folder, n), staging)
            for n in names
            if n.endswith(".parquet") and not n.startswith(("_", "."))
        )
    leaves = _stats_leaves(data_schema, config)

    def describe(rel: str) -> DataFile:
        full = os.path.join(staging, rel)
        num, stats = file_stats(full, leaves)
        st = os.stat(full)
        return DataFile(
            rel,
            _partition_values(rel, partition_by),
            st.st_size,
            int(st.st_mtime * 1000),
            num,
            stats,
        )

    # Footer reads are small and I/O bound: overlap them.
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(rels)))) as pool:
        return list(pool.map(describe, sorted(rels)))


def _move_into_place(staging: str, table_path: str, files: list[DataFile]) -> None:
    for f in files:
        dest = os.path.join(table_path, f.rel_path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        # Spark names files part-<task>-<job uuid>: a collision would mean a reused staging folder.
        if os.path.exists(dest):
            raise StorageError(f"refusing to replace existing data file {dest}")
        os.rename(os.path.join(staging, f.rel_path), dest)


def _remove_if_empty(path: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _clean_staging(table_path: str, retention_hours: int) -> int:
    """Staging folders of writes that died mid-way (delta-rs vacuum skips ``_`` folders)."""
    root = os.path.join(table_path, STAGING_DIR)
    if not os.path.isdir(root):
        return 0
    cutoff = time.time() - retention_hours * 3600
    removed = 0
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.getmtime(path) <= cutoff:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    _remove_if_empty(root)
    return removed


def _partition_filters(
    where: dict[str, list[str | None]] | None,
) -> list[tuple[str, str, Any]] | None:
    if not where:
        return None
    filters: list[tuple[str, str, Any]] = []
    for key, values in where.items():
        # deltalake matches a null partition with the empty string.
        vals = ["" if v is None else v for v in values]
        filters.append((key, "=", vals[0]) if len(vals) == 1 else (key, "in", vals))
    return filters


def _check_readable(ref: TableRef, table: DeltaTable) -> None:
    protocol = table.protocol()
    features = set(protocol.reader_features or [])
    mapping = (table.metadata().configuration or {}).get("delta.columnMapping.mode", "none")
    if protocol.min_reader_version == 2 or features & UNSUPPORTED_READER_FEATURES or mapping != "none":
        raise StorageError(
            f"table {ref.name} uses {sorted(features & UNSUPPORTED_READER_FEATURES) or 'column mapping'}, "
            "which engine delta-rs cannot read through Spark's Parquet reader; use engine spark-delta"
        )


def _check_writable(ref: TableRef, table: DeltaTable) -> None:
    features = set(table.protocol().writer_features or [])
    config = table.metadata().configuration or {}
    found = sorted(features & UNSUPPORTED_WRITER_FEATURES)
    found += sorted(k for k in config if k.startswith("delta.constraints."))
    if config.get("delta.enableChangeDataFeed", "false").lower() == "true":
        found.append("delta.enableChangeDataFeed")
    schema_json = table.schema().to_json()
    found += [k for k in ("delta.generationExpression", "delta.identity", "delta.invariants") if k in schema_json]
    if found:
        raise StorageError(
            f"table {ref.name} uses {sorted(set(found))}, which engine delta-rs cannot enforce "
            "when committing files Spark wrote; use engine spark-delta"
        )


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --- per-file stats from the Parquet footer -----------------------------------------------


def _stats_leaves(
    schema: T.StructType, config: dict[str, str] | None = None
) -> dict[str, tuple[tuple[str, ...], T.DataType]]:
    """Parquet column path -> (Delta stats path, type) of the leaf columns with stats.

    As Delta: the leaves under the columns named by ``delta.dataSkippingStatsColumns`` if
    set, else the first ``delta.dataSkippingNumIndexedCols`` leaves (32; -1: all). Columns
    inside arrays and maps get no stats (Delta does not keep them either); names with dots
    are skipped because Parquet paths join names with dots.
    """
    config = config or {}
    leaves: list[tuple[tuple[str, ...], T.DataType]] = []

    def walk(prefix: tuple[str, ...], struct: T.StructType) -> None:
        for f in struct.fields:
            path = (*prefix, f.name)
            if isinstance(f.dataType, T.StructType):
                walk(path, f.dataType)
            else:
                leaves.append((path, f.dataType))

    walk((), schema)
    named = config.get(STATS_COLUMNS_KEY)
    if named is not None:
        wanted = _column_paths(named)
        leaves = [(p, t) for p, t in leaves if any(p[: len(w)] == w for w in wanted)]
    else:
        count = int(config.get(NUM_INDEXED_KEY) or STATS_COLUMNS)
        leaves = leaves if count < 0 else leaves[:count]
    return {
        ".".join(path): (path, dtype)
        for path, dtype in leaves
        if not isinstance(dtype, (T.ArrayType, T.MapType)) and not any("." in p for p in path)
    }


_NAME_PART = re.compile(r"`((?:[^`]|``)*)`|([^.,`]+)")


def _column_paths(text: str) -> list[tuple[str, ...]]:
    """``delta.dataSkippingStatsColumns`` ("a, `b c`, s.x") as column paths."""
    paths = []
    for item in re.findall(r"(?:`(?:[^`]|``)*`|[^,`])+", text):
        parts = tuple(
            (quoted.replace("``", "`") if quoted else plain.strip())
            for quoted, plain in _NAME_PART.findall(item.strip())
        )
        if parts:
            paths.append(parts)
    return paths


class _Raw:
    """A number already formatted as JSON (decimals must not go through float)."""

    def __init__(self, text: str):
        self.text = text


def file_stats(path: str, leaves: dict[str, tuple[tuple[str, ...], T.DataType]]) -> tuple[int, str]:
    """(numRecords, Delta stats JSON) from the file's footer: minValues, maxValues, nullCount."""
    meta = pq.ParquetFile(path).metadata
    nulls: dict[str, int | None] = {}
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            key = chunk.path_in_schema
            if key not in leaves:
                continue
            if chunk.physical_type == "INT96":
                raise StorageError(f"{path}: column {key} written as INT96; Delta needs TIMESTAMP_MICROS")
            st = chunk.statistics
            if st is None or not st.has_null_count:
                nulls[key] = None
                lows[key] = highs[key] = None
                continue
            if nulls.get(key, 0) is not None:
                nulls[key] = nulls.get(key, 0) + st.null_count
            if group.num_rows - st.null_count == 0:
                continue  # all null here: no bounds to merge
            lo, hi = _bounds(st, leaves[key][1]) if st.has_min_max else (None, None)
            for store, value, pick in ((lows, lo, min), (highs, hi, max)):
                if value is None:
                    store[key] = None
                elif key not in store:
                    store[key] = value
                elif store[key] is not None:
                    store[key] = pick(store[key], value)
    stats: dict[str, Any] = {"numRecords": meta.num_rows}
    for name, values, fmt in (("minValues", lows, _fmt_low), ("maxValues", highs, _fmt_high)):
        tree: dict[str, Any] = {}
        for key, value in values.items():
            text = fmt(value, leaves[key][1]) if value is not None else None
            if text is not None:
                _put(tree, leaves[key][0], text)
        stats[name] = tree
    null_tree: dict[str, Any] = {}
    for key, count in nulls.items():
        if count is not None:
            _put(null_tree, leaves[key][0], count)
    stats["nullCount"] = null_tree
    return meta.num_rows, _to_json(stats)


def _bounds(st: Any, dtype: T.DataType) -> tuple[Any, Any]:
    """Comparable (min, max) of a row group, or (None, None) when Delta keeps no bounds."""
    if isinstance(dtype, (T.BooleanType, T.BinaryType)):
        return None, None
    if isinstance(dtype, T.DecimalType):
        return _decimal(st.min_raw, dtype.scale), _decimal(st.max_raw, dtype.scale)
    if isinstance(dtype, (T.TimestampType, T.TimestampNTZType)):
        if "microseconds" not in str(st.logical_type):
            return None, None
        return st.min_raw, st.max_raw  # int micros since epoch
    lo, hi = st.min, st.max
    if isinstance(lo, bytes):
        lo, hi = lo.decode("utf-8", "replace"), hi.decode("utf-8", "replace")
    if isinstance(lo, float) and not (math.isfinite(lo) and math.isfinite(hi)):
        return None, None
    return lo, hi


def _decimal(raw: int | bytes, scale: int) -> decimal.Decimal:
    unscaled = int.from_bytes(raw, "big", signed=True) if isinstance(raw, bytes) else raw
    return decimal.Decimal(unscaled).scaleb(-scale)


def _fmt_low(value: Any, dtype: T.DataType) -> Any:
    if isinstance(dtype, (T.TimestampType, T.TimestampNTZType)):
        return _fmt_ts(value // 1000, dtype)  # Delta keeps millis: round a minimum down
    if isinstance(value, str):
        return value[:STATS_STRING_PREFIX]
    return _fmt_common(value)


def _fmt_high(value: Any, dtype: T.DataType) -> Any:
    if isinstance(dtype, (T.TimestampType, T.TimestampNTZType)):
        return _fmt_ts(-(-value // 1000), dtype)  # and a maximum up
    if isinstance(value, str) and len(value) > STATS_STRING_PREFIX:
        return None  # a truncated maximum would be wrong; no bound is safe
    return _fmt_common(value)


def _fmt_common(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return _Raw(format(value, "f"))
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _fmt_ts(millis: int, dtype: T.DataType) -> str:
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=millis)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}"
    return text + "Z" if isinstance(dtype, T.TimestampType) else text


def _put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def _to_json(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + _to_json(v) for k, v in value.items()) + "}"
    if isinstance(value, _Raw):
        return value.text
    return json.dumps(value)
