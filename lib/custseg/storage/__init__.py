"""Delta tables behind one API: ``Tables(spark, conf).read/append/overwrite/...``.

Two engines: "spark-delta" (JVM Delta Lake) when the session has it, else "delta-rs"
(Spark writes Parquet, the ``deltalake`` package commits). See ``base.Tables``.
"""

from custseg.storage.base import (
    CommitConflictError,
    DiskFullError,
    SchemaMismatchError,
    StorageError,
    StorageSettings,
    Tables,
    WriteId,
    commit_engine,
)

__all__ = [
    "CommitConflictError",
    "DiskFullError",
    "SchemaMismatchError",
    "StorageError",
    "StorageSettings",
    "Tables",
    "WriteId",
    "commit_engine",
]
