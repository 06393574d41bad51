"""What a benchmark measures besides wall time: Spark stage metrics and peak memory.

Spark metrics come from the application's REST status API (the same numbers the UI
shows): for the stages that completed during a measured block, the sum of input,
shuffle read/write and spill bytes, and the number of failed stages / tasks.
Peak memory is sampled from the process tree (the Python driver and its JVM).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import psutil


@dataclass
class StageFigures:
    name: str
    seconds: float = 0.0
    rows_in: int | None = None
    rows_out: int | None = None
    input_bytes: int = 0
    shuffle_read_bytes: int = 0
    shuffle_write_bytes: int = 0
    spill_memory_bytes: int = 0
    spill_disk_bytes: int = 0
    failed_stages: int = 0
    failed_tasks: int = 0
    spark_stages: int = 0
    peak_driver_rss_mb: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float | None:
        rows = self.rows_in or self.rows_out
        return round(rows / self.seconds, 1) if rows and self.seconds else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rows_per_s"] = self.rows_per_s
        return d


class PeakRss:
    """Samples the RSS of this process and its children (the driver JVM) in a thread."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.peak_jvm = 0
        self.peak_python = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                self.peak_python = max(self.peak_python, me.memory_info().rss)
                jvm = sum(c.memory_info().rss for c in me.children(recursive=True) if "java" in c.name())
                self.peak_jvm = max(self.peak_jvm, jvm)
            except psutil.Error:
                pass
            time.sleep(self.interval)

    def reset(self) -> None:
        self.peak_jvm = self.peak_python = 0

    def start(self) -> PeakRss:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)


class SparkStages:
    """Sums metrics of Spark stages completed since the last call (REST status API)."""

    def __init__(self, spark):
        sc = spark.sparkContext
        self.base = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}"
        self.seen: set[tuple[int, int]] = set()

    def _stages(self) -> list[dict]:
        try:
            with urllib.request.urlopen(f"{self.base}/stages", timeout=30) as resp:  # noqa: S310 - loopback UI
                return json.load(resp)
        except Exception:
            return []

    def mark(self) -> None:
        self.seen |= {(s["stageId"], s["attemptId"]) for s in self._stages()}

    def collect(self, fig: StageFigures) -> None:
        for s in self._stages():
            key = (s["stageId"], s["attemptId"])
            if key in self.seen or s.get("status") not in ("COMPLETE", "FAILED"):
                continue
            self.seen.add(key)
            fig.spark_stages += 1
            fig.input_bytes += s.get("inputBytes", 0)
            fig.shuffle_read_bytes += s.get("shuffleReadBytes", 0)
            fig.shuffle_write_bytes += s.get("shuffleWriteBytes", 0)
            fig.spill_memory_bytes += s.get("memoryBytesSpilled", 0)
            fig.spill_disk_bytes += s.get("diskBytesSpilled", 0)
            fig.failed_tasks += s.get("numFailedTasks", 0)
            fig.failed_stages += int(s.get("status") == "FAILED")


@contextmanager
def measured(name: str, rss: PeakRss, stages: SparkStages | None = None):
    """Times a block and fills a StageFigures with what happened in it."""
    fig = StageFigures(name)
    if stages:
        stages.mark()
    rss.reset()
    t0 = time.perf_counter()
    try:
        yield fig
    finally:
        fig.seconds = round(time.perf_counter() - t0, 2)
        time.sleep(rss.interval * 2)
        fig.peak_driver_rss_mb = round(max(rss.peak_jvm, rss.peak_python) / 2**20, 1)
        if stages:
            stages.collect(fig)
