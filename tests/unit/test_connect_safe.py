"""lib/ runs over Spark Connect: no JVM access (sparkContext, py4j handles, RDDs) in its code,
and the Connect-safe replacements behave as the JVM calls they replace."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib" / "custseg"

# Attributes that exist only on a classic session (or reach into its JVM).
JVM_ATTRIBUTES = {"sparkContext", "_jvm", "_jsc", "_jdf", "_jsparkSession", "_jwrite", "_jreader", "rdd", "_sc"}
JVM_NAMES = {"SparkContext", "py4j"}


def jvm_uses(source: str, filename: str) -> list[str]:
    """``file:line: what`` for every JVM-only attribute, name or import in ``source`` (code, not comments)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and node.attr in JVM_ATTRIBUTES:
            found.append(f"{filename}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in JVM_NAMES:
            found.append(f"{filename}:{node.lineno}: {node.id}")
        elif isinstance(node, ast.ImportFrom):
            names = {a.name for a in node.names}
            if (node.module or "").split(".")[0] == "py4j" or names & JVM_NAMES:
                found.append(f"{filename}:{node.lineno}: from {node.module} import {', '.join(sorted(names))}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "py4j":
                    found.append(f"{filename}:{node.lineno}: import {a.name}")
    return found


def test_the_scan_finds_each_kind_of_jvm_access():
    planted = "\n".join(
        [
            "from pyspark import SparkContext",
            "import py4j.java_gateway",
            "a = spark.sparkContext.defaultParallelism",
            "b = spark._jvm.java.lang.System",
            "c = spark._jsc.hadoopConfiguration()",
            "d = df.rdd.getNumPartitions()",
            "e = SparkContext.getOrCreate()",
            '"""a docstring may name sparkContext"""',
        ]
    )
    found = jvm_uses(planted, "planted.py")
    assert len(found) == 7, found  # the docstring is not code
    for what in ("SparkContext", "py4j", ".sparkContext", "._jvm", "._jsc", ".rdd"):
        assert any(what in f for f in found), (what, found)


def test_lib_has_no_jvm_access():
    found = []
    for path in sorted(LIB.rglob("*.py")):
        found += jvm_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, "JVM access breaks Spark Connect (use custseg.runtime / custseg.fileio):\n" + "\n".join(found)


# --- the replacements ------------------------------------------------------------------------


def test_runtime_facts_match_the_classic_session(spark):
    from custseg.runtime import application_id, default_parallelism, is_connect

    assert not is_connect(spark)
    assert application_id(spark) == spark.sparkContext.applicationId
    assert default_parallelism(spark) == spark.sparkContext.defaultParallelism


def test_default_parallelism_without_the_setting_counts_range_splits(spark):
    """With spark.default.parallelism unset the measured figure is what Spark splits a range into."""
    from custseg import runtime

    class NoParallelismConf:
        def __init__(self, conf):
            self._conf = conf

        def get(self, key, default=None):
            if key in ("spark.default.parallelism", "spark.sql.leafNodeDefaultParallelism"):
                return default
            return self._conf.get(key, default)

    class Session:
        conf = NoParallelismConf(spark.conf)
        range = staticmethod(spark.range)

    assert runtime.default_parallelism(Session()) == spark.range(0, 4096).rdd.getNumPartitions()


class _ConnectLike:
    """Records addTag / removeTag like a Connect session; no JVM."""

    __module__ = "pyspark.sql.connect.session"

    def __init__(self):
        self.tags: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    def addTag(self, tag):  # noqa: N802 - Spark's name
        self.calls.append(("add", tag))
        self.tags.add(tag)

    def removeTag(self, tag):  # noqa: N802
        self.calls.append(("remove", tag))
        self.tags.discard(tag)

    def getTags(self):  # noqa: N802
        return set(self.tags)


def test_job_tag_tags_the_jobs_of_the_block_only_over_connect():
    from custseg.runtime import is_connect, job_tag

    session = _ConnectLike()
    assert is_connect(session)
    with job_tag(session, "custseg:segment/fit k"):
        assert session.getTags() == {"custseg-segment-fit-k"}
    assert session.getTags() == set() and session.calls == [
        ("add", "custseg-segment-fit-k"),
        ("remove", "custseg-segment-fit-k"),
    ]


def test_classic_sessions_are_not_tagged(spark):
    """addTag on a classic session breaks MLlib model serialisation for the rest of the session."""
    from custseg.runtime import job_tag

    with job_tag(spark, "custseg-ingest-read"):
        assert "custseg-ingest-read" not in spark.getTags()


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "batch"
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_text("x\n1\n")
    (root / "sub" / "b.json").write_text('{"x": 2}\n')
    (root / "_SUCCESS").write_text("")
    (root / ".a.csv.crc").write_text("crc")
    return root


def test_list_files_local_and_through_spark_agree(spark, tmp_path):
    from custseg.fileio import list_files, spark_list_files

    root = _tree(tmp_path)
    local = list_files(spark, str(root))
    assert [(Path(p).relative_to(root).as_posix(), n) for p, n in local] == [("a.csv", 4), ("sub/b.json", 9)]
    through_spark = spark_list_files(spark, f"file://{root}")
    assert [(p.split(str(root), 1)[1], n) for p, n in through_spark] == [("/a.csv", 4), ("/sub/b.json", 9)]
    assert list_files(spark, str(tmp_path / "missing")) == []
    assert spark_list_files(spark, f"file://{tmp_path}/missing") == []


@pytest.mark.parametrize(("head", "tail"), [(3, 2), (100, 100), (0, 4), (5, 0)])
def test_read_bytes_local_and_through_spark_agree(spark, tmp_path, head, tail):
    from custseg.fileio import read_bytes, spark_read_bytes

    path = tmp_path / "f.bin"
    data = bytes(range(40))
    path.write_bytes(data)
    expected = (data[:head], data[len(data) - tail :] if tail else b"")
    assert read_bytes(spark, str(path), len(data), head, tail) == expected
    assert spark_read_bytes(spark, f"file://{path}", len(data), head, tail) == expected


def test_write_move_delete(tmp_path):
    from custseg import fileio

    target = tmp_path / "out" / "deep" / "m.json"
    fileio.write_text(str(target), "{}\n")
    assert target.read_text() == "{}\n"
    assert not [p for p in target.parent.iterdir() if p.name != "m.json"], "no temporary file is left"
    fileio.move(str(target), f"file:{tmp_path}/moved.json")
    assert (tmp_path / "moved.json").read_text() == "{}\n" and not target.exists()
    fileio.delete_tree(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    fileio.delete_tree(str(tmp_path / "out"))  # a missing folder is no error


def test_a_scheme_pyarrow_cannot_reach_fails_naming_the_path():
    from custseg import fileio

    with pytest.raises(OSError, match="cannot write 'nosuchscheme://b/x'"):
        fileio.write_text("nosuchscheme://b/x", "text")


def test_each_recorded_step_tags_its_spark_jobs():
    from custseg.runs import RunRecorder

    session = _ConnectLike()
    rec = RunRecorder(job="segment", run_date="2026-06-30", spark=session)
    with rec.stage("choose k"):
        assert session.getTags() == {"custseg-segment-choose-k"}
        with rec.stage("fit"):
            assert session.getTags() == {"custseg-segment-choose-k", "custseg-segment-fit"}
    assert session.getTags() == set()
    assert set(rec.stage_seconds) == {"choose k", "fit"}
