"""The seven landing sources of DESIGN.md: their raw schemas and validation rules."""

from __future__ import annotations

from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from custseg.sources.base import SourceSpec, bad_number, bad_ts, missing, not_in, strings

# Enumerations checked at ingest (what the upstream systems, and lib/custseg/datagen, write).
ORDER_CHANNELS = ("store", "web", "app")
ORDER_STATUSES = ("completed", "returned", "cancelled")
RESPONSE_GROUPS = ("treatment", "control")
EVENT_TYPES = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "purchase",
    "login",
)
FEEDBACK_CHANNELS = ("web", "app", "email", "store", "call_center")

ORDER_ITEM = StructType(
    [
        StructField("sku", StringType(), True),
        StructField("qty", StringType(), True),
        StructField("unit_price", StringType(), True),
        StructField("discount", StringType(), True),
    ]
)

CRM_CUSTOMERS = SourceSpec(
    name="crm_customers",
    fmt="csv",
    schema=strings(
        "customer_id",
        "name",
        "email",
        "phone",
        "gender",
        "birth_date",
        "city",
        "region",
        "signup_date",
        "member_tier",
        "opt_in_email",
        "opt_in_sms",
        "opt_in_ads",
        "updated_at",
    ),
    key="customer_id",
    rules=[
        ("missing_customer_id", missing("customer_id")),
        ("bad_signup_date", bad_ts("signup_date", required=False)),
        ("bad_updated_at", bad_ts("updated_at")),
        ("bad_birth_date", bad_ts("birth_date", required=False)),
    ],
    ts_cols=("updated_at", "signup_date"),
    version="updated_at",  # a CRM extract holds every update of a customer; conform keeps the latest
)

PRODUCTS = SourceSpec(
    name="products",
    fmt="csv",
    schema=strings("sku", "name", "category", "subcategory", "brand", "list_price"),
    key="sku",
    rules=[
        ("missing_sku", missing("sku")),
        ("missing_category", missing("category")),
        ("bad_list_price", bad_number("list_price", low=0)),
    ],
    money_cols=("list_price",),
)

ORDERS = SourceSpec(
    name="orders",
    fmt="jsonl",
    schema=StructType(
        [
            StructField("order_id", StringType(), True),
            StructField("customer_id", StringType(), True),
            StructField("loyalty_phone", StringType(), True),
            StructField("order_ts", StringType(), True),
            StructField("channel", StringType(), True),
            StructField("store_id", StringType(), True),
            StructField("status", StringType(), True),
            StructField("items", ArrayType(ORDER_ITEM), True),
        ]
    ),
    key="order_id",
    rules=[
        ("missing_order_id", missing("order_id")),
        ("bad_order_ts", bad_ts("order_ts")),
        ("no_items", lambda: F.coalesce(F.size("items"), F.lit(0)) <= 0),
        (
            "bad_item_price",
            lambda: F.exists(
                "items",
                lambda i: F.coalesce(
                    i["unit_price"].try_cast("double").isNull() | (i["unit_price"].try_cast("double") < 0),
                    F.lit(True),
                ),
            ),
        ),
        (
            "bad_item_qty",
            lambda: F.exists(
                "items",
                lambda i: F.coalesce(i["qty"].try_cast("int").isNull() | (i["qty"].try_cast("int") <= 0), F.lit(True)),
            ),
        ),
        (
            "bad_item_discount",
            lambda: F.exists(
                "items",
                lambda i: F.coalesce(
                    (i["discount"].try_cast("double") < 0) | (i["discount"].try_cast("double") > 1),
                    F.lit(False),
                ),
            ),
        ),
        # required: an order without a status would pass, then count in no stage (they all
        # filter on status); a response without a group would vanish from the lift measure.
        ("bad_status", not_in("status", ORDER_STATUSES, required=True)),
        ("bad_channel", not_in("channel", ORDER_CHANNELS)),
    ],
    ts_cols=("order_ts",),
    money_cols=("items.unit_price",),
    qty_cols=("items.qty",),
)

EVENTS = SourceSpec(
    name="events",
    fmt="jsonl",
    schema=strings(
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
    ),
    key="event_id",
    rules=[
        ("missing_event_id", missing("event_id")),
        ("missing_device_id", missing("device_id")),
        ("bad_ts", bad_ts("ts")),
        ("bad_duration", bad_number("duration_ms", low=0)),
        ("bad_event_type", not_in("event_type", EVENT_TYPES, required=True)),
    ],
    ts_cols=("ts",),
)

FEEDBACK = SourceSpec(
    name="feedback",
    fmt="csv",
    schema=strings("feedback_id", "customer_id", "ts", "channel", "rating", "nps", "text"),
    key="feedback_id",
    rules=[
        ("missing_feedback_id", missing("feedback_id")),
        ("missing_customer_id", missing("customer_id")),
        ("bad_ts", bad_ts("ts")),
        ("rating_out_of_range", bad_number("rating", low=1, high=5)),
        ("nps_out_of_range", bad_number("nps", low=0, high=10)),
        ("bad_channel", not_in("channel", FEEDBACK_CHANNELS)),
    ],
    ts_cols=("ts",),
)

SOCIAL = SourceSpec(
    name="social",
    fmt="jsonl",
    schema=strings("platform", "handle", "email", "followers", "posts", "shares", "mentions", "observed_at"),
    key=None,
    rules=[
        ("missing_handle", missing("handle")),
        ("bad_followers", bad_number("followers", low=0)),
        ("bad_observed_at", bad_ts("observed_at", required=False)),
    ],
    ts_cols=("observed_at",),
)

CAMPAIGN_RESPONSES = SourceSpec(
    name="campaign_responses",
    fmt="csv",
    schema=strings(
        "campaign_id",
        "customer_id",
        "channel",
        "group",
        "sent_ts",
        "opened_ts",
        "clicked_ts",
        "converted_ts",
        "revenue",
    ),
    key=None,
    rules=[
        ("missing_campaign_id", missing("campaign_id")),
        ("missing_customer_id", missing("customer_id")),
        ("bad_group", not_in("group", RESPONSE_GROUPS, required=True)),
        ("bad_sent_ts", bad_ts("sent_ts")),
        ("bad_converted_ts", bad_ts("converted_ts", required=False)),
        ("bad_revenue", bad_number("revenue", low=0)),
    ],
    ts_cols=("sent_ts",),
    money_cols=("revenue",),
)

SOURCES: dict[str, SourceSpec] = {
    s.name: s for s in (CRM_CUSTOMERS, PRODUCTS, ORDERS, EVENTS, FEEDBACK, SOCIAL, CAMPAIGN_RESPONSES)
}


def get_source(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCES)}") from None
