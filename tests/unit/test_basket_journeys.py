"""Journey rules ("first bought A, then first bought B within H days") and their cross-sell
offers, on hand-made order lines with hand-computed counts."""

from __future__ import annotations

from datetime import date

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F

from custseg.basket.baskets import first_purchases
from custseg.basket.cross_sell import cross_sell, popular_fill
from custseg.basket.journeys import JOURNEY_COLUMNS, mine_journeys

D = date.fromisoformat
END = D("2026-06-30")  # horizon 30: first purchases up to 2026-05-31 start a journey
LINES_SCHEMA = "order_id string, customer_key string, order_date date, status string, category string, qty int"


@pytest.fixture(scope="module")
def firsts(spark):
    rows = [
        # c1: milk, then TV, sofa 9 days after the TV (converted); milk came before the TV
        ("O1", "c1", "2026-01-01", "completed", "milk"),
        ("O2", "c1", "2026-03-01", "completed", "tv"),
        ("O3", "c1", "2026-03-10", "completed", "sofa"),
        # c2: a returned TV does not count; the kept TV, then a sofa 61 days later (too late)
        ("O4", "c2", "2026-01-15", "returned", "tv"),
        ("O5", "c2", "2026-04-01", "completed", "tv"),
        ("O6", "c2", "2026-06-01", "completed", "sofa"),
        # c3: TV, then milk 19 days later
        ("O7", "c3", "2026-05-01", "completed", "tv"),
        ("O8", "c3", "2026-05-20", "completed", "milk"),
        ("O9", "c3", "2026-05-25", "completed", "milk"),  # a second milk: the first counts
        # c4: sofa first, TV 4 days later
        ("O10", "c4", "2026-02-01", "completed", "sofa"),
        ("O11", "c4", "2026-02-05", "completed", "tv"),
        # c5: TV after 2026-05-31: its horizon is not over, so it starts nothing
        ("O12", "c5", "2026-06-20", "completed", "tv"),
        # c6: milk only; a guest's TV is no customer's journey
        ("O13", "c6", "2026-02-01", "completed", "milk"),
        ("O14", None, "2026-02-02", "completed", "tv"),
    ]
    lines = spark.createDataFrame([(o, c, D(d), s, i, 1) for o, c, d, s, i in rows], LINES_SCHEMA)
    return lines.transform(first_purchases("category", ("completed",), None, END))


def test_first_purchases_skip_returns_guests_and_repeats(firsts):
    got = {(r["customer_key"], r["item"]): r["first_date"] for r in firsts.collect()}
    assert got[("c2", "tv")] == D("2026-04-01")
    assert got[("c3", "milk")] == D("2026-05-20")
    assert None not in {k[0] for k in got} and len(got) == 11


def test_journey_counts_confidence_base_rate_and_lift_by_hand(spark, firsts):
    # Starters (first purchase <= 2026-05-31): tv c1 c2 c3 c4, sofa c4 c1, milk c1 c3 c6.
    # tv -> sofa: c4 owned the sofa first (blocked): eligible 3, converted 1 (c1; c2 too late).
    # sofa -> tv: c1 owned the TV first: eligible 1, converted 1 (c4, 4 days).
    # tv -> milk: c1 owned milk: eligible 3, converted 1 (c3): lift 1.33 < 1.5, dropped.
    # Base rates: sofa (tv 1 + milk 0) / (3 + 3) = 1/6; tv (sofa 1 + milk 0) / (1 + 2) = 1/3.
    got = mine_journeys(firsts, END, 30, min_eligible=1, min_lift=1.5, min_confidence=0.0)
    expected = spark.createDataFrame(
        [
            (["tv"], "sofa", 3, 1, 1 / 3, 1 / 6, 2.0, 30),
            (["sofa"], "tv", 1, 1, 1.0, 1 / 3, 3.0, 30),
        ],
        "antecedent array<string>, consequent string, eligible long, converted long, confidence double, "
        "base_rate double, lift double, horizon_days int",
    )
    assert got.columns == JOURNEY_COLUMNS
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)
    # The thresholds: two eligible customers are needed, so sofa -> tv (one) goes.
    assert [r["consequent"] for r in mine_journeys(firsts, END, 30, min_eligible=2).collect()] == ["sofa"]
    # A 60-day horizon: c2's sofa (61 days) is still late, and fewer first purchases start one.
    longer = {r["consequent"]: r for r in mine_journeys(firsts, END, 60, min_eligible=1, min_lift=0.0).collect()}
    assert longer["sofa"]["eligible"] == 3 and longer["sofa"]["converted"] == 1
    with pytest.raises(ValueError, match="horizon_days"):
        mine_journeys(firsts, END, 0)


def test_journey_offers_rank_first_only_for_recent_triggers_and_not_owned(spark):
    rules = spark.createDataFrame(
        [(["milk"], "bread", 0.9, 1.2)], "antecedent array<string>, consequent string, confidence double, lift double"
    )
    itemsets = spark.createDataFrame(
        [(["milk"], 1, 8, 0.8), (["bread"], 1, 7, 0.7), (["sofa"], 1, 1, 0.1)],
        "items array<string>, size int, count long, support double",
    )
    journeys = spark.createDataFrame(
        [(["tv"], "sofa", 30, 10, 1 / 3, 1 / 6, 2.0, 30)],
        "antecedent array<string>, consequent string, eligible long, converted long, confidence double, "
        "base_rate double, lift double, horizon_days int",
    )
    bought = spark.createDataFrame(
        [("u1", "tv"), ("u1", "milk"), ("u2", "tv"), ("u2", "milk"), ("u2", "sofa"), ("u3", "tv"), ("u3", "milk")],
        "customer_key string, item string",
    )
    # u1 and u2 bought the TV within the horizon; u3 bought it earlier (only milk recently).
    recent = spark.createDataFrame([("u1", "tv"), ("u2", "tv"), ("u3", "milk")], "customer_key string, item string")
    got = bought.transform(
        cross_sell(
            rules, 3, "confidence", fill=popular_fill(itemsets, 3), journeys=journeys, recent=recent, horizon_days=30
        )
    ).select("customer_key", "rank", "item", "score", "antecedent", "reason")
    expected = spark.createDataFrame(
        [
            # the journey offer ranks above the stronger basket rule: its window is open now
            (
                "u1",
                1,
                "sofa",
                1 / 3,
                ["tv"],
                "bought tv recently; 33% of first buyers of it bought sofa within 30 days (lift 2.00)",
            ),
            ("u1", 2, "bread", 0.9, ["milk"], "bought milk; 90% of baskets with that also hold bread (lift 1.20)"),
            # u2 owns a sofa: no offer of it
            ("u2", 1, "bread", 0.9, ["milk"], "bought milk; 90% of baskets with that also hold bread (lift 1.20)"),
            # u3's TV is not recent: the sofa only comes from the popular fill
            ("u3", 1, "bread", 0.9, ["milk"], "bought milk; 90% of baskets with that also hold bread (lift 1.20)"),
            ("u3", 2, "sofa", 0.1, [], "popular: 10% of baskets hold sofa"),
        ],
        "customer_key string, rank int, item string, score double, antecedent array<string>, reason string",
    )
    assert_approx_df_equality(got, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)
    # Without journeys the lists are what they were: u1's sofa is back to the fill's 0.1.
    plain = bought.transform(cross_sell(rules, 3, "confidence", fill=popular_fill(itemsets, 3)))
    assert [r["score"] for r in plain.where(F.col("customer_key") == "u1").orderBy("rank").collect()] == [0.9, 0.1]
