"""Plan arithmetic against hand computation, the textbook blanket-vs-precision case included."""

from __future__ import annotations

from chispa import assert_approx_df_equality
from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField, StructType

from custseg.marketing.campaigns import Campaign
from custseg.marketing.plan import PLAN_COLUMNS, campaign_plan, campaigns_frame, with_plan_metrics

TOTALS = StructType(
    [
        StructField("campaign_id", StringType()),
        StructField("strategy", StringType()),
        StructField("contacts", LongType()),
        StructField("cost", DoubleType()),
        StructField("expected_responses", DoubleType()),
        StructField("revenue_per_response", DoubleType()),
        StructField("margin_per_response", DoubleType()),
        StructField("budget", DoubleType()),
    ]
)
METRICS = StructType(
    [
        StructField("campaign_id", StringType()),
        StructField("strategy", StringType()),
        StructField("contacts", LongType()),
        StructField("cost_per_contact", DoubleType()),
        StructField("cost", DoubleType()),
        StructField("expected_responses", DoubleType()),
        StructField("response_rate", DoubleType()),
        StructField("revenue", DoubleType()),
        StructField("margin", DoubleType()),
        StructField("profit", DoubleType()),
        StructField("roi", DoubleType()),
        StructField("cost_per_response", DoubleType()),
        StructField("budget", DoubleType()),
        StructField("within_budget", BooleanType()),
    ]
)


def test_textbook_blanket_vs_precision(spark):
    # Blanket: 20,000 contacts at 5 each, 474 responses; precision: 2,000 at 12.5 each, 222 responses.
    # Each response is worth 300 in revenue and 200 in margin; budget 30,000.
    totals = spark.createDataFrame(
        [
            ("book", "blanket", 20000, 20000 * 5.0, 474.0, 300.0, 200.0, 30000.0),
            ("book", "precision", 2000, 2000 * 12.5, 222.0, 300.0, 200.0, 30000.0),
            ("empty", "precision", 0, 0.0, 0.0, 300.0, 200.0, 100.0),  # no contacts: ratios null
        ],
        TOTALS,
    )
    got = totals.transform(with_plan_metrics())
    expected = spark.createDataFrame(
        [
            # cost 100,000; rate 474/20,000 = 2.37%; revenue 142,200; margin 94,800; profit -5,200;
            # ROI -5,200/100,000 = -0.052; cost per response 100,000/474 = 210.97
            (
                "book",
                "blanket",
                20000,
                5.0,
                100000.0,
                474.0,
                0.0237,
                142200.0,
                94800.0,
                -5200.0,
                -0.052,
                210.9704641,
                30000.0,
                False,
            ),
            # cost 25,000; rate 222/2,000 = 11.1%; revenue 66,600; margin 44,400; profit 19,400;
            # ROI 19,400/25,000 = 0.776; cost per response 25,000/222 = 112.61
            (
                "book",
                "precision",
                2000,
                12.5,
                25000.0,
                222.0,
                0.111,
                66600.0,
                44400.0,
                19400.0,
                0.776,
                112.6126126,
                30000.0,
                True,
            ),
            ("empty", "precision", 0, None, 0.0, 0.0, None, 0.0, 0.0, 0.0, None, None, 100.0, True),
        ],
        METRICS,
    )
    assert_approx_df_equality(got, expected, precision=1e-6, ignore_row_order=True, ignore_nullable=True)


def test_campaign_plan_from_customers(spark):
    c = Campaign(
        id="keep",
        goal="retention",
        channels=("email",),
        cost_per_contact=2.0,
        revenue_per_response=50.0,
        margin_per_response=20.0,
        budget=5.0,
        holdout_share=0.1,
        name="Keep",
    )
    params = campaigns_frame(spark, [c], {"retention": ("gbt", 0.8)})
    flagged = spark.createDataFrame(
        [
            ("keep", k, ch, sc, cap, comp, cons, el, p)
            for k, ch, sc, cap, comp, cons, el, p in [
                ("a", "email", False, False, False, False, True, 0.5),
                ("b", "email", False, False, False, False, True, 0.3),
                ("c", "email", False, False, False, False, True, 0.1),
                ("d", "email", False, False, False, False, True, 0.1),
                ("e", "email", True, True, False, False, False, 0.9),
                ("f", None, False, False, True, True, False, 0.9),
            ]
        ],
        "campaign_id string, customer_key string, channel string, suppressed_contact boolean, suppressed_cap boolean, "
        "suppressed_complaint boolean, suppressed_consent boolean, eligible boolean, p_response double",
    )
    scored = flagged.where("eligible").select("campaign_id", "customer_key", "p_response")
    # Selected: a, b treatment (cost 4 <= 5), x a control row.
    audience = spark.createDataFrame(
        [("keep", "a", "treatment", 0.5), ("keep", "b", "treatment", 0.3), ("keep", "c", "control", 0.1)],
        "campaign_id string, customer_key string, group string, p_response double",
    )
    got = campaign_plan(flagged, scored, audience, params)
    assert got.columns == PLAN_COLUMNS
    got = got.select(
        "strategy",
        "contacts",
        "holdout",
        "cost",
        "expected_responses",
        "response_rate",
        "revenue",
        "profit",
        "roi",
        "within_budget",
        "matching",
        "suppressed_contact",
        "suppressed_cap",
        "suppressed_complaint",
        "suppressed_consent",
        "eligible",
        "model",
        "auc_validation",
    )
    schema = StructType(
        [
            StructField("strategy", StringType()),
            StructField("contacts", LongType()),
            StructField("holdout", LongType()),
            StructField("cost", DoubleType()),
            StructField("expected_responses", DoubleType()),
            StructField("response_rate", DoubleType()),
            StructField("revenue", DoubleType()),
            StructField("profit", DoubleType()),
            StructField("roi", DoubleType()),
            StructField("within_budget", BooleanType()),
            *[
                StructField(n, LongType())
                for n in (
                    "matching",
                    "suppressed_contact",
                    "suppressed_cap",
                    "suppressed_complaint",
                    "suppressed_consent",
                    "eligible",
                )
            ],
            StructField("model", StringType()),
            StructField("auc_validation", DoubleType()),
        ]
    )
    counts = (6, 1, 1, 1, 1, 4)
    expected = spark.createDataFrame(
        [
            # precision: 2 contacts, cost 4, responses 0.8, rate 0.4, revenue 40, margin 16, profit 12, ROI 3
            ("precision", 2, 1, 4.0, 0.8, 0.4, 40.0, 12.0, 3.0, True, *counts, "gbt", 0.8),
            # blanket: 4 eligible, cost 8, responses 1.0, rate 0.25, revenue 50, margin 20, profit 12, ROI 1.5
            ("blanket", 4, 0, 8.0, 1.0, 0.25, 50.0, 12.0, 1.5, False, *counts, "gbt", 0.8),
            # random: 2 contacts at the blanket rate: responses 0.5, revenue 25, margin 10, profit 6, ROI 1.5
            ("random", 2, 0, 4.0, 0.5, 0.25, 25.0, 6.0, 1.5, True, *counts, "gbt", 0.8),
        ],
        schema,
    )
    assert_approx_df_equality(got, expected, precision=1e-9, ignore_row_order=True, ignore_nullable=True)
