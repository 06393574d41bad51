"""Job ``forget``: erase people on request from every table and export, then vacuum.

``custseg forget --requests FILE|TABLE --date D``: the requests are a CSV file with a header
(or a ``layer.table``) with a ``customer_id`` column (the CRM id the person is known by) and
optionally ``requested_at``. For each person the job:

1. maps the id to their keys: ``customer_key`` (HMAC of ``customer_id:<id>`` with the run's
   salt, checked against the salt fingerprints on record, so a wrong salt cannot erase nobody
   and report success), every identifier key the identity map resolved to them, their e-mail
   and phone keys, and their raw e-mails, phones and devices from bronze;
2. refuses to run if a table is neither covered by an identifier column nor declared
   customer-free (``custseg.erasure``);
3. deletes their rows from every covered table (bronze, quarantine, silver, gold, meta) with
   ``Tables.delete_rows`` (copy-on-write of the touched partitions), and their rows from the
   export files (``custseg.erasure_exports``);
4. vacuums the tables it touched with ``erasure.retention_hours`` and every table touched by an
   earlier request whose retention has passed, so old versions stop holding them;
5. appends one row per request to ``meta.erasure_requests``: the key, never the raw id.

A rerun deletes nothing more (and logs so): the job is idempotent, and a rerun after new data
about a forgotten person arrived erases that too.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.conform.identity import customer_id_key, device_key
from custseg.erasure import HASHED_COLUMNS, RAW_KINDS, Person, check_coverage, keep_rows, normalize_raw
from custseg.erasure_exports import erase_from_exports
from custseg.pii import resolve_pii_key
from custseg.stages.context import StageContext, absolute
from custseg.stages.key_guard import check_pii_key
from custseg.stages.snapshots import repoint

log = logging.getLogger(__name__)

REQUESTS = "meta.erasure_requests"
REQUESTS_SCHEMA = T.StructType(
    [
        T.StructField("request_key", T.StringType(), False),  # customer_key of the person
        T.StructField("requested_at", T.TimestampType(), True),
        T.StructField("run_date", T.DateType(), False),
        T.StructField("executed_at", T.TimestampType(), False),
        T.StructField("already_erased", T.BooleanType(), False),  # an earlier run executed it
        T.StructField("run_rows_deleted", T.MapType(T.StringType(), T.LongType()), False),
        T.StructField("run_export_rows_deleted", T.LongType(), False),
        T.StructField("retention_hours", T.IntegerType(), False),
        T.StructField("purge_after", T.TimestampType(), False),  # old versions vacuumed from then on
    ]
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ErasureSettings:
    requests: str
    retention_hours: int
    exports: bool

    @classmethod
    def from_config(cls, conf) -> ErasureSettings:
        requests = str(conf.get_path("erasure.requests", "") or "")
        if not requests:
            raise conf.error("erasure.requests", "names no request file or table (custseg forget --requests ...)")
        hours = int(conf.get_path("erasure.retention_hours", 168))
        if hours < 0:
            raise conf.error("erasure.retention_hours", f"must be >= 0, got {hours}")
        return cls(requests, hours, bool(conf.get_path("erasure.exports", True)))


def read_requests(ctx: StageContext, source: str) -> DataFrame:
    """The request table or CSV file: ``customer_id`` (string) and ``requested_at`` (timestamp, may be null)."""
    if _NAME.match(source) and ctx.tables.exists(source):
        df = ctx.tables.read(source)
    else:
        df = ctx.spark.read.option("header", True).csv(absolute(source))
    if "customer_id" not in df.columns:
        raise ValueError(f"erasure requests {source}: no customer_id column (has {df.columns})")
    requested = F.col("requested_at").cast("timestamp") if "requested_at" in df.columns else F.lit(None)
    return df.select(
        F.nullif(F.trim(F.col("customer_id").cast("string")), F.lit("")).alias("customer_id"),
        requested.cast("timestamp").alias("requested_at"),
    )


def _values(df: DataFrame) -> list[str]:
    """Distinct non-null ``v`` values of a frame about the requested people (bounded by the request)."""
    return sorted({r["v"] for r in df.where(F.col("v").isNotNull()).distinct().collect()})


def _frame(ctx: StageContext, values: list[str]) -> DataFrame:
    return ctx.spark.createDataFrame([(v,) for v in sorted(set(values))], "v string")


def build_person(
    ctx: StageContext, ids: list[str], salt, covered: dict[str, list[str]], cc: str
) -> tuple[Person, list[str]]:
    """The lookups of the requested people; also their customer keys."""
    t = ctx.tables
    id_frame = _frame(ctx, ids)
    keys = _values(id_frame.select(customer_id_key("v", salt).alias("v")))
    key_frame = _frame(ctx, keys)
    hashes = set(keys)
    raw: dict[str, set[str]] = {kind: set() for kind in RAW_KINDS}
    raw["customer_id"] |= set(ids)
    tokens: set[str] = {i.lower() for i in ids}

    def of_person(name: str) -> DataFrame:
        df = t.read(name)
        return df.join(F.broadcast(key_frame), df["customer_key"] == key_frame["v"], "left_semi")

    if t.exists("silver.identity_map"):
        hashes |= set(_values(of_person("silver.identity_map").select(F.col("id_key").alias("v"))))
    for name, cols in covered.items():
        if "customer_key" in cols and name.startswith("silver."):
            for c in cols:
                if c in HASHED_COLUMNS and c != "customer_key":
                    hashes |= set(_values(of_person(name).select(F.lower(c).alias("v"))))
            if "customer_id" in cols:  # silver.activation_ids: the source system's own ids
                found = _values(of_person(name).select(F.col("customer_id").alias("v")))
                raw["customer_id"] |= set(found)
                tokens |= {v.lower() for v in found}
    # Raw identifiers that bronze rows of the person carry beside their customer_id.
    all_ids = _frame(ctx, sorted(raw["customer_id"]))
    for name, cols in covered.items():
        if not name.startswith("bronze.") or "customer_id" not in cols:
            continue
        df = t.read(name)
        rows = df.join(F.broadcast(all_ids), F.trim(df["customer_id"]) == all_ids["v"], "left_semi")
        for c, kind in (("email", "email"), ("phone", "phone"), ("loyalty_phone", "phone"), ("device_id", "device")):
            if c not in cols:
                continue
            spelled = _values(rows.select(F.col(c).alias("v")))
            if not spelled:
                continue
            norm = _frame(ctx, spelled).select(normalize_raw(kind, F.col("v"), cc).alias("v"))
            if kind == "device":
                # A device is the person's only where the identity map resolved it to them
                # (a shop tablet used by many is ambiguous there, and stays).
                norm = norm.where(device_key("v", salt).isin(sorted(hashes)))
            found = _values(norm)
            raw[kind] |= set(found)
            if kind != "device" or found:
                tokens |= {s.lower() for s in spelled if kind != "device" or s.strip() in found}
                tokens |= {f.lower() for f in found}
    tokens = {tok.replace("\\E", "") for tok in tokens if tok}
    person = Person(
        hashes=_frame(ctx, sorted(hashes)),
        raw={kind: _frame(ctx, sorted(values)) for kind, values in raw.items()},
        tokens=_frame(ctx, sorted(tokens)),
        needles=frozenset(v.lower() for v in hashes | tokens | set().union(*raw.values())),
    )
    log.info(
        "erasure lookups: %d people, %d keys, %s raw identifiers",
        len(ids),
        len(hashes),
        {k: len(v) for k, v in raw.items()},
    )
    return person, keys


def _earlier(ctx: StageContext) -> DataFrame | None:
    return ctx.tables.read(REQUESTS) if ctx.tables.exists(REQUESTS) else None


def run(ctx: StageContext) -> None:
    rec = ctx.recorder
    t = ctx.tables
    settings = ErasureSettings.from_config(ctx.conf)
    cc = str(ctx.conf.pii.get("default_country_code", "44"))
    salt = resolve_pii_key(ctx.conf, demo=ctx.demo)
    names = [n for n in t.names() if n != REQUESTS]
    # Keys made with another salt would match nobody: refuse rather than report an empty erasure.
    check_pii_key(t, salt, [n for n in names if n.startswith("silver.")])

    requests = read_requests(ctx, settings.requests)
    rows = requests.collect()  # a DPO's request list: bounded, and needed to log per request
    blank = sum(1 for r in rows if r["customer_id"] is None)
    if blank:
        raise ValueError(f"erasure requests {settings.requests}: {blank} rows without a customer_id")
    ids = sorted({r["customer_id"] for r in rows})
    requested_at = {}
    for r in rows:
        if r["requested_at"] is not None:
            requested_at[r["customer_id"]] = min(
                requested_at.get(r["customer_id"], r["requested_at"]), r["requested_at"]
            )
    rec.rows_in = len(ids)

    source_table = settings.requests if _NAME.match(settings.requests) else None
    schemas = {n: t.schema(n) for n in names if n != source_table}
    covered = check_coverage(schemas)
    person, keys = build_person(ctx, ids, salt, covered, cc)

    deleted: dict[str, int] = {}
    silver_before = {n: t.version(n) for n in covered if n.startswith("silver.")}
    for name, cols in sorted(covered.items()):
        with rec.stage(f"erase {name}"):
            result = t.delete_rows(name, keep_rows(person, cols, cc))
        deleted[name] = result["rows"]
    with rec.stage("silver snapshots"):
        # Snapshots of the silver just erased from now read the erased versions; every older
        # snapshot is invalidated, as its versions still hold the people (docs/security.md).
        moves = {n: (v, t.version(n)) for n, v in silver_before.items()}
        reason = f"erasure by forget run {rec.run_id} on {ctx.run_date}"
        rec.details["snapshots_invalidated"] = repoint(t, moves, invalidate_others=reason)
    export_rows = 0
    if settings.exports:
        with rec.stage("erase exports"):
            export_rows = erase_from_exports(ctx, person, cc)

    now = dt.datetime.now(dt.timezone.utc)
    earlier = _earlier(ctx)
    erased_before = set()
    if earlier is not None:
        key_frame = _frame(ctx, keys)
        erased_before = set(
            _values(
                earlier.join(F.broadcast(key_frame), earlier["request_key"] == key_frame["v"], "left_semi").select(
                    F.col("request_key").alias("v")
                )
            )
        )
    touched = sorted(n for n, c in deleted.items() if c)
    # Tables an earlier request touched: vacuumed again by every run (its old files go once
    # its retention has passed; `maintain` vacuums them too). Bounded by the number of tables.
    if earlier is not None:
        changed = earlier.select(F.explode("run_rows_deleted").alias("table", "rows")).where("rows > 0")
        for r in changed.select("table").distinct().collect():
            if r["table"] in schemas and r["table"] not in touched:
                touched.append(r["table"])
    for name in sorted(touched):
        with rec.stage(f"vacuum {name}"):
            t.vacuum(name, settings.retention_hours)

    purge_after = now + dt.timedelta(hours=settings.retention_hours)
    key_rows = (
        _frame(ctx, ids)
        .select(F.col("v").alias("customer_id"), customer_id_key("v", salt).alias("request_key"))
        .collect()
    )
    out = [
        (
            r["request_key"],
            requested_at.get(r["customer_id"]),
            ctx.as_of,
            now,
            r["request_key"] in erased_before,
            deleted,
            int(export_rows),
            int(settings.retention_hours),
            purge_after,
        )
        for r in key_rows
    ]
    t.append(ctx.spark.createDataFrame(out, REQUESTS_SCHEMA), REQUESTS)
    total = sum(deleted.values()) + export_rows
    rec.rows_out = total
    rec.details["erasure"] = {
        "requests": len(ids),
        "already_erased": len(erased_before),
        "rows_deleted": {n: c for n, c in deleted.items() if c},
        "export_rows_deleted": export_rows,
        "vacuumed": sorted(touched),
        "retention_hours": settings.retention_hours,
    }
    if total == 0:
        log.info("erasure: %d requests, nothing left to delete (%d already erased)", len(ids), len(erased_before))
    else:
        log.info(
            "erasure: %d requests, %d rows deleted in %d tables, %d export rows; vacuumed %d tables (retention %dh)",
            len(ids),
            sum(deleted.values()),
            len([c for c in deleted.values() if c]),
            export_rows,
            len(touched),
            settings.retention_hours,
        )


__all__ = ["REQUESTS", "REQUESTS_SCHEMA", "ErasureSettings", "build_person", "read_requests", "run"]
