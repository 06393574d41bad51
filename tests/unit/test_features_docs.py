"""docs/features.md documents every column of gold.customer_features, and nothing else."""

import re
from pathlib import Path

from custseg.features.assemble import FEATURE_COLUMNS

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_column_dictionary_matches_the_contract():
    rows = re.findall(r"^\| ([A-Za-z_0-9]+) \| ([a-z]+[^|]*) \| ([^|]+) \|", DOC.read_text(), re.M)
    documented = [name for name, dtype, _ in rows if name != "column"]
    assert len(documented) == len(set(documented)), "a column is documented twice"
    assert set(documented) == set(FEATURE_COLUMNS)
