"""Silver as of a run date: the Delta versions each date's conform wrote, and the view stages read through.

Conform rewrites every silver table from all bronze batches up to its run date, so silver is
one set of tables that any conform rewinds or advances. To keep a date's downstream outputs
tied to that date's silver, conform writes its tables, then records the version of each one
it wrote in ``meta.silver_snapshots`` with one atomic partition overwrite (``run_date`` = its
date): the snapshot of that date. Every stage after conform (``features``, ``segment``,
``basket``, ``marketing``, ``report`` and any new one) gets its tables through ``SilverAsOf``,
which reads each silver table at the version recorded for the stage's run date, never the
current one. So:

- a backfill (conform for an earlier date run later) cannot change a later date's inputs;
- a conform that fails midway records nothing: readers keep the date's previous complete
  snapshot, or, where there is none, fail naming the date;
- a rerun of conform for a date replaces that date's record (the latest complete run wins).

No snapshot for the run date is an error that names the date and the latest snapshot before
it (``SilverSnapshotError``): silently using another date's silver is what this module is
there to prevent. Where no silver table was ever written, a silver table simply does not
exist for the stage (as before). A version whose files ``vacuum`` removed is an error too,
naming the table, the version and the date: rerun conform for that date.

``forget`` and ``maintain`` rewrite silver in place. Both re-point the snapshots that recorded
the version they rewrote to the version they wrote (an OPTIMIZE keeps the rows; an erasure
removes only the erased people), and ``forget`` marks every other snapshot invalidated: an
older version still holds the erased people, and time travel must not bring them back.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from custseg.fileio import is_local, local_path

log = logging.getLogger(__name__)

SNAPSHOTS = "meta.silver_snapshots"
SNAPSHOTS_SCHEMA = T.StructType(
    [
        T.StructField("run_date", T.DateType(), False),
        T.StructField("table_name", T.StringType(), False),  # layer.table
        T.StructField("version", T.LongType(), False),  # the Delta version that date reads
        T.StructField("run_id", T.StringType(), True),  # the conform run that wrote it (gold.job_runs)
        T.StructField("engine", T.StringType(), True),  # the storage engine that committed it
        T.StructField("recorded_at", T.TimestampType(), False),
        T.StructField("invalidated_by", T.StringType(), True),  # why the snapshot may no longer be read
    ]
)
SILVER = "silver."


class SilverSnapshotError(RuntimeError):
    """Silver cannot be read as of the run date: no snapshot, an invalidated one, or a vacuumed version."""


def is_silver(name: str) -> bool:
    return isinstance(name, str) and name.startswith(SILVER)


class SilverWrites:
    """The silver tables one conform run writes, and the versions it committed (its snapshot to be).

    ``read`` reads a table at the version this run wrote, not the latest: another writer
    committing meanwhile cannot mix its rows into this run's later tables.
    """

    def __init__(self, tables):
        self.tables = tables
        self.versions: dict[str, int] = {}

    def overwrite(self, df: DataFrame, name: str, **kwargs) -> int:
        if not is_silver(name):
            raise ValueError(f"SilverWrites writes silver tables only, not {name}")
        version = self.tables.overwrite(df, name, **kwargs)
        self.versions[name] = int(version)
        return version

    def wrote(self, name: str) -> bool:
        return name in self.versions

    def read(self, name: str) -> DataFrame:
        if name not in self.versions:
            raise KeyError(f"{name} was not written by this run")
        return self.tables.read(name, version=self.versions[name])


def record_snapshot(spark: SparkSession, tables, run_date: str, versions: Mapping[str, int], run_id: str | None) -> int:
    """Record ``versions`` as the silver of ``run_date``: one atomic overwrite of that date's partition
    (a rerun replaces the date's earlier record). Returns the meta table's version."""
    now = dt.datetime.now(dt.timezone.utc)
    day = dt.date.fromisoformat(str(run_date))
    rows = [(day, n, int(v), run_id, tables.engine_name, now, None) for n, v in sorted(versions.items())]
    df = spark.createDataFrame(rows, SNAPSHOTS_SCHEMA)
    version = tables.overwrite(df, SNAPSHOTS, partition_by=["run_date"], where={"run_date": day})
    log.info("silver snapshot of %s recorded: %s", run_date, ", ".join(f"{n}@{v}" for n, v in sorted(versions.items())))
    return version


def _latest_before(rows: DataFrame, day: dt.date) -> dt.date | None:
    valid = rows.where((F.col("run_date") < F.lit(day)) & F.col("invalidated_by").isNull())
    return valid.agg(F.max("run_date").alias("d")).first()["d"]


def resolve(tables, run_date: str) -> dict[str, int] | None:
    """The silver versions recorded for ``run_date``: ``{table: version}``; None where no silver
    table exists at all (nothing was ever conformed: there is nothing to read as of any date).

    Raises ``SilverSnapshotError`` where silver exists but the date has no complete snapshot,
    or its snapshot was invalidated (by an erasure).
    """
    day = dt.date.fromisoformat(str(run_date))
    if not tables.exists(SNAPSHOTS):
        if not any(tables.exists(f"{SILVER}{t}") for t in _SILVER_NAMES):
            return None
        raise SilverSnapshotError(
            f"no silver snapshot for {run_date}: {SNAPSHOTS} does not exist, so no conform run has recorded "
            f"which silver versions belong to which date (silver written before snapshots were recorded). "
            f"Run `custseg run conform --date {run_date}` first; downstream stages never read the current silver"
        )
    all_rows = tables.read(SNAPSHOTS)
    rows = all_rows.where(F.col("run_date") == F.lit(day)).collect()  # one row per silver table: bounded
    if not rows:
        before = _latest_before(all_rows, day)
        hint = f"the latest snapshot before it is {before}" if before else "no earlier date has one either"
        raise SilverSnapshotError(
            f"no silver snapshot for {run_date}: conform has not completed for this date ({hint}). "
            f"Run `custseg run conform --date {run_date}` first; a conform that failed midway records nothing"
        )
    invalid = sorted({r["invalidated_by"] for r in rows if r["invalidated_by"]})
    if invalid:
        raise SilverSnapshotError(
            f"the silver snapshot of {run_date} was invalidated ({'; '.join(invalid)}): its versions may hold "
            f"erased people. Run `custseg run conform --date {run_date}` again to rebuild it"
        )
    return {r["table_name"]: int(r["version"]) for r in rows}


# The silver tables conform writes (a view over no snapshot looks for any of them).
_SILVER_NAMES = (
    "customers",
    "activation_ids",
    "identity_map",
    "products",
    "order_items",
    "orders",
    "events",
    "feedback",
    "social",
    "campaign_responses",
    "consent",
)


class SilverAsOf:
    """``Tables`` as a stage of ``run_date`` sees them: silver at the versions recorded for that date.

    Reads of bronze, gold and meta pass through. ``exists`` of a silver table says whether the
    date's snapshot holds it; ``read`` reads it at the recorded version (a ``version`` argument
    is refused: a stage has no business with other versions). Writes to silver are refused:
    only conform (and forget, maintain) write silver. The snapshot is resolved once, at the
    first silver access, so every silver read of a stage comes from one snapshot.
    """

    def __init__(self, tables, run_date: str):
        self._tables = tables
        self.run_date = str(run_date)
        self._versions: dict[str, int] | None = None
        self._resolved = False
        self._checked: set[str] = set()

    def __getattr__(self, attr):
        return getattr(self._tables, attr)

    @property
    def versions(self) -> dict[str, int] | None:
        if not self._resolved:
            self._versions = resolve(self._tables, self.run_date)
            self._resolved = True
            if self._versions is None:
                log.info("silver as of %s: no silver table exists", self.run_date)
            else:
                pins = ", ".join(f"{n}@{v}" for n, v in sorted(self._versions.items()))
                log.info("silver as of %s: the versions conform recorded for the date: %s", self.run_date, pins)
        return self._versions

    def exists(self, name: str) -> bool:
        if not is_silver(name):
            return self._tables.exists(name)
        versions = self.versions
        return versions is not None and name in versions

    def read(self, name: str, version: int | None = None) -> DataFrame:
        if not is_silver(name):
            return self._tables.read(name, version=version)
        versions = self.versions
        if versions is None:  # no silver table at all: the usual "does not exist"
            return self._tables.read(name)
        if name not in versions:
            raise SilverSnapshotError(
                f"{name} is not in the silver snapshot of {self.run_date} (conform for that date did not write it)"
            )
        pinned = versions[name]
        if version is not None and version != pinned:
            raise SilverSnapshotError(f"{name}: a stage of {self.run_date} reads version {pinned}, not {version}")
        try:
            df = self._tables.read(name, version=pinned)
            if name not in self._checked:
                _check_files(df)
                self._checked.add(name)
        except SilverSnapshotError:
            raise
        except Exception as exc:
            raise SilverSnapshotError(
                f"{name} version {pinned}, the silver of {self.run_date}, can no longer be read ({_first_line(exc)}): "
                f"vacuum removes the files of versions older than its retention "
                f"(maintenance.vacuum_retention_hours). Run `custseg run conform --date {self.run_date}` again "
                f"to rebuild that date's silver"
            ) from exc
        return df

    def version(self, name: str) -> int:
        if not is_silver(name):
            return self._tables.version(name)
        versions = self.versions
        if versions is None:
            return self._tables.version(name)
        if name not in versions:
            raise SilverSnapshotError(f"{name} is not in the silver snapshot of {self.run_date}")
        return versions[name]

    def _refuse(self, name: str) -> None:
        if is_silver(name):
            raise SilverSnapshotError(f"{name}: only conform writes silver (this stage reads silver as of a date)")

    def append(self, df: DataFrame, name: str, *args, **kwargs) -> int:
        self._refuse(name)
        return self._tables.append(df, name, *args, **kwargs)

    def overwrite(self, df: DataFrame, name: str, *args, **kwargs) -> int:
        self._refuse(name)
        return self._tables.overwrite(df, name, *args, **kwargs)

    def delete_rows(self, name: str, keep) -> dict:
        self._refuse(name)
        return self._tables.delete_rows(name, keep)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _check_files(df: DataFrame) -> None:
    """Fail now, not in the middle of a stage, where a version's data files are gone (vacuumed).

    JVM Delta resolves an old version from its log and only misses the files when a task opens
    them; delta-rs reads fail at once. The file names come from the Delta log (metadata, one
    per file); local files are checked with Python, others by Spark resolving them (a listing,
    no data read).
    """
    files = df.inputFiles()
    if not files:
        return
    if all(is_local(f) for f in files):
        from urllib.parse import unquote

        missing = [f for f in files if not _local_file(local_path(f)) and not _local_file(unquote(local_path(f)))]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(files)} data files are gone, e.g. {missing[0]}")
        return
    df.sparkSession.read.format("binaryFile").load(list(files)).select("path").schema  # noqa: B018


def _local_file(path: str) -> bool:
    import os

    return os.path.isfile(path)


def repoint(tables, moves: Mapping[str, tuple[int, int]], invalidate_others: str | None = None) -> int:
    """Rewrite ``meta.silver_snapshots`` after silver was rewritten in place (one atomic overwrite).

    ``moves``: table -> (the version that was rewritten, the version that replaced it). Snapshots
    that recorded the rewritten version now record its replacement. With ``invalidate_others``
    (a reason), every snapshot holding any other version of a table in ``moves`` is marked
    invalidated with that reason (an erasure: old versions still hold the erased people).
    Returns the number of snapshot dates invalidated.
    """
    if not moves or not tables.exists(SNAPSHOTS):
        return 0
    spark = tables.spark
    move_rows = [(n, int(b), int(a)) for n, (b, a) in moves.items()]
    moved = spark.createDataFrame(move_rows, "table_name string, m_before long, m_after long")
    rows = tables.read(SNAPSHOTS).join(F.broadcast(moved), on="table_name", how="left")
    current = F.col("m_before").isNull() | (F.col("version") == F.col("m_before"))
    stale = F.col("invalidated_by").isNull() & ~current
    if invalidate_others:
        # A date's snapshot is one unit: one stale table makes the whole date unreadable.
        date_stale = F.max(stale.cast("int")).over(Window.partitionBy("run_date")) == 1
        invalidated = F.when(F.col("invalidated_by").isNull() & date_stale, F.lit(invalidate_others)).otherwise(
            F.col("invalidated_by")
        )
    else:
        date_stale = F.lit(False)
        invalidated = F.col("invalidated_by")
    new_version = F.when((F.col("version") == F.col("m_before")) & ~date_stale, F.col("m_after")).otherwise(
        F.col("version")
    )
    out = rows.select(
        "run_date",
        "table_name",
        new_version.cast("long").alias("version"),
        "run_id",
        "engine",
        "recorded_at",
        invalidated.alias("invalidated_by"),
        (F.col("invalidated_by").isNull() & invalidated.isNotNull()).alias("_newly"),
    ).localCheckpoint(eager=True)  # the overwrite replaces the table this frame was read from
    newly = out.where("_newly").select("run_date").distinct().count()
    tables.overwrite(out.drop("_newly"), SNAPSHOTS)
    log.info("silver snapshots re-pointed after %s; %d snapshot dates invalidated", sorted(moves), newly)
    return newly


__all__ = [
    "SNAPSHOTS",
    "SNAPSHOTS_SCHEMA",
    "SilverAsOf",
    "SilverSnapshotError",
    "SilverWrites",
    "record_snapshot",
    "repoint",
    "resolve",
]
