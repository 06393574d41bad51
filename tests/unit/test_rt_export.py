"""The hourly activation export of real-time offers (custseg.realtime.export).

A small gold.realtime_offers is planted on each storage engine: two hours of 2026-12-07 with
every decision, rows on the hour boundaries, a row of the same hour on another day, and a
formula-like offer item. The export must hold exactly the planted offered rows of the hour
(checked by offer_id against the plant), in offer_id order, split in parts of the configured
size; its manifest must match the files (rows, bytes, SHA-256) and an independent count of the
table; a re-export must give the same bytes and replace the earlier folder; an hour without
offers gets a header-only part and rows 0. The in-stream check and the command are tested
without a streaming query (a fake clock, a stand-in for the export).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from custseg.config import ConfigError, load_config
from custseg.realtime import export as rt_export
from custseg.realtime.decide import OFFER_SCHEMA
from custseg.realtime.export import (
    EXPORT_COLUMNS,
    ExportSettings,
    closed_hours,
    due_hours,
    export_due,
    export_hour,
    exported_hours,
    hour_folder,
)
from custseg.realtime.export_job import hours, parse_args
from custseg.storage import StorageSettings, Tables

ENGINES = ["delta-rs", "spark-delta"]
NO_JARS = "JVM Delta jars not on the class path (make venv could not resolve them)"
DAY = date(2026, 12, 7)
H14 = datetime(2026, 12, 7, 14)
H15 = datetime(2026, 12, 7, 15)
DECISIONS = ["offered", "control", "capped", "no_consent", "ineligible", "unknown_customer"]


def offer_json(kind: str, discount: float, item: str | None, name: str) -> str:
    return json.dumps({"type": kind, "discount": discount, "item": item, "name": name})


def row(offer_id, decided_at, decision="offered", trigger="post_purchase", channel="email", item="shoes", seg="Loyal"):
    sends = decision in ("offered", "control")
    decided_at = decided_at.replace(tzinfo=UTC)  # an instant whatever the machine's time zone
    return (
        offer_id,
        f"key-{offer_id}",
        trigger,
        "reason",
        "tk",
        decided_at - timedelta(seconds=30),
        decided_at,
        30.0,
        decision,
        offer_json("coupon", 0.15, item, trigger.replace("_", " ")),
        channel if sends else None,
        decided_at + timedelta(hours=2) if sends else None,
        seg,
        "important-retain",
        0.5,
        decision == "control",
        "ingest",
        1,
        decided_at.date(),
    )


def planted() -> tuple[list[tuple], dict[datetime, set[str]]]:
    """Rows of gold.realtime_offers and, per hour, the offer ids its export must hold."""
    rows, truth = [], {H14: set(), H15: set()}
    for i in range(7):  # hour 14: seven offered on two channels and two triggers
        ts = H14 + timedelta(minutes=5 * i + 1)
        trigger = "post_purchase" if i % 2 else "cart_abandon"
        rows.append(row(f"o14-{i}", ts, trigger=trigger, channel="email" if i < 4 else "sms"))
        truth[H14].add(f"o14-{i}")
    for j, decision in enumerate(DECISIONS[1:]):  # and one of every other decision
        rows.append(row(f"x14-{decision}", H14 + timedelta(minutes=10 + j), decision=decision))
    rows.append(row("o14-first", H14))  # the hour's first instant belongs to it
    truth[H14].add("o14-first")
    rows.append(row("o14-last", H15 - timedelta(microseconds=1), item="=HYPERLINK(1)"))
    truth[H14].add("o14-last")
    rows.append(row("o15-first", H15, channel="sms"))  # the next hour's first instant does not
    truth[H15].add("o15-first")
    rows.append(row("o15-1", H15 + timedelta(minutes=20)))
    truth[H15].add("o15-1")
    rows.append(row("x15-control", H15 + timedelta(minutes=21), decision="control"))
    rows.append(row("o13-prev-day", datetime(2026, 12, 6, 14, 30)))  # hour 14, another day
    return rows, truth


@pytest.fixture(
    params=[pytest.param(e, marks=[pytest.mark.spark_delta] if e == "spark-delta" else []) for e in ENGINES]
)
def engine(request, jvm_delta: bool) -> str:
    if request.param == "spark-delta" and not jvm_delta:
        pytest.skip(NO_JARS)
    return request.param


def conf_for(tmp_path: Path, **export):
    overrides = {"paths.exports": str(tmp_path / "exports")}
    overrides.update({f"realtime.export.{k}": v for k, v in export.items()})
    return load_config().with_overrides(overrides)


def read_parts(folder: Path, compressed: bool = False) -> list[list[dict]]:
    """Each part's rows as dicts (the csv module reads them, not Spark)."""
    out = []
    for p in sorted(folder.glob("offers-part-*")):
        data = p.read_bytes()
        text = (gzip.decompress(data) if compressed else data).decode("utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        assert reader.fieldnames == EXPORT_COLUMNS, p
        out.append(list(reader))
    return out


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_hour_exports_exactly_its_offered_rows_and_reexports_identically(spark, engine, tmp_path):
    tables = Tables(spark, StorageSettings(root=str(tmp_path / "tables"), engine=engine))
    rows, truth = planted()
    tables.append(spark.createDataFrame(rows, OFFER_SCHEMA), "gold.realtime_offers", partition_by=["decision_date"])
    conf = conf_for(tmp_path, max_rows_per_file=4)

    doc = export_hour(spark, tables, conf, H14 + timedelta(minutes=17))  # any instant of the hour names it
    folder = tmp_path / "exports" / "realtime" / "2026-12-07" / "14"
    assert doc["path"] == str(folder) and (folder / "_SUCCESS").is_file()
    parts = read_parts(folder)
    got = [r["offer_id"] for part in parts for r in part]
    assert set(got) == truth[H14] and len(got) == len(truth[H14])  # no control, capped, ... nor hour 15
    assert got == sorted(got)  # offer_id order across the parts
    assert [len(p) for p in parts] == [4, 4, 1]  # 9 rows, 4 per part

    by_id = {r["offer_id"]: r for part in parts for r in part}
    first = by_id["o14-first"]
    assert first["customer_key"] == "key-o14-first" and first["channel"] == "email"
    assert (first["offer_type"], float(first["offer_discount"]), first["offer_item"]) == ("coupon", 0.15, "shoes")
    assert first["offer_name"] == "post purchase" and first["trigger"] == "post_purchase"
    assert first["decided_at"] == "2026-12-07T14:00:00Z" and first["expires_at"] == "2026-12-07T16:00:00Z"
    assert (first["segment"], first["value_class"]) == ("Loyal", "important-retain")
    assert by_id["o14-last"]["offer_item"] == "'=HYPERLINK(1)"  # formula escaped

    manifest = json.loads((folder / "manifest.json").read_text())
    independent = (
        tables.read("gold.realtime_offers")
        .where((F.col("decision") == "offered") & (F.date_format("decided_at", "yyyy-MM-dd HH") == "2026-12-07 14"))
        .count()
    )
    assert manifest["rows"] == independent == len(truth[H14]) == sum(f["rows"] for f in manifest["files"])
    assert manifest["hour"] == "2026-12-07T14:00:00Z" and manifest["until"] == "2026-12-07T15:00:00Z"
    assert manifest["rows_by_channel"] == {"email": 6, "sms": 3}
    assert manifest["rows_by_trigger"] == {"cart_abandon": 4, "post_purchase": 5}
    assert [f["file"] for f in manifest["files"]] == [f"offers-part-0000{i}.csv" for i in (1, 2, 3)]
    for f, part in zip(manifest["files"], parts, strict=True):
        data = (folder / f["file"]).read_bytes()
        assert (f["rows"], f["bytes"], f["sha256"]) == (len(part), len(data), hashlib.sha256(data).hexdigest())

    before = folder_bytes(folder)
    (folder / "stray.csv").write_text("left by an earlier export\n")
    export_hour(spark, tables, conf, H14)
    assert folder_bytes(folder) == before  # same bytes, and the earlier folder replaced whole
    assert not any((tmp_path / "exports" / "_staging").iterdir())

    doc15 = export_hour(spark, tables, conf, H15)
    assert {r["offer_id"] for part in read_parts(Path(doc15["path"])) for r in part} == truth[H15]
    assert doc15["rows_by_channel"] == {"sms": 1, "email": 1}


def test_an_hour_without_offers_gets_a_header_only_part_and_rows_0(spark, tmp_path, monkeypatch):
    tables = Tables(spark, StorageSettings(root=str(tmp_path / "tables"), engine="delta-rs"))
    conf = conf_for(tmp_path, compress=True)
    doc = export_hour(spark, tables, conf, H14)  # no table yet
    rows, _ = planted()
    tables.append(spark.createDataFrame(rows, OFFER_SCHEMA), "gold.realtime_offers", partition_by=["decision_date"])
    quiet = export_hour(spark, tables, conf, datetime(2026, 12, 7, 3))  # the table has nothing then
    for d in (doc, quiet):
        folder = Path(d["path"])
        assert sorted(p.name for p in folder.iterdir()) == ["_SUCCESS", "manifest.json", "offers-part-00001.csv.gz"]
        data = (folder / "offers-part-00001.csv.gz").read_bytes()
        assert gzip.decompress(data).decode() == ",".join(EXPORT_COLUMNS) + "\n"
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["rows"] == 0 and manifest["rows_by_channel"] == {} and manifest["gzip"] is True
        assert manifest["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    # The command, end to end on this session: CUSTSEG_HOME holds the tables above and the exports.
    from custseg.realtime import export_job

    monkeypatch.setenv("CUSTSEG_HOME", str(tmp_path))
    argv = ["--hour", "2026-12-07T15", "--set", "realtime.export.compress=true", "--set", "storage.engine=delta-rs"]
    argv.append("--force")  # the hour may not be closed by the machine's clock
    assert export_job.main(argv, spark=spark) == 0
    parts = read_parts(tmp_path / "exports" / "realtime" / "2026-12-07" / "15", compressed=True)
    assert {r["offer_id"] for p in parts for r in p} == {"o15-first", "o15-1"}


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("realtime.export.enabled", 1),
        ("realtime.export.grace_minutes", -1),
        ("realtime.export.max_rows_per_file", 0),
        ("realtime.export.compress", "yes"),
        ("realtime.export.lookback_hours", 0),
    ],
)
def test_a_bad_value_names_its_key_and_file(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        conf = load_config().with_overrides({key: value})
        ExportSettings.from_config(conf)
    assert ".yaml" in str(err.value) or "override" in str(err.value)


def test_defaults_load_from_base_yaml():
    assert ExportSettings.from_config(load_config()) == ExportSettings()


# --- when it runs ----------------------------------------------------------------------------


def test_an_hour_is_due_once_closed_plus_grace():
    s = ExportSettings(grace_minutes=2, lookback_hours=3)
    assert closed_hours(datetime(2026, 12, 7, 15, 1, 59), s)[-1] == datetime(2026, 12, 7, 13)  # 14 still open
    assert closed_hours(datetime(2026, 12, 7, 15, 2), s) == [H14 - timedelta(hours=2), H14 - timedelta(hours=1), H14]
    window = closed_hours(datetime(2026, 12, 7, 15, 2), s)
    assert due_hours(window, set()) == [H14]  # nothing exported yet: from the newest closed hour on
    assert due_hours(window, {H14 - timedelta(hours=2)}) == [H14 - timedelta(hours=1), H14]  # a gap is filled
    assert due_hours(window, set(window)) == []


def test_markers_are_read_from_the_export_folders(tmp_path):
    root = str(tmp_path / "realtime")
    for hour, marker in ((H14, True), (H15, False), (datetime(2026, 12, 6, 23), True)):
        folder = Path(hour_folder(root, hour))
        folder.mkdir(parents=True)
        (folder / "offers-part-00001.csv").write_text("x\n")
        if marker:
            (folder / "_SUCCESS").write_text("")
    assert exported_hours(root, {DAY, date(2026, 12, 6)}) == {H14, datetime(2026, 12, 6, 23)}
    assert exported_hours(root, {date(2026, 12, 8)}) == set()


def test_the_stream_exports_a_closed_hour_once_and_retries_a_failure(tmp_path, monkeypatch, caplog):
    conf = conf_for(tmp_path, lookback_hours=3)
    calls: list[datetime] = []
    fail = {"on": False}

    def fake_export(spark, tables, conf, hour, settings=None):  # stands in for the Spark export
        if fail["on"]:
            raise OSError("disk full")
        calls.append(hour)
        folder = Path(hour_folder(rt_export.export_root(conf), hour))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "_SUCCESS").write_text("")
        return {"rows": 0}

    monkeypatch.setattr(rt_export, "export_hour", fake_export)
    state: dict = {}
    assert export_due(None, None, conf, datetime(2026, 12, 7, 15, 1), state) == [H14 - timedelta(hours=1)]
    assert export_due(None, None, conf, datetime(2026, 12, 7, 15, 1, 30), state) == []  # 14 is still open
    fail["on"] = True
    with caplog.at_level(logging.ERROR, logger="custseg.realtime.export"):
        assert export_due(None, None, conf, datetime(2026, 12, 7, 15, 2), state) == []  # does not raise
        assert export_due(None, None, conf, datetime(2026, 12, 7, 15, 3), state) == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "2026-12-07T14" in errors[0] and "failures since start: 2" in errors[1]
    fail["on"] = False
    assert export_due(None, None, conf, datetime(2026, 12, 7, 15, 4), state) == [H14]  # retried
    assert export_due(None, None, conf, datetime(2026, 12, 7, 15, 5), state) == []
    assert calls == [H14 - timedelta(hours=1), H14]
    assert export_due(None, None, conf_for(tmp_path, enabled=False), datetime(2026, 12, 7, 18), {}) == []


def test_the_command_names_hours_and_refuses_an_open_one(tmp_path, monkeypatch):
    assert hours(parse_args(["--hour", "2026-12-07T14"])) == [H14]
    assert hours(parse_args(["--hour", "2026-12-07T15:00+01:00"])) == [H14]
    assert hours(parse_args(["--from", "2026-12-07T14", "--to", "2026-12-07T15"])) == [H14, H15]
    assert hours(parse_args(["--latest"]), latest=H15) == [H15]
    day = hours(parse_args(["--date", "2026-12-07"]))
    assert len(day) == 24 and day[0] == datetime(2026, 12, 7) and day[-1] == datetime(2026, 12, 7, 23)
    for bad in (["--hour", "2026-12-07T14:30"], ["--from", "2026-12-07T14"], ["--hour", "yesterday"], []):
        with pytest.raises(SystemExit):
            parse_args(bad)
    from custseg.realtime import export_job

    monkeypatch.setenv("CUSTSEG_HOME", str(tmp_path))
    future = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H")
    assert export_job.main(["--hour", future], spark="no session needed") == 2  # refused before any Spark
    from custseg.cli import main as cli_main

    assert cli_main(["stream-export", "--hour", future]) == 2  # the custseg command dispatches to it


def test_erasure_cuts_a_person_from_an_hourly_export_and_its_manifest(tmp_path):
    """forget rewrites the hour's part without the person and the hour's own manifest follows
    (rows, totals by channel and trigger, bytes and SHA-256); no Spark: the files are planted."""
    from types import SimpleNamespace

    from custseg.erasure import Person
    from custseg.erasure_exports import erase_from_exports

    conf = conf_for(tmp_path)
    folder = Path(hour_folder(rt_export.export_root(conf), H14))
    folder.mkdir(parents=True)
    lines = [",".join(EXPORT_COLUMNS)]
    for oid, key, channel, trigger in (
        ("a1", "key-a", "email", "t1"),
        ("b1", "key-b", "sms", "t1"),
        ("a2", "key-a", "sms", "t2"),
    ):
        lines.append(
            f"{oid},{key},{trigger},{channel},coupon,0.1,shoes,n,2026-12-07T16:00:00Z,2026-12-07T14:00:00Z,Loyal,x"
        )
    data = ("\n".join(lines) + "\n").encode()
    (folder / "offers-part-00001.csv").write_bytes(data)
    doc = {
        "export": "realtime_offers",
        "rows": 3,
        "rows_by_channel": {"email": 1, "sms": 2},
        "rows_by_trigger": {"t1": 2, "t2": 1},
        "files": [{"file": "offers-part-00001.csv", "rows": 3, "bytes": len(data), "sha256": "x"}],
    }
    (folder / "manifest.json").write_text(json.dumps(doc))
    person = Person(hashes=None, raw={}, tokens=None, needles=frozenset({"key-a"}))
    assert erase_from_exports(SimpleNamespace(conf=conf), person) == 2
    left = (folder / "offers-part-00001.csv").read_bytes()
    assert [r["offer_id"] for r in read_parts(folder)[0]] == ["b1"]
    after = json.loads((folder / "manifest.json").read_text())
    assert (after["rows"], after["rows_by_channel"], after["rows_by_trigger"]) == (1, {"sms": 1}, {"t1": 1})
    entry = after["files"][0]
    assert (entry["rows"], entry["bytes"], entry["sha256"]) == (1, len(left), hashlib.sha256(left).hexdigest())
    assert after["erasures"][0]["rows_deleted"] == 2 and "key-a" not in json.dumps(after)
