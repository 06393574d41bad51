"""One Spark session for the whole test run (local[2], UI off, few shuffle partitions,
interpreted expressions), with JVM Delta Lake when the set-up resolved its jars: both
storage engines run on it (tests force delta-rs with ``engine="delta-rs"``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT))

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
# At least pii.salt_min_length (32) bytes; the key-safety tests plant their own salts.
os.environ.setdefault("CUSTSEG_PII_SALT", "test-salt-for-unit-tests-0123456789abcdef")

SHARED = ROOT.parent / "shared"

from tests.kafka_broker import kafka_broker  # noqa: E402, F401  (a real KRaft broker, started on first use)

# With TEST_WORKERS=2 (`make test`, opt-in) two xdist workers run. Each test module is one unit of work, so that module
# fixtures run once, and every module that uses the session-scoped pipeline run of
# tests/integration/conftest.py (demo_run, demo_tables) joins one unit, so that it runs once.
# A scheduler, not xdist_group marks: with pytest 9.2 and xdist 3.8, --dist loadgroup did not
# group (two modules marked with one group ran on both workers), and ungrouped tests are each
# their own unit there, so module fixtures ran on both workers.
SHARED_RUN_FIXTURES = ("demo_run", "demo_tables")
SHARED_RUN_UNIT = "shared-pipeline-run"


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    uses_shared_run: dict[str, bool] = {}

    class ModulesAndSharedRun(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module not in uses_shared_run:
                path = Path(config.rootpath) / module
                text = path.read_text() if path.is_file() else ""
                uses_shared_run[module] = any(name in text for name in SHARED_RUN_FIXTURES)
            return SHARED_RUN_UNIT if uses_shared_run[module] else module

    return ModulesAndSharedRun(config, log)


def ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


_SESSION = None  # the session of the `spark` fixture, once a test has started it


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    from custseg.session import delta_conf

    warehouse = tempfile.mkdtemp(prefix="custseg-warehouse-")
    builder = SparkSession.builder
    for key, value in delta_conf(snapshot_partitions=2).items():
        builder = builder.config(key, value)
    session = (
        builder.master("local[2]")
        .appName("custseg-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.warehouse.dir", warehouse)
        .config("spark.driver.memory", "4g")
        # One driver serves the whole hour-long run. Spark's status store keeps, by default,
        # 1000 SQL executions (plans and metrics), 1000 jobs and stages and 100,000 tasks
        # even with the UI off; after ~750 tests that filled a 3g heap and a small broadcast
        # failed with "Not enough memory to build and broadcast" (CI at 0225e24). The tests
        # never read that history, so it is kept short.
        .config("spark.sql.ui.retainedExecutions", "20")
        .config("spark.ui.retainedJobs", "50")
        .config("spark.ui.retainedStages", "50")
        .config("spark.ui.retainedTasks", "1000")
        .config("spark.ui.dagGraph.retainedRootRDDs", "50")
        .config("spark.sql.streaming.ui.retainedQueries", "10")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        # Interpreted expressions instead of generated code. On test-sized data, compiling
        # each query with Janino, then JIT-compiling the generated classes, costs more than
        # the generated code saves: the shared pipeline run took 198 s instead of 227 s, with
        # 302 instead of 357 CPU-seconds in the JVM (C2 compiling 97 s instead of 130 s).
        # Results do not depend on the mode; the jobs keep Spark's default (codegen on), and
        # the cluster test and `make demo` run with it.
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    global _SESSION
    _SESSION = session
    yield session
    _SESSION = None
    session.stop()
    shutil.rmtree(warehouse, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _release_between_modules():
    """After each test module: drop what it cached, and Delta's per-table logs and snapshots
    (one per temporary table, kept for an hour by default), so that memory held for one
    module's tables is not carried through the rest of the run. Modules that never start
    Spark pay nothing."""
    yield
    session = _SESSION
    if session is None:
        return
    import gc

    gc.collect()  # frees the JVM objects behind Python proxies the module dropped
    session.catalog.clearCache()
    with contextlib.suppress(Exception):  # no JVM Delta on the class path
        session._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()


@pytest.fixture(scope="session")
def jvm_delta(spark) -> bool:
    """Whether the session has JVM Delta Lake. Under CI=true its absence fails the run."""
    from custseg.session import has_jvm_delta

    if has_jvm_delta(spark):
        return True
    if ci():
        pytest.fail("CI=true but the JVM Delta jars are not on the class path (make venv resolves them)")
    return False


@pytest.fixture()
def tmp_root(tmp_path):
    """A scratch folder for tables and landing files of one test."""
    return tmp_path


@pytest.fixture(scope="session")
def shared_datasets():
    path = SHARED / "datasets"
    if not path.exists():
        pytest.skip("../shared/datasets is not beside this checkout")
    return path
