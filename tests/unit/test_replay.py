"""`custseg generate replay` without Spark: event-time order, time shifting, pacing, landing files."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from custseg.datagen.replay import LandingSink, as_json, load_records, replay, run_replay

T0 = datetime(2026, 6, 30, 9, 0, 0)


def _ts(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")


def _event(eid: str, minutes: float | None, customer: str = "C1", ts: str | None = None) -> str:
    return json.dumps({"event_id": eid, "ts": ts if ts is not None else _ts(minutes), "customer_id": customer})


@pytest.fixture()
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    ev = root / "events" / "2026-06-30"
    ev.mkdir(parents=True)
    # Out of time order in the file; e3 has a bad timestamp, e5 a planted far-future one.
    (ev / "part-00000.jsonl").write_text(
        "\n".join(
            [
                _event("e2", 20),
                _event("e3", None, ts="31/02/2026"),
                _event("e1", 5, "C2"),
                _event("e5", None, ts="2029-01-01 00:00:00"),
                _event("e4", 40),
            ]
        )
        + "\n"
    )
    (ev / ".inflight.jsonl").write_text(_event("hidden", 1) + "\n")  # never read
    od = root / "orders" / "2026-06-30"
    od.mkdir(parents=True)
    (od / "part-00000.jsonl").write_text(
        '{"order_id":"o1","order_ts":"' + _ts(30) + '","customer_id":"C1","items":[{"unit_price":1.50}]}\n'
    )
    cr = root / "campaign_responses" / "2026-06-30"
    cr.mkdir(parents=True)
    (cr / "part-00000.csv").write_text(
        "campaign_id,customer_id,channel,group,sent_ts,opened_ts,clicked_ts,converted_ts,revenue\n"
        f"CMP1,C1,email,treatment,{_ts(0)},,,{_ts(35)},9.90\n"  # known once converted: at 35
        f"CMP1,C2,email,control,{_ts(1)},,,,0.00\n"
    )
    return root


def test_records_in_event_time_order_with_bad_ones_beside_their_neighbours(landing):
    records = load_records(landing)
    ids = [r.text[:7] if r.fmt == "csv" else json.loads(r.text).get("event_id", "o1") for r in records]
    # e3 (unparseable) goes with e2 before it in its file, e5 (far future) with e1
    assert ids == ["CMP1,C2", "e1", "e5", "e2", "e3", "o1", "CMP1,C1", "e4"]
    assert records[0].at == T0 + timedelta(minutes=1)
    assert len(records) == 8  # the dot file is not read


def test_now_shifts_times_keeps_gaps_and_bad_values(landing):
    records = load_records(landing, ["events", "orders"])
    sent: list = []
    wall = datetime(2026, 12, 7, 12, 0, 0)
    replay(records, lambda tick, batch: sent.extend(batch), rate=0, now=True, wall=lambda: wall)
    texts = {json.loads(t).get("event_id", "o1"): json.loads(t) for _, t, _ in sent}
    shift = wall - (T0 + timedelta(minutes=5))  # the first record (e1 at 5 min) happens at `wall`
    assert texts["e1"]["ts"] == "2026-12-07 12:00:00"
    assert texts["e2"]["ts"] == (T0 + timedelta(minutes=20) + shift).strftime("%Y-%m-%d %H:%M:%S")
    assert texts["o1"]["order_ts"] == "2026-12-07 12:25:00"
    assert texts["e3"]["ts"] == "31/02/2026"  # bad values stay bad
    assert texts["e5"]["ts"] == (datetime(2029, 1, 1) + shift).strftime("%Y-%m-%d %H:%M:%S")  # still far ahead
    assert texts["o1"]["items"] == [{"unit_price": 1.5}]
    assert '"unit_price":1.50' in next(t for r, t, _ in sent if r.source == "orders")  # other bytes untouched


def test_rate_pacing_in_ticks(landing):
    records = load_records(landing)
    clock = {"t": 0.0}
    sleeps: list[float] = []
    ticks_seen: list[int] = []

    def sleep(s):
        sleeps.append(s)
        clock["t"] += s

    ticks, _ = replay(
        records,
        lambda tick, batch: ticks_seen.append(len(batch)),
        rate=3,
        tick=1.0,
        clock=lambda: clock["t"],
        sleep=sleep,
    )
    assert ticks_seen == [3, 3, 2] and ticks == 3
    assert sleeps == [1.0, 1.0]  # waits between ticks, not after the last


def test_speed_pacing_follows_event_time(landing):
    records = load_records(landing, ["events"])  # at 5, 5 (e5), 20, 20 (e3), 40 minutes
    got: list[tuple[int, int]] = []
    clock = {"t": 0.0}
    replay(
        records,
        lambda tick, batch: got.append((tick, len(batch))),
        speed=600,  # 10 minutes of event time per second
        tick=1.0,
        clock=lambda: clock["t"],
        sleep=lambda s: clock.__setitem__("t", clock["t"] + s),
    )
    # first record at 5 min: tick 1 covers [5, 15) min, tick 2 [15, 25), tick 4 [35, 45)
    assert got == [(1, 2), (2, 2), (4, 1)]


def test_landing_sink_writes_small_files_per_tick(landing, tmp_path):
    out = tmp_path / "out"
    summary = run_replay(landing, str(out), rate=4, tick=0.01)
    assert summary.records == {"events": 5, "orders": 1, "campaign_responses": 2}
    files = sorted(out.rglob("*"))
    assert not [f for f in files if f.name.startswith(".")]
    data = [f for f in files if f.is_file()]
    assert len(data) >= 3 and all(f.parent.name == "2026-06-30" for f in data)
    ids = []
    for f in data:
        if f.suffix == ".csv":
            rows = list(csv.DictReader(f.open()))
            ids += [r["customer_id"] for r in rows]
        else:
            ids += [json.loads(line).get("event_id", "o") for line in f.read_text().splitlines()]
    assert sorted(ids) == sorted(["e1", "e2", "e3", "e4", "e5", "o", "C1", "C2"])


def test_landing_sink_dates_folders_by_shifted_time(tmp_path, landing):
    records = load_records(landing, ["events"])
    sink = LandingSink(tmp_path / "o", "r1")
    replay(records, sink.send, rate=0, now=True, wall=lambda: datetime(2026, 12, 7, 23, 50, 0))
    days = sorted(p.name for p in (tmp_path / "o" / "events").iterdir())
    assert days == ["2026-12-07", "2026-12-08"]  # 23:50 + 35 minutes crosses midnight


def test_csv_row_as_json_object(landing):
    rec = next(r for r in load_records(landing, ["campaign_responses"]) if "control" in r.text)
    assert json.loads(as_json(rec, rec.text)) == {
        "campaign_id": "CMP1",
        "customer_id": "C2",
        "channel": "email",
        "group": "control",
        "sent_ts": _ts(1),
        "opened_ts": None,
        "clicked_ts": None,
        "converted_ts": None,
        "revenue": "0.00",
    }


def test_unknown_source_and_empty_landing_fail(tmp_path):
    with pytest.raises(ValueError, match="cannot replay source 'crm_customers'"):
        load_records(tmp_path, ["crm_customers"])
    with pytest.raises(ValueError, match="nothing to replay"):
        run_replay(tmp_path, str(tmp_path / "o"))


def test_cli_custseg_generate_replay(landing, tmp_path):
    from custseg.cli import main

    out = tmp_path / "cli-out"
    rc = main(["generate", "replay", "--from", str(landing), "--to", str(out), "--rate", "0", "--sources", "orders"])
    assert rc == 0
    files = [f for f in out.rglob("*") if f.is_file()]
    assert [f.relative_to(out).parts[:2] for f in files] == [("orders", "2026-06-30")]
    assert json.loads(files[0].read_text())["order_id"] == "o1"
