"""Real-time bench: event-to-offer latency of ``custseg stream`` at a stated event rate, and its
``availableNow`` catch-up throughput.

    .venv/bin/python -m bench.stream_latency [--home H] [--rate 500:120,1000:120,5000:30] [--seconds 60]
                                             [--trigger processing:10s] [--backlog-limit N]

``--home``: a home with the batch gold and the landing zone it was built from, made with the
PII salt in ``CUSTSEG_PII_SALT`` (default ``<work>/home``; without gold there, the bench runs
``custseg demo --home`` with that salt first). ``make demo``'s ``data/`` will not do: it is keyed
with the public demo salt, which the stream refuses (a real run), and a stream keyed with any
other salt resolves nobody against it (the stream checks this at start and stops). Its tables are
copied into two scratch homes under ``--work`` (the stream appends to them; the home is never
touched), each with its own checkpoint:

1. Catch-up: the home's events, orders and campaign responses (``--backlog-limit`` records, default
   all) are replayed as fast as possible into a landing folder (a backlog), then
   ``custseg stream --trigger available-now --max-files 100000`` processes it (the backlog in
   one micro-batch per source, as a job catching up after downtime would): records read (meta.stream_progress,
   ingest query) per second of the job's wall clock (session start included) and per second of
   micro-batch work.
2. Latency, once per rate of ``--rate`` (each from a fresh copy of the home):
   ``custseg stream --trigger processing:10s`` runs; once its queries are up,
   ``custseg generate replay --speed X --now --limit N`` emits the first N = rate x ``--seconds``
   records (event-time order; all if fewer) into its landing folder, with X chosen so that the records arrive at ``--rate`` per
   second and each record's event time is the wall-clock time it is sent. When the stream has
   read every replayed file it is stopped (SIGTERM). Per offer of gold.realtime_offers whose
   firing event was replayed: ``latency_s`` as the job records it (decided_at, the micro-batch's
   clock, minus event_ts) and the time until the offer is readable: the timestamp of the commit
   that added it to gold.realtime_offers (its write id in the Delta log names the query and
   micro-batch) minus event_ts; also until its micro-batch finished (``finished_at`` in
   meta.stream_progress: the batch then goes on with bronze, silver, pulse and progress). p50 /
   p95 of each; the target (p95 <= 60 s) is judged on readability. Session triggers (browse / cart abandonment) fire by design
   only after their timeout plus the watermark in event time: they are counted, not timed.

Writes ``bench/results/stream.json`` and ``stream.md`` (commit, machine, load average sampled
during the runs, rate, figures). The machine may be shared with other Spark runs: the load
average is recorded beside the figures for that reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

SOURCES = ("events", "orders", "campaign_responses")
SESSION_KINDS = ("browse_abandonment", "cart_abandonment")


class LoadSampler(threading.Thread):
    """1-minute load average every few seconds while a run lasts."""

    def __init__(self, every: float = 5.0):
        super().__init__(daemon=True)
        self.every, self.samples, self._halt = every, [], threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(os.getloadavg()[0])
            self._halt.wait(self.every)

    def stop(self) -> dict:
        self._halt.set()
        self.join()
        s = self.samples or [os.getloadavg()[0]]
        return {"min": round(min(s), 2), "mean": round(sum(s) / len(s), 2), "max": round(max(s), 2), "samples": len(s)}


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTSEG_CONF", "CUSTSEG_FAULT", "SPARK_REMOTE")}
    env["CUSTSEG_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "lib"), env.get("PYTHONPATH", "")])
    env.setdefault("CUSTSEG_PII_SALT", "bench-salt-for-the-stream-latency-run-0123456789")
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "custseg.cli", *args]


def _stream_args(trigger: str, extra: list[str]) -> list[str]:
    return _cli(
        "stream",
        "--trigger",
        trigger,
        *("--set", "spark.shuffle_partitions=2"),
        *("--set", "spark.driver_memory=2g"),
        *extra,
    )


def _scratch(home: Path, work: Path, name: str) -> Path:
    target = work / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copytree(home / "tables", target / "tables", ignore=shutil.ignore_patterns("_checkpoints"))
    for rt in ("bronze", "silver", "gold", "meta"):  # no stream output from an earlier stream run
        for t in (target / "tables" / rt).glob("*_rt"):
            shutil.rmtree(t)
    for t in ("gold/realtime_offers", "gold/campaign_pulse", "meta/stream_progress"):
        shutil.rmtree(target / "tables" / t, ignore_errors=True)
    return target


def _read(home: Path, name: str):
    from custseg.storage.arrow_read import read_pandas

    layer, table = name.split(".")
    return read_pandas(home / "tables" / layer / table)


def _batch_seconds(p, query: str):
    """Seconds of each micro-batch of a query: its clock (start) to its progress rows' finish."""
    q = p[p["query"] == query]
    g = q.groupby("batch_id")
    return (g["finished_at"].max() - g["batch_ts"].min()).dt.total_seconds()


def catch_up(home: Path, work: Path, limit: int, log) -> dict:
    scratch = _scratch(home, work, "catchup")
    env = _env(scratch)
    t0 = time.monotonic()
    subprocess.run(
        _cli("generate", "replay", "--from", str(home / "landing"), "--to", str(scratch / "landing"))
        + ["--rate", "0", "--tick", "5"]
        + (["--limit", str(limit)] if limit else []),
        env=env,
        cwd=scratch,
        check=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    replay_s = time.monotonic() - t0
    t0 = time.monotonic()
    rc = subprocess.run(
        _stream_args("available-now", ["--max-files", "100000"]),
        env=env,
        cwd=scratch,
        stdout=log,
        stderr=subprocess.STDOUT,
    ).returncode
    wall = time.monotonic() - t0
    if rc != 0:
        raise SystemExit(f"catch-up stream failed (rc {rc}): see the log")
    p = _read(scratch, "meta.stream_progress")
    ing = p[p["query"] == "ingest"]
    records = int(ing["records_read"].sum())
    # first micro-batch's clock to the last one's end (a source's `seconds` leaves out decisions and pulse)
    batch_s = (ing["finished_at"].max() - ing["batch_ts"].min()).total_seconds()
    return {
        "backlog_records": records,
        "micro_batches": int(ing["batch_id"].nunique()),
        "replay_into_landing_s": round(replay_s, 1),
        "job_wall_s": round(wall, 1),
        "records_per_s_wall": round(records / wall, 1),
        "micro_batches_s": round(batch_s, 1),
        "records_per_s_batches": round(records / batch_s, 1) if batch_s else None,
    }


def _wait_for(path: Path, text: str, proc, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the stream ended (rc {proc.returncode}) before {text!r}: see the log")
        if text in path.read_text(errors="replace"):
            return
        time.sleep(1)
    raise SystemExit(f"no {text!r} within {timeout:.0f}s: see the log")


def latency(
    home: Path, work: Path, rate: float, seconds: float, trigger: str, log, log_path: Path, max_files: int = 100
) -> dict:
    scratch = _scratch(home, work, f"latency-{rate:g}")
    env = _env(scratch)
    from custseg.datagen.replay import load_records

    # the first rate x seconds records in event-time order (all, if fewer): replay --limit
    records = [r.at for r in load_records(home / "landing")]
    n = min(len(records), int(rate * seconds))
    dated = [t for t in records[:n] if t.year > 2000]  # a record with no readable time sorts first
    span_s = (dated[-1] - dated[0]).total_seconds()
    speed = rate * span_s / n  # event time runs this much faster than the wall clock
    stream_log = work / f"latency-{rate:g}-stream.log"
    with stream_log.open("w") as out:
        # --max-files: what a micro-batch may take per source. The replay lands one file per source
        # per second, so the default 10 is exactly a 10 s trigger's worth: any micro-batch longer
        # than the trigger would leave files behind and the backlog (and latency) would only grow.
        args = _stream_args(trigger, ["--max-files", str(max_files)])
        proc = subprocess.Popen(args, env=env, cwd=scratch, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_for(stream_log, "starting query sessions", proc, 300)
            time.sleep(15)  # the first (empty) micro-batches are done: the session is warm
            started = datetime.now(timezone.utc).replace(tzinfo=None)
            t0 = time.monotonic()
            subprocess.run(
                _cli("generate", "replay", "--from", str(home / "landing"), "--to", str(scratch / "landing"))
                + ["--speed", f"{speed:.3f}", "--now", "--tick", "1", "--limit", str(n)],
                env=env,
                cwd=scratch,
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            replay_s = time.monotonic() - t0
            files = sum(1 for s in SOURCES for _ in (scratch / "landing" / s).glob("*/replay-*"))
            # wait until the ingest query has read every replayed file (or 10 minutes)
            end = time.monotonic() + 600
            while time.monotonic() < end and proc.poll() is None:
                if (scratch / "tables" / "meta" / "stream_progress").exists():
                    p = _read(scratch, "meta.stream_progress")
                    seen = int(p.loc[p["query"] == "ingest", "files"].fillna(0).sum())
                    if seen >= files:
                        break
                time.sleep(5)
            drained_s = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(180)
                except subprocess.TimeoutExpired:
                    proc.kill()
    log.write(stream_log.read_text(errors="replace"))
    out = summarize(scratch, started, speed, n, replay_s)
    out.update(
        {
            "replayed_event_time_span": f"{dated[0]}..{dated[-1]}",
            "files_replayed": files,
            "drained_after_s": round(drained_s, 1),
        }
    )
    return out


def _utc(values):
    """Timestamps as naive UTC (deltalake gives tz-aware UTC; the job's clocks are naive UTC)."""
    import pandas as pd

    return pd.to_datetime(values, utc=True).dt.tz_localize(None)


def offer_commits(table: Path):
    """(query, batch_id, committed_at) of every commit of gold.realtime_offers, from its Delta log:
    the write id (``txn`` action: app id ``custseg/stream/<query>/gold.realtime_offers``, version =
    batch id) and the commit's own timestamp, i.e. when the batch's offers became readable. Both
    engines write both actions."""
    import pandas as pd

    rows = []
    for commit in sorted((table / "_delta_log").glob("*.json")):
        txn, ts = None, None
        for line in commit.read_text().splitlines():
            action = json.loads(line) if line.strip() else {}
            if "txn" in action and action["txn"]["appId"].endswith("/gold.realtime_offers"):
                txn = action["txn"]
            if "commitInfo" in action:
                ts = action["commitInfo"].get("timestamp")
        if txn is not None and ts is not None:
            rows.append((txn["appId"].split("/")[2], int(txn["version"]), pd.Timestamp(int(ts), unit="ms")))
    return pd.DataFrame(rows, columns=["query", "batch_id", "committed_at"])


def summarize(scratch: Path, started: datetime, speed: float, n: int, replay_s: float) -> dict:
    """Latency figures from the latency run's tables (offers whose firing event was replayed)."""
    import pandas as pd

    from custseg.config import load_config
    from custseg.realtime.triggers import load_triggers

    kinds = {t.id: t.kind for t in load_triggers(load_config("local.yaml"))}
    offers = _read(scratch, "gold.realtime_offers") if (scratch / "tables/gold/realtime_offers").exists() else None
    p = _read(scratch, "meta.stream_progress")
    ingest = p[p["query"] == "ingest"]
    out = {
        "replay_started": started.isoformat(sep=" ", timespec="seconds"),
        "speed_x": round(speed, 1),
        "records_replayed": n,
        "records_read_by_stream": int(ingest["records_read"].sum()),
        "files_read_by_stream": int(ingest["files"].fillna(0).sum()),
        "replay_s": round(replay_s, 1),
        "rate_measured_records_per_s": round(n / replay_s, 1),
        "micro_batches": int(ingest["batch_id"].nunique()),
        "micro_batch_s_p50": round(float(_batch_seconds(p, "ingest").median()), 1),
        "micro_batch_s_max": round(float(_batch_seconds(p, "ingest").max()), 1),
        "last_micro_batch_done_after_replay_start_s": round(
            (_utc(ingest["finished_at"]).max() - pd.Timestamp(started)).total_seconds(), 1
        ),
    }
    if offers is None or offers.empty:
        out["offers"] = 0
        return out
    offers = offers[_utc(offers["event_ts"]) >= pd.Timestamp(started)]
    offers = offers.assign(kind=offers["trigger"].map(kinds))
    timed = offers[~offers["kind"].isin(SESSION_KINDS)]
    # A planted future timestamp is replayed with its neighbours (datagen.replay): its "latency"
    # is negative and says nothing of the stream. Left out, and counted.
    future = timed["latency_s"] < 0
    timed = timed[~future]
    done = p.groupby(["query", "batch_id"])["finished_at"].max().rename("finished_at").reset_index()
    timed = timed.merge(done, on=["query", "batch_id"], how="left")
    timed = timed.merge(offer_commits(scratch / "tables/gold/realtime_offers"), on=["query", "batch_id"], how="left")
    readable = (_utc(timed["committed_at"]) - _utc(timed["event_ts"])).dt.total_seconds()
    finished = (_utc(timed["finished_at"]) - _utc(timed["event_ts"])).dt.total_seconds()
    out.update(
        {
            "future_event_ts_left_out": int(future.sum()),
            "latency_s_batch_finished_p50": round(float(finished.quantile(0.5)), 1),
            "latency_s_batch_finished_p95": round(float(finished.quantile(0.95)), 1),
        }
    )
    out.update(
        {
            "offers": int(len(offers)),
            "by_trigger": {k: int(v) for k, v in offers.groupby("trigger").size().items()},
            "by_decision": {k: int(v) for k, v in offers.groupby("decision").size().items()},
            "timed_decisions": int(len(timed)),
            "session_trigger_decisions": int(len(offers) - len(timed)),
            "latency_s_recorded_p50": round(float(timed["latency_s"].quantile(0.5)), 1),
            "latency_s_recorded_p95": round(float(timed["latency_s"].quantile(0.95)), 1),
            # "visible": readable, once the offer's commit is in the table's log
            "latency_s_visible_p50": round(float(readable.quantile(0.5)), 1),
            "latency_s_visible_p95": round(float(readable.quantile(0.95)), 1),
            "latency_s_visible_max": round(float(readable.max()), 1),
        }
    )
    return out


TARGET_P95_S = 60


def _met(p95) -> bool:
    return p95 is not None and p95 <= TARGET_P95_S


def rates(text: str, seconds: float) -> list[tuple[float, float]]:
    """``500:120,5000:30`` -> [(500.0, 120.0), (5000.0, 30.0)]; a rate without seconds gets ``seconds``."""
    out = []
    for part in str(text).split(","):
        rate, _, secs = part.strip().partition(":")
        out.append((float(rate), float(secs) if secs else float(seconds)))
    return out


def _clean() -> bool:
    try:
        return not subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return False


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, text=True, capture_output=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown(r: dict) -> str:
    cu, runs = r["catch_up"], r["runs"]

    def each(fn) -> str:
        return " | ".join(str(fn(run["latency"], run)) for run in runs)

    def load(x: dict) -> str:
        return "{min} / {mean} / {max}".format(**x)

    rows = [
        (
            "event rate asked (records/s) / seconds of replay",
            each(lambda lat, run: f"{run['rate']:g} / {run['seconds']:g}"),
        ),
        ("event rate measured (records/s)", each(lambda lat, run: lat.get("rate_measured_records_per_s"))),
        (
            "records replayed, micro-batches",
            each(lambda lat, run: f"{lat.get('records_replayed')}, {lat.get('micro_batches')}"),
        ),
        (
            "micro-batch seconds p50 / max",
            each(lambda lat, run: f"{lat.get('micro_batch_s_p50')} / {lat.get('micro_batch_s_max')}"),
        ),
        ("decisions timed (stateless triggers)", each(lambda lat, run: lat.get("timed_decisions"))),
        (
            "latency_s as recorded (decided_at - event_ts) p50 / p95",
            each(lambda lat, run: f"{lat.get('latency_s_recorded_p50')} / {lat.get('latency_s_recorded_p95')} s"),
        ),
        (
            "**event to offer readable** (its commit in the table's log) p50 / p95 (max)",
            each(
                lambda lat, run: (
                    f"**{lat.get('latency_s_visible_p50')} / {lat.get('latency_s_visible_p95')}** "
                    f"({lat.get('latency_s_visible_max')}) s"
                )
            ),
        ),
        (
            "event to its micro-batch finished p50 / p95",
            each(
                lambda lat, run: (
                    f"{lat.get('latency_s_batch_finished_p50')} / {lat.get('latency_s_batch_finished_p95')} s"
                )
            ),
        ),
        ("offers left out: planted future event time", each(lambda lat, run: lat.get("future_event_ts_left_out"))),
        (f"target p95 <= {r['target_p95_s']} s", each(lambda lat, run: "met" if run["target_met"] else "not met")),
        ("load average (1 min) min / mean / max", each(lambda lat, run: load(run["load"]))),
    ]
    lines = [
        "# custseg stream: latency and catch-up",
        "",
        f"Measured {r['measured_at']} by `python -m bench.stream_latency` (bench/stream_latency.py) at commit "
        f"`{r['commit'][:10]}`{'' if r.get('tree_clean') else ' (with uncommitted changes)'}; "
        f"{r['machine']['cores']} cores, {r['machine']['platform']}; trigger {r['trigger']}, at most "
        f"{r.get('max_files_per_trigger')} files per source per micro-batch; one latency run per rate, "
        "each from a fresh copy of the home and a new checkpoint.",
        "",
        "| figure | " + " | ".join(f"{run['rate']:g} records/s" for run in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += [
        "",
        f"availableNow catch-up: {cu['backlog_records']} records in {cu['job_wall_s']} s: "
        f"{cu['records_per_s_wall']} records/s wall (session start included), {cu['records_per_s_batches']} "
        f"records/s of micro-batch time, {cu['micro_batches']} micro-batches; load {load(r['load_catch_up'])}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", default="", help="a home built with $CUSTSEG_PII_SALT (default <work>/home)")
    ap.add_argument("--customers", type=int, default=5000, help="for custseg demo when --home has no gold")
    ap.add_argument(
        "--rate",
        default="500:120,1000:120,5000:30",
        help="records per second to replay, each a latency run of its own: RATE[:SECONDS],...",
    )
    ap.add_argument("--seconds", type=float, default=60.0, help="how long a replay lasts where --rate gives no seconds")
    ap.add_argument("--trigger", default="processing:10s")
    ap.add_argument("--max-files", type=int, default=100, help="stream.max_files_per_trigger of the latency run")
    ap.add_argument("--backlog-limit", type=int, default=0, help="records of the catch-up backlog (0: all)")
    ap.add_argument("--work", default="/tmp/custseg-bench-stream")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "stream.json"))
    args = ap.parse_args(argv)
    work = Path(args.work)
    home = Path(args.home or work / "home").resolve()
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "bench.log"
    with log_path.open("w") as log:
        if not (home / "tables" / "gold" / "customer_features").exists():
            subprocess.run(
                _cli("demo", "--home", str(home), "--customers", str(args.customers), "--no-ui"),
                env=_env(home),
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        sampler = LoadSampler()
        sampler.start()
        cu = catch_up(home, work, args.backlog_limit, log)
        load_cu = sampler.stop()
        print("catch-up:", json.dumps(cu), flush=True)
        runs = []
        for rate, seconds in rates(args.rate, args.seconds):
            sampler = LoadSampler()
            sampler.start()
            lat = latency(home, work, rate, seconds, args.trigger, log, log_path, args.max_files)
            load = sampler.stop()
            p95 = lat.get("latency_s_visible_p95")
            runs.append({"rate": rate, "seconds": seconds, "latency": lat, "load": load, "target_met": _met(p95)})
            print(f"latency at {rate:g} records/s:", json.dumps(lat), flush=True)
    result = {
        "commit": _commit(),
        "tree_clean": _clean(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "home": str(home),
        "trigger": args.trigger,
        "max_files_per_trigger": args.max_files,
        "runs": runs,
        "catch_up": cu,
        "load_catch_up": load_cu,
        "target_p95_s": TARGET_P95_S,
        "target_met_at_rates": [r["rate"] for r in runs if r["target_met"]],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
