"""Campaign pulse: counts added to the previous state, the flag on a variant below its control, and the
z / p-value checked against evaluate.two_proportion_test and scipy."""

from __future__ import annotations

from datetime import datetime

import pytest
from scipy import stats

from custseg.marketing.evaluate import two_proportion_test
from custseg.realtime.pulse import PULSE_COLUMNS, pulse

SENT = datetime(2026, 12, 7, 9, 0)
RESP_SCHEMA = (
    "campaign_id string, customer_key string, group string, variant string, sent_ts timestamp, "
    "opened_ts timestamp, clicked_ts timestamp, converted boolean, revenue double"
)


def responses(campaign, group, variant, n, conversions, opens=0, clicks=0, prefix="k"):
    rows = []
    for i in range(n):
        rows.append(
            (
                campaign,
                f"{prefix}{campaign}{group}{variant}{i}",
                group,
                variant,
                SENT,
                SENT if i < opens else None,
                SENT if i < clicks else None,
                i < conversions,
                10.0 if i < conversions else None,
            )
        )
    return rows


def test_pulse_flags_a_variant_below_its_control(spark):
    rows = (
        responses("c1", "treatment", "a", 200, 10, opens=80, clicks=30)
        + responses("c1", "treatment", "b", 200, 28)
        + responses("c1", "control", None, 200, 30)
        + responses("c2", "treatment", "a", 20, 0)  # far below, but under min_sends
        + responses("c2", "control", None, 20, 5)
    )
    resp = spark.createDataFrame(rows, RESP_SCHEMA)
    segments = spark.createDataFrame(
        [(f"kc1treatmenta{i}", "Loyal" if i < 100 else "New") for i in range(200)],
        "customer_key string, segment string",
    )
    offers = spark.createDataFrame(
        [
            ("cart", "offered", "Loyal"),
            ("cart", "offered", None),
            ("cart", "control", "Loyal"),
            ("cart", "capped", "Loyal"),
        ],
        "trigger string, decision string, segment string",
    )
    got = pulse(resp, offers, None, None, segments=segments, updated_at=datetime(2026, 12, 7, 12, 0), trigger_ids=[])
    assert got.columns == PULSE_COLUMNS
    rows = {(r["campaign_id"], r["segment"], r["variant"]): r for r in got.collect()}  # bounded: a few dozen
    a = rows[("c1", "all", "a")]
    assert (a["sends"], a["opens"], a["clicks"], a["conversions"], a["revenue"]) == (200, 80, 30, 10, 100.0)
    assert (a["control_sends"], a["control_conversions"]) == (200, 30)
    ref = two_proportion_test(10, 200, 30, 200)
    assert a["z"] == pytest.approx(ref.z, abs=1e-9)
    assert a["p_value"] == pytest.approx(stats.norm.cdf(ref.z), abs=1e-6)  # one-sided: below
    assert a["below_control"] is True and a["open_rate"] == 0.4
    assert rows[("c1", "all", "b")]["below_control"] is False  # 14% vs 15%
    assert rows[("c2", "all", "a")]["below_control"] is False  # 20 sends < min_sends 100
    assert rows[("c2", "all", "a")]["p_value"] < 0.05
    assert rows[("c1", "Loyal", "a")]["sends"] == 100 and rows[("c1", "unsegmented", "control")]["sends"] == 200
    assert rows[("c1", "all", "control")]["control_sends"] is None  # the control is not tested against itself
    assert (rows[("cart", "all", "default")]["sends"], rows[("cart", "all", "control")]["sends"]) == (2, 1)
    assert rows[("cart", "Loyal", "default")]["sends"] == 1 and rows[("cart", "unsegmented", "default")]["sends"] == 1

    # The next micro-batch adds to the state: 200 more sends of b with 2 conversions.
    more = spark.createDataFrame(responses("c1", "treatment", "b", 200, 2, prefix="m"), RESP_SCHEMA)
    nxt = pulse(more, None, got, None, trigger_ids=[])
    b = {(r["campaign_id"], r["segment"], r["variant"]): r for r in nxt.collect()}[("c1", "all", "b")]
    assert (b["sends"], b["conversions"], b["control_sends"]) == (400, 30, 200)
    assert b["z"] == pytest.approx(two_proportion_test(30, 400, 30, 200).z, abs=1e-9)
    assert b["below_control"] is True
    assert nxt.count() == got.count()


def test_responses_to_real_time_offers_add_no_second_send(spark):
    offers = spark.createDataFrame([("cart", "offered", None)], "trigger string, decision string, segment string")
    resp = spark.createDataFrame([("cart", "k1", "treatment", None, SENT, SENT, None, True, 5.0)], RESP_SCHEMA)
    got = pulse(resp, offers, None, None, trigger_ids=["cart"])
    (r,) = [x for x in got.collect() if x["segment"] == "all"]
    assert (r["sends"], r["opens"], r["conversions"], r["revenue"]) == (1, 1, 1, 5.0)


def test_orders_convert_real_time_offers_and_their_controls_once(spark):
    d, x = datetime(2026, 12, 7, 12, 0), datetime(2026, 12, 7, 13, 0)
    open_offers = spark.createDataFrame(
        [
            ("o1", "a", "cart", "offered", "Loyal", d, x),
            ("o2", "b", "cart", "control", "Loyal", d, x),
            ("o3", "c", "cart", "offered", "Loyal", d, x),
            ("o4", "d", "cart", "capped", "Loyal", d, None),
            ("o5", "e", "cart", "offered", "Loyal", d, x),
        ],
        "offer_id string, customer_key string, trigger string, decision string, segment string, "
        "decided_at timestamp, expires_at timestamp",
    )
    schema = "order_id string, customer_key string, order_ts timestamp, status string, net_revenue double"
    batch = spark.createDataFrame(
        [
            ("A1", "a", datetime(2026, 12, 7, 12, 30), "completed", 20.0),
            ("A2", "a", datetime(2026, 12, 7, 12, 40), "completed", 99.0),  # a second order: not a second conversion
            ("B1", "b", datetime(2026, 12, 7, 12, 10), "completed", 7.0),
            ("C1", "c", datetime(2026, 12, 7, 14, 0), "completed", 5.0),  # after the expiry
            ("D1", "d", datetime(2026, 12, 7, 12, 30), "completed", 5.0),  # capped: never offered
            ("E2", "e", datetime(2026, 12, 7, 12, 20), "completed", 5.0),
        ],
        schema,
    )
    earlier = spark.createDataFrame([("E1", "e", datetime(2026, 12, 7, 12, 5), "completed", 3.0)], schema)
    got = pulse(
        None,
        None,
        None,
        None,
        trigger_ids=["cart"],
        orders=batch,
        open_offers=open_offers,
        all_orders=earlier.unionByName(batch),
    )
    rows = {(r["segment"], r["variant"]): r for r in got.collect()}
    assert (rows[("all", "default")]["conversions"], rows[("all", "default")]["revenue"]) == (1, 20.0)
    assert (rows[("all", "control")]["conversions"], rows[("Loyal", "control")]["revenue"]) == (1, 7.0)
    assert rows[("all", "default")]["sends"] == 0  # sends came with the offers, in their own batch
