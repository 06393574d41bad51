"""Campaign funnel: sent -> delivered -> opened -> clicked -> converted, per campaign, variant and segment.

``campaign_funnel(responses, segments, as_of)`` reads ``silver.campaign_responses`` as it was
known at the end of ``as_of`` (sends, opens, clicks and conversions stamped later are not
counted, so a rerun for an old date gives the same figures) and counts, per campaign,
variant, group (treatment / control) and segment (plus segment ``all``):

- ``assigned``: customers in the group (a control customer is assigned, never sent);
- ``sent``: treatment rows with a send time; ``delivered``: sent and not bounced. The responses
  carry a bounce only when the source has a ``delivered_ts`` or ``bounced`` column; without one,
  delivered = sent (stated in docs/marketing.md);
- ``opened``, ``clicked``: rows with an open / click time by ``as_of``. Ads and many SMS are not
  open-tracked, so a campaign can have more clicks than opens;
- ``converted`` and ``revenue``: conversions by ``as_of``, both groups (the control's conversions
  are the baseline of gold.campaign_results' lift);
- rates: ``delivery_rate`` = delivered / sent, ``open_rate`` = opened / delivered,
  ``click_rate`` = clicked / delivered, ``click_to_open`` = clicked / opened,
  ``conversion_rate`` = converted / assigned (so treatment and control compare); null on a 0 denominator.

``variant`` is the response's ``variant`` column where the source has one, else ``default``.
Customers are labelled with their segment at the snapshot (``unsegmented`` without one).
The output is bounded by campaigns x variants x groups x segments.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from custseg.marketing.kpis import ratio, with_segment

DEFAULT_VARIANT = "default"
FUNNEL_COLUMNS = [
    "snapshot_date",
    "campaign_id",
    "variant",
    "group",
    "segment_name",
    "first_sent",
    "assigned",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "converted",
    "revenue",
    "delivery_rate",
    "open_rate",
    "click_rate",
    "click_to_open",
    "conversion_rate",
]


def _by(ts: str, as_of: date) -> Column:
    """The timestamp is set and falls on or before the snapshot day."""
    return F.col(ts).isNotNull() & (F.to_date(F.col(ts)) <= F.lit(as_of))


def campaign_funnel(responses: DataFrame, segments: DataFrame | None, as_of: date) -> DataFrame:
    """responses (campaign_id, customer_key, group, sent_ts, opened_ts, clicked_ts, converted_ts,
    converted, revenue[, variant][, delivered_ts | bounced]) -> funnel rows for ``as_of``."""
    cols = set(responses.columns)
    r = responses.where(_by("sent_ts", as_of))
    treated = F.col("group") == F.lit("treatment")
    sent = treated
    if "delivered_ts" in cols:
        delivered = sent & _by("delivered_ts", as_of)
    elif "bounced" in cols:
        delivered = sent & ~F.coalesce(F.col("bounced").cast("boolean"), F.lit(False))
    else:
        delivered = sent
    converted = F.coalesce(F.col("converted"), F.lit(False)) & _by("converted_ts", as_of)
    variant = F.coalesce(F.col("variant").cast("string"), F.lit(DEFAULT_VARIANT)) if "variant" in cols else None
    r = r.select(
        "campaign_id",
        (variant if variant is not None else F.lit(DEFAULT_VARIANT)).alias("variant"),
        "group",
        "customer_key",
        F.to_date("sent_ts").alias("_sent_day"),
        sent.alias("_sent"),
        delivered.alias("_delivered"),
        (delivered & _by("opened_ts", as_of)).alias("_opened"),
        (delivered & _by("clicked_ts", as_of)).alias("_clicked"),
        converted.alias("_converted"),
        F.when(converted, F.col("revenue").cast("double")).otherwise(F.lit(0.0)).alias("_revenue"),
    )
    r = with_segment(r, segments)

    def n(flag: str) -> Column:
        return F.sum(F.col(flag).cast("long")).alias(flag[1:])

    counted = r.groupBy("campaign_id", "variant", "group", "segment_name").agg(
        F.min("_sent_day").alias("first_sent"),
        F.count("*").alias("assigned"),
        n("_sent"),
        n("_delivered"),
        n("_opened"),
        n("_clicked"),
        n("_converted"),
        F.sum("_revenue").alias("revenue"),
    )
    return counted.withColumns(
        {
            "snapshot_date": F.lit(as_of),
            "delivery_rate": ratio("delivered", "sent"),
            "open_rate": ratio("opened", "delivered"),
            "click_rate": ratio("clicked", "delivered"),
            "click_to_open": ratio("clicked", "opened"),
            "conversion_rate": ratio("converted", "assigned"),
        }
    ).select(*FUNNEL_COLUMNS)
