"""``custseg stream``: the real-time job (docs/realtime.md).

    custseg stream [--conf F] [--trigger processing:10s|available-now|once] [--source files|kafka]
                   [--sources events,orders] [--checkpoint DIR] [--max-files N] [--set k=v ...]

Starts the ``ingest`` query (landing files or Kafka -> quarantine, bronze, silver; one
``foreachBatch`` per micro-batch, ``custseg.realtime.microbatch``) and waits. With
``processing:<n>s`` it runs until stopped (SIGTERM / SIGINT stop it between micro-batches,
exit 0); with ``available-now`` or ``once`` it ends when what had landed is processed. A
query that fails ends the job with status 1 and its error logged; restarting it replays the
micro-batch that failed (exactly once: custseg.realtime.microbatch).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from datetime import datetime, timezone

from custseg.cli import _kv, setup_logging

log = logging.getLogger("custseg.stream")

POLL_SECONDS = 5


class CheckpointMismatch(RuntimeError):
    """The tables hold micro-batches of a query whose checkpoint is gone."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="custseg stream", description="real-time ingest and triggers (docs/realtime.md)")
    p.add_argument("--conf", default=None, help="config file (default: $CUSTSEG_CONF or conf/local.yaml)")
    p.add_argument("--set", dest="overrides", action="append", type=_kv, default=[], metavar="KEY=VALUE")
    p.add_argument("--trigger", default=None, help="processing:<n>s | available-now | once (stream.trigger)")
    p.add_argument("--source", default=None, choices=("files", "kafka"), help="stream.source")
    p.add_argument("--sources", default=None, help="comma-separated landing sources (stream.sources)")
    p.add_argument("--checkpoint", default=None, help="checkpoint root (stream.checkpoint_location)")
    p.add_argument("--max-files", type=int, default=None, help="files per source per micro-batch")
    p.add_argument("--log-level", default=os.environ.get("CUSTSEG_LOG_LEVEL", "INFO"))
    p.add_argument("--remote", default=None, metavar="sc://HOST:PORT", help="Spark Connect URL (default $SPARK_REMOTE)")
    p.add_argument(
        "--secret", dest="secrets", action="append", default=[], metavar="ENV=SCOPE/KEY", help="as custseg run"
    )
    return p.parse_args(argv)


def _overrides(args: argparse.Namespace) -> dict:
    import yaml

    out = {k: yaml.safe_load(v) for k, v in args.overrides}
    flags = {
        "stream.trigger": args.trigger,
        "stream.source": args.source,
        "stream.sources": [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else None,
        "stream.checkpoint_location": args.checkpoint,
        "stream.max_files_per_trigger": args.max_files,
    }
    out.update({k: v for k, v in flags.items() if v is not None})
    return out


def has_commits(checkpoint: str) -> bool:
    """Whether a query's checkpoint holds a committed micro-batch (local paths; others: assumed)."""
    from custseg import fileio

    if not fileio.is_local(checkpoint):
        return True  # cannot list cheaply without Spark: the guard is for local homes and mounts
    folder = os.path.join(fileio.local_path(checkpoint), "commits")
    return os.path.isdir(folder) and any(not n.startswith(".") for n in os.listdir(folder))


def guard_checkpoint(tables, query: str, checkpoint: str) -> None:
    """Refuse a new checkpoint over tables that hold this query's micro-batches: batch ids would
    start again at 0 and every write would be skipped as already committed (idempotent ids)."""
    from pyspark.sql import functions as F

    from custseg.realtime.microbatch import PROGRESS

    if has_commits(checkpoint) or not tables.exists(PROGRESS):
        return
    last = tables.read(PROGRESS).where(F.col("query") == query).agg(F.max("batch_id").alias("b")).first()["b"]
    # micro-batch 0 recorded without a commit: the job died after its last write, before Spark
    # committed it; the restart replays it (its writes are skipped). Anything later: a lost checkpoint.
    if last is not None and last >= 1:
        raise CheckpointMismatch(
            f"query {query!r}: {PROGRESS} records micro-batches up to {last} but the checkpoint {checkpoint} has none: "
            "the checkpoint was deleted or moved. Restore it, or start over by deleting the stream's tables "
            "(bronze.*_rt, silver.*_rt, the *_rt rows of bronze.quarantine, meta.stream_progress) with it."
        )


def start_ingest(spark, conf, settings, tables, landing: str):
    from custseg.realtime.microbatch import INGEST, IngestBatch, parse_trigger
    from custseg.realtime.source import ingest_stream

    checkpoint = settings.checkpoint(tables.settings.root, INGEST)
    guard_checkpoint(tables, INGEST, checkpoint)
    stream = ingest_stream(
        spark, conf, settings.source, landing, list(settings.sources), settings.max_files_per_trigger
    )
    writer = (
        stream.writeStream.queryName(INGEST)
        .option("checkpointLocation", checkpoint)
        .trigger(**parse_trigger(settings.trigger))
        .foreachBatch(IngestBatch(conf, settings, tables.settings.root))
    )
    log.info(
        "starting query %s: source=%s sources=%s trigger=%s max_files_per_trigger=%d checkpoint=%s",
        INGEST,
        settings.source,
        ",".join(settings.sources),
        settings.trigger,
        settings.max_files_per_trigger,
        checkpoint,
    )
    return writer.start()


def start_sessions(spark, conf, settings, tables, landing: str):
    """The ``sessions`` query (browse / cart abandonment), or None without session triggers or events."""
    from pyspark.sql import functions as F

    from custseg.realtime.detect import sessions
    from custseg.realtime.microbatch import SESSIONS, SessionBatch, parse_trigger
    from custseg.realtime.source import BATCH_CLOCK, session_stream
    from custseg.realtime.triggers import RealtimeSettings, load_triggers

    triggers = [t for t in load_triggers(conf) if t.is_session]
    if not triggers or "events" not in settings.sources:
        log.info("no session triggers (or no events source): the sessions query does not start")
        return None
    rt = RealtimeSettings.from_config(conf)
    checkpoint = settings.checkpoint(tables.settings.root, SESSIONS)
    guard_checkpoint(tables, SESSIONS, checkpoint)
    events = session_stream(spark, conf, settings.source, landing, settings.max_files_per_trigger)
    closed = sessions(events, triggers, rt.watermark, rt.purchase_events)
    writer = (
        closed.withColumn(BATCH_CLOCK, F.unix_micros(F.current_timestamp()))
        .writeStream.queryName(SESSIONS)
        .outputMode("append")
        .option("checkpointLocation", checkpoint)
        .trigger(**parse_trigger(settings.session_trigger()))
        .foreachBatch(SessionBatch(conf, settings, tables.settings.root))
    )
    log.info(
        "starting query %s: triggers %s, trigger=%s, watermark %s, checkpoint %s",
        SESSIONS,
        ",".join(t.id for t in triggers),
        settings.session_trigger(),
        rt.watermark,
        checkpoint,
    )
    return writer.start()


def wait(queries: list, continuous: bool) -> int:
    """Waits for the queries; 0 when they end (or are stopped by a signal), 1 when one fails."""
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            failed = [q for q in queries if not q.isActive and q.exception() is not None]
            if failed:
                for q in failed:
                    log.error("query %s failed: %s", q.name, q.exception())
                return 1
            if all(not q.isActive for q in queries):
                return 0
            if stop["signal"] is not None:
                log.info("signal %d: stopping the queries after their current micro-batch", stop["signal"])
                for q in queries:
                    q.stop()
                return 0
            for q in queries:
                if q.isActive:
                    q.awaitTermination(POLL_SECONDS)
                    break
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if not continuous:
            for q in queries:
                if q.isActive:
                    q.stop()


def main(argv: list[str] | None = None) -> int:
    from custseg import faults
    from custseg.config import ConfigError, load_config
    from custseg.pii import MissingSaltError, resolve_pii_key
    from custseg.realtime.export import ExportSettings
    from custseg.realtime.microbatch import KEYED_TABLES, StreamSettings, parse_trigger
    from custseg.secrets import SecretError, load_secrets
    from custseg.session import get_session
    from custseg.stages.context import absolute
    from custseg.stages.key_guard import check_pii_key, record_pii_key
    from custseg.storage import StorageSettings, Tables

    args = parse_args(argv)
    setup_logging(args.log_level)
    try:
        load_secrets(args.secrets)
        conf = load_config(args.conf)
        overrides = _overrides(args)
        if overrides:
            conf = conf.with_overrides(overrides)
        settings = StreamSettings.from_config(conf)
        ExportSettings.from_config(conf)  # the hourly export's settings fail the start, not a micro-batch
        salt = resolve_pii_key(conf)
        faults.parse(os.environ.get(faults.ENV, ""))
    except (ConfigError, MissingSaltError, SecretError, faults.FaultSpecError, KeyError) as exc:
        log.error("%s", exc)
        return 2
    spark = get_session(conf, "custseg-stream", remote=args.remote)
    storage = StorageSettings.from_config(conf)
    tables = Tables(spark, StorageSettings(**{**storage.__dict__, "root": absolute(storage.root)}))
    log.info("tables: %s (engine %s)", tables.settings.root, tables.engine_name)
    try:
        # The stream's own tables, and the batch table whose keys it joins: a stream started with
        # another salt than the batch jobs' would resolve nobody (every order an unknown customer).
        known = check_pii_key(tables, salt, [*KEYED_TABLES, "silver.identity_map"])
        record_pii_key(spark, tables, salt, KEYED_TABLES, datetime.now(timezone.utc).date(), known)
    except Exception as exc:  # a key mismatch: nothing written
        log.error("%s", exc)
        return 2
    continuous = "processingTime" in parse_trigger(settings.trigger)
    with faults.stage("stream"):  # CUSTSEG_FAULT=stream:<fault>:<n> counts this process's writes (tests)
        try:
            landing = absolute(conf.paths.landing)
            queries = [start_ingest(spark, conf, settings, tables, landing)]
            session_query = start_sessions(spark, conf, settings, tables, landing)
            if session_query is not None:
                queries.append(session_query)
        except CheckpointMismatch as exc:
            log.error("%s", exc)
            for q in spark.streams.active:
                q.stop()
            return 2
        rc = wait(queries, continuous)
    for q in queries:
        progress = q.lastProgress
        if progress:
            log.info(
                "query %s last progress: batch %s, %s rows in",
                q.name,
                progress.get("batchId"),
                progress.get("numInputRows"),
            )
    return rc


if __name__ == "__main__":
    sys.exit(main())
