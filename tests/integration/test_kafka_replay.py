"""Kafka end to end on a real broker (tests/kafka_broker.py): the broker's life cycle, replayed
records read back by ``read_kafka`` exactly once with their offsets, and ``write_offers_kafka``.

Truth is planted: a landing zone written here with known ids, customers and times."""

from __future__ import annotations

import json
import re
import socket
import tempfile
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ci
from tests.kafka_broker import KafkaBroker, broker_jars, create_topics

pytestmark = pytest.mark.slow

N_EVENTS = 40
N_RESPONSES = 5
T0 = datetime(2026, 6, 30, 9, 0, 0)


@pytest.fixture(scope="module")
def kafka_spark(spark, kafka_broker):
    """The test session, which must have Spark's Kafka connector (make venv puts it on the class path)."""
    from custseg.session import kafka_connector_jars

    if not kafka_connector_jars():
        why = "no Spark Kafka connector jars (make venv resolves them into <venv>/spark-kafka-jars)"
        if ci():
            pytest.fail(why)
        pytest.skip(why)
    return spark


def _conf(bootstrap: str):
    from custseg.config import load_config

    run = uuid.uuid4().hex[:8]
    return load_config().with_overrides(
        {
            "stream.kafka.bootstrap_servers": bootstrap,
            "stream.kafka.topics.events": f"t{run}.events",
            "stream.kafka.topics.orders": f"t{run}.orders",
            "stream.kafka.topics.campaign_responses": f"t{run}.responses",
            "stream.kafka.activation_topic": f"t{run}.offers",
        }
    )


def plant_landing(root: Path) -> dict[str, dict]:
    """N_EVENTS events of 4 customers, shuffled over two files and two days, and N_RESPONSES
    response rows (CSV) with empty cells; returns the planted events by id."""
    events = {}
    for i in range(N_EVENTS):
        eid = f"EPLANT{i:04d}"
        events[eid] = {
            "event_id": eid,
            "ts": (T0 + timedelta(minutes=7 * i)).strftime("%Y-%m-%d %H:%M:%S"),
            "device_id": f"D{i % 4}",
            "customer_id": f"C{i % 4:07d}",
            "session_id": f"S{i % 4}",
            "event_type": "page_view",
            "sku": None,
            "category": "shoes",
            "page": "/",
            "duration_ms": 1000 + i,
            "utm_source": None,
            "utm_medium": None,
            "utm_campaign": None,
        }
    ids = list(events)
    # Files hold records out of time order (grouped by customer, as the generator writes them).
    for day, part in (("2026-06-30", ids[::2]), ("2026-07-01", ids[1::2])):
        folder = root / "events" / day
        folder.mkdir(parents=True)
        rows = sorted(part, key=lambda e: (events[e]["customer_id"], e))
        (folder / "part-00000.jsonl").write_text("".join(json.dumps(events[e]) + "\n" for e in rows))
    folder = root / "campaign_responses" / "2026-06-30"
    folder.mkdir(parents=True)
    lines = ["campaign_id,customer_id,channel,group,sent_ts,opened_ts,clicked_ts,converted_ts,revenue"]
    for i in range(N_RESPONSES):
        sent = (T0 + timedelta(minutes=30 * i)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"CMP01,C{i:07d},email,treatment,{sent},,,,0.00")
    (folder / "part-00000.csv").write_text("\n".join(lines) + "\n")
    return events


def test_broker_starts_accepts_and_stops():
    jars = broker_jars()
    if jars is None:
        if ci():
            pytest.fail("no Kafka broker jars")
        pytest.skip("no Kafka broker jars (make venv)")
    home = Path(tempfile.mkdtemp(prefix="custseg-kafka-life-"))
    broker = KafkaBroker(jars, home)
    broker.start()
    try:
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
            pass
        assert broker.process.poll() is None
    finally:
        broker.stop()
    assert broker.process.poll() is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", broker.port), timeout=2).close()


def _collect(spark, df, checkpoint: Path) -> list:
    rows: list = []
    query = (
        df.writeStream.trigger(availableNow=True)
        .option("checkpointLocation", str(checkpoint))
        .foreachBatch(lambda batch, _id: rows.extend(batch.collect()))
        .start()
    )
    query.awaitTermination(180)
    assert query.exception() is None
    return rows


def test_replay_into_kafka_read_exactly_once(kafka_spark, kafka_broker, tmp_path):
    from custseg.datagen.replay import run_replay
    from custseg.realtime.kafka import read_kafka

    conf = _conf(kafka_broker)
    topics = conf.get_path("stream.kafka.topics")
    create_topics(kafka_broker, topics["events"], topics["campaign_responses"])
    planted = plant_landing(tmp_path / "landing")
    summary = run_replay(
        tmp_path / "landing",
        "kafka",
        sources=["events", "campaign_responses"],
        rate=20,  # 40 + 5 records in ticks of 10 (tick 0.5 s): several Kafka writes
        tick=0.5,
        conf=conf,
        spark=kafka_spark,
    )
    assert summary.records == {"events": N_EVENTS, "campaign_responses": N_RESPONSES}
    assert summary.ticks >= 4

    events = _collect(kafka_spark, read_kafka(kafka_spark, conf, "events"), tmp_path / "ck-events")
    assert sorted(r.raw_record and json.loads(r.raw_record)["event_id"] for r in events) == sorted(planted)
    topic = conf.get_path("stream.kafka.topics.events")
    by_partition = defaultdict(list)
    for r in events:
        m = re.fullmatch(rf"kafka:{re.escape(topic)}/(\d+)/(\d+)", r._source_file)
        assert m, r._source_file
        by_partition[int(m.group(1))].append((int(m.group(2)), json.loads(r.raw_record)))
        assert r._kafka_ts is not None
    for offsets in by_partition.values():  # every offset once, none missing
        assert sorted(o for o, _ in offsets) == list(range(len(offsets)))
    # Sent in event-time order: one customer's events (one key, one partition) in offset order
    # are in time order, although the landing files held them grouped by customer.
    per_customer = defaultdict(list)
    for offsets in by_partition.values():
        for _, rec in sorted(offsets, key=lambda x: x[0]):
            per_customer[rec["customer_id"]].append(rec["ts"])
    assert all(ts == sorted(ts) for ts in per_customer.values())
    assert len(per_customer) == 4

    # A second availableNow run over the same checkpoint reads nothing again.
    assert _collect(kafka_spark, read_kafka(kafka_spark, conf, "events"), tmp_path / "ck-events") == []

    responses = _collect(kafka_spark, read_kafka(kafka_spark, conf, "campaign_responses"), tmp_path / "ck-resp")
    values = sorted((json.loads(r.raw_record) for r in responses), key=lambda v: v["customer_id"])
    assert [v["customer_id"] for v in values] == [f"C{i:07d}" for i in range(N_RESPONSES)]
    assert values[0]["opened_ts"] is None and values[0]["revenue"] == "0.00" and values[0]["group"] == "treatment"


def test_write_offers_kafka_sends_offered_only(kafka_spark, kafka_broker):
    from custseg.realtime.kafka import write_offers_kafka

    conf = _conf(kafka_broker)
    create_topics(kafka_broker, conf.get_path("stream.kafka.activation_topic"))
    offers = kafka_spark.createDataFrame(
        [
            ("o1", "K1", "browse", "offered", 0.5),
            ("o2", "K2", "browse", "control", 0.4),
            ("o3", "K3", "cart", "offered", None),
        ],
        "offer_id string, customer_key string, trigger string, decision string, propensity double",
    )
    write_offers_kafka(offers, conf)
    got = (
        kafka_spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka_broker)
        .option("subscribe", conf.get_path("stream.kafka.activation_topic"))
        .option("includeHeaders", "true")
        .load()
        .selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value", "headers")
        .collect()
    )
    assert sorted(r.key for r in got) == ["K1", "K3"]
    for r in got:
        value = json.loads(r.value)
        assert value["decision"] == "offered" and value["customer_key"] == r.key
        assert [(h.key, bytes(h.value).decode()) for h in r.headers] == [("offer_id", value["offer_id"])]


def test_secret_client_settings_never_in_plan_or_log(spark, monkeypatch, caplog, capsys):
    """A SASL password given through the environment reaches the connector's options but not the
    query plan Spark prints (nor the UI built from it) and not custseg's log."""
    import logging

    from custseg.config import load_config
    from custseg.realtime.kafka import read_kafka
    from custseg.session import kafka_connector_jars

    if not kafka_connector_jars():
        if ci():
            pytest.fail("no Spark Kafka connector jars")
        pytest.skip("no Spark Kafka connector jars (make venv)")
    secret = "s3cr3t-" + uuid.uuid4().hex
    jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="{secret}";'
    monkeypatch.setenv("CUSTSEG_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("CUSTSEG_KAFKA_OPT_SASL_JAAS_CONFIG", jaas)
    monkeypatch.setenv("CUSTSEG_KAFKA_OPT_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with caplog.at_level(logging.INFO, logger="custseg.realtime.kafka"):
        df = read_kafka(spark, load_config(), "events")  # nothing connects before the query starts
    df.explain(extended=True)
    plan = capsys.readouterr().out
    assert "kafka.sasl.jaas.config=*********(redacted)" in plan and "kafka.security.protocol=SASL_PLAINTEXT" in plan
    assert secret not in plan
    assert "kafka.sasl.jaas.config" in caplog.text and secret not in caplog.text
