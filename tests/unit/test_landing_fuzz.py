"""Property-based fuzzing of the landing parsers and whole-file checks (Hypothesis).

Files are made from real generated landing files (every source, plus a whitespace-aligned
flat file and a consent export) by a random chain of the damage files suffer in transfer and
upstream: cut at any byte, bytes inserted / overwritten / deleted, lines repeated or blanked,
CRLF or CR line ends, a BOM, Latin-1, another delimiter, a renamed field, gzip (whole, cut or corrupt), a plain file named .gz,
pure noise, and a second copy of the file under another name.

- The pure checks (``custseg.file_checks.inspect``) run on many such files: they never
  raise, and give either no reason or one of the documented reason codes.
- The ingest stage (CSV, JSON Lines and whitespace parsers, the file checks, the duplicate
  check, reconciliation) runs on a handful, in the test Spark session: the job never fails,
  read = accepted + quarantined, the committed bronze and quarantine rows are exactly those
  counts, and every file that holds a record ends in bronze or in quarantine.
"""

from __future__ import annotations

import gzip
import os
import re
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from custseg import file_checks
from custseg.sources import SOURCES

ROOT = Path(__file__).resolve().parents[2]
D = "2026-06-30"
SEED_LINES = 6  # header + a few records of each generated file
CI = os.environ.get("CI", "").lower() == "true"
# The reason codes inspect may give (docs/ingest.md); missing_column names a declared column.
FILE_REASONS = {"empty_file", "unreadable_file", "invalid_utf8", "wrong_delimiter", "truncated_last_line"}

FLAT_WS = "flat_transactions"  # CDNOW's layout (conf/cdnow.yaml): the whitespace parser
FLAT_WS_SEED = (
    b"customer_id   date  number_of_cds  dollar_value\n"
    b"00001  19970101  1   11.77\n"
    b"00002  19970112  1   12.00\n"
    b"00002  19970112  5   77.00\n"
    b"00003  19970102  2   20.76\n"
)
CONSENT_SEED = (
    b"customer_id,channel,opted_in,updated_at\n"
    b"C1,email,yes,2026-06-01 10:00:00\n"
    b"C2,sms,no,2026-06-02 11:00:00\n"
    b"C3,ads,y,2026-06-03 12:00:00\n"
)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    """Source name -> the first lines of a generated landing file (planted bad records included)."""
    from custseg.datagen import generate

    out = tmp_path_factory.mktemp("fuzz-seeds")
    summary = generate(out, customers=50, days=3, seed=11, end_date=D, bad_share=0.1, workers=1)
    found = {}
    for name, files in summary.files.items():
        lines = Path(files[0]).read_bytes().splitlines(keepends=True)
        found[name] = b"".join(lines[:SEED_LINES])
    found[FLAT_WS] = FLAT_WS_SEED
    found["consent"] = CONSENT_SEED
    return found


def _specs():
    """Source name -> spec: the built-in sources, the flat file as conf/cdnow.yaml maps it, the consent export."""
    from custseg.config import load_config
    from custseg.sources.consent_file import ConsentFileSettings, consent_spec
    from custseg.sources.flat import FlatSettings, flat_spec

    specs = dict(SOURCES)
    specs[FLAT_WS] = flat_spec(FlatSettings.from_config(load_config(ROOT / "conf" / "cdnow.yaml")))
    specs["consent"] = consent_spec(ConsentFileSettings())
    return specs


SPECS = _specs()


# --- damage --------------------------------------------------------------------------

noise = st.binary(min_size=1, max_size=24)
position = st.floats(min_value=0.0, max_value=1.0)


def _at(data: bytes, where: float) -> int:
    return int(where * len(data))


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


MUTATIONS = {
    "cut": lambda d, p, b: d[: _at(d, p)],
    "drop_final_newline": lambda d, p, b: d.rstrip(b"\r\n"),
    "insert": lambda d, p, b: d[: _at(d, p)] + b + d[_at(d, p) :],
    "overwrite": lambda d, p, b: d[: _at(d, p)] + b + d[_at(d, p) + len(b) :],
    "delete": lambda d, p, b: d[: _at(d, p)] + d[_at(d, p) + len(b) :],
    "repeat_line": lambda d, p, b: b"".join(_lines(d)[: _at(_lines(d), p) + 1] + _lines(d)[_at(_lines(d), p) :]),
    "blank_lines": lambda d, p, b: d[: _at(d, p)] + b"\n  \n\t\n" + d[_at(d, p) :],
    "crlf": lambda d, p, b: d.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
    "cr": lambda d, p, b: d.replace(b"\r\n", b"\n").replace(b"\n", b"\r"),
    "bom": lambda d, p, b: b"\xef\xbb\xbf" + d,
    "latin1": lambda d, p, b: d[: _at(d, p)] + "é".encode("latin-1") + d[_at(d, p) :],
    "semicolons": lambda d, p, b: d.replace(b",", b";"),
    "rename_field": lambda d, p, b: re.sub(rb"[a-z_]{4,}", b"renamed_field", d, count=1),
    "noise": lambda d, p, b: b * 3,
}


@st.composite
def damaged(draw, source: str, seed: bytes) -> tuple[str, bytes]:
    """(file name, content): ``seed`` after 0-3 random mutations, maybe gzipped (whole, cut or with
    bytes overwritten), or named ``.gz`` without being compressed."""
    data = seed
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(sorted(MUTATIONS)))
        data = MUTATIONS[kind](data, draw(position), draw(noise))
    ext = ".jsonl" if SPECS[source].fmt == "jsonl" else (".txt" if source == FLAT_WS else ".csv")
    packing = draw(st.sampled_from(["plain"] * 4 + ["gzip", "gzip-cut", "gzip-corrupt", "not-gzip"]))
    if packing.startswith("gzip"):
        data = gzip.compress(data, mtime=0)
    if packing == "gzip-cut":
        data = data[: _at(data, draw(position))]
    elif packing == "gzip-corrupt":
        data = MUTATIONS["overwrite"](data, draw(position), draw(noise))
    if packing != "plain":
        ext += ".gz"
    return f"part-{uuid.uuid4().hex[:6]}{ext}", data


@st.composite
def batches(draw, seeds: dict[str, bytes], sources: list[str]) -> tuple[str, list[tuple[str, bytes]]]:
    """(source, files) of one landing batch: one or two damaged files, or a file and a copy of it."""
    source = draw(st.sampled_from(sources))
    files = [draw(damaged(source, seeds[source]))]
    extra = draw(st.sampled_from(["none", "another", "copy"]))
    if extra == "another":
        files.append(draw(damaged(source, seeds[source])))
    elif extra == "copy":
        name, data = files[0]
        files.append((f"copy-{name}", data))
    return source, files


# --- the pure whole-file checks -------------------------------------------------------


def _inspect(source: str, data: bytes, name: str, head: int, tail: int, final_newline: bool):
    spec = SPECS[source]
    size = len(data)
    return file_checks.inspect(spec, name, size, data[: min(head, size)], data[max(0, size - tail) :], final_newline)


@settings(max_examples=500, deadline=None, derandomize=CI)
@given(data=st.data())
def test_file_checks_never_raise_and_give_a_known_reason(seeds, data):
    source = data.draw(st.sampled_from(sorted(SPECS)), label="source")
    name, content = data.draw(damaged(source, seeds[source]), label="file")
    # the checks see at most HEAD_BYTES + TAIL_BYTES; small windows exercise the partial-view paths
    head = data.draw(st.sampled_from([file_checks.HEAD_BYTES, 16, 64]), label="head")
    tail = data.draw(st.sampled_from([file_checks.TAIL_BYTES, 16, 64]), label="tail")
    check = _inspect(source, content, name, head, tail, data.draw(st.booleans(), label="final_newline"))
    assert check.reason is None or check.reason in FILE_REASONS or _declared_missing(source, check.reason), check
    assert check.path == name and check.size == len(content)


def _declared_missing(source: str, reason: str) -> bool:
    return reason.startswith("missing_column:") and reason.split(":", 1)[1] in SPECS[source].required_headers


@pytest.mark.parametrize("source", sorted(SPECS))
def test_the_undamaged_seed_passes_the_file_checks(seeds, source):
    """The control of the fuzzing above: an intact file has no file-level reason."""
    check = _inspect(source, seeds[source], "part-0.x", file_checks.HEAD_BYTES, file_checks.TAIL_BYTES, True)
    assert check.reason is None, check


@settings(max_examples=300, deadline=None, derandomize=CI)
@given(data=st.data())
def test_a_file_cut_inside_its_last_record_is_truncated_last_line(seeds, data):
    """Cut anywhere inside the last record (not at a line end): the file is never passed as whole."""
    source = data.draw(st.sampled_from(sorted(SPECS)), label="source")
    seed = seeds[source]
    last_start = seed.rstrip(b"\n").rfind(b"\n") + 1
    end = len(seed.rstrip(b"\n"))
    cut = data.draw(st.integers(last_start + 1, end - 1), label="cut")
    cut_file = seed[:cut]
    assume(cut_file[-1:] not in (b"\n", b"\r", b" "))
    check = _inspect(source, cut_file, "part-0.x", file_checks.HEAD_BYTES, file_checks.TAIL_BYTES, True)
    assert check.reason == "truncated_last_line", (cut_file[last_start:], check)


# --- the ingest stage on damaged batches ------------------------------------------------


def _records_expected(fmt: str, data: bytes, name: str) -> bool:
    """Whether the file certainly holds a record (so it must show up in bronze or quarantine).

    Conservative: a compressed file that does not decompress, an empty file (one record: the
    file) and a JSON Lines file with a non-blank line always do; a CSV only when some non-blank
    line differs from its first one (the header)."""
    if name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, ValueError):
            return True
    if not data.strip():
        return True
    if fmt == "jsonl":
        return True
    lines = {ln.strip().lstrip("\ufeff") for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()}
    first = data.decode("utf-8", "replace").splitlines()[0].strip().lstrip("\ufeff") if data.strip() else ""
    return bool(lines - {first})


def _land(tmp_path, source: str, files: list[tuple[str, bytes]]) -> Path:
    home = tmp_path / uuid.uuid4().hex[:8]
    landing = home / "landing" / source / D
    landing.mkdir(parents=True)
    for name, content in files:
        (landing / name).write_bytes(content)
    return home


@pytest.mark.slow
@settings(
    max_examples=8,
    deadline=None,
    derandomize=CI,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_parsers_read_every_line_of_every_damaged_file(spark, seeds, tmp_path, data):
    """The parsers alone (no tables): file checks, then the CSV / JSON Lines / whitespace readers
    and the record rules. Every record gets a verdict, the readers' count equals the count of
    the files' lines made apart from them, and every file holding a record is represented."""
    from pyspark.sql import functions as F

    from custseg.ingest import read_raw, with_reasons
    from custseg.landing import list_files
    from custseg.stages.ingest import count_lines

    source, files = data.draw(batches(seeds, sorted(SPECS)), label="batch")
    spec = SPECS[source]
    home = _land(tmp_path, source, files)
    listed = list_files(spark, str(home / "landing" / source / D))
    checks = file_checks.check_files(spark, spec, listed, csv_require_final_newline=True)
    validated = read_raw(spark, spec, checks).transform(with_reasons(spec, D, 48, "quarantine"))
    per_file = {
        r["file"].rsplit("/", 1)[-1]: (r["n"], r["ok"], r["verdicts"])
        for r in validated.groupBy(F.col("_source_file").alias("file"))
        .agg(
            F.count("*").alias("n"),
            F.count_if(F.size("reasons") == 0).alias("ok"),
            F.count_if((F.size("reasons") == 0) | F.col("reasons")[0].isNotNull()).alias("verdicts"),
        )
        .collect()
    }
    assert sum(n for n, _, _ in per_file.values()) == count_lines(spark, spec, checks)
    assert all(n == v for n, _, v in per_file.values()), per_file  # each record accepted or with a reason
    for name, content in files:
        if _records_expected(spec.fmt, content, name):
            assert name in per_file, f"{name} holds records but the readers gave none"
    for c in checks:  # a file rejected as a whole gives no accepted record
        if c.reason:
            assert per_file.get(c.path.rsplit("/", 1)[-1], (0, 0, 0))[1] == 0, c


@pytest.mark.slow
@settings(
    max_examples=2,
    deadline=None,
    derandomize=CI,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_ingest_never_fails_and_every_record_is_accepted_or_quarantined(spark, seeds, tmp_path, monkeypatch, data):
    """The whole stage (duplicate check, gates, writes, reconciliation against the committed rows)."""
    from pyspark.sql import functions as F

    from custseg.cli import parse_job_args, run_job
    from custseg.storage import StorageSettings, Tables

    source, files = data.draw(batches(seeds, sorted(SPECS)), label="batch")
    home = _land(tmp_path, source, files)
    monkeypatch.setenv("CUSTSEG_HOME", str(home))
    monkeypatch.delenv("CUSTSEG_CONF", raising=False)
    args = ["ingest", "--date", D, "--set", "ingest.required_sources=[]", "--set", "ingest.max_reject_rate=1.0"]
    if source == FLAT_WS:
        args += ["--conf", str(ROOT / "conf" / "cdnow.yaml")]
    if source == "consent":
        args += ["--set", "marketing.consent.policy=from_file"]

    assert run_job(parse_job_args(None, args), spark=spark) == 0, f"ingest failed on {[n for n, _ in files]}"

    spec = SPECS[source]
    t = Tables(spark, StorageSettings(root=str(home / "tables")))
    recon = t.read("meta.reconciliation").where(F.col("source") == source).collect()
    assert len(recon) == 1, recon
    read, accepted, quarantined = (recon[0][c] for c in ("records_read", "records_accepted", "records_quarantined"))
    assert read == accepted + quarantined
    table = {FLAT_WS: "bronze.flat_transactions", "consent": "bronze.consent"}.get(source, f"bronze.{source}")
    bronze = t.read(table).groupBy("_source_file").count().collect() if t.exists(table) else []
    quarantine = (
        t.read("bronze.quarantine").where(F.col("source") == source).groupBy("_source_file").count().collect()
        if t.exists("bronze.quarantine")
        else []
    )
    assert sum(r["count"] for r in bronze) == accepted
    assert sum(r["count"] for r in quarantine) == quarantined
    landed = {r["_source_file"].rsplit("/", 1)[-1] for r in [*bronze, *quarantine]}
    for name, content in files:
        if _records_expected(spec.fmt, content, name):
            assert name in landed, f"{name} holds records but none reached bronze or quarantine"
