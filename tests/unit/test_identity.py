"""Identity resolution on hand-made graphs: components, the never-merge policy, look-ups."""

from __future__ import annotations

import random

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from custseg.conform.activity import conform_events
from custseg.conform.identity import (
    ID_MAP_COLUMNS,
    connected_components,
    customer_id_key,
    device_key,
    login_edges,
    phone_key,
    resolve_identities,
)
from custseg.conform.orders import resolve_customer

SALT = "unit-test-salt"

EDGE_SCHEMA = StructType([StructField(c, StringType(), True) for c in ("src_type", "src_key", "dst_type", "dst_key")])
MAP_SCHEMA = StructType([StructField(c, StringType(), True) for c in ID_MAP_COLUMNS])
PAIR_SCHEMA = StructType([StructField("src", StringType(), False), StructField("dst", StringType(), False)])
LABEL_SCHEMA = StructType([StructField("node", StringType(), False), StructField("label", StringType(), False)])
CUSTOMERS_SCHEMA = StructType([StructField("customer_key", StringType(), False)])


def _resolve(spark, edges, crm, max_iterations=20):
    res = resolve_identities(
        spark.createDataFrame(edges, EDGE_SCHEMA),
        spark.createDataFrame([(c,) for c in crm], CUSTOMERS_SCHEMA),
        max_iterations,
    )
    return res, res.identity_map


def _expect(spark, rows):
    return spark.createDataFrame(rows, MAP_SCHEMA)


def _eq(actual, expected):
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_chain_email_device_phone_collapses_to_one_customer(spark):
    edges = [
        ("customer_id", "c1", "email", "e1"),
        ("email", "e1", "device", "d1"),
        ("device", "d1", "phone", "p1"),
        ("phone", "p1", "device", "d2"),
        ("customer_id", "c2", "email", "e2"),  # a separate customer stays separate
    ]
    res, id_map = _resolve(spark, edges, ["c1", "c2", "c3"])
    expected = [
        ("customer_id", "c1", "c1"),
        ("email", "e1", "c1"),
        ("device", "d1", "c1"),
        ("phone", "p1", "c1"),
        ("device", "d2", "c1"),
        ("customer_id", "c2", "c2"),
        ("email", "e2", "c2"),
        ("customer_id", "c3", "c3"),  # a CRM customer without edges maps to itself
    ]
    _eq(id_map, _expect(spark, expected))
    assert res.converged


def test_shared_device_and_phone_link_to_neither_customer(spark):
    edges = [
        ("customer_id", "c1", "device", "shared"),
        ("customer_id", "c2", "device", "shared"),
        ("customer_id", "c1", "phone", "family"),
        ("customer_id", "c2", "phone", "family"),
        ("customer_id", "c1", "device", "d1"),
        ("customer_id", "c2", "email", "e2"),
        ("device", "shared", "email", "e9"),  # only reachable through the ambiguous device
        ("customer_id", "c1", "customer_id", "c2"),  # customer ids never join directly either
    ]
    res, id_map = _resolve(spark, edges, ["c1", "c2"])
    expected = [
        ("customer_id", "c1", "c1"),
        ("device", "d1", "c1"),
        ("customer_id", "c2", "c2"),
        ("email", "e2", "c2"),
    ]
    _eq(id_map, _expect(spark, expected))
    amb = res.ambiguous.select("id_type", "id_key", F.col("n_customers").cast("string").alias("n"))
    _eq(
        amb,
        spark.createDataFrame(
            [("device", "shared", "2"), ("phone", "family", "2")],
            "id_type string, id_key string, n string",
        ),
    )


def test_chain_between_two_customers_keeps_only_direct_links(spark):
    # No identifier touches two customer ids, but the chain joins them: conflicting component.
    edges = [
        ("customer_id", "c1", "email", "e1"),
        ("email", "e1", "device", "d1"),
        ("device", "d1", "phone", "p2"),
        ("phone", "p2", "customer_id", "c2"),
    ]
    _, id_map = _resolve(spark, edges, ["c1", "c2"])
    expected = [
        ("customer_id", "c1", "c1"),
        ("email", "e1", "c1"),
        ("customer_id", "c2", "c2"),
        ("phone", "p2", "c2"),
    ]
    _eq(id_map, _expect(spark, expected))


def test_customer_ids_unknown_to_crm_neither_anchor_nor_make_identifiers_ambiguous(spark):
    edges = [
        ("customer_id", "c1", "device", "d1"),
        ("customer_id", "x9", "device", "d1"),  # x9 is not in CRM (an orphan id): d1 stays c1's
        ("customer_id", "x9", "device", "d9"),  # nothing anchors d9
        ("customer_id", "c1", "phone", "p1"),
    ]
    res, id_map = _resolve(spark, edges, ["c1"])
    _eq(
        id_map,
        _expect(spark, [("customer_id", "c1", "c1"), ("device", "d1", "c1"), ("phone", "p1", "c1")]),
    )
    assert res.ambiguous.count() == 0


def test_bounded_iterations_converge_on_a_long_chain(spark):
    n = 200
    nodes = [f"n{i:04d}" for i in range(n)]
    random.Random(3).shuffle(nodes)  # the chain does not follow the node order
    pairs = spark.createDataFrame(list(zip(nodes, nodes[1:], strict=False)), PAIR_SCHEMA)
    comps = connected_components(pairs, max_iterations=12)
    assert comps.converged and comps.iterations <= 12
    expected = spark.createDataFrame([(v, "n0000") for v in nodes], LABEL_SCHEMA)
    assert_df_equality(comps.labels, expected, ignore_row_order=True, ignore_nullable=True)


def test_iteration_bound_is_honoured(spark):
    nodes = [f"n{i:04d}" for i in range(64)]
    random.Random(5).shuffle(nodes)
    pairs = spark.createDataFrame(list(zip(nodes, nodes[1:], strict=False)), PAIR_SCHEMA)
    comps = connected_components(pairs, max_iterations=1)
    assert (comps.iterations, comps.converged) == (1, False)
    # Not converged: labels under-merge, but every label is a node of the same (only) component.
    assert comps.labels.where(~F.col("label").isin(nodes)).count() == 0
    with pytest.raises(ValueError, match="max_iterations"):
        connected_components(pairs, max_iterations=0)


def test_components_match_union_find_on_a_random_graph(spark):
    rng = random.Random(11)
    nodes = [f"v{i:03d}" for i in range(150)]
    pairs = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(120)]
    parent = {v: v for v in nodes}

    def find(v):
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for a, b in pairs:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    on_edges = {v for p in pairs for v in p if p[0] != p[1]}
    members: dict[str, list[str]] = {}
    for v in on_edges:
        members.setdefault(find(v), []).append(v)
    expected = [(v, min(vs)) for vs in members.values() for v in vs]
    comps = connected_components(spark.createDataFrame(pairs, PAIR_SCHEMA), max_iterations=20)
    assert comps.converged
    assert_df_equality(
        comps.labels,
        spark.createDataFrame(expected, LABEL_SCHEMA),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def _keys(spark, **cols):
    """HMAC keys of raw identifiers, by the same expressions the pipeline uses (one driver row)."""
    return spark.range(1).select(*[c.alias(n) for n, c in cols.items()]).first().asDict()


def _cid(v):
    return customer_id_key(F.lit(v), SALT)


def _dev(v):
    return device_key(F.lit(v), SALT)


def test_loyalty_phone_pos_order_resolves(spark):
    k = _keys(
        spark,
        cid1=_cid("C1"),
        cid2=_cid("C2"),
        phone1=phone_key(F.lit("+44 7700 900123"), SALT, "44"),
    )
    id_map = _expect(
        spark,
        [
            ("customer_id", k["cid1"], k["cid1"]),
            ("phone", k["phone1"], k["cid1"]),
            ("customer_id", k["cid2"], k["cid2"]),
        ],
    )
    orders = spark.createDataFrame(
        [
            ("o1", None, "07700 900123"),  # loyalty phone only, another spelling of C1's phone
            ("o2", "C2", None),
            ("o3", "C2", "07700900123"),  # the customer_id wins over the phone
            ("o4", None, "07700 900999"),  # a phone nobody (unambiguously) owns
            ("o5", " ", None),  # guest
            ("o6", "C404", None),  # unknown to CRM
        ],
        "order_id string, customer_id string, loyalty_phone string",
    )
    out = orders.transform(resolve_customer(id_map, SALT, "44"))
    expected = spark.createDataFrame(
        [
            ("o1", None, "07700 900123", k["cid1"]),
            ("o2", "C2", None, k["cid2"]),
            ("o3", "C2", "07700900123", k["cid2"]),
            ("o4", None, "07700 900999", None),
            ("o5", " ", None, None),
            ("o6", "C404", None, None),
        ],
        "order_id string, customer_id string, loyalty_phone string, customer_key string",
    )
    _eq(out, expected)


EVENT_FIELDS = [
    "event_id",
    "ts",
    "device_id",
    "customer_id",
    "session_id",
    "event_type",
    "sku",
    "category",
    "page",
    "duration_ms",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "_batch_date",
    "_source_file",
]


def test_anonymous_events_of_a_device_later_logged_in_are_attributed(spark):
    def ev(eid, ts, dev, cid, etype):
        return (
            eid,
            ts,
            dev,
            cid,
            "s1",
            etype,
            None,
            None,
            "/",
            "10",
            None,
            None,
            None,
            "2026-06-30",
            "f",
        )

    bronze = spark.createDataFrame(
        [
            ev("e1", "2026-06-01 10:00:00", "D1", None, "page_view"),  # anonymous, before the login
            ev("e2", "2026-06-02 10:00:00", "D1", "C1", "login"),
            ev("e3", "2026-06-03 10:00:00", "D1", None, "page_view"),  # anonymous, after
            ev("e4", "2026-06-01 10:00:00", "D2", None, "page_view"),  # never logged in
            ev("e5", "2026-06-01 10:00:00", "DS", "C1", "login"),  # shared device: C1 and C2
            ev("e6", "2026-06-01 11:00:00", "DS", "C2", "login"),
            ev("e7", "2026-06-01 12:00:00", "DS", None, "page_view"),
        ],
        ", ".join(f"{c} string" for c in EVENT_FIELDS),
    )
    k = _keys(spark, cid1=_cid("C1"), cid2=_cid("C2"), dev1=_dev("D1"), dev2=_dev("D2"), devs=_dev("DS"))
    crm = spark.createDataFrame([(k["cid1"],), (k["cid2"],)], CUSTOMERS_SCHEMA)
    id_map = resolve_identities(bronze.transform(login_edges(SALT)), crm).identity_map
    out = bronze.transform(conform_events(SALT, id_map)).select("event_id", "customer_key", "device_key")
    expected = spark.createDataFrame(
        [
            ("e1", k["cid1"], k["dev1"]),
            ("e2", k["cid1"], k["dev1"]),
            ("e3", k["cid1"], k["dev1"]),
            ("e4", None, k["dev2"]),
            ("e5", k["cid1"], k["devs"]),
            ("e6", k["cid2"], k["devs"]),
            ("e7", None, k["devs"]),
        ],
        "event_id string, customer_key string, device_key string",
    )
    _eq(out, expected)
