"""The segment section of conf/base.yaml loads into SegmentSettings, and bad values fail
with the key named."""

from __future__ import annotations

import pytest

import custseg.segment.settings  # noqa: F401  (registers the validator)
from custseg.config import ConfigError, load_config
from custseg.segment.settings import DEFAULT_FEATURE_SETS, SegmentSettings


@pytest.fixture(scope="module")
def conf():
    return load_config("conf/local.yaml", env={})


def test_base_section_loads(conf):
    s = SegmentSettings.from_config(conf)
    assert s.columns == conf.segment.feature_sets[conf.segment.feature_set]
    assert set(conf.segment.feature_sets) >= set(DEFAULT_FEATURE_SETS)
    assert (s.k, s.k_min, s.k_max, s.algorithm) == (0, 2, 10, "kmeans")
    assert [r["name"] for r in s.value_class_rules][0] == "important-retain"
    assert "High-value loyal" in s.naming_rules
    custom = SegmentSettings.from_config(conf.with_overrides({"segment.feature_columns": ["a", "b"]}))
    assert (custom.columns, custom.feature_set_label) == (["a", "b"], "custom")


def test_comparison_section_and_auto(conf):
    s = SegmentSettings.from_config(conf)
    assert (s.comparison, s.comparison_bootstrap, s.comparison_tree_depth, s.comparison_value_column) == (
        False,
        2,
        3,
        "monetary",
    )
    auto = SegmentSettings.from_config(
        conf.with_overrides(
            {"segment.algorithm": "auto", "segment.comparison.enabled": True, "segment.comparison.bootstrap": 0}
        )
    )
    assert (auto.algorithm, auto.comparison, auto.comparison_bootstrap) == ("auto", True, 0)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"segment.algorithm": "dbscan"}, "segment.algorithm"),
        ({"segment.k_min": 5, "segment.k_max": 3}, "segment.k_max"),
        ({"segment.k": 1}, "segment.k"),
        ({"segment.k_criterion": "gap"}, "segment.k_criterion"),
        ({"segment.n_init": 0}, "segment.n_init"),
        ({"segment.feature_set": "nope"}, "segment.feature_set"),
        ({"segment.churn_risk_threshold": 1.5}, "segment.churn_risk_threshold"),
        ({"segment.naming_rules.Whales": {"monetary": "big"}}, "segment.naming_rules"),
        ({"segment.value_classes.rules": [{"name": "x", "when": {"Q": "+"}}]}, "segment.value_classes.rules"),
        ({"segment.value_classes.rules": [{"name": "x", "when": {"R": "up"}}]}, "segment.value_classes.rules"),
        ({"segment.comparison.bootstrap": -1}, "segment.comparison.bootstrap"),
        ({"segment.comparison.tree_depth": 0}, "segment.comparison.tree_depth"),
        ({"segment.comparison.min_z": 0}, "segment.comparison.min_z"),
    ],
)
def test_bad_values_name_the_key(conf, overrides, key):
    with pytest.raises(ConfigError, match=rf"key '{key}'"):
        conf.with_overrides(overrides)
