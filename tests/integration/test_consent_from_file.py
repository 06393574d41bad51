"""Consent from a file, through the stages that use it, on generated transactions with planted consent.

A seeded generator writes a bring-your-own transaction file (Online Retail layout) for 60
customers and a consent export in which each customer is planted in one group: opted in to
e-mail, opted in then out of e-mail (the opt-out is later), opted in to SMS only, or absent,
plus bad rows that would opt absent customers in if they leaked (an unknown channel, a value
that is neither yes nor no, a bad date). ingest, conform, features and marketing run (no
segment or basket stage: the marketing stage does without them) with two campaigns that
target everyone, one by e-mail and one by SMS. Only the planted opted-in customers of a
channel may appear in its audience, its CRM export and its activation file, and all of them
must (the budget covers everyone).
"""

from __future__ import annotations

import json
import os
import random
from datetime import datetime, timedelta

import pandas as pd
import pytest
import yaml

from tests.integration.conftest import ROOT, run_stages

pytestmark = pytest.mark.slow

RUN_DATE = "2026-06-30"
GROUPS = ("email_in", "email_in_then_out", "sms_only", "absent")
CAMPAIGN = {
    "goal": "retention",
    "offer": {"type": "coupon", "discount": 0.1, "category": "any"},
    "cost_per_contact": 0.01,
    "revenue_per_response": 100.0,
    "margin_per_response": 50.0,
    "budget": 1000.0,
    "holdout_share": 0.2,
}


def _generate(home, seed: int = 7) -> dict[str, str]:
    """Lands the two files; returns customer id -> planted group."""
    rng = random.Random(seed)
    ids = [str(20001 + i) for i in range(60)]
    group = {cid: GROUPS[i % len(GROUPS)] for i, cid in enumerate(rng.sample(ids, len(ids)))}
    start = datetime(2025, 7, 1)
    lines, invoice = [], 600000
    for cid in ids:
        for _ in range(rng.randint(1, 5)):
            invoice += 1
            when = start + timedelta(days=rng.randint(0, 360), minutes=rng.randint(0, 600))
            for _ in range(rng.randint(1, 3)):
                sku, qty, price = f"SKU{rng.randint(1, 30)}", rng.randint(1, 6), rng.choice(("1.25", "2.55", "4.95"))
                lines.append(
                    f"{invoice},{sku},ITEM {sku},{qty},{when:%Y-%m-%d %H:%M:%S},{price},{cid}.0,United Kingdom"
                )
    _land(
        home,
        "flat_transactions",
        "retail.csv",
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
        lines,
    )

    consent, t0 = [], datetime(2025, 6, 1, 9, 0)
    for cid, g in group.items():
        at = t0 + timedelta(days=rng.randint(0, 200))
        if g == "email_in":
            consent += [
                f"{cid},Email,no,{at:%Y-%m-%d %H:%M:%S}",
                f"{cid},email,Yes,{at + timedelta(days=30):%Y-%m-%d %H:%M:%S}",
            ]
        elif g == "email_in_then_out":
            consent += [
                f"{cid},email,yes,{at:%Y-%m-%d %H:%M:%S}",
                f"{cid},email,no,{at + timedelta(days=3):%Y-%m-%d %H:%M:%S}",
            ]
        elif g == "sms_only":
            consent += [f"{cid},sms,y,{at:%Y-%m-%d %H:%M:%S}", f"{cid},email,n,{at:%Y-%m-%d %H:%M:%S}"]
        else:  # absent: only rows that must be quarantined
            consent += [
                f"{cid},fax,yes,{at:%Y-%m-%d %H:%M:%S}",
                f"{cid},email,maybe,{at:%Y-%m-%d %H:%M:%S}",
                f"{cid},sms,yes,{at:%d/%m/%Y}",
            ]
    consent.append(",email,yes,2026-01-01 10:00:00")
    rng.shuffle(consent)
    _land(home, "consent", "export.csv", "customer_id,channel,opted_in,updated_at", consent)
    return group


def _land(home, source: str, name: str, header: str, lines: list[str]) -> None:
    path = home / "landing" / source / RUN_DATE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n")


@pytest.fixture(scope="module")
def consent_run(spark, tmp_path_factory):
    home = tmp_path_factory.mktemp("consent")
    group = _generate(home)
    doc = yaml.safe_load((ROOT / "conf" / "campaigns.yaml").read_text())
    doc["campaigns"] = {
        "all_email": {**CAMPAIGN, "name": "Everyone by e-mail", "channels": ["email"]},
        "all_sms": {**CAMPAIGN, "name": "Everyone by SMS", "channels": ["sms"]},
    }
    campaigns = home / "campaigns.yaml"
    campaigns.write_text(yaml.safe_dump(doc))
    sets = [
        "ingest.required_sources=[]",
        "ingest.max_reject_rate=1.0",
        "flat_transactions.enabled=true",
        "marketing.consent.policy=from_file",
        f"marketing.campaigns_file={campaigns}",
        "marketing.max_campaigns_per_customer=0",
        "marketing.propensity.behaviour.enabled=false",
    ]
    extra = [a for s in sets for a in ("--set", s)]
    rc = run_stages(spark, home, RUN_DATE, ["ingest", "conform", "features", "marketing"], extra)
    assert rc == 0, "a stage failed (see the log above)"
    return home, group


def _keys(spark, ids) -> dict[str, str]:
    """Customer id -> customer_key, computed here from the salt (as conform must)."""
    from pyspark.sql import functions as F

    from custseg.pii import identity_key

    df = spark.createDataFrame([(i,) for i in ids], "cid string")
    salt = os.environ["CUSTSEG_PII_SALT"]
    return {
        r["cid"]: r["k"] for r in df.select("cid", identity_key("customer_id", F.col("cid"), salt).alias("k")).collect()
    }


def test_only_planted_opted_in_customers_are_contacted(spark, consent_run):
    from pyspark.sql import functions as F

    from custseg.storage import StorageSettings, Tables

    home, group = consent_run
    t = Tables(spark, StorageSettings(root=str(home / "tables")))
    key = _keys(spark, group)
    planted = {g: {key[c] for c, x in group.items() if x == g} for g in GROUPS}

    # ingest: the bad rows are quarantined (3 per absent customer, one without an id), the rest land
    absent = sum(1 for g in group.values() if g == "absent")
    reasons = {
        r["reason"]: r["count"]
        for r in t.read("bronze.quarantine").where(F.col("source") == "consent").groupBy("reason").count().collect()
    }
    assert reasons == {
        "unknown_channel": absent,
        "bad_opted_in": absent,
        "bad_consent_ts": absent,
        "missing_customer_id": 1,
    }
    assert t.read("bronze.consent").count() == 2 * (len(group) - absent)

    audience = t.read("gold.campaign_audiences").where(F.col("snapshot_date") == RUN_DATE)
    for campaign, channel, opted_in in (("all_email", "email", "email_in"), ("all_sms", "sms", "sms_only")):
        rows = audience.where(F.col("campaign_id") == campaign).select("customer_key", "group", "channel").collect()
        assert {r["customer_key"] for r in rows} == planted[opted_in], campaign
        assert {r["channel"] for r in rows} == {channel}
        treated = {r["customer_key"] for r in rows if r["group"] == "treatment"}
        assert treated and len(treated) < len(rows)  # a holdout was kept

        crm = pd.read_csv(home / "exports" / RUN_DATE / campaign / "crm.csv")
        assert set(crm["customer_key"]) == treated
        assert set(crm["consent_basis"]) == {"file"}
        # the activation file carries the source id: only planted opted-in customers of the channel
        activation = pd.read_csv(home / "exports" / RUN_DATE / campaign / "generic_csv-part-00001.csv", dtype=str)
        assert set(activation["customer_id"]) == {c for c in group if key[c] in treated}

    plan = t.read("gold.campaign_plan").where((F.col("snapshot_date") == RUN_DATE) & (F.col("strategy") == "precision"))
    for r in plan.collect():
        assert r["consent_basis"].startswith("file (consent)")
        assert r["suppressed_consent"] == len(group) - len(
            planted["email_in" if r["campaign_id"] == "all_email" else "sms_only"]
        )
    manifest = json.loads((home / "exports" / RUN_DATE / "manifest.json").read_text())
    assert manifest["consent"]["policy"] == "from_file" and manifest["consent"]["file"] == "consent"
