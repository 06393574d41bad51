"""Real transaction files end to end (../shared/datasets, skipped where absent): the UCI Online
Retail line items and CDNOW's purchases, each through `custseg run pipeline` with its ready conf.

Every expected figure is computed here from the raw file with pandas, by the rules the docs
state (docs/ingest.md "Bring your own transactions"): cancellations (invoice "C...") and
invoices with a negative quantity are not purchases, nor is an invoice whose lines are all
free (price 0, conform.zero_price_lines); negative prices are quarantined; prices are cents;
the RFM window is (run date - 365 days, run date]. The stage settings that only cost time are
narrowed with --set (k range, FP-Growth support, ALS iterations, no offline evaluation).
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest
from pyspark.sql import functions as F

from custseg.config import DEFAULT_CONF_DIR
from custseg.runs import latest_runs
from custseg.storage import StorageSettings, Tables

pytestmark = pytest.mark.slow

FAST = [
    "segment.k_min=3",
    "segment.k_max=4",
    "segment.n_init=1",
    "basket.min_support=0.02",
    "recommend.als.max_iter=5",
    "recommend.evaluate=false",
]
PIPELINE = ["ingest", "conform", "features", "segment", "basket", "marketing", "report"]


def _run_pipeline(spark, home, monkeypatch, conf: str, run_date: str) -> float:
    from custseg.cli import parse_job_args, run_job

    monkeypatch.setenv("CUSTSEG_HOME", str(home))
    args = ["pipeline", "--date", run_date, "--conf", str(DEFAULT_CONF_DIR / conf)]
    for s in FAST:
        args += ["--set", s]
    t0 = time.perf_counter()
    rc = run_job(parse_job_args(None, args), spark=spark)
    seconds = time.perf_counter() - t0
    print(f"\n{conf}: pipeline in {seconds:.0f} s")
    assert rc == 0
    return seconds


def _cents(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _runs(t: Tables, run_date: date) -> dict:
    rows = t.read("gold.job_runs").where(F.col("run_date") == F.lit(run_date)).transform(latest_runs).collect()
    return {r["job"]: r for r in rows}


def _check_marketing(t: Tables, home, run_date: date, behaviour_label: str) -> None:
    """Campaigns a user can act on: eligible customers and contacts, precision / blanket / random,
    a validated behavioural propensity, a holdout, export files and the consent assumption stated."""
    snap = F.col("snapshot_date") == F.lit(run_date)
    plan = t.read("gold.campaign_plan").where(snap).toPandas()
    assert set(plan["strategy"]) == {"precision", "blanket", "random"}
    precise = plan[plan["strategy"] == "precision"]
    existing = precise[precise["goal"] != "acquisition"]  # acquisition targets non-buyers: may be none
    assert (existing["eligible"] > 0).all() and (precise["contacts"] > 0).sum() >= 2, precise
    assert set(precise["propensity_source"]) == {"behaviour"}
    assert set(precise["propensity_label"]) == {behaviour_label}
    assert precise["consent_basis"].str.startswith("assumed opted in (email)").all()
    assert (precise["auc_validation"] > 0.6).all(), precise[["campaign_id", "auc_validation"]]
    acted = precise[precise["contacts"] > 0]
    for cid in acted["campaign_id"]:
        rows = plan[plan["campaign_id"] == cid].set_index("strategy")
        # ranking by propensity beats a random audience of the same size
        assert rows.at["precision", "response_rate"] > rows.at["random", "response_rate"]
        assert rows.at["blanket", "contacts"] >= rows.at["precision", "contacts"]
    quality = t.read("gold.propensity_quality").where(snap).toPandas()
    chosen = quality[quality["chosen"]]
    assert set(chosen["label"]) == {behaviour_label} and chosen["decile"].notna().any()
    audience = t.read("gold.campaign_audiences").where(snap)
    groups = {r["group"]: r["n"] for r in audience.groupBy("group").agg(F.count("*").alias("n")).collect()}
    assert groups.get("treatment", 0) > 0 and groups.get("control", 0) > 0  # the holdout
    manifest = json.loads((home / "exports" / run_date.isoformat() / "manifest.json").read_text())
    assert manifest["consent"]["policy"] == "assume_opted_in" and "CONSENT ASSUMED" in manifest["consent"]["warning"]
    cid = acted["campaign_id"].iloc[0]
    crm = pd.read_csv(home / "exports" / run_date.isoformat() / cid / "crm.csv")
    assert len(crm) == int(acted.set_index("campaign_id").at[cid, "contacts"])
    assert set(crm["consent_basis"]) == {"assumed"}
    report = (home / "reports" / run_date.isoformat() / "report.html").read_text(encoding="utf-8")
    assert "Targeting model and consent" in report and behaviour_label in report


# --- UCI Online Retail ----------------------------------------------------------------------

RETAIL_DATE = date(2011, 12, 9)


def _retail_truth(path) -> dict:
    raw = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str})
    raw = raw[raw["UnitPrice"] >= 0].copy()  # negative prices are quarantined (bad_unit_price)
    raw["customer"] = raw["CustomerID"].str.replace(r"\.0$", "", regex=True)
    raw["ts"] = pd.to_datetime(raw["InvoiceDate"])
    raw["cents"] = raw["UnitPrice"].map(_cents)
    raw["net"] = [q * c for q, c in zip(raw["Quantity"].abs(), raw["cents"], strict=True)]
    inv = raw.groupby("InvoiceNo").agg(
        customer=("customer", "max"),
        day=("ts", lambda s: s.min().date()),
        min_qty=("Quantity", "min"),
        paid=("cents", lambda s: (s > 0).any()),
        net=("net", "sum"),
    )
    cancelled = inv.index.str.startswith("C")
    returned = ~cancelled & (inv["min_qty"] < 0)
    purchase = ~cancelled & ~returned & inv["paid"]
    window = (inv["day"] > RETAIL_DATE - timedelta(days=365)) & (inv["day"] <= RETAIL_DATE)
    bought = inv[purchase & window & inv["customer"].notna()]
    lines = raw[raw["InvoiceNo"].isin(inv.index[~cancelled & ~returned]) & (raw["cents"] > 0)]
    lines = lines[lines["InvoiceNo"].map(inv["day"]).pipe(lambda d: d > RETAIL_DATE - timedelta(days=365))]
    skus = lines.groupby("InvoiceNo")["StockCode"].agg(lambda s: s.str.strip().nunique())
    return {
        "customers": raw["customer"].dropna().nunique(),
        "orders": len(inv),
        "cancelled": int(cancelled.sum()),
        "returned": int(returned.sum()),
        "free": int((~cancelled & ~returned & ~inv["paid"]).sum()),
        "buyers": bought["customer"].nunique(),
        "revenue": bought["net"].sum(),
        "frequency": bought.groupby("customer").size(),
        "monetary": bought.groupby("customer")["net"].sum(),
        "last": inv[purchase & (inv["day"] <= RETAIL_DATE)].groupby("customer")["day"].max(),
        "long_baskets": int((skus > 100).sum()),
    }


def test_online_retail_through_every_stage(spark, shared_datasets, tmp_path, monkeypatch):
    src = shared_datasets / "online_retail.csv.gz"
    landing = tmp_path / "landing" / "flat_transactions" / RETAIL_DATE.isoformat()
    landing.mkdir(parents=True)
    shutil.copy(src, landing / src.name)
    _run_pipeline(spark, tmp_path, monkeypatch, "online_retail.yaml", RETAIL_DATE.isoformat())

    truth = _retail_truth(src)
    t = Tables(spark, StorageSettings(root=str(tmp_path / "tables")))
    runs = _runs(t, RETAIL_DATE)
    assert {j: r["status"] for j, r in runs.items()} == {j: "succeeded" for j in PIPELINE}

    statuses = {
        r["status"]: r["n"] for r in t.read("silver.orders").groupBy("status").agg(F.count("*").alias("n")).collect()
    }
    assert sum(statuses.values()) == truth["orders"]
    assert (statuses["cancelled"], statuses["returned"], statuses["free"]) == (
        truth["cancelled"],
        truth["returned"],
        truth["free"],
    )

    features = t.read("gold.customer_features").where(F.col("snapshot_date") == F.lit(RETAIL_DATE))
    assert features.count() == truth["customers"]
    buyers = features.where(F.col("frequency") > 0)
    assert buyers.count() == truth["buyers"]
    assert buyers.agg(F.sum("monetary")).first()[0] == truth["revenue"]
    key = truth["frequency"].idxmax()  # the most frequent buyer, by hand
    from custseg.pii import identity_key

    ck = spark.createDataFrame([(key,)], "c string").select(identity_key("customer_id", F.col("c"), _salt()).alias("k"))
    mine = features.join(ck, features["customer_key"] == ck["k"], how="inner").first()
    assert mine["frequency"] == truth["frequency"][key]
    assert mine["monetary"] == truth["monetary"][key]
    assert mine["recency_days"] == (RETAIL_DATE - truth["last"][key]).days

    basket = json.loads(runs["basket"]["details"])["fp_growth"]
    assert basket["long_baskets"] == truth["long_baskets"] > 0  # wholesale invoices set aside, counted
    assert t.read("gold.association_rules").where(F.col("snapshot_date") == F.lit(RETAIL_DATE)).count() > 0

    _check_marketing(t, tmp_path, RETAIL_DATE, "bought again within 90 days")


def _salt() -> str:
    import os

    return os.environ["CUSTSEG_PII_SALT"]


# --- CDNOW ----------------------------------------------------------------------------------

CDNOW_DATE = date(1998, 6, 30)


# Outside `make test` (online retail covers the real-file path there): `make test-extended`.
@pytest.mark.extended
def test_cdnow_through_every_stage_without_items(spark, shared_datasets, tmp_path, monkeypatch):
    src = shared_datasets / "CDNOW_master.txt"
    landing = tmp_path / "landing" / "flat_transactions" / CDNOW_DATE.isoformat()
    landing.mkdir(parents=True)
    shutil.copy(src, landing / src.name)
    _run_pipeline(spark, tmp_path, monkeypatch, "cdnow.yaml", CDNOW_DATE.isoformat())

    raw = pd.read_csv(src, sep=r"\s+", dtype={"customer_id": str, "date": str})
    raw["day"] = pd.to_datetime(raw["date"], format="%Y%m%d").dt.date
    raw["cents"] = raw["dollar_value"].map(_cents)
    orders = raw.groupby(["customer_id", "day"]).agg(net=("cents", "sum"), paid=("cents", lambda s: (s > 0).any()))
    orders = orders.reset_index()
    window = (orders["day"] > CDNOW_DATE - timedelta(days=365)) & orders["paid"]
    bought = orders[window]

    t = Tables(spark, StorageSettings(root=str(tmp_path / "tables")))
    runs = _runs(t, CDNOW_DATE)
    assert {j: r["status"] for j, r in runs.items()} == {j: "succeeded" for j in PIPELINE}
    assert "has no item at basket.level=" in json.loads(runs["basket"]["details"])["skipped"]
    assert not t.exists("gold.association_rules") and not t.exists("gold.recommendations")

    assert t.read("silver.orders").count() == len(orders)
    assert t.read("silver.orders").where(F.col("status") == "free").count() == int((~orders["paid"]).sum())
    features = t.read("gold.customer_features").where(F.col("snapshot_date") == F.lit(CDNOW_DATE))
    assert features.count() == raw["customer_id"].nunique()
    buyers = features.where(F.col("frequency") > 0)
    assert buyers.count() == bought["customer_id"].nunique()
    assert buyers.agg(F.sum("monetary")).first()[0] == bought["net"].sum()

    key = bought.groupby("customer_id").size().idxmax()
    from custseg.pii import identity_key

    ck = spark.createDataFrame([(key,)], "c string").select(identity_key("customer_id", F.col("c"), _salt()).alias("k"))
    mine = features.join(ck, features["customer_key"] == ck["k"], how="inner").first()
    theirs = bought[bought["customer_id"] == key]
    last = orders[(orders["customer_id"] == key) & orders["paid"]]["day"].max()
    assert (mine["frequency"], mine["monetary"]) == (len(theirs), theirs["net"].sum())
    assert mine["recency_days"] == (CDNOW_DATE - last).days
    assert t.read("gold.customer_segments").where(F.col("snapshot_date") == F.lit(CDNOW_DATE)).count() > 0
    assert features.where(F.col("clv").isNotNull()).count() > 0

    _check_marketing(t, tmp_path, CDNOW_DATE, "bought again within 90 days")
