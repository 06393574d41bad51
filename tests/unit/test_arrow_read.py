"""custseg.storage.arrow_read returns what deltalake's own scan returns (rows and schema).

The table: string and date partition columns with nulls and characters that are escaped in
folder names, nullable data columns, four versions (create, append, a partition overwritten,
a column added). The expected rows are built here from what was written; deltalake's scan
runs in a child process (the aborts at exit it is known for must not take pytest down) and
hands its tables over as Arrow IPC files.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from deltalake import write_deltalake

from custseg.storage.arrow_read import read_pandas, read_table

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("amount", pa.float64()),
        ("region", pa.string()),
        ("snapshot_date", pa.date32()),
    ]
)
V0 = [
    (1, "ann", 1.5, "north", D1),
    (2, None, None, "a b/c%d", D1),  # Spark and delta-rs escape these in folder names
    (3, "cy", 3.0, None, D1),  # null string partition
    (4, "di", -4.25, "north", None),  # null date partition
]
V1 = [(5, "ed", 5.0, "south", D2), (6, "fay", None, "north", D2)]
V2 = [(7, "gus", 7.0, "south", D1)]  # replaces partition snapshot_date = D1
V3 = [(8, "hal", 8.0, "north", D2, "web")]  # adds column "channel"


def _table(rows, schema=SCHEMA) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema)


@pytest.fixture(scope="module")
def delta(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("arrow read") / "orders")  # a space in the root, too
    parts = ["region", "snapshot_date"]
    write_deltalake(path, _table(V0), partition_by=parts)
    write_deltalake(path, _table(V1), mode="append")
    write_deltalake(path, _table(V2), mode="overwrite", predicate="snapshot_date = '2026-01-01'")
    wide = SCHEMA.append(pa.field("channel", pa.string()))
    write_deltalake(path, _table(V3, wide), mode="append", schema_mode="merge")
    return path


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by([(c, "ascending") for c in t.column_names])


def _rows(t: pa.Table) -> list[tuple]:
    return [tuple(r.values()) for r in _sorted(t).to_pylist()]


@pytest.mark.parametrize(
    ("version", "expected"),
    [(0, V0), (1, V0 + V1), (2, V1 + V2 + [V0[3]]), (3, [(*r, None) for r in V1 + V2 + [V0[3]]] + V3)],
)
def test_each_version_reads_the_rows_written(delta, version, expected):
    got = read_table(delta, version=version)
    schema = SCHEMA if version < 3 else SCHEMA.append(pa.field("channel", pa.string()))
    assert got.schema.equals(schema)
    assert _rows(got) == _rows(_table(expected, schema))


def test_latest_version_by_default_with_added_column_null_in_old_files(delta):
    got = read_table(delta, columns=["id", "channel"])
    assert dict(_rows(got)) == {4: None, 5: None, 6: None, 7: None, 8: "web"}


def test_partition_filters_select_rows_exactly(delta):
    def ids(**kw):
        return sorted(read_table(delta, columns=["id"], **kw).column("id").to_pylist())

    assert ids(partitions=[("snapshot_date", "=", "2026-01-02")]) == [5, 6, 8]
    assert ids(partitions=[("snapshot_date", "=", D2)]) == [5, 6, 8]  # a date object works too
    assert ids(partitions=[("region", "in", ["south", "a b/c%d"])], version=1) == [2, 5]
    assert ids(partitions=[("region", "=", "")], version=0) == [3]  # "" is the null partition
    assert ids(partitions=[("snapshot_date", "=", "")]) == [4]
    assert ids(partitions=[[("region", "=", "south")], [("snapshot_date", "=", "2026-01-02")]]) == [5, 6, 7, 8]
    assert ids(partitions=[("region", "=", "nowhere")]) == []


def test_columns_select_and_order(delta):
    got = read_pandas(delta, columns=["snapshot_date", "name"], partitions=[("region", "=", "north")])
    assert list(got.columns) == ["snapshot_date", "name"]
    assert sorted(got["name"].dropna()) == ["di", "fay", "hal"]


def test_a_filter_on_a_data_column_is_refused(delta):
    with pytest.raises(ValueError, match="'amount'.*not a partition column"):
        read_table(delta, partitions=[("amount", ">", 1)])


def test_a_missing_table_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no Delta table at {tmp_path / 'nothing'}"):
        read_table(tmp_path / "nothing")
    (tmp_path / "empty" / "_delta_log").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no Delta table at .*empty"):
        read_table(tmp_path / "empty")


# The same cases through deltalake's own scan, in a child process.
CASES = [
    (None, None, None),
    (0, None, None),
    (2, ["amount", "region", "id"], None),
    (None, ["id", "name", "snapshot_date"], [("snapshot_date", "=", "2026-01-02")]),
    (1, None, [("region", "in", ["south", "a b/c%d"])]),
    (0, ["region", "id"], [("region", "=", "")]),
]
REFERENCE = """
import sys
import pyarrow.ipc as ipc
from deltalake import DeltaTable
path, out, cases = sys.argv[1], sys.argv[2], eval(sys.argv[3])
for i, (version, columns, partitions) in enumerate(cases):
    t = DeltaTable(path, version=version).to_pyarrow_table(partitions=partitions, columns=columns)
    with ipc.new_file(f"{out}/{i}.arrow", t.schema) as w:
        w.write_table(t)
print("done", flush=True)
"""


def test_same_rows_and_schema_as_deltalakes_scan(delta, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", REFERENCE, delta, str(tmp_path), repr(CASES)], capture_output=True, text=True
    )
    # Its exit code is not asserted: deltalake's scan may abort at exit after writing its files.
    assert "done" in proc.stdout, proc.stderr[-2000:]
    for i, (version, columns, partitions) in enumerate(CASES):
        ref = ipc.open_file(Path(tmp_path, f"{i}.arrow")).read_all()
        got = read_table(delta, columns=columns, partitions=partitions, version=version)
        assert got.schema.equals(ref.schema, check_metadata=True), (i, got.schema, ref.schema)
        assert ref.num_rows > 0, i
        assert _sorted(got).equals(_sorted(ref)), i
