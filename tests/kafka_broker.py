"""A real single-node Kafka broker (KRaft: broker and controller in one JVM) on 127.0.0.1, for tests.

``kafka_broker`` (session scope) starts it the first time a test asks for it and yields its
bootstrap address (``"127.0.0.1:PORT"``); it is stopped and its folder removed when the run ends.
It runs Apache Kafka's own jars (``kafka.Kafka``), resolved by ``make venv`` from the pins in
``deploy/kafka-jars.txt`` into ``<venv>/kafka-broker`` (``CUSTSEG_KAFKA_BROKER_JARS`` names
another folder). Without those jars the tests that ask for it skip, except under CI=true,
where they fail: CI must run them.

Topics: ``create_topics(bootstrap, name, ...)`` creates them (2 partitions each) and returns once
every partition has a leader; tests write to fresh topic names. The broker also creates a topic
on first use, but a producer writing from several Spark tasks into a topic being created that
way once waited out its 120 s delivery timeout for one partition (CI-like run, 1 in ~20).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90
PARTITIONS = 2


def broker_jars() -> Path | None:
    """The broker's jars: ``$CUSTSEG_KAFKA_BROKER_JARS``, else this venv's, else the checkout's
    ``.venv`` (the Spark 4.0 leg runs in ``.venv-spark40``, which has the connector only)."""
    setting = os.environ.get("CUSTSEG_KAFKA_BROKER_JARS", "")
    candidates = [Path(setting)] if setting else [Path(sys.prefix) / "kafka-broker", ROOT / ".venv" / "kafka-broker"]
    return next((f for f in candidates if any(f.glob("kafka_2.13-*.jar"))), None)


def _java() -> str:
    return os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"


def create_topics(bootstrap: str, *names: str, partitions: int = PARTITIONS) -> None:
    """Create ``names`` on the broker (Kafka's Admin API, ``tests/kafka_topics.java`` run as a
    single-file program: about 2 s) and wait until each partition has a leader."""
    jars = broker_jars()
    if jars is None:
        raise RuntimeError("no Kafka broker jars (make venv)")
    cmd = [_java(), "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", os.path.join(str(jars), "*")]
    cmd += [str(Path(__file__).with_name("kafka_topics.java")), bootstrap, str(partitions), *names]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"creating topics {names} failed:\n{done.stdout}\n{done.stderr[-3000:]}")


def _die_with_parent() -> None:
    """Linux: the broker gets SIGTERM when the test process dies, even killed (no orphan JVM
    holding ports after an interrupted run); elsewhere the fixture's own stop is all."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_id() -> str:
    """What ``kafka-storage.sh random-uuid`` prints: 16 random bytes, URL-safe base64 without padding,
    never starting with "-" (Kafka's Uuid.randomUuid redraws those too: the tool would read one as
    an option; 1 in 64 ids)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _properties(port: int, controller_port: int, log_dir: Path) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={log_dir}",
            f"num.partitions={PARTITIONS}",
            "auto.create.topics.enable=true",
            # One node: every internal topic with one replica.
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]
    )


_LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


class KafkaBroker:
    """One broker process; ``start()`` returns when it accepts clients, ``stop()`` ends it."""

    def __init__(self, jars: Path, home: Path):
        self.home = home
        self.port = _free_port()
        self.controller_port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.server_log = home / "server.log"
        self.console = home / "console.out"
        self.props = home / "server.properties"
        self.props.write_text(_properties(self.port, self.controller_port, home / "data"))
        log4j = home / "log4j2.properties"
        log4j.write_text(_LOG4J.format(log=self.server_log))
        self.java = [
            _java(),
            "-Xmx256m",
            "-Xms64m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # starts faster; a test broker carries little load
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            os.path.join(str(jars), "*"),
        ]
        self.process: subprocess.Popen | None = None
        self.started_s: float | None = None

    def _tail(self) -> str:
        parts = []
        for f in (self.console, self.server_log):
            if f.exists():
                parts.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(parts)

    def start(self) -> str:
        t0 = time.monotonic()
        fmt = subprocess.run(
            [*self.java, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(self.props)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if fmt.returncode != 0:
            raise RuntimeError(f"formatting the Kafka log dir failed:\n{fmt.stdout}\n{fmt.stderr}")
        with open(self.console, "wb") as out:
            self.process = subprocess.Popen(
                [*self.java, "kafka.Kafka", str(self.props)],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited with {self.process.returncode}:\n{self._tail()}")
            if self._ready():
                self.started_s = time.monotonic() - t0
                return self.bootstrap
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"the Kafka broker did not start within {START_TIMEOUT_S} s:\n{self._tail()}")

    def _ready(self) -> bool:
        """Started (its own log line) and accepting connections on the client port."""
        if not self.server_log.exists() or "Kafka Server started" not in self.server_log.read_text(errors="replace"):
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: the broker's own orderly shutdown
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def kafka_broker():
    """Bootstrap address ``"127.0.0.1:PORT"`` of a running single-node KRaft broker (started on first use)."""
    jars = broker_jars()
    if jars is None:
        why = "no Kafka broker jars (make venv resolves them into <venv>/kafka-broker from deploy/kafka-jars.txt)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no java for the Kafka broker")
    home = Path(tempfile.mkdtemp(prefix="custseg-kafka-"))
    broker = KafkaBroker(jars, home)
    try:
        yield broker.start()
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)
