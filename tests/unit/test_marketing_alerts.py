"""gold.churn_alerts: reasons hand-computed on small inline customers, the base flag, the config."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from chispa import assert_approx_df_equality, assert_df_equality

from custseg.config import ConfigError, load_config
from custseg.marketing.alerts import ALERT_COLUMNS, AlertSettings, churn_alerts, with_alert_flag

AS_OF = date(2026, 6, 30)
BASE = (
    "customer_key string, orders_last_90 int, orders_prev_90 int, overdue_ratio double, p_alive double, "
    "recency_days int, monetary decimal(16,2), clv double, rfm_segment string, segment_name string"
)


def _base(spark):
    d = Decimal
    rows = [
        # 1 order against 4 before: 1 < 0.5 x 4 -> declining only
        ("a", 1, 4, 0.7, 0.9, 20, d("100.00"), 80.0, "Loyal", "Regulars"),
        # no orders either window (0 < 0 is false); 3 gaps overdue; risk 0.6
        ("b", 0, 0, 3.0, 0.4, 90, d("50.00"), 5.0, "At Risk", None),
        # on every boundary: 2 is not < 0.5 x 4; 1.99 < 2.0; risk exactly 0.5 counts
        ("c", 2, 4, 1.99, 0.5, 30, d("20.00"), 10.0, "Need Attention", "Bargain"),
        # healthy
        ("d", 3, 3, 1.0, 0.95, 10, d("300.00"), 400.0, "Champions", "Regulars"),
        # never bought: nulls raise nothing
        ("e", 0, 0, None, None, None, d("0.00"), None, None, None),
        # everything at once
        ("f", 0, 1, 2.5, 0.05, 200, d("200.00"), 1.0, "Lost", "Lapsed"),
    ]
    return spark.createDataFrame(rows, BASE)


def test_alerts_list_flagged_customers_with_their_reasons(spark):
    got = _base(spark).transform(churn_alerts(AlertSettings(0.5, 2.0, 0.5), AS_OF))
    assert got.columns == ALERT_COLUMNS
    d = Decimal
    expected = spark.createDataFrame(
        [
            (AS_OF, "a", ["declining"], 1, 0.1, 0.9, 0.7, 1, 4, 20, d("100.00"), 80.0, 10.0, "Loyal", "Regulars"),
            (AS_OF, "b", ["overdue", "churn_risk"], 2, 0.6, 0.4, 3.0, 0, 0, 90, d("50.00"), 5.0, 30.0, "At Risk", None),
            (
                AS_OF,
                "c",
                ["churn_risk"],
                1,
                0.5,
                0.5,
                1.99,
                2,
                4,
                30,
                d("20.00"),
                10.0,
                10.0,
                "Need Attention",
                "Bargain",
            ),
            (
                AS_OF,
                "f",
                ["declining", "overdue", "churn_risk"],
                3,
                0.95,
                0.05,
                2.5,
                0,
                1,
                200,
                d("200.00"),
                1.0,
                190.0,
                "Lost",
                "Lapsed",
            ),
        ],
        "snapshot_date date, customer_key string, reasons array<string>, n_reasons int, churn_risk double, "
        "p_alive double, overdue_ratio double, orders_last_90 int, orders_prev_90 int, recency_days int, "
        "monetary decimal(16,2), clv double, value_at_risk double, rfm_segment string, segment_name string",
    )
    assert_approx_df_equality(got, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_thresholds_move_customers_on_and_off_the_list(spark):
    # Stricter risk (0.7) and overdue (3.5) thresholds, a looser decline ratio (0.6: 2 < 2.4)
    got = _base(spark).transform(churn_alerts(AlertSettings(0.7, 3.5, 0.6), AS_OF)).select("customer_key", "reasons")
    expected = spark.createDataFrame(
        [("a", ["declining"]), ("c", ["declining"]), ("f", ["declining", "churn_risk"])],
        "customer_key string, reasons array<string>",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_base_gets_a_false_flag_when_not_listed(spark):
    alerts = _base(spark).transform(churn_alerts(AlertSettings(), AS_OF))
    base = spark.createDataFrame([("a", 1), ("d", 2), ("zz", 3)], "customer_key string, n int")
    got = base.transform(with_alert_flag(alerts))
    expected = spark.createDataFrame(
        [("a", 1, True, ["declining"]), ("d", 2, False, None), ("zz", 3, False, None)],
        "customer_key string, n int, churn_alert boolean, churn_alert_reasons array<string>",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_settings_from_config_and_a_bad_threshold_fails_naming_the_key():
    conf = load_config("local.yaml", env={"CUSTSEG_PII_SALT": "x"})
    s = AlertSettings.from_config(conf)
    assert s == AlertSettings(
        churn_risk_threshold=float(conf.get_path("marketing.churn_alerts.churn_risk_threshold")),
        overdue_ratio_threshold=float(conf.get_path("features.overdue_ratio_threshold")),
        decline_ratio=float(conf.get_path("features.decline_ratio")),
    )
    assert AlertSettings.from_config(conf.with_overrides({"marketing.churn_alerts.churn_risk_threshold": 0.8})) == (
        AlertSettings(0.8, s.overdue_ratio_threshold, s.decline_ratio)
    )
    with pytest.raises(ConfigError, match=r"marketing.churn_alerts.churn_risk_threshold' must be a number in \(0, 1\]"):
        conf.with_overrides({"marketing.churn_alerts.churn_risk_threshold": 1.5})


def test_default_retention_campaign_targets_the_alert_list():
    from custseg.marketing.campaigns import load_campaigns

    conf = load_config("local.yaml", env={"CUSTSEG_PII_SALT": "x"})
    (retention,) = [c for c in load_campaigns(conf) if c.goal == "retention"]
    assert [(f.column, f.op, f.value) for f in retention.eligibility.filters] == [("churn_alert", "==", True)]
