"""``stream.*`` settings and ``custseg stream`` arguments: bad values fail at start, naming the key."""

from __future__ import annotations

import pytest

from custseg.config import ConfigError, load_config
from custseg.realtime.job import _overrides, has_commits, parse_args
from custseg.realtime.microbatch import BatchInfo, StreamSettings, clock_of, parse_trigger


def test_triggers_parse_to_spark_trigger_arguments():
    assert parse_trigger("processing:10s") == {"processingTime": "10 seconds"}
    assert parse_trigger("processing:500ms") == {"processingTime": "500 milliseconds"}
    assert parse_trigger("processing:2m") == {"processingTime": "2 minutes"}
    assert parse_trigger("available-now") == {"availableNow": True}
    assert parse_trigger("once") == {"once": True}
    for bad in ("processing:0s", "processing", "every 10s", "continuous"):
        with pytest.raises(ValueError, match="trigger must be"):
            parse_trigger(bad)


def test_defaults_load_from_base_yaml():
    s = StreamSettings.from_config(load_config())
    assert s.source == "files" and s.trigger == "processing:10s" and s.max_files_per_trigger == 10
    assert s.sources == ("events", "orders", "campaign_responses")
    assert s.checkpoint("/h/tables", "ingest") == "/h/tables/meta/_checkpoints/ingest"
    assert StreamSettings(checkpoint_location="/ck/").checkpoint("/t", "ingest") == "/ck/ingest"


def test_the_sessions_query_runs_on_its_own_slower_clock_only_beside_a_processing_trigger():
    s = StreamSettings.from_config(load_config())
    assert s.session_trigger() == "processing:60s"  # base.yaml
    assert StreamSettings(trigger="processing:5s", sessions_trigger="").session_trigger() == "processing:5s"
    for ending in ("available-now", "once"):  # both queries end: the same trigger
        assert StreamSettings(trigger=ending, sessions_trigger="processing:60s").session_trigger() == ending


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stream.trigger", "every minute"),
        ("stream.source", "socket"),
        ("stream.sources", ["events", "crm_customers"]),
        ("stream.max_files_per_trigger", 0),
        ("stream.on_unknown_fields", "ignore"),
        ("stream.dedup_horizon_days", -1),
        ("stream.reference_refresh_minutes", -5),
        ("stream.sessions_trigger", "available-now"),
        ("stream.sessions_trigger", "every minute"),
    ],
)
def test_a_bad_value_names_its_key_and_file(key, value):
    conf = load_config().with_overrides({key: value})
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        StreamSettings.from_config(conf)
    assert "base.yaml" in str(err.value) or "local.yaml" in str(err.value)


def test_command_line_flags_become_stream_overrides():
    args = parse_args(
        ["--trigger", "available-now", "--sources", "events, orders", "--max-files", "1", "--set", "a.b=2"]
    )
    assert _overrides(args) == {
        "a.b": 2,
        "stream.trigger": "available-now",
        "stream.sources": ["events", "orders"],
        "stream.max_files_per_trigger": 1,
    }


def test_write_ids_are_per_query_table_and_batch():
    b = BatchInfo("ingest", 7, clock_of(1_800_000_000_000_000))
    assert b.txn("bronze.events_rt").app_id == "custseg/stream/ingest/bronze.events_rt"
    assert b.txn("bronze.events_rt").version == 7 and b.tag == "stream/ingest/7"
    assert b.clock.isoformat() == "2027-01-15T08:00:00"


def test_a_checkpoint_without_commits_is_new(tmp_path):
    assert not has_commits(str(tmp_path / "none"))
    (tmp_path / "ck" / "commits").mkdir(parents=True)
    assert not has_commits(str(tmp_path / "ck"))
    (tmp_path / "ck" / "commits" / "0").write_text("v1")
    assert has_commits(str(tmp_path / "ck"))


def test_reference_tables_are_read_once_per_refresh_and_again_on_a_new_day(monkeypatch):
    """The batch tables a micro-batch joins are loaded once, kept until the refresh interval has
    passed or the micro-batch day changes, then loaded again; 0 loads them every micro-batch."""
    import datetime as dt

    import custseg.realtime.microbatch as mb

    clock = {"now": 1000.0}
    monkeypatch.setattr(mb.time, "monotonic", lambda: clock["now"])
    loads = []

    def load():
        loads.append(clock["now"])
        return f"gold#{len(loads)}"

    batch = mb.IngestBatch(load_config(), StreamSettings(reference_refresh_minutes=10), "/t")
    day = dt.date(2026, 12, 7)
    assert batch.reference("gold", day, load) == "gold#1"
    clock["now"] += 599
    assert batch.reference("gold", day, load) == "gold#1"  # inside the 10 minutes: cached
    assert batch.reference("identity_map", day, load) == "gold#2"  # another table: its own entry
    clock["now"] += 2
    assert batch.reference("gold", day, load) == "gold#3"  # 10 minutes passed: read again
    assert batch.reference("gold", day + dt.timedelta(days=1), load) == "gold#4"  # a new day: read again
    assert len(loads) == 4

    every = mb.IngestBatch(load_config(), StreamSettings(reference_refresh_minutes=0), "/t")
    assert [every.reference("gold", day, load) for _ in range(2)] == ["gold#5", "gold#6"]
