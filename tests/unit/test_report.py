"""The HTML report from a small snapshot written straight into Delta tables.

``write_small_snapshot`` builds every table the report reads (two segment snapshots, so
migration has a previous one) with hand-chosen values; the tests check that every section
is drawn with an image, that the numbers in it are the hand-computed ones, and that a
section whose table is missing says so instead of failing the report.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from custseg.runs import JOB_RUNS, JOB_RUNS_SCHEMA, latest_runs
from custseg.storage import StorageSettings, Tables

D = date(2026, 6, 30)
D_PREV = date(2026, 6, 23)
REQUIRED_SECTIONS = [
    "ingest",
    "rfm",
    "segments",
    "centres",
    "k_selection",
    "migration",
    "rules",
    "cross_sell",
    "plan",
    "lift",
    "kpis",
    "funnel",
    "strategy",
    "variants",
]

# customer -> (recency_days, frequency, monetary, r, f, m, rfm_segment, segment_id, segment_name)
CUSTOMERS = {
    "k01": (2, 9, "900.00", 5, 5, 5, "Champions", 1, "High-value loyal"),
    "k02": (5, 8, "700.00", 5, 5, 5, "Champions", 1, "High-value loyal"),
    "k03": (9, 7, "650.00", 5, 4, 5, "Champions", 1, "High-value loyal"),
    "k04": (40, 4, "300.00", 3, 4, 3, "Loyal", 2, "Bargain hunters"),
    "k05": (45, 3, "200.00", 3, 3, 2, "Need Attention", 2, "Bargain hunters"),
    "k06": (60, 3, "150.00", 3, 3, 2, "Need Attention", 2, "Bargain hunters"),
    "k07": (200, 1, "50.00", 1, 1, 1, "Lost", 3, "Dormant"),
    "k08": (250, 1, "40.00", 1, 1, 1, "Lost", 3, "Dormant"),
    "k09": (300, 2, "10.00", 1, 2, 1, "Hibernating", 3, "Dormant"),
    "k10": (None, 0, "0.00", 1, 1, 1, "Lost", 3, "Dormant"),
}
# the previous snapshot: k03 was Bargain hunters, k06 Dormant, k10 not there, k11 there but gone now
PREVIOUS = {
    "k01": (1, "High-value loyal"),
    "k02": (1, "High-value loyal"),
    "k03": (2, "Bargain hunters"),
    "k04": (2, "Bargain hunters"),
    "k05": (2, "Bargain hunters"),
    "k06": (3, "Dormant"),
    "k07": (3, "Dormant"),
    "k08": (3, "Dormant"),
    "k09": (3, "Dormant"),
    "k11": (3, "Dormant"),
}


def write_small_snapshot(spark, tables_root: Path, skip: tuple[str, ...] = ()) -> Tables:
    """Every table the report reads, small and hand-made, for snapshot ``D``."""
    t = Tables(spark, StorageSettings(root=str(tables_root), engine="delta-rs"))

    def write(name, rows, schema, partition_by=("snapshot_date",)):
        if name not in skip:
            t.overwrite(spark.createDataFrame(rows, schema), name, partition_by=list(partition_by))

    ts = datetime(2026, 6, 30, 2, 0)
    write(
        "meta.reconciliation",
        [
            ("crm_customers", D, "b1", 10, 9, 1),
            ("orders", D, "b2", 20, 18, 2),
            ("orders", D_PREV, "b0", 99, 50, 49),  # another batch: not in this report
        ],
        "source string, batch_date date, batch_id string, records_read long, records_accepted long, records_quarantined long",
        ("batch_date",),
    )
    write(
        "bronze.quarantine",
        [
            ("crm_customers", ["missing_required"], "missing_required", "{}", "f1", "b1", ts, D),
            (
                "orders",
                ["bad_timestamp", "negative_price"],
                "bad_timestamp",
                "{}",
                "f2",
                "b2",
                ts,
                D,
            ),
            ("orders", ["negative_price"], "negative_price", "{}", "f2", "b2", ts, D),
            ("orders", ["negative_price"], "negative_price", "{}", "f0", "b0", ts, D_PREV),
        ],
        "source string, reasons array<string>, reason string, raw_record string, _source_file string, "
        "_batch_id string, _ingested_at timestamp, _batch_date date",
        ("_batch_date", "source"),
    )
    feats = [
        (k, r, f, Decimal(m), rs, fs, ms, f"{rs}{fs}{ms}", seg, D)
        for k, (r, f, m, rs, fs, ms, seg, _, _) in CUSTOMERS.items()
    ]
    feats.append(("k01", 1, 1, Decimal("5.00"), 5, 1, 1, "511", "New", D_PREV))  # other snapshot
    write(
        "gold.customer_features",
        feats,
        "customer_key string, recency_days int, frequency int, monetary decimal(16,2), r_score int, f_score int, "
        "m_score int, rfm_cell string, rfm_segment string, snapshot_date date",
    )
    segs = [(k, D, sid, name, v[6], 0.5, 0.1, 100.0) for k, v in CUSTOMERS.items() for sid, name in [(v[7], v[8])]]
    segs += [(k, D_PREV, sid, name, None, 0.5, 0.1, 100.0) for k, (sid, name) in PREVIOUS.items()]
    write(
        "gold.customer_segments",
        segs,
        "customer_key string, snapshot_date date, segment_id int, segment_name string, rfm_segment string, "
        "distance double, churn_risk double, clv double",
    )
    # the segment stage's own tables (contracts of custseg.stages.segment)
    write(
        "gold.segment_profiles",
        [
            (
                D,
                1,
                "High-value loyal",
                3,
                0.3,
                2250.0,
                0.75,
                {"recency_days": 5.3, "frequency": 8.0},
                {"recency_days": -0.9, "frequency": 1.4},
            ),
            (
                D,
                2,
                "Bargain hunters",
                3,
                0.3,
                650.0,
                650.0 / 3000.0,
                {"recency_days": 48.3, "frequency": 3.3},
                {"recency_days": -0.5, "frequency": -0.2},
            ),
            (
                D,
                3,
                "Dormant",
                4,
                0.4,
                100.0,
                100.0 / 3000.0,
                {"recency_days": 250.0, "frequency": 1.0},
                {"recency_days": 1.4, "frequency": -0.9},
            ),
        ],
        "snapshot_date date, segment_id int, segment_name string, customers long, customer_share double, revenue double, "
        "revenue_share double, centre map<string,double>, centre_z map<string,double>",
    )
    quality = []
    for k, sil, wss in [(2, 0.41, 90.0), (3, 0.62, 40.0), (4, 0.48, 33.0), (5, 0.40, 29.0)]:
        quality += [
            (D, "k_selection", k, None, "silhouette", sil),
            (D, "k_selection", k, None, "wss", wss),
        ]
        quality += [(D, "k_selection", k, None, "chosen", 1.0 if k == 3 else 0.0)]
    # rows that are not the k curve
    quality += [
        (D, "overall", 3, None, "silhouette", 0.99),
        (D, "segment", 3, 1, "wss", 7.0),
    ]
    write(
        "gold.segment_quality",
        [(*q, "kmeans", "rfm") for q in quality],
        "snapshot_date date, kind string, k int, segment_id int, metric string, value double, algorithm string, feature_set string",
    )
    migration = [  # the counts test_migration_counts_new_and_left_customers expects (k03, k06, k10, k11 moved)
        (None, None, 3, "Dormant", 1),
        (2, "Bargain hunters", 2, "Bargain hunters", 2),
        (2, "Bargain hunters", 1, "High-value loyal", 1),
        (3, "Dormant", None, None, 1),
        (3, "Dormant", 2, "Bargain hunters", 1),
        (3, "Dormant", 3, "Dormant", 3),
        (1, "High-value loyal", 1, "High-value loyal", 2),
    ]
    write(
        "gold.segment_migration",
        [(D, D_PREV, *m, None) for m in migration],
        "snapshot_date date, previous_snapshot_date date, from_segment_id int, from_segment_name string, to_segment_id int, "
        "to_segment_name string, customers long, share_of_from double",
    )
    write(
        "gold.association_rules",
        [
            (D, "category", None, ["bread"], ["butter"], 0.10, 0.50, 2.5),
            (D, "category", None, ["pasta", "tomato"], ["parmesan"], 0.05, 0.60, 4.0),
            (D, "category", None, ["milk"], ["cereal"], 0.20, 0.40, 1.2),
            (
                D,
                "category",
                2,
                ["wine"],
                ["cheese"],
                0.01,
                0.90,
                9.0,
            ),  # mined in one segment: not a top rule
        ],
        "snapshot_date date, level string, segment_id int, antecedent array<string>, consequent array<string>, "
        "support double, confidence double, lift double",
    )
    write(
        "gold.cross_sell",
        [
            (D, "k01", 1, "butter", 1.25, ["bread"], 0.5, 2.5, "rule"),
            (D, "k01", 2, "cereal", 0.48, ["milk"], 0.4, 1.2, "rule"),
            (D, "k04", 1, "butter", 1.25, ["bread"], 0.5, 2.5, "rule"),
            (D, "k07", 1, "parmesan", 2.4, ["pasta", "tomato"], 0.6, 4.0, "rule"),
        ],
        "snapshot_date date, customer_key string, rank int, item string, score double, antecedent array<string>, "
        "confidence double, lift double, reason string",
    )
    write(
        "gold.campaign_plan",
        [  # the textbook comparison: blanket 20,000 x 5 with 474 responses; precise 2,000 x 12.5 with 222
            (
                D,
                "win_back",
                "Win back",
                "blanket",
                20000,
                100000.0,
                474.0,
                0.0237,
                142200.0,
                118500.0,  # margin: 250 a response
                18500.0,  # profit = margin - cost, as the plan defines it
                0.185,
            ),
            (
                D,
                "win_back",
                "Win back",
                "precision",
                2000,
                25000.0,
                222.0,
                0.111,
                66600.0,
                55500.0,
                30500.0,
                1.22,
            ),
            (
                D,
                "win_back",
                "Win back",
                "random",
                2000,
                10000.0,
                47.4,
                0.0237,
                14220.0,
                11850.0,
                1850.0,
                0.185,
            ),
        ],
        "snapshot_date date, campaign_id string, campaign_name string, strategy string, contacts long, cost double, "
        "expected_responses double, response_rate double, revenue double, margin double, profit double, roi double",
    )
    write(
        "gold.campaign_results",
        [
            (
                D,
                "win_back",
                "campaign",
                None,
                1000,
                1000,
                120,
                80,
                0.12,
                0.08,
                0.04,
                0.0138,
                0.0662,
                0.5,
                0.0031,
            ),
            (
                D,
                "win_back",
                "segment",
                "Dormant",
                400,
                400,
                40,
                30,
                0.10,
                0.075,
                0.025,
                -0.014,
                0.064,
                0.33,
                0.21,
            ),
            (
                D,
                "cross_sell",
                "campaign",
                None,
                500,
                500,
                50,
                48,
                0.10,
                0.096,
                0.004,
                -0.033,
                0.041,
                0.04,
                0.83,
            ),
        ],
        "snapshot_date date, campaign_id string, level string, segment string, n_treatment long, n_control long, "
        "conversions_treatment long, conversions_control long, rate_treatment double, rate_control double, lift_abs double, "
        "lift_abs_ci_low double, lift_abs_ci_high double, lift_rel double, p_value double",
    )
    # gold.kpi_trends: two 30-day periods, overall and two segments (made up, consistent: the
    # segments add up to "all")
    kpi_cols = (
        "snapshot_date date, period int, period_start date, period_end date, segment_name string, active long, "
        "new long, previous_active long, retained long, churned long, retention_rate double, churn_rate double, "
        "repeat_rate double, orders long, revenue double, aov double, feedback long, satisfaction double, "
        "nps double, complaints long, complaint_rate double"
    )
    kpis = []
    for period, end, seg, active, new, prev, kept, orders, revenue, fb, sat, nps, compl in [
        (0, date(2026, 6, 30), "all", 8, 2, 7, 6, 12, 600.0, 4, 4.0, 25.0, 1),
        (0, date(2026, 6, 30), "Champions", 5, 0, 5, 5, 9, 500.0, 2, 4.5, 50.0, 0),
        (0, date(2026, 6, 30), "Dormant", 3, 2, 2, 1, 3, 100.0, 2, 3.5, 0.0, 1),
        (1, date(2026, 5, 31), "all", 7, 1, 8, 6, 10, 450.0, 3, 3.9, 10.0, 1),
        (1, date(2026, 5, 31), "Champions", 5, 0, 5, 5, 8, 400.0, 1, 5.0, 100.0, 0),
        (1, date(2026, 5, 31), "Dormant", 2, 1, 3, 1, 2, 50.0, 2, 3.0, -50.0, 1),
    ]:
        kpis.append(
            (D, period, end - timedelta(days=29), end, seg, active, new, prev, kept, prev - kept, kept / prev,
             (prev - kept) / prev, 0.5, orders, revenue, revenue / orders, fb, sat, nps, compl, compl / fb)
        )  # fmt: skip
    write("gold.kpi_trends", kpis, kpi_cols)
    funnel_cols = (
        "snapshot_date date, campaign_id string, variant string, group string, segment_name string, first_sent date, "
        "assigned long, sent long, delivered long, opened long, clicked long, converted long, revenue double, "
        "delivery_rate double, open_rate double, click_rate double, click_to_open double, conversion_rate double"
    )
    funnel = [
        (D, "win_back", "default", "treatment", "all", date(2026, 5, 1), 100, 100, 98, 40, 10, 8, 400.0,
         0.98, 40 / 98, 10 / 98, 0.25, 0.08),
        (D, "win_back", "default", "control", "all", date(2026, 5, 1), 20, 0, 0, 0, 0, 1, 50.0,
         None, None, None, None, 0.05),
        (D, "cross_sell", "default", "treatment", "all", date(2026, 6, 1), 50, 50, 50, 20, 6, 5, 250.0,
         1.0, 0.4, 0.12, 0.3, 0.1),
        (D, "cross_sell", "default", "control", "all", date(2026, 6, 1), 10, 0, 0, 0, 0, 0, 0.0,
         None, None, None, None, 0.0),
    ]  # fmt: skip
    write("gold.campaign_funnel", funnel, funnel_cols)
    from custseg.segment.comparison import COMPARISON_SCHEMA, comparison_rows, rank

    crit = {"distinctiveness": 0.6, "stability": 0.9, "interpretability": 0.95, "effectiveness": 0.3}
    candidates = [
        {"candidate": "kmeans", "k": 2, "pickable": True, **crit},
        {"candidate": "rfm_cells", "k": 5, "pickable": False, **crit, "stability": 0.4},
    ]
    write("gold.segmentation_comparison", comparison_rows(rank(candidates), D, "persona", "kmeans"), COMPARISON_SCHEMA)
    strategy_cols = (
        "snapshot_date date, segment_name string, customers long, buyers long, value_class string, clv_mean double, "
        "clv_index double, top_categories array<string>, cross_sell_items array<string>, als_items array<string>, "
        "new_product_trial boolean, product_evidence string, discount_sensitivity double, discount_wanted double, "
        "discount_cap double, discount_depth double, discount_capped boolean, price_evidence string, "
        "channel_mix array<string>, primary_channel string, purchase_channel string, daypart string, "
        "place_evidence string, goal string, promotion string, offer_type string, promotion_rule string"
    )
    strategy = [
        (D, "Bargain hunters", 3, 3, "general", 80.0, 0.5, ["snacks", "dairy"], ["chips"], [], False, "p-bargain",
         0.9, 0.275, 0.235, 0.23, True, "capped at 23.5%", ["email", "sms"], "email", "web", "weekend", "pl-b",
         "growth", "cross_sell", "cross_sell", "no rule above holds"),
        (D, "High-value loyal", 5, 5, "important-retain", 400.0, 2.5, ["wine"], [], ["port", "cheese"], True,
         "p-loyal", 0.1, 0.075, 0.235, 0.07, False, "7% wanted", ["sms"], "sms", "store", "weekday_evening",
         "pl-l", "retention", "birthday_anniversary", "voucher", "value class important-retain"),
    ]  # fmt: skip
    write("gold.segment_strategy", strategy, strategy_cols)
    # gold.variant_results: win_back's b beats the control (and a does not); one segment row,
    # which the section leaves out
    variant_cols = (
        "snapshot_date date, campaign_id string, level string, segment string, variant string, n_variant long, "
        "n_control long, rate_variant double, rate_control double, lift_abs double, lift_abs_ci_low double, "
        "lift_abs_ci_high double, p_value double, p_adjusted double, correction string, significant boolean, "
        "best boolean"
    )
    variants = [
        (D, "win_back", "campaign", None, "b", 50, 20, 0.12, 0.05, 0.07, 0.02, 0.12, 0.004, 0.008, "holm", True, True),
        (D, "win_back", "campaign", None, "a", 50, 20, 0.04, 0.05, -0.01, -0.06, 0.04, 0.7, 0.7, "holm", False, False),
        (D, "win_back", "segment", "Dormant", "a", 9, 4, 0.1, 0.0, 0.1, None, None, None, None, "holm", None, False),
    ]  # fmt: skip
    write("gold.variant_results", variants, variant_cols)
    started = datetime(2026, 6, 30, 3, 0)
    runs = [
        (
            "ingest-1",
            "ingest",
            D,
            started,
            datetime(2026, 6, 30, 3, 1),
            "succeeded",
            30,
            27,
            3,
            60.0,
            "{}",
            "{}",
            None,
            "local-1",
        ),
        (
            "features-1",
            "features",
            D,
            started,
            datetime(2026, 6, 30, 3, 2),
            "succeeded",
            27,
            10,
            0,
            120.0,
            "{}",
            "{}",
            None,
            "local-1",
        ),
    ]
    if JOB_RUNS not in skip:
        t.append(spark.createDataFrame(runs, JOB_RUNS_SCHEMA), JOB_RUNS, partition_by=["run_date"])
    return t


def read_tables(t: Tables) -> dict:
    from custseg.report import REPORT_TABLES

    return {name: (t.read(name) if t.exists(name) else None) for name in REPORT_TABLES}


class ReportParser(HTMLParser):
    """Sections of the report: key -> status, images (decoded PNG bytes), texts and table cells."""

    def __init__(self):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.current: str | None = None
        self.external: list[str] = []
        self._in_td = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.current = a["data-section"]
            self.sections[self.current] = {
                "status": a["data-status"],
                "images": [],
                "text": [],
                "cells": [],
            }
        elif tag == "img":
            src = a.get("src", "")
            if src.startswith("data:image/png;base64,"):
                self.sections[self.current]["images"].append(base64.b64decode(src.split(",", 1)[1]))
            else:
                self.external.append(src)
        elif tag in ("link", "script") and (a.get("href") or a.get("src")):
            self.external.append(a.get("href") or a.get("src"))
        elif tag == "td":
            self._in_td = True

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None
        elif tag == "td":
            self._in_td = False

    def handle_data(self, data):
        if self.current is not None and data.strip():
            self.sections[self.current]["text"].append(data.strip())
            if self._in_td:
                self.sections[self.current]["cells"].append(data.strip())


def parse(html: str) -> ReportParser:
    p = ReportParser()
    p.feed(html)
    return p


@pytest.fixture(scope="session")
def report_home(spark, tmp_path_factory) -> Path:
    """A CUSTSEG_HOME whose tables/ hold the small snapshot (shared by the report, notebook and browser tests)."""
    home = tmp_path_factory.mktemp("report-home")
    write_small_snapshot(spark, home / "tables")
    return home


@pytest.fixture(scope="module")
def small_tables(spark, report_home):
    return Tables(spark, StorageSettings(root=str(report_home / "tables"), engine="delta-rs"))


@pytest.fixture(scope="module")
def full_report(small_tables):
    from custseg.report import ReportInputs, ReportSettings, build_report

    activation = [
        {"campaign_id": "c1", "profile": "braze_users", "channels": ["email"], "files": 1, "rows": 3,
         "excluded_by_consent_field": {"opt_in_email": 1}, "excluded_no_identifier": 0}
    ]  # fmt: skip
    return build_report(ReportInputs(D, read_tables(small_tables), ReportSettings(top_rules=2), activation))


def test_every_section_is_drawn_with_an_image(full_report):
    parsed = parse(full_report.html)
    for key in REQUIRED_SECTIONS:
        assert key in parsed.sections, f"section {key} missing"
        sec = parsed.sections[key]
        assert sec["status"] == "ok", f"section {key}: {sec['text']}"
        assert sec["images"], f"section {key} has no image"
        for png in sec["images"]:
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert parsed.external == [], "the report must not load anything from outside the file"
    assert full_report.unavailable == []


def test_report_numbers_are_the_hand_computed_ones(full_report):
    s = parse(full_report.html).sections
    # ingest of batch D only: crm 10 = 9 + 1, orders 20 = 18 + 2 (the other batch's 99 is left out)
    assert s["ingest"]["cells"][:6] == ["crm_customers", "10", "9", "1", "10.0%", "yes"]
    assert s["ingest"]["cells"][6:12] == ["orders", "20", "18", "2", "10.0%", "yes"]
    assert "99" not in s["ingest"]["cells"]
    cells = s["ingest"]["cells"]
    reasons = cells[cells.index("yes", 7) + 1 :]
    assert sorted(zip(reasons[::3], reasons[1::3], reasons[2::3], strict=True)) == [
        ("crm_customers", "missing_required", "1"),
        ("orders", "bad_timestamp", "1"),
        ("orders", "negative_price", "1"),
    ]
    # segments: 3 / 3 / 4 customers; revenue 2250 / 650 / 100 of 3000
    seg = s["segments"]["cells"]
    assert seg[:6] == ["3", "Dormant", "4", "40.0%", "100.00", "3.3%"]
    assert seg[6:12] == ["1", "High-value loyal", "3", "30.0%", "2,250.00", "75.0%"]
    # top_rules=2: the two all-customer rules of highest lift (the segment's rule of lift 9 is left out)
    assert s["rules"]["cells"] == [
        "pasta, tomato",
        "parmesan",
        "5.0%",
        "60.0%",
        "4",
        "bread",
        "butter",
        "10.0%",
        "50.0%",
        "2.5",
    ]
    # coverage: k01, k04, k07 have offers: 1/3 of each segment, 3/10 overall (listed last)
    cov = s["cross_sell"]["cells"]
    at = cov.index("All customers")
    assert cov[at : at + 4] == ["All customers", "10", "3", "30.0%"]
    assert sorted(cov[i : i + 4] for i in range(0, at, 4)) == [
        ["Bargain hunters", "3", "1", "33.3%"],
        ["Dormant", "4", "1", "25.0%"],
        ["High-value loyal", "3", "1", "33.3%"],
    ]
    assert cov[at + 4 :] == ["butter", "2", "cereal", "1", "parmesan", "1"]  # items offered most
    # plan: the textbook rates
    plan = s["plan"]["cells"]
    assert plan[:6] == ["win_back", "precision", "2,000", "25,000.00", "222", "11.1%"]
    assert plan[9:15] == ["win_back", "blanket", "20,000", "100,000.00", "474", "2.4%"]
    print("plan cells:", plan)
    # profit is the plan's margin - cost (not revenue - cost): 55,500 - 25,000 and 118,500 - 100,000
    assert "30,500.00" in plan[:9] and "18,500.00" in plan[9:18], plan
    # lift: campaign-level rows only (the per-segment row is left out)
    lift_cells = s["lift"]["cells"]
    assert "Dormant" not in lift_cells and lift_cells.count("win_back") == 1 and "cross_sell" in lift_cells
    assert "chosen k = 3" in s["k_selection"]["text"]  # the `chosen` row of the k curve
    assert s["k_selection"]["cells"] == [
        "2",
        "0.41",
        "90",
        "3",
        "0.62",
        "40",
        "4",
        "0.48",
        "33",
        "5",
        "0.4",
        "29",
    ]
    assert "source: the model's centres (gold.segment_profiles), on the features it clustered" in s["centres"]["text"]


def test_migration_counts_new_and_left_customers(full_report):
    s = parse(full_report.html).sections["migration"]
    rows = dict()
    cells = s["cells"]
    for f, t, n in zip(cells[::3], cells[1::3], cells[2::3], strict=True):
        rows[(f, t)] = int(n)
    assert rows == {
        ("(new)", "Dormant"): 1,  # k10
        ("Bargain hunters", "Bargain hunters"): 2,  # k04, k05
        ("Bargain hunters", "High-value loyal"): 1,  # k03
        ("Dormant", "(left)"): 1,  # k11
        ("Dormant", "Bargain hunters"): 1,  # k06
        ("Dormant", "Dormant"): 3,  # k07, k08, k09
        ("High-value loyal", "High-value loyal"): 2,
    }
    assert "77.8% of the customers present in both snapshots kept their segment" in s["text"]


def test_missing_tables_say_not_available_and_the_rest_still_renders(small_tables):
    from custseg.report import ReportInputs, build_report

    skip = (
        "gold.association_rules",
        "gold.cross_sell",
        "gold.campaign_plan",
        "gold.campaign_results",
        "gold.segment_quality",
        "bronze.quarantine",
    )
    tables = {name: (None if name in skip else df) for name, df in read_tables(small_tables).items()}
    result = build_report(ReportInputs(D, tables))
    s = parse(result.html).sections
    assert s["rules"]["status"] == "unavailable" and s["rules"]["images"] == []
    assert "not available: gold.association_rules missing" in s["rules"]["text"]
    assert "not available: gold.cross_sell missing" in s["cross_sell"]["text"]
    assert "not available: gold.campaign_plan missing" in s["plan"]["text"]
    assert "not available: gold.campaign_results missing" in s["lift"]["text"]
    assert "not available: gold.segment_quality missing" in s["k_selection"]["text"]
    assert (
        s["ingest"]["status"] == "ok"
        and "quarantine reasons not available: bronze.quarantine missing" in s["ingest"]["text"]
    )
    for key in ("rfm", "segments", "centres", "migration"):
        assert s[key]["status"] == "ok" and s[key]["images"], key
    assert sorted(result.unavailable) == ["activation", "cross_sell", "k_selection", "lift", "plan", "rules"]
    assert any(t.startswith("not available: no export manifest") for t in s["activation"]["text"])


def render(inputs, *keys: str) -> dict:
    """Only the named sections (keeps the tests' Spark jobs few)."""
    from custseg.report.sections import SECTIONS, render_section

    return {spec.key: render_section(spec, inputs) for spec in SECTIONS if spec.key in keys}


def test_first_snapshot_and_a_date_without_data(small_tables):
    """A first run: no previous snapshot for migration; a date without data says so per section."""
    from custseg.report import ReportInputs

    tables = read_tables(small_tables)
    first = render(ReportInputs(D_PREV, tables), "migration", "ingest")
    assert (
        first["migration"].message
        == "not available: no snapshot before 2026-06-23 in gold.customer_segments (first run)"
    )
    assert first["ingest"].status == "ok"
    assert first["ingest"].tables[0].frame[["source", "records_read", "records_quarantined"]].values.tolist() == [
        ["orders", 99, 49]
    ]
    later = render(ReportInputs(date(2026, 7, 7), tables), "rfm", "ingest", "segments")
    assert later["rfm"].message == "not available: gold.customer_features has no rows for 2026-07-07"
    assert later["ingest"].message == "not available: meta.reconciliation has no batch for 2026-07-07"
    assert later["segments"].message == "not available: gold.customer_segments has no rows for 2026-07-07"
    assert all(r.figures == [] for r in later.values())


@pytest.mark.filterwarnings("ignore:toPandas attempted Arrow optimization")
def test_a_broken_table_fails_only_its_section(spark, small_tables):
    from custseg.report import ReportInputs

    tables = read_tables(small_tables)
    tables["gold.association_rules"] = spark.createDataFrame(
        [(D, "x", "y", 0.5, "high")],
        "snapshot_date date, antecedent string, consequent string, confidence double, lift string",
    )
    tables["gold.cross_sell"] = tables["gold.cross_sell"].drop("customer_key")
    got = render(ReportInputs(D, tables), "rules", "cross_sell", "plan")
    assert got["rules"].status == "failed" and got["rules"].figures == []
    assert got["rules"].message.startswith("failed: ")
    assert got["cross_sell"].message == "not available: gold.cross_sell lacks column(s) customer_key"
    assert got["plan"].status == "ok" and got["plan"].figures


def test_report_stage_writes_the_file_and_records_the_run(spark, report_home, monkeypatch):
    from custseg.cli import parse_job_args, run_job

    home = report_home
    monkeypatch.setenv("CUSTSEG_HOME", str(home))
    exports = home / "exports" / D.isoformat()  # the marketing stage's manifest feeds the activation section
    exports.mkdir(parents=True, exist_ok=True)
    summary = {"campaign_id": "c1", "profile": "braze_users", "channels": ["email"], "files": 1, "rows": 3}
    (exports / "manifest.json").write_text(json.dumps({"snapshot_date": D.isoformat(), "activation": [summary]}))
    rc = run_job(parse_job_args("report", ["--date", D.isoformat()]), spark=spark)
    assert rc == 0
    path = home / "reports" / D.isoformat() / "report.html"
    parsed = parse(path.read_text(encoding="utf-8"))
    assert all(parsed.sections[k]["status"] == "ok" for k in REQUIRED_SECTIONS)
    t = Tables(spark, StorageSettings(root=str(home / "tables")))
    row = t.read(JOB_RUNS).where("job = 'report'").transform(latest_runs).collect()  # one run: this one
    assert len(row) == 1 and row[0]["status"] == "succeeded"
    details = json.loads(row[0]["details"])["report"]
    assert details["path"] == str(path)
    assert details["sections"]["rules"] == "ok" and details["missing_tables"] == []
    assert details["sections"]["activation"] == "ok" and "braze_users" in parsed.sections["activation"]["cells"]
    assert row[0]["rows_out"] == len(details["sections"])


def test_other_layouts_and_computed_fallbacks_give_the_same_figures(spark, small_tables, full_report):
    """Without segment_profiles / segment_migration the report computes them from customer-level tables;
    a wide k curve and results with counts only (interval computed) are read too."""
    from custseg.report import ReportInputs

    tables = read_tables(small_tables)
    tables["gold.segment_profiles"] = None
    tables["gold.segment_migration"] = None
    tables["gold.segment_quality"] = spark.createDataFrame(
        [(D, 2, 0.41, 90.0), (D, 3, 0.62, 40.0), (D, 4, 0.48, 33.0)],
        "snapshot_date date, k int, silhouette double, wss double",
    )
    tables["gold.campaign_results"] = spark.createDataFrame(
        [(D, "win_back", 1000, 120, 1000, 80)],
        "snapshot_date date, campaign_id string, n_treatment long, responses_treatment long, n_control long, responses_control long",
    )
    got = render(ReportInputs(D, tables), "segments", "centres", "migration", "k_selection", "lift")
    assert all(r.status == "ok" and r.figures for r in got.values()), {k: r.message for k, r in got.items()}
    by_table = {r.key: r for r in full_report.sections}
    assert got["segments"].tables[0].frame.equals(by_table["segments"].tables[0].frame)
    migration = got["migration"].tables[0].frame.reset_index(drop=True)
    assert migration.equals(by_table["migration"].tables[0].frame.reset_index(drop=True))
    assert got["centres"].notes == [
        "source: segment means of report.centre_features, z against all segmented customers"
    ]
    # the chosen k comes from the segments present in customer_segments
    assert got["k_selection"].notes == ["chosen k = 3"]
    lift = got["lift"].tables[0].frame.iloc[0]
    assert (lift["treatment_rate"], lift["control_rate"]) == (0.12, 0.08)
    assert abs(lift["ci_low"] - 0.013763) < 1e-6 and abs(lift["ci_high"] - 0.066237) < 1e-6


def test_plan_long_reads_a_wide_table():
    import pandas as pd

    from custseg.report.sections import plan_long

    wide = pd.DataFrame(
        {
            "campaign_id": ["c1"],
            "blanket_contacts": [100],
            "blanket_roi": [0.5],
            "precision_contacts": [10],
            "precision_roi": [2.0],
        }
    )
    got = plan_long(wide)
    assert got.to_dict("records") == [
        {"campaign": "c1", "strategy": "precision", "contacts": 10.0, "roi": 2.0},
        {"campaign": "c1", "strategy": "blanket", "contacts": 100.0, "roi": 0.5},
    ]


def test_config_rejects_a_bad_report_section(tmp_path):
    from custseg.config import DEFAULT_CONF_DIR, ConfigError, load_config
    from custseg.report.settings import check_report  # noqa: F401 - registers the validator

    conf = tmp_path / "bad.yaml"
    conf.write_text(f"extends: {DEFAULT_CONF_DIR / 'base.yaml'}\nreport:\n  top_rules: 0\n")
    with pytest.raises(ConfigError, match="key 'report.top_rules' must be an integer from 1 to 200"):
        load_config(conf)
    ok = load_config(DEFAULT_CONF_DIR / "local.yaml")
    assert ok.report.top_rules == 15


def test_activation_section_lists_tools_rows_and_consent_exclusions():
    from custseg.report import ReportInputs

    summaries = [
        {
            "campaign_id": "winback",
            "profile": "google_customer_match",
            "channels": ["ads"],
            "files": 1,
            "rows": 40,
            "excluded_by_consent_field": {"opt_in_ads": 7},
            "excluded_no_identifier": 2,
        },
        {
            "campaign_id": "winback",
            "profile": "braze_users",
            "channels": ["email", "sms"],
            "files": 2,
            "rows": 90,
            "excluded_by_consent_field": {"opt_in_email": 3, "opt_in_sms": 1},
            "excluded_no_identifier": 0,
        },
    ]
    got = render(ReportInputs(D, {}, activation=summaries), "activation")["activation"]
    assert got.status == "ok", got.message
    records = got.tables[0].frame.astype(object).where(lambda f: f.notna(), None).to_dict("records")
    assert records == [
        {
            "campaign": "winback",
            "tool profile": "braze_users",
            "channels": "email, sms",
            "files": 2,
            "rows": 90,
            "excluded: no opt_in_email": 3,
            "excluded: no opt_in_sms": 1,
            "excluded: no opt_in_ads": None,
            "excluded: no identifier": 0,
        },
        {
            "campaign": "winback",
            "tool profile": "google_customer_match",
            "channels": "ads",
            "files": 1,
            "rows": 40,
            "excluded: no opt_in_email": None,
            "excluded: no opt_in_sms": None,
            "excluded: no opt_in_ads": 7,
            "excluded: no identifier": 2,
        },
    ]
    empty = render(ReportInputs(D, {}, activation=[]), "activation")["activation"]
    assert empty.status == "unavailable" and "lists no activation files" in empty.message


def test_targeting_notes_say_where_consent_came_from():
    import pandas as pd

    from custseg.report.sections import Rendered, _targeting

    def notes(basis: str) -> list[str]:
        out = Rendered("plan", "Plan", "")
        pdf = pd.DataFrame({"campaign_id": ["c1", "c2"], "model": ["gbt", "gbt"], "consent_basis": [basis, basis]})
        _targeting(pdf, out)
        assert out.tables[0].frame["consent_basis"].tolist() == [basis, basis]
        return out.notes

    assert notes("crm") == []
    assert [n.split(" (")[0] for n in notes("assumed opted in (email) where none recorded")] == [
        "Consent is ASSUMED for customers without recorded consent"
    ]
    (file_note,) = notes("file (consent): customers absent from it not opted in")
    assert "from_file" in file_note and "absent from it are not contacted" in file_note


def test_kpi_and_funnel_sections_show_the_tables_figures(full_report):
    s = parse(full_report.html).sections
    kpis = s["kpis"]["cells"]
    assert len(s["kpis"]["images"]) == 2  # the overall panels, retention per segment
    # the latest period, segments in name order then "all": 8 active, 2 new, 6 of 7 kept (85.7%)
    row = kpis[kpis.index("all") : kpis.index("all") + 6]
    assert row == ["all", "8", "2", "6", "1", "85.7%"], kpis
    assert kpis.index("Champions") < kpis.index("Dormant") < kpis.index("all")
    funnel = s["funnel"]["cells"]
    # campaigns in the order they were sent: win_back (May) before cross_sell (June)
    assert funnel.index("win_back") < funnel.index("cross_sell")
    i = funnel.index("treatment")
    assert funnel[i - 2 : i + 8] == [
        "win_back",
        "default",
        "treatment",
        "2026-05-01",
        "100",
        "100",
        "98",
        "40",
        "10",
        "8",
    ]
    assert len(s["funnel"]["images"]) == 1


def test_strategy_section_shows_the_4p_and_why(full_report):
    s = parse(full_report.html).sections["strategy"]
    assert s["status"] == "ok" and len(s["images"]) == 1  # discount depth per segment
    cells = s["cells"]
    # largest segment first; lists joined, the depth as a percentage
    loyal = cells.index("High-value loyal")
    assert cells[loyal : loyal + 12] == [
        "High-value loyal",
        "5",
        "wine",
        "-",
        "port, cheese",
        "yes",
        "7.0%",
        "sms",
        "store",
        "weekday_evening",
        "birthday_anniversary",
        "voucher",
    ], cells
    assert loyal < cells.index("Bargain hunters")
    bargain = cells.index("Bargain hunters")
    assert cells[bargain + 6 : bargain + 8] == ["23.0%", "email, sms"]
    # the evidence table says why
    assert "capped at 23.5%" in cells and "value class important-retain" in cells


def test_variants_section_shows_each_variant_against_control(full_report):
    cells = parse(full_report.html).sections["variants"]["cells"]
    # campaign level only, variants in name order: a, then b (the winner after Holm)
    assert "Dormant" not in cells
    i = cells.index("a")
    assert cells[i - 1 : i + 13] == [
        "win_back", "a", "50", "20", "4.0%", "5.0%", "-1.0%", "-6.0%", "4.0%", "0.7", "0.7", "False", "False",
        "win_back",
    ]  # fmt: skip
    j = cells.index("b")
    assert cells[j : j + 12] == [
        "b",
        "50",
        "20",
        "12.0%",
        "5.0%",
        "7.0%",
        "2.0%",
        "12.0%",
        "0.004",
        "0.008",
        "True",
        "True",
    ]
