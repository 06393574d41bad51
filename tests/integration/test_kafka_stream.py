"""``custseg stream --source kafka`` end to end on a real broker, as a scheduler runs it.

A landing zone is planted here (events with known ids, a malformed line and an undeclared
field; orders; campaign responses as CSV), replay sends it to the topics (through the test
session), and ``custseg stream --source kafka --trigger available-now`` (its own process)
ingests it. Every planted id must reach bronze / silver exactly once, and the bad records must
be quarantined with their reason and their Kafka position. Tables are read with deltalake /
pyarrow. (Restarting from a checkpoint reads nothing twice: test_kafka_replay.py for the
source, test_stream_exactly_once.py for the job.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import ci
from tests.kafka_broker import create_topics

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
N_EVENTS, N_ORDERS, N_RESPONSES = 30, 6, 4


@pytest.fixture(scope="module")
def connector(spark):
    from custseg.session import kafka_connector_jars

    if not kafka_connector_jars():
        why = "no Spark Kafka connector jars (make venv resolves them into <venv>/spark-kafka-jars)"
        if ci():
            pytest.fail(why)
        pytest.skip(why)


def _plant(landing: Path) -> dict:
    day = datetime.now(UTC).strftime("%Y-%m-%d")  # today's records: inside the stream's time checks
    truth = {"events": [], "orders": [], "responses": []}
    lines = []
    for i in range(N_EVENTS):
        eid = f"kev-{i:03d}"
        truth["events"].append(eid)
        event = {
            "event_id": eid,
            "ts": f"{day} 08:{i:02d}:00",
            "device_id": f"d{i % 3}",
            "customer_id": f"C{i % 3}",
            "session_id": f"s{i % 3}",
            "event_type": "product_view",
            "sku": "SKU1",
            "category": "shoes",
        }
        lines.append(json.dumps(event))
    lines.append('{"event_id": "kev-cut", "ts": "' + day + ' 08:10:30", ')  # malformed, mid-stream
    lines.append(json.dumps({"event_id": "kev-x", "ts": f"{day} 08:11:00", "device_id": "d", "colour": "red"}))
    (landing / "events" / day).mkdir(parents=True)
    (landing / "events" / day / "part-00000.jsonl").write_text("\n".join(lines) + "\n")
    lines = []
    for k in range(N_ORDERS):
        oid = f"kord-{k:02d}"
        truth["orders"].append(oid)
        item = {"sku": "SKU1", "qty": "1", "unit_price": "5.00", "discount": "0"}
        order = {
            "order_id": oid,
            "customer_id": f"C{k % 3}",
            "order_ts": f"{day} 09:{k:02d}:00",
            "channel": "web",
            "status": "completed",
            "items": [item],
        }
        lines.append(json.dumps(order))
    (landing / "orders" / day).mkdir(parents=True)
    (landing / "orders" / day / "part-00000.jsonl").write_text("\n".join(lines) + "\n")
    rows = ["campaign_id,customer_id,channel,group,sent_ts,opened_ts,clicked_ts,converted_ts,revenue"]
    for k in range(N_RESPONSES):
        truth["responses"].append(f"KC{k}")
        rows.append(f"CMP1,KC{k},email,treatment,{day} 07:00:0{k},,,,0.00")
    (landing / "campaign_responses" / day).mkdir(parents=True)
    (landing / "campaign_responses" / day / "part-00000.csv").write_text("\n".join(rows) + "\n")
    return truth


def _run(home: Path, bootstrap: str, topics: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTSEG_CONF", "CUSTSEG_FAULT", "SPARK_REMOTE")}
    env["CUSTSEG_HOME"] = str(home)
    env["CUSTSEG_KAFKA_BOOTSTRAP"] = bootstrap
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "lib"), env.get("PYTHONPATH", "")])
    sets = [x for s, t in topics.items() for x in ("--set", f"stream.kafka.topics.{s}={t}")]
    sets += ["--set", "spark.shuffle_partitions=2", "--set", "spark.driver_memory=1g", "--set", "spark.master=local[2]"]
    cmd = [sys.executable, "-m", "custseg.cli", *args, *sets]
    return subprocess.run(cmd, env=env, cwd=home, text=True, capture_output=True, timeout=600)


def _table(home: Path, name: str):
    from custseg.storage.arrow_read import read_pandas

    layer, table = name.split(".")
    return read_pandas(home / "tables" / layer / table)


def _conf(bootstrap: str, topics: dict):
    from custseg.config import load_config

    return load_config().with_overrides(
        {"stream.kafka.bootstrap_servers": bootstrap, **{f"stream.kafka.topics.{s}": t for s, t in topics.items()}}
    )


def test_stream_from_kafka(connector, spark, kafka_broker, tmp_path):
    from custseg.datagen.replay import run_replay

    home = tmp_path / "home"
    home.mkdir()
    truth = _plant(tmp_path / "planted")
    run = uuid.uuid4().hex[:8]
    topics = {s: f"s{run}.{s}" for s in ("events", "orders", "campaign_responses")}
    create_topics(kafka_broker, *topics.values())

    summary = run_replay(tmp_path / "planted", "kafka", rate=0, conf=_conf(kafka_broker, topics), spark=spark)
    assert summary.records == {"events": N_EVENTS + 2, "orders": N_ORDERS, "campaign_responses": N_RESPONSES}

    ran = _run(home, kafka_broker, topics, "stream", "--source", "kafka", "--trigger", "available-now")
    assert ran.returncode == 0, ran.stderr[-4000:]
    for name, column, want in (
        ("silver.events_rt", "event_id", truth["events"]),
        ("silver.orders_rt", "order_id", truth["orders"]),
        ("bronze.campaign_responses_rt", "customer_id", truth["responses"]),
    ):
        got = _table(home, name)[column]
        assert sorted(got) == sorted(want), name
    q = _table(home, "bronze.quarantine")
    q = q[q["source"] == "events_rt"]
    assert sorted(q["reason"]) == ["malformed_json", "unknown_field:colour"]
    assert all(f.startswith(f"kafka:{topics['events']}/") for f in q["_source_file"]), list(q["_source_file"])
