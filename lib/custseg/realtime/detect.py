"""Trigger detection: sessions as native event-time state, and the candidates each trigger fires.

Sessions (browse and cart abandonment) are a streaming aggregate: ``groupBy(session_key,
session_window(ts, gap))`` after ``withWatermark`` keeps each open session in Spark's own state
store and emits it, in append mode, once the watermark passes its end (last event + gap): a
session that is emitted is closed, so "no order within the timeout" holds by construction.
No Python runs per event (it works on Spark Connect and on every Spark 4 engine); an event
later than the watermark is dropped by Spark, one inside it still joins its session.

The other three triggers are stateless: they look at one micro-batch of silver-shaped events or
order lines beside the batch gold tables (``custseg.realtime.decide.Gold``).

Every function returns CANDIDATE rows (``CANDIDATE_COLUMNS``), one per firing; ``trigger_key``
makes a firing unique (the session, the order, the customer's day), so a firing seen again in a
later micro-batch decides to the same ``offer_id`` and is not offered twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from custseg.realtime.triggers import BROWSE, CART, CROSS_SELL, DAYPART, DECLINING, Trigger, by_kind, session_gap

if TYPE_CHECKING:
    from custseg.realtime.decide import Gold

CANDIDATE_SCHEMA = T.StructType(
    [
        T.StructField("customer_key", T.StringType()),
        T.StructField("trigger", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("trigger_key", T.StringType()),
        T.StructField("event_ts", T.TimestampType()),
        T.StructField("source_event_id", T.StringType()),
        T.StructField("sku", T.StringType()),
        T.StructField("category", T.StringType()),
    ]
)
CANDIDATE_COLUMNS = [f.name for f in CANDIDATE_SCHEMA.fields]
SESSION_EVENT_COLUMNS = ["event_id", "customer_key", "device_key", "session_id", "ts", "event_type", "sku", "category"]
DEFAULT_PURCHASE_EVENTS = ("purchase",)


def _col(df: DataFrame, name: str) -> Column:
    return F.col(name).cast("string") if name in df.columns else F.lit(None).cast("string")


def _candidates(df: DataFrame, **cols: Column) -> DataFrame:
    """The CANDIDATE contract as a final select (every column named and typed)."""
    return df.select(*[cols[f.name].cast(f.dataType).alias(f.name) for f in CANDIDATE_SCHEMA.fields])


def empty_candidates(spark) -> DataFrame:
    return spark.createDataFrame([], CANDIDATE_SCHEMA)


def session_events(parsed: DataFrame) -> DataFrame:
    """Parsed events -> the narrow columns the sessions query keeps in state.

    ``parsed`` needs ``ts`` (timestamp) and ``event_type``; ``event_id``, ``customer_key``,
    ``device_key``, ``session_id``, ``sku`` and ``category`` are taken when present (null when
    not). Event types and categories are lower-cased as ``conform_events`` does. Rows without a
    timestamp or an event type cannot be sessionised and are left out (the ingest query
    quarantines them with their reason).
    """
    out = parsed.select(
        F.trim(_col(parsed, "event_id")).alias("event_id"),
        _col(parsed, "customer_key").alias("customer_key"),
        _col(parsed, "device_key").alias("device_key"),
        F.nullif(F.trim(_col(parsed, "session_id")), F.lit("")).alias("session_id"),
        F.col("ts").cast("timestamp").alias("ts"),
        F.lower(F.trim(_col(parsed, "event_type"))).alias("event_type"),
        F.nullif(F.trim(_col(parsed, "sku")), F.lit("")).alias("sku"),
        F.lower(F.nullif(F.trim(_col(parsed, "category")), F.lit(""))).alias("category"),
    )
    return out.where(F.col("ts").isNotNull() & F.col("event_type").isNotNull())


def session_key() -> Column:
    """Whose session: the device (a login mid-session keeps its session), else the customer, else
    the site's session id."""
    return F.coalesce(
        F.concat(F.lit("d:"), F.col("device_key")),
        F.concat(F.lit("c:"), F.col("customer_key")),
        F.concat(F.lit("s:"), F.col("session_id")),
    )


def _event_types(triggers: Sequence[Trigger], attr: str) -> list[str]:
    return sorted({e for t in triggers for e in getattr(t, attr)})


def sessions(
    parsed_stream: DataFrame,
    triggers: Sequence[Trigger],
    watermark: str,
    purchase_events: Sequence[str] = DEFAULT_PURCHASE_EVENTS,
) -> DataFrame:
    """Streaming (or static) events -> one row per session, emitted once closed (append mode).

    Columns: session_key, customer_key (the session's, once any event is attributed),
    session_id, session_start, session_end (last event + gap: when the session closed), last_ts,
    last_event_id, n_events, views (array of {sku, category} of the browse triggers' view
    events), cart_adds, cart_removes (same shape), purchased (a purchase event in the session).
    """
    gap = session_gap(list(triggers))
    views = _event_types(by_kind(list(triggers), BROWSE), "view_events")
    adds = _event_types(by_kind(list(triggers), CART), "cart_events")
    removes = _event_types(by_kind(list(triggers), CART), "remove_events")
    item = F.struct(F.col("sku"), F.col("category"))
    is_type = lambda types: F.col("event_type").isin(list(types)) if types else F.lit(False)  # noqa: E731
    events = (
        session_events(parsed_stream).withColumn("session_key", session_key()).where(F.col("session_key").isNotNull())
    )
    return (
        events.withWatermark("ts", watermark)
        .groupBy(F.col("session_key"), F.session_window(F.col("ts"), gap).alias("session"))
        .agg(
            F.max("customer_key").alias("customer_key"),
            F.max("session_id").alias("session_id"),
            F.max("ts").alias("last_ts"),
            F.max_by("event_id", "ts").alias("last_event_id"),
            F.count(F.lit(1)).alias("n_events"),
            F.collect_list(F.when(is_type(views), item)).alias("views"),
            F.collect_list(F.when(is_type(adds), item)).alias("cart_adds"),
            F.collect_list(F.when(is_type(removes), item)).alias("cart_removes"),
            F.max(is_type(purchase_events).cast("int")).alias("_purchased"),
        )
        .select(
            "session_key",
            "customer_key",
            "session_id",
            F.col("session.start").alias("session_start"),
            F.col("session.end").alias("session_end"),
            "last_ts",
            "last_event_id",
            "n_events",
            "views",
            "cart_adds",
            "cart_removes",
            (F.col("_purchased") > 0).alias("purchased"),
        )
    )


def _session_trigger_key() -> Column:
    # The session key may hold a device key: hashed again so that gold keeps no device identifier.
    digest = F.substring(F.sha2(F.col("session_key"), 256), 1, 16)
    return F.concat(F.lit("session:"), digest, F.lit("@"), F.date_format("session_start", "yyyy-MM-dd'T'HH:mm:ss"))


def _browse(closed: DataFrame, t: Trigger) -> DataFrame:
    items = F.filter(F.transform("views", lambda v: v[t.item_level]), lambda x: x.isNotNull())
    # Per distinct item its view count, then the most viewed (ties: the greatest item): higher-order
    # functions on the session's own short list, no shuffle.
    counts = F.transform(
        F.array_distinct(items),
        lambda i: F.struct(F.size(F.filter(items, lambda x: x == i)).alias("n"), i.alias("item")),
    )
    best = F.array_max(counts)
    fired = closed.withColumn("_best", best).where(
        ~F.coalesce(F.col("purchased"), F.lit(False)) & (F.col("_best.n") >= F.lit(t.min_views))
    )
    reason = F.format_string(
        f"viewed {t.item_level} %s %d times in a session, no order within {t.timeout_minutes} min",
        F.col("_best.item"),
        F.col("_best.n"),
    )
    is_sku = t.item_level == "sku"
    return _candidates(
        fired,
        customer_key=F.col("customer_key"),
        trigger=F.lit(t.id),
        reason=reason,
        trigger_key=_session_trigger_key(),
        event_ts=F.col("session_end"),
        source_event_id=F.col("last_event_id"),
        sku=F.col("_best.item") if is_sku else F.lit(None),
        category=F.lit(None) if is_sku else F.col("_best.item"),
    )


def _cart(closed: DataFrame, t: Trigger) -> DataFrame:
    key = lambda c: F.coalesce(c["sku"], F.concat(F.lit("category:"), c["category"]))  # noqa: E731
    added = F.filter(F.transform("cart_adds", key), lambda x: x.isNotNull())
    removed = F.transform("cart_removes", key)
    left = F.array_except(added, removed)
    fired = closed.withColumn("_left", left).where(
        ~F.coalesce(F.col("purchased"), F.lit(False)) & (F.size("_left") > 0)
    )
    first = F.element_at(F.filter("cart_adds", lambda c: key(c) == F.element_at(F.col("_left"), 1)), 1)
    reason = F.format_string(
        f"left %d item(s) in the cart (first %s), no order within {t.timeout_minutes} min",
        F.size("_left"),
        F.element_at(F.col("_left"), 1),
    )
    return _candidates(
        fired,
        customer_key=F.col("customer_key"),
        trigger=F.lit(t.id),
        reason=reason,
        trigger_key=_session_trigger_key(),
        event_ts=F.col("session_end"),
        source_event_id=F.col("last_event_id"),
        sku=first["sku"],
        category=first["category"],
    )


def _union(parts: list[DataFrame]) -> DataFrame | None:
    out = None
    for p in parts:
        out = p if out is None else out.unionByName(p)
    return out


def session_candidates(
    closed_sessions: DataFrame, triggers: Sequence[Trigger], orders: DataFrame | None = None
) -> DataFrame:
    """Closed sessions (``sessions`` rows) -> browse and cart abandonment CANDIDATE rows.

    ``orders`` (optional; any frame with customer_key and order_ts, e.g. silver.orders_rt): an
    order of the session's customer from the session's start to its end (last event + timeout),
    from any channel, means it was not abandoned.
    """
    parts = [_browse(closed_sessions, t) for t in by_kind(list(triggers), BROWSE)]
    parts += [_cart(closed_sessions, t) for t in by_kind(list(triggers), CART)]
    out = _union(parts)
    if out is None:
        return empty_candidates(closed_sessions.sparkSession)
    if orders is not None:
        spans = closed_sessions.select(
            _session_trigger_key().alias("_tk"),
            F.col("customer_key").alias("_ck"),
            F.col("session_start").alias("_start"),
            F.col("session_end").alias("_end"),
        )
        ordered = spans.join(
            orders.select(F.col("customer_key").alias("_ock"), F.col("order_ts").alias("_ots")),
            on=(F.col("_ock") == F.col("_ck")) & F.col("_ots").between(F.col("_start"), F.col("_end")),
            how="left_semi",
        ).select("_tk", "_ck")
        out = out.join(
            ordered,
            on=(F.col("trigger_key") == F.col("_tk")) & (F.col("customer_key") == F.col("_ck")),
            how="left_anti",
        )
    return out.select(*CANDIDATE_COLUMNS)


# --- stateless triggers (one micro-batch) ---------------------------------------------------


def _order_items(orders: DataFrame, gold: Gold) -> DataFrame:
    """Order lines -> order_id, customer_key, order_ts, item (at basket.level) of completed orders."""
    # Guest orders stay: their firing is logged as unknown_customer, never offered.
    lines = orders
    if "status" in lines.columns:
        lines = lines.where(F.col("status").isNull() | (F.col("status") == "completed"))
    level = gold.basket_level
    if level not in lines.columns:
        if gold.products is None or "sku" not in lines.columns:
            raise ValueError(
                f"post-purchase cross-sell needs the order lines' {level} (basket.level) or a sku and silver.products"
            )
        lines = lines.join(F.broadcast(gold.products.select("sku", level)), on="sku", how="left")
    return lines.select(
        F.col("order_id").cast("string").alias("order_id"),
        "customer_key",
        F.col("order_ts").cast("timestamp").alias("order_ts"),
        F.col(level).cast("string").alias("item"),
    ).where(F.col("item").isNotNull())


def _cross_sell(orders: DataFrame, gold: Gold, t: Trigger) -> DataFrame:
    lines = _order_items(orders, gold)
    baskets = lines.groupBy("order_id", "customer_key").agg(
        F.collect_set("item").alias("items"), F.max("order_ts").alias("order_ts")
    )
    rules = gold.cross_sell_rules.where(
        (F.size("antecedent") >= 1) & (F.col("confidence") >= t.min_confidence) & (F.col("lift") >= t.min_lift)
    ).select(
        F.element_at("antecedent", 1).alias("_a1"),
        "antecedent",
        F.col("consequent").cast("string").alias("consequent"),
        "confidence",
        "lift",
    )
    # Equi-join on one antecedent item (rules are few, orders of one batch fewer), then the subset test.
    firing = (
        baskets.select("*", F.explode("items").alias("_a1"))
        .join(rules, on="_a1", how="inner")
        .where((F.size(F.array_except("antecedent", "items")) == 0) & ~F.array_contains("items", F.col("consequent")))
    )
    best = firing.groupBy("order_id", "customer_key", "order_ts").agg(
        F.max(
            F.struct(
                (F.col("confidence") * F.col("lift")).alias("score"),
                F.col("consequent"),
                F.array_join("antecedent", " + ").alias("antecedent"),
                F.col("confidence"),
                F.col("lift"),
            )
        ).alias("r")
    )
    reason = F.format_string(
        "order %s holds %s: rule -> %s (confidence %.2f, lift %.2f)",
        F.col("order_id"),
        F.col("r.antecedent"),
        F.col("r.consequent"),
        F.col("r.confidence"),
        F.col("r.lift"),
    )
    is_sku = gold.basket_level == "sku"
    return _candidates(
        best,
        customer_key=F.col("customer_key"),
        trigger=F.lit(t.id),
        reason=reason,
        trigger_key=F.concat(F.lit("order:"), F.col("order_id")),
        event_ts=F.col("order_ts"),
        source_event_id=F.col("order_id"),
        sku=F.col("r.consequent") if is_sku else F.lit(None),
        category=F.lit(None) if is_sku else F.col("r.consequent"),
    )


def _first_per_customer_day(events: DataFrame) -> DataFrame:
    """customer_key, day, the first event (ts, event_id) of the customer's day in the batch."""
    return events.groupBy("customer_key", F.to_date("ts").alias("day")).agg(
        F.min(F.struct("ts", "event_id")).alias("first")
    )


def _known_events(events: DataFrame, types: Sequence[str]) -> DataFrame:
    return events.where(F.col("customer_key").isNotNull() & F.lower(F.col("event_type")).isin(list(types))).select(
        "customer_key", F.col("ts").cast("timestamp").alias("ts"), F.col("event_id").cast("string").alias("event_id")
    )


def _batch_customers(gold: Gold, rows: DataFrame) -> DataFrame:
    """The base's rows of the customers in ``rows`` only (a broadcast semi-join on the batch's few keys,
    pushed below the base's joins), so a micro-batch never shuffles the whole base."""
    keys = rows.select("customer_key").distinct()
    return gold.customers.join(F.broadcast(keys), on="customer_key", how="left_semi")


def _declining(events: DataFrame, gold: Gold, t: Trigger) -> DataFrame:
    seen = _known_events(events, t.return_events)
    flagged = _batch_customers(gold, seen).where(F.coalesce(F.col("declining"), F.lit(False))).select("customer_key")
    seen = seen.join(flagged, on="customer_key", how="left_semi")
    first = _first_per_customer_day(seen)
    return _candidates(
        first,
        customer_key=F.col("customer_key"),
        trigger=F.lit(t.id),
        reason=F.format_string("declining customer back on the site / app (%s)", F.col("first.event_id")),
        trigger_key=F.concat(F.lit("day:"), F.date_format("day", "yyyy-MM-dd")),
        event_ts=F.col("first.ts"),
        source_event_id=F.col("first.event_id"),
        sku=F.lit(None),
        category=F.lit(None),
    )


def _daypart(events: DataFrame, gold: Gold, t: Trigger) -> DataFrame:
    start = gold.lunch_hours[0] * 60
    minute = F.hour("ts") * 60 + F.minute("ts")
    weekday = F.dayofweek("ts").between(2, 6)  # Monday-Friday, as features.lunch_hours counts
    window = weekday & (minute >= F.lit(start - t.lead_minutes)) & (minute < F.lit(start))
    opened = _known_events(events, t.open_events).where(window)
    regulars = (
        _batch_customers(gold, opened)
        .where(F.col("weekday_lunch_share") >= F.lit(t.min_lunch_share))
        .select("customer_key")
    )
    opened = opened.join(regulars, on="customer_key", how="left_semi")
    first = _first_per_customer_day(opened)
    return _candidates(
        first,
        customer_key=F.col("customer_key"),
        trigger=F.lit(t.id),
        reason=F.format_string(
            f"lunch regular (weekday_lunch_share >= {t.min_lunch_share:g}) opened the site / app at %s, "
            f"before lunch ({gold.lunch_hours[0]:02d}:00)",
            F.date_format("first.ts", "HH:mm"),
        ),
        trigger_key=F.concat(F.lit("day:"), F.date_format("day", "yyyy-MM-dd")),
        event_ts=F.col("first.ts"),
        source_event_id=F.col("first.event_id"),
        sku=F.lit(None),
        category=F.lit(None),
    )


def stateless_candidates(events: DataFrame, orders: DataFrame, gold: Gold, triggers: Sequence[Trigger]) -> DataFrame:
    """One micro-batch of silver-shaped events and order lines -> cross-sell, declining-return and
    day-part CANDIDATE rows.

    ``events``: event_id, customer_key (null: unknown), ts, event_type (as ``conform_events``).
    ``orders``: order *lines* with order_id, customer_key, order_ts, status (optional) and the item at
    ``basket.level`` (sku, subcategory or category; taken from ``gold.products`` by sku when absent),
    as silver.order_items; either may be None.
    """
    triggers = list(triggers)
    parts: list[DataFrame] = []
    if orders is not None and gold.cross_sell_rules is not None:
        parts += [_cross_sell(orders, gold, t) for t in by_kind(triggers, CROSS_SELL)]
    if events is not None:
        parts += [_declining(events, gold, t) for t in by_kind(triggers, DECLINING)]
        parts += [_daypart(events, gold, t) for t in by_kind(triggers, DAYPART)]
    out = _union(parts)
    return out.select(*CANDIDATE_COLUMNS) if out is not None else empty_candidates(gold.customers.sparkSession)
