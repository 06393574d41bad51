"""Identity resolution: connected components over hashed identifiers, computed in Spark.

Nodes are hashed identifiers ``(id_type, id_key)``: customer_id, normalized e-mail, E.164
phone and device_id, each an HMAC namespaced by its kind (``custseg.pii.identity_key``).
Edges come from the rows that carry two identifiers at once: a CRM row (customer_id with
its e-mail and phone), a POS ticket with both customer_id and loyalty phone, a login event
(an event with a customer_id) with its device. The connected components of that graph are
the customers, and ``customer_key`` of a component is the key of its CRM customer_id.

Safety policy, so that two different CRM customers are never merged into one:

1. Only CRM customer_ids are nodes. An edge to a customer_id unknown to CRM (an orphan or a
   mistyped id on a ticket or an event) is dropped: it neither anchors a component nor makes
   an identifier ambiguous, so a bad record cannot cut a real customer's links.
2. An identifier (e-mail, phone, device) adjacent to more than one customer_id (a family
   e-mail, a shared phone, a shop's tablet) is *ambiguous* and dropped from the graph: it
   resolves to nobody.
3. Edges between two customer_ids are dropped: the graph never joins two customer_ids.
4. A component that still holds more than one customer_id (through a chain of identifiers,
   each linked to at most one customer) is *conflicting*: its customer_ids keep themselves,
   and its other identifiers resolve only to the customer they are directly linked to.
   Components without a customer_id stay unresolved.

Components use alternating large-star / small-star rounds (Kiveris et al., "Connected
Components in MapReduce and Beyond", 2014) over an edge DataFrame: O(log^2 n) rounds at
worst, a handful in practice. Each round is checkpointed so the plan does not grow, the
convergence check is one count (edges that changed), and the rounds are bounded by conf
``conform.identity_max_iterations``. Nothing is collected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from custseg.pii import PiiKey, identity_key, normalize_email, normalize_phone
from custseg.runtime import checkpoint_dir

log = logging.getLogger(__name__)

CUSTOMER_ID, EMAIL, PHONE, DEVICE = "customer_id", "email", "phone", "device"
EDGE_COLUMNS = ["src_type", "src_key", "dst_type", "dst_key"]
ID_MAP_COLUMNS = ["id_type", "id_key", "customer_key"]
DEFAULT_MAX_ITERATIONS = 20


# -- keys: the one definition of each identifier's key, shared by edges and look-ups ----------


def _blank_to_null(value: Column | str) -> Column:
    col = F.col(value) if isinstance(value, str) else value
    return F.nullif(F.trim(col), F.lit(""))


def customer_id_key(value: Column | str, salt: PiiKey | str) -> Column:
    return identity_key(CUSTOMER_ID, _blank_to_null(value), salt)


def email_key(value: Column | str, salt: PiiKey | str) -> Column:
    return identity_key(EMAIL, normalize_email(value), salt)


def phone_key(value: Column | str, salt: PiiKey | str, country_code: str = "44") -> Column:
    return identity_key(PHONE, normalize_phone(value, country_code), salt)


def device_key(value: Column | str, salt: PiiKey | str) -> Column:
    return identity_key(DEVICE, _blank_to_null(value), salt)


# -- edges from each source ------------------------------------------------------------------


def _edges(
    df: DataFrame,
    src_type: str,
    src_key: Column,
    dst_type: str,
    dst_key: Column,
    raw: tuple[str, str] | None = None,
) -> DataFrame:
    if raw is not None:
        # Distinct raw pairs first: a customer logs in from the same device hundreds of
        # times, and each HMAC is two SHA-256 passes. Keys depend only on the raw values,
        # so hashing the distinct pairs gives the same edges (distinct again below, as
        # different spellings can normalize to one key).
        df = df.select(*raw).where(F.col(raw[0]).isNotNull() & F.col(raw[1]).isNotNull()).distinct()
    return (
        df.select(src_key.alias("src_key"), dst_key.alias("dst_key"))
        .where(F.col("src_key").isNotNull() & F.col("dst_key").isNotNull())
        .distinct()
        .select(
            F.lit(src_type).alias("src_type"),
            F.col("src_key"),
            F.lit(dst_type).alias("dst_type"),
            F.col("dst_key"),
        )
    )


def customer_edges(customers: DataFrame) -> DataFrame:
    """silver.customers -> customer_id-email and customer_id-phone edges."""
    cid = F.col("customer_key")
    return _edges(customers, CUSTOMER_ID, cid, EMAIL, F.col("email_key")).unionByName(
        _edges(customers, CUSTOMER_ID, cid, PHONE, F.col("phone_key"))
    )


def order_edges(salt: PiiKey | str, country_code: str = "44") -> Callable[[DataFrame], DataFrame]:
    """bronze.orders -> customer_id-phone edges from tickets that carry both."""

    def transform(orders: DataFrame) -> DataFrame:
        return _edges(
            orders,
            CUSTOMER_ID,
            customer_id_key("customer_id", salt),
            PHONE,
            phone_key("loyalty_phone", salt, country_code),
            raw=("customer_id", "loyalty_phone"),
        )

    return transform


def login_edges(salt: PiiKey | str) -> Callable[[DataFrame], DataFrame]:
    """bronze.events -> customer_id-device edges: a device seen in a login event (one with a customer_id)."""

    def transform(events: DataFrame) -> DataFrame:
        return _edges(
            events,
            CUSTOMER_ID,
            customer_id_key("customer_id", salt),
            DEVICE,
            device_key("device_id", salt),
            raw=("customer_id", "device_id"),
        )

    return transform


# -- connected components ----------------------------------------------------------------------


@dataclass(frozen=True)
class Components:
    labels: DataFrame  # node, label (the smallest node of its component)
    iterations: int
    converged: bool


def _both_ways(edges: DataFrame) -> DataFrame:
    return edges.select("src", "dst").unionByName(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))


def _large_star(edges: DataFrame) -> DataFrame:
    """Every node's larger neighbours are linked to the smallest node of its neighbourhood."""
    both = _both_ways(edges)
    smallest = both.groupBy("src").agg(F.least(F.min("dst"), F.col("src")).alias("m"))
    return (
        both.join(smallest, on="src", how="inner")
        .where(F.col("dst") > F.col("src"))
        .select(F.col("dst").alias("src"), F.col("m").alias("dst"))
        .distinct()
    )


def _small_star(edges: DataFrame) -> DataFrame:
    """Every node and its smaller neighbours are linked to the smallest of them."""
    down = _both_ways(edges).where(F.col("dst") < F.col("src"))
    smallest = down.groupBy("src").agg(F.min("dst").alias("m"))
    neighbours = down.join(smallest, on="src", how="inner").select(F.col("dst").alias("src"), F.col("m").alias("dst"))
    return (
        neighbours.unionByName(smallest.select("src", F.col("m").alias("dst")))
        .where(F.col("src") != F.col("dst"))
        .distinct()
    )


def _cut(df: DataFrame) -> DataFrame:
    """Materialised and cut from its lineage, so round n's plan does not hold rounds 1..n-1."""
    if checkpoint_dir(df.sparkSession):
        return df.checkpoint(eager=True)
    return df.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)


def connected_components(edges: DataFrame, max_iterations: int = DEFAULT_MAX_ITERATIONS) -> Components:
    """(src, dst) string edges -> (node, label) for every node on an edge; label = min node of the component.

    Stops when a large-star + small-star round changes no edge (then the edges form stars
    around each component's minimum) or after ``max_iterations`` rounds; when not converged
    the labels under-merge (never over-merge): every edge stays inside its component.
    """
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1; got {max_iterations}")
    current = _cut(
        edges.select(F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst"))
        .where(F.col("src") != F.col("dst"))
        .distinct()
    )
    converged, rounds = False, 0
    while rounds < max_iterations:
        rounds += 1
        nxt = _cut(_small_star(_large_star(current)))
        changed = (
            nxt.join(current, on=["src", "dst"], how="left_anti")
            .unionByName(current.join(nxt, on=["src", "dst"], how="left_anti"))
            .count()
        )
        current = nxt
        log.info("identity graph: round %d, %d edges changed", rounds, changed)
        if changed == 0:
            converged = True
            break
    if not converged:
        log.warning(
            "identity graph: not converged after %d rounds (conform.identity_max_iterations)",
            rounds,
        )
    pointed = current.groupBy("src").agg(F.min("dst").alias("label")).select(F.col("src").alias("node"), "label")
    roots = (
        current.select(F.col("dst").alias("node"))
        .distinct()
        .join(pointed, on="node", how="left_anti")
        .select("node", F.col("node").alias("label"))
    )
    return Components(pointed.unionByName(roots).select("node", "label"), rounds, converged)


# -- resolution -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    identity_map: DataFrame  # id_type, id_key, customer_key
    ambiguous: DataFrame  # id_type, id_key, n_customers: identifiers dropped by the policy
    iterations: int
    converged: bool


def _node(type_col: str, key_col: str) -> Column:
    # customer_id nodes sort first, so a component's label is a customer whenever it holds one.
    rank = F.when(F.col(type_col) == CUSTOMER_ID, F.lit("0")).otherwise(F.lit("1"))
    return F.concat_ws("|", rank, F.col(type_col), F.col(key_col))


def _halves(edges: DataFrame) -> DataFrame:
    """Each edge from both ends: (id_type, id_key, nb_type, nb_key)."""
    out = edges.select(
        F.col("src_type").alias("id_type"),
        F.col("src_key").alias("id_key"),
        F.col("dst_type").alias("nb_type"),
        F.col("dst_key").alias("nb_key"),
    )
    back = edges.select(
        F.col("dst_type").alias("id_type"),
        F.col("dst_key").alias("id_key"),
        F.col("src_type").alias("nb_type"),
        F.col("src_key").alias("nb_key"),
    )
    return out.unionByName(back)


def _endpoint(ids: DataFrame, end: str) -> DataFrame:
    return ids.select(F.col("id_type").alias(f"{end}_type"), F.col("id_key").alias(f"{end}_key"))


def _known_customers_only(crm: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Drops edges with a customer_id end that is not a CRM customer."""

    def transform(edges: DataFrame) -> DataFrame:
        out = edges
        for end in ("src", "dst"):
            known = _endpoint(crm, end).withColumn(f"_{end}_known", F.lit(True))
            is_customer = F.col(f"{end}_type") == CUSTOMER_ID
            out = out.join(known, on=[f"{end}_type", f"{end}_key"], how="left").where(
                ~is_customer | F.col(f"_{end}_known").isNotNull()
            )
        return out.select(*EDGE_COLUMNS)

    return transform


def _without(ids: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Drops edges with an end in ``ids`` (id_type, id_key)."""

    def transform(edges: DataFrame) -> DataFrame:
        return (
            edges.join(_endpoint(ids, "src"), on=["src_type", "src_key"], how="left_anti")
            .join(_endpoint(ids, "dst"), on=["dst_type", "dst_key"], how="left_anti")
            .select(*EDGE_COLUMNS)
        )

    return transform


def ambiguous_identifiers(edges: DataFrame) -> DataFrame:
    """Identifiers other than customer_id linked to more than one customer_id."""
    return (
        _halves(edges)
        .where((F.col("nb_type") == CUSTOMER_ID) & (F.col("id_type") != CUSTOMER_ID))
        .groupBy("id_type", "id_key")
        .agg(F.countDistinct("nb_key").alias("n_customers"))
        .where(F.col("n_customers") > 1)
        .select("id_type", "id_key", F.col("n_customers").cast("long").alias("n_customers"))
    )


def resolve_identities(
    edges: DataFrame, customers: DataFrame, max_iterations: int = DEFAULT_MAX_ITERATIONS
) -> Resolution:
    """Edges (EDGE_COLUMNS) and CRM customers (``customer_key``) -> identity map, by the policy above.

    Every CRM customer maps its own customer_id to itself, with or without edges.
    """
    crm = customers.select(F.lit(CUSTOMER_ID).alias("id_type"), F.col("customer_key").alias("id_key")).distinct()
    clean = _cut(
        edges.select(*EDGE_COLUMNS)
        .where(F.col("src_key").isNotNull() & F.col("dst_key").isNotNull())
        .where(~((F.col("src_type") == CUSTOMER_ID) & (F.col("dst_type") == CUSTOMER_ID)))
        .where(~((F.col("src_type") == F.col("dst_type")) & (F.col("src_key") == F.col("dst_key"))))
        .transform(_known_customers_only(crm))
        .distinct()
    )
    ambiguous = _cut(ambiguous_identifiers(clean))
    kept = clean.transform(_without(ambiguous.select("id_type", "id_key")))
    comps = connected_components(
        kept.select(_node("src_type", "src_key").alias("src"), _node("dst_type", "dst_key").alias("dst")),
        max_iterations,
    )
    halves = _halves(kept)
    nodes = (
        halves.select("id_type", "id_key")
        .unionByName(crm)
        .distinct()
        .withColumn("node", _node("id_type", "id_key"))
        .join(comps.labels, on="node", how="left")
        .withColumn("label", F.coalesce("label", "node"))
    )
    is_customer = F.col("id_type") == CUSTOMER_ID
    per_component = nodes.groupBy("label").agg(
        F.count_if(is_customer).alias("n_customers"),
        F.max(F.when(is_customer, F.col("id_key"))).alias("component_customer"),
    )
    # After the ambiguity rule, an identifier has at most one customer_id neighbour.
    direct = (
        halves.where((F.col("nb_type") == CUSTOMER_ID) & ~is_customer)
        .groupBy("id_type", "id_key")
        .agg(F.min("nb_key").alias("direct_customer"))
    )
    customer_key = (
        F.when(is_customer, F.col("id_key"))
        .when(F.col("n_customers") == 1, F.col("component_customer"))
        .otherwise(F.col("direct_customer"))
    )
    identity_map = (
        nodes.join(per_component, on="label", how="inner")
        .join(direct, on=["id_type", "id_key"], how="left")
        .withColumn("customer_key", customer_key)
        .where(F.col("customer_key").isNotNull())
        .select(*ID_MAP_COLUMNS)
    )
    return Resolution(identity_map, ambiguous, comps.iterations, comps.converged)


def with_customer_key(identity_map: DataFrame, *lookups: tuple[str, Column]) -> Callable[[DataFrame], DataFrame]:
    """Adds ``customer_key`` from the first of ``(id_type, key expression)`` found in the map (null: unresolved)."""

    def transform(df: DataFrame) -> DataFrame:
        base = df.drop("customer_key")
        out, found = base, []
        for i, (id_type, key) in enumerate(lookups):
            hit = identity_map.where(F.col("id_type") == id_type).select(
                F.col("id_key").alias(f"_id_key{i}"),
                F.col("customer_key").alias(f"_customer_key{i}"),
            )
            out = out.withColumn(f"_id_key{i}", key).join(hit, on=f"_id_key{i}", how="left")
            found.append(F.col(f"_customer_key{i}"))
        return out.select(*[F.col(c) for c in base.columns], F.coalesce(*found).alias("customer_key"))

    return transform
