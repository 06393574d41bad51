"""gold.kpi_trends and gold.campaign_funnel against figures worked out by hand (comments show the work)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from custseg.config import ConfigError, load_config
from custseg.marketing.funnel import FUNNEL_COLUMNS, campaign_funnel
from custseg.marketing.kpis import KPI_COLUMNS, KpiSettings, kpi_trends

AS_OF = date(2026, 6, 30)
# period 0 = 2026-06-01..06-30, 1 = 05-02..05-31, 2 = 04-02..05-01; 3 (03-03..04-01) is only
# the "before" of period 2.
S = KpiSettings(period_days=30, periods=3)

ORDERS = [
    # order_id, customer_key, order_date, status, net_revenue
    ("a0", "A", date(2026, 1, 1), "completed", 10.0),  # A's first order, before the horizon
    ("a1", "A", date(2026, 6, 10), "completed", 100.0),
    ("a2", "A", date(2026, 6, 20), "completed", 50.0),
    ("a3", "A", date(2026, 5, 15), "completed", 30.0),
    ("a4", "A", date(2026, 7, 2), "completed", 999.0),  # after the snapshot: not counted
    ("b1", "B", date(2026, 5, 20), "completed", 40.0),
    ("b0", "B", date(2026, 4, 10), "completed", 20.0),  # B's first order (period 2)
    ("c1", "C", date(2026, 6, 25), "completed", 70.0),  # C's first order (period 0)
    ("d1", "D", date(2026, 3, 20), "completed", 10.0),  # D: active in period 3 only
    ("e1", "E", date(2026, 6, 5), "cancelled", 80.0),  # not a completed order
    ("g1", None, date(2026, 6, 6), "completed", 60.0),  # a guest order: nobody's
]
SEGMENTS = [("A", "Loyal"), ("B", "Loyal"), ("C", "New"), ("E", "New")]  # D has no segment
FEEDBACK = [
    # customer_key, ts, rating, nps, is_complaint
    ("A", datetime(2026, 6, 15, 10), 5, 10, False),
    ("C", datetime(2026, 6, 20, 10), 2, 3, True),
    ("B", datetime(2026, 5, 10, 10), 4, None, False),
    ("A", datetime(2026, 7, 1, 10), 1, 0, True),  # after the snapshot
]


def _orders(spark):
    df = spark.createDataFrame(
        ORDERS, "order_id string, customer_key string, order_date date, status string, net_revenue double"
    )
    return df.withColumn("net_revenue", df["net_revenue"].cast("decimal(12,2)"))  # as in silver.orders


def _segments(spark):
    return spark.createDataFrame(SEGMENTS, "customer_key string, segment_name string")


def _feedback(spark):
    return spark.createDataFrame(
        FEEDBACK, "customer_key string, ts timestamp, rating int, nps int, is_complaint boolean"
    )


def _rows(df, key_cols):
    return {tuple(r[c] for c in key_cols): r.asDict() for r in df.collect()}


def test_kpi_trends_overall_by_hand(spark):
    df = kpi_trends(_orders(spark), _feedback(spark), _segments(spark), AS_OF, S)
    assert df.columns == KPI_COLUMNS
    rows = _rows(df, ["period", "segment_name"])
    p0, p1, p2 = rows[(0, "all")], rows[(1, "all")], rows[(2, "all")]
    # period 0: A (2 orders) and C active; C is new; before: A and B; A retained, B churned
    assert (p0["period_start"], p0["period_end"]) == (date(2026, 6, 1), date(2026, 6, 30))
    assert (p0["active"], p0["new"], p0["previous_active"], p0["retained"], p0["churned"]) == (2, 1, 2, 1, 1)
    assert (p0["retention_rate"], p0["churn_rate"], p0["repeat_rate"]) == (0.5, 0.5, 0.5)
    assert (p0["orders"], p0["revenue"]) == (3, 220.0) and p0["aov"] == pytest.approx(220 / 3)
    # feedback: ratings 5 and 2; NPS 10 (promoter) and 3 (detractor) -> 0; one complaint of two
    assert (p0["feedback"], p0["satisfaction"], p0["nps"], p0["complaints"], p0["complaint_rate"]) == (
        2,
        3.5,
        0.0,
        1,
        0.5,
    )
    # period 1: A and B active, nobody new; before: B only, who stayed
    assert (p1["period_start"], p1["period_end"]) == (date(2026, 5, 2), date(2026, 5, 31))
    assert (p1["active"], p1["new"], p1["previous_active"], p1["retained"], p1["churned"]) == (2, 0, 1, 1, 0)
    assert (p1["retention_rate"], p1["repeat_rate"], p1["orders"], p1["revenue"], p1["aov"]) == (
        1.0,
        0.0,
        2,
        70.0,
        35.0,
    )
    # one answer without an NPS score: satisfaction 4, NPS unknown
    assert (p1["feedback"], p1["satisfaction"], p1["nps"], p1["complaint_rate"]) == (1, 4.0, None, 0.0)
    # period 2: B's first order; before: D, who did not come back
    assert (p2["active"], p2["new"], p2["previous_active"], p2["retained"], p2["churned"]) == (1, 1, 1, 0, 1)
    assert (p2["retention_rate"], p2["churn_rate"]) == (0.0, 1.0)
    assert (p2["feedback"], p2["satisfaction"], p2["complaint_rate"]) == (0, None, None)
    assert {k[0] for k in rows} == {0, 1, 2}, "period 3 is only the 'before' of period 2"


def test_kpi_trends_per_segment_by_hand(spark):
    rows = _rows(kpi_trends(_orders(spark), _feedback(spark), _segments(spark), AS_OF, S), ["period", "segment_name"])
    loyal0, new0 = rows[(0, "Loyal")], rows[(0, "New")]
    # Loyal = A and B: A bought twice (150), B lapsed
    assert (loyal0["active"], loyal0["previous_active"], loyal0["retained"], loyal0["churned"]) == (1, 2, 1, 1)
    assert (loyal0["orders"], loyal0["revenue"], loyal0["repeat_rate"]) == (2, 150.0, 1.0)
    assert (loyal0["satisfaction"], loyal0["nps"]) == (5.0, 100.0)
    # New = C (first order) and E (a cancelled order only: not active)
    assert (new0["active"], new0["new"], new0["orders"], new0["revenue"]) == (1, 1, 1, 70.0)
    assert (new0["complaints"], new0["complaint_rate"], new0["nps"]) == (1, 1.0, -100.0)
    # D has no segment: counted as unsegmented, churned in period 2
    un2 = rows[(2, "unsegmented")]
    assert (un2["active"], un2["previous_active"], un2["churned"]) == (0, 1, 1)
    # the segment rows add up to the overall row
    for p in (0, 1, 2):
        for col in ("active", "new", "previous_active", "retained", "churned", "orders", "feedback", "complaints"):
            parts = sum(r[col] for (q, seg), r in rows.items() if q == p and seg != "all")
            assert parts == rows[(p, "all")][col], (p, col)


def test_kpi_trends_without_feedback_or_segments(spark):
    rows = _rows(kpi_trends(_orders(spark), None, None, AS_OF, S), ["period", "segment_name"])
    assert set(rows) == {(p, s) for p in (0, 1, 2) for s in ("all", "unsegmented")}
    assert rows[(0, "all")]["active"] == 2 and rows[(0, "all")]["feedback"] == 0
    assert rows[(0, "all")]["satisfaction"] is None and rows[(0, "all")]["complaint_rate"] is None


def test_kpi_settings_fail_naming_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("marketing:\n  kpis:\n    period_days: 0\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*marketing\.kpis\.period_days"):
        KpiSettings.from_config(load_config(bad))


RESPONSES = [
    # campaign_id, customer_key, group, sent_ts, opened_ts, clicked_ts, converted_ts, converted, revenue
    (
        "C1",
        "A",
        "treatment",
        "2026-06-01 09:00",
        "2026-06-01 10:00",
        "2026-06-02 08:00",
        "2026-06-03 12:00",
        True,
        50.0,
    ),
    ("C1", "B", "treatment", "2026-06-01 09:00", "2026-06-02 10:00", None, None, False, 0.0),
    # clicked an ad (no open tracking); converted after the snapshot: not yet a conversion
    ("C1", "C", "treatment", "2026-06-01 09:00", None, "2026-06-02 08:00", "2026-07-05 12:00", True, 30.0),
    ("C1", "D", "control", "2026-06-01 09:00", None, None, "2026-06-10 12:00", True, 20.0),
    ("C1", "E", "treatment", "2026-07-01 09:00", None, None, None, False, 0.0),  # sent after the snapshot
    ("C1", "E", "treatment", "2026-06-01 09:00", "2026-07-02 10:00", None, None, False, 0.0),  # opened later
]
RESPONSE_SCHEMA = (
    "campaign_id string, customer_key string, group string, sent_ts string, opened_ts string, clicked_ts string, "
    "converted_ts string, converted boolean, revenue double"
)


def _responses(spark, rows=RESPONSES, extra: str = ""):
    df = spark.createDataFrame(rows, RESPONSE_SCHEMA + extra)
    for c in ("sent_ts", "opened_ts", "clicked_ts", "converted_ts"):
        df = df.withColumn(c, df[c].cast("timestamp"))
    return df


def test_campaign_funnel_by_hand(spark):
    df = campaign_funnel(_responses(spark), _segments(spark), AS_OF)
    assert df.columns == FUNNEL_COLUMNS
    rows = _rows(df, ["variant", "group", "segment_name"])
    t = rows[("default", "treatment", "all")]
    # A, B, C and E's June send; opens A, B (E's open came later); clicks A, C; conversion A only
    assert (t["assigned"], t["sent"], t["delivered"], t["opened"], t["clicked"], t["converted"]) == (4, 4, 4, 2, 2, 1)
    assert (t["revenue"], t["first_sent"]) == (50.0, date(2026, 6, 1))
    assert (t["delivery_rate"], t["open_rate"], t["click_rate"], t["click_to_open"], t["conversion_rate"]) == (
        1.0,
        0.5,
        0.5,
        1.0,
        0.25,
    )
    c = rows[("default", "control", "all")]
    # the control is assigned, never sent; its conversions are the baseline
    assert (c["assigned"], c["sent"], c["delivered"], c["converted"], c["revenue"]) == (1, 0, 0, 1, 20.0)
    assert (c["delivery_rate"], c["conversion_rate"]) == (None, 1.0)
    loyal = rows[("default", "treatment", "Loyal")]
    assert (loyal["assigned"], loyal["opened"], loyal["clicked"], loyal["converted"]) == (2, 2, 1, 1)
    assert rows[("default", "control", "unsegmented")]["assigned"] == 1


def test_campaign_funnel_variants_and_bounces(spark):
    rows = [
        ("C2", "A", "treatment", "2026-06-01 09:00", "2026-06-01 10:00", None, None, False, 0.0, "A", False),
        ("C2", "B", "treatment", "2026-06-01 09:00", None, None, None, False, 0.0, "A", True),  # bounced
        (
            "C2",
            "C",
            "treatment",
            "2026-06-01 09:00",
            "2026-06-01 11:00",
            "2026-06-01 12:00",
            None,
            False,
            0.0,
            "B",
            False,
        ),
        ("C2", "D", "treatment", "2026-06-01 09:00", None, None, None, False, 0.0, None, False),  # no variant recorded
    ]
    df = campaign_funnel(_responses(spark, rows, ", variant string, bounced boolean"), None, AS_OF)
    got = _rows(df.where("segment_name = 'all'"), ["variant"])
    assert set(got) == {("A",), ("B",), ("default",)}
    a = got[("A",)]
    assert (a["sent"], a["delivered"], a["opened"], a["delivery_rate"], a["open_rate"]) == (2, 1, 1, 0.5, 1.0)
    b = got[("B",)]
    assert (b["delivered"], b["opened"], b["clicked"], b["click_to_open"]) == (1, 1, 1, 1.0)
