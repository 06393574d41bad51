"""Guard for issue 29: a process that reads Delta tables with the project's reader exits 0.

deltalake's own scan (``DeltaTable.to_pandas``) left about one process in five to one in
four dying at exit with SIGABRT (exit 134) after doing its work; ``bench.exit_codes``
measures both readers. Here the project's reader runs in 30 fresh interpreters (no Spark)
over one small partitioned table, with a partition filter and a column subset, and every
one must exit 0 having printed the right rows.
"""

from __future__ import annotations

import pytest
from bench.exit_codes import READERS, build_table, run_children

RUNS = 30
FILES, ROWS = 12, 200


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("exit") / "customer_features")
    build_table(path, dates=2, files_per_date=FILES, rows_per_file=ROWS)
    return path


def test_reader_processes_exit_zero_every_time(features):
    results = run_children(READERS["custseg"], [features], runs=RUNS, jobs=2)
    codes = [r["rc"] for r in results]
    failed = [r for r in results if r["rc"] != 0]
    assert not failed, f"exit codes {codes}; first failure's stderr:\n{failed[0]['err'] if failed else ''}"
    # The partition's rows and its r_score total (1 + id % 5 over ids 0..n-1): the read did its work.
    n = FILES * ROWS
    expected = f"{n} {sum(1 + i % 5 for i in range(n))}"
    assert [r["out"].strip() for r in results] == [expected] * RUNS
