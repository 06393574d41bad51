"""custseg.datagen: determinism, exact formats, planted truth that the files bear out, bad records."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from custseg.datagen import BAD_CLASSES, DEFAULT_SHARES, PERSONAS, generate, main

END = "2026-06-30"
COLUMNS = {
    "crm_customers": [
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
    ],
    "products": ["sku", "name", "category", "subcategory", "brand", "list_price"],
    "orders": [
        "order_id",
        "customer_id",
        "loyalty_phone",
        "order_ts",
        "channel",
        "store_id",
        "status",
        "items",
    ],
    "events": [
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
    ],
    "feedback": ["feedback_id", "customer_id", "ts", "channel", "rating", "nps", "text"],
    "social": [
        "platform",
        "handle",
        "email",
        "followers",
        "posts",
        "shares",
        "mentions",
        "observed_at",
    ],
    "campaign_responses": [
        "campaign_id",
        "customer_id",
        "channel",
        "group",
        "sent_ts",
        "opened_ts",
        "clicked_ts",
        "converted_ts",
        "revenue",
    ],
}
ITEM_KEYS = ["sku", "qty", "unit_price", "discount"]
UNPARSABLE = {"31/02/2026", "not-a-date", "2026-13-45 25:61:00"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("datagen")
    generate(out, customers=1500, days=365, seed=5, end_date=END, bad_share=0.02, workers=1)
    return out


@pytest.fixture(scope="module")
def truth(data) -> pd.DataFrame:
    return pd.read_csv(data / "truth" / "customers.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def bad(data) -> pd.DataFrame:
    return pd.read_csv(data / "truth" / "bad_records.csv", dtype={"line": int}, keep_default_na=False)


def files_of(root: Path, source: str) -> list[Path]:
    return sorted((root / "landing" / source).glob("*/part-*"))


def records(root: Path, source: str, bad: pd.DataFrame | None = None) -> list[tuple[str, int, dict]]:
    """(relative file, line number, record) of every line; the listed bad lines left out when `bad` is given."""
    return list(_records(str(root), source, bad is not None))


@lru_cache(maxsize=64)
def _records(root_s: str, source: str, clean: bool) -> tuple[tuple[str, int, dict], ...]:
    root = Path(root_s)
    skip = set()
    if clean:
        listed = pd.read_csv(root / "truth" / "bad_records.csv", dtype={"line": int}, keep_default_na=False)
        skip = set(zip(listed["file"], listed["line"], strict=True))
    out = []
    for path in files_of(root, source):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".csv":
            with open(path, newline="") as fh:
                rows = list(csv.reader(fh))
            numbered = [(i + 2, dict(zip(rows[0], r, strict=True))) for i, r in enumerate(rows[1:])]
            out += [(rel, n, r) for n, r in numbered if (rel, n) not in skip]
        else:
            lines = path.read_text().splitlines()
            out += [(rel, n, json.loads(line)) for n, line in enumerate(lines, 1) if (rel, n) not in skip]
    return tuple(out)


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def landing_text(root: Path, source: str) -> str:
    """All data lines of a source in part order (CSV headers dropped)."""
    text = []
    for path in sorted(files_of(root, source), key=lambda p: (p.name, p.parent.name)):
        lines = path.read_text().splitlines(keepends=True)
        text += lines[1:] if path.suffix == ".csv" else lines
    return "".join(text)


def order_frames(root: Path, bad: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean orders with the buying customer resolved (customer_id, else loyalty phone) and their items."""
    ids = pd.read_csv(root / "truth" / "identities.csv", dtype=str, keep_default_na=False)
    phone = ids[ids["identifier_type"] == "phone"].set_index("identifier")["customer_id"]
    rows = [r for _, _, r in records(root, "orders", bad)]
    orders = pd.DataFrame(rows)
    orders["buyer"] = orders["customer_id"].fillna(orders["loyalty_phone"].map(phone))
    items = orders[["order_id", "buyer", "items"]].explode("items", ignore_index=True)
    items = pd.concat([items.drop(columns="items"), pd.json_normalize(items["items"].tolist())], axis=1)
    return orders, items


# --- determinism and layout ---------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    generate(tmp_path / "a", customers=300, seed=1, workers=1)
    generate(tmp_path / "b", customers=300, seed=1, workers=1)
    generate(tmp_path / "c", customers=300, seed=2, workers=1)
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if "landing" in k and "products" not in k)


def test_chunking_and_worker_processes_leave_the_data_unchanged(tmp_path):
    generate(tmp_path / "one", customers=2100, seed=4, chunk_size=50000, workers=1)
    generate(tmp_path / "three", customers=2100, seed=4, chunk_size=1000, workers=1)
    generate(tmp_path / "procs", customers=2100, seed=4, chunk_size=1000, workers=2)
    one, three = tmp_path / "one", tmp_path / "three"
    assert digest(three) == digest(tmp_path / "procs")  # byte-identical whatever the worker count
    assert [p.name for p in files_of(one, "orders")] == ["part-00000.jsonl"]
    assert [p.name for p in files_of(three, "orders")] == [f"part-0000{i}.jsonl" for i in range(3)]
    for source in COLUMNS:
        assert landing_text(one, source) == landing_text(three, source), source
    for name in ("customers.csv", "identities.csv", "rules.csv", "campaigns.csv"):
        assert (one / "truth" / name).read_bytes() == (three / "truth" / name).read_bytes(), name
    cols = ["source", "batch_date", "record_key", "bad_class"]
    bad_one = pd.read_csv(one / "truth" / "bad_records.csv", keep_default_na=False)[cols]
    bad_three = pd.read_csv(three / "truth" / "bad_records.csv", keep_default_na=False)[cols]
    pd.testing.assert_frame_equal(bad_one, bad_three)


def test_every_source_lands_with_exactly_the_documented_columns(data, bad):
    for source, columns in COLUMNS.items():
        paths = files_of(data, source)
        assert [p.parent.name for p in paths] == [END], source
        if paths[0].suffix == ".csv":
            assert paths[0].read_text().splitlines()[0] == ",".join(columns), source
        rows = records(data, source, bad)
        assert rows, source
        assert all(list(r) == columns for _, _, r in rows), source
    for _, _, order in records(data, "orders", bad):
        assert order["items"] and all(list(i) == ITEM_KEYS for i in order["items"])


def test_values_follow_the_documented_formats(data, bad):
    crm = pd.DataFrame([r for _, _, r in records(data, "crm_customers", bad)])
    assert crm["customer_id"].str.fullmatch(r"C\d{7}").all()
    assert set(crm["gender"]) <= {"F", "M", "X"}
    assert set(crm["member_tier"]) <= {"bronze", "silver", "gold", "platinum"}
    for col in ("opt_in_email", "opt_in_sms", "opt_in_ads"):
        assert set(crm[col]) == {"true", "false"}
    assert crm["updated_at"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
    assert crm["signup_date"].str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    digits = crm["phone"].str.replace(r"\D", "", regex=True).str.replace(r"^(44|0)", "", regex=True)
    assert digits.str.fullmatch(r"7\d{9}").all()
    assert crm["phone"].str.startswith("+44 ").any() and crm["phone"].str.startswith("(0)").any()
    assert (crm["email"] != crm["email"].str.strip().str.lower()).any()  # some need normalising
    products = pd.DataFrame([r for _, _, r in records(data, "products", bad)])
    assert products["sku"].str.fullmatch(r"SKU\d{5}").all() and products["sku"].is_unique
    assert products["category"].nunique() == 12
    orders = pd.DataFrame([r for _, _, r in records(data, "orders", bad)])
    assert set(orders["channel"]) == {"store", "web", "app"}
    assert set(orders["status"]) == {"completed", "returned", "cancelled"}
    assert (orders["store_id"].notna() == (orders["channel"] == "store")).all()
    pos_only = orders["customer_id"].isna() & orders["loyalty_phone"].notna()
    guests = orders["customer_id"].isna() & orders["loyalty_phone"].isna()
    assert pos_only.any() and guests.any() and (orders.loc[pos_only, "channel"] == "store").all()
    items = pd.DataFrame([i for o in orders["items"] for i in o])
    price = products.set_index("sku")["list_price"].astype(float)
    assert np.allclose(items["unit_price"], items["sku"].map(price))
    assert items["discount"].between(0, 0.7).all() and (items["qty"] >= 1).all()
    events = pd.DataFrame([r for _, _, r in records(data, "events", bad)])
    assert set(events["event_type"]) == {
        "page_view",
        "product_view",
        "search",
        "add_to_cart",
        "remove_from_cart",
        "checkout",
        "purchase",
        "login",
    }
    assert events.loc[events["event_type"] == "login", "customer_id"].notna().all()
    feedback = pd.DataFrame([r for _, _, r in records(data, "feedback", bad)])
    assert feedback["rating"].astype(int).between(1, 5).all()
    assert feedback["nps"].astype(int).between(0, 10).all()
    responses = pd.DataFrame([r for _, _, r in records(data, "campaign_responses", bad)])
    assert set(responses["group"]) == {"treatment", "control"}
    not_converted = responses["converted_ts"] == ""
    assert (responses.loc[not_converted, "revenue"].astype(float) == 0).all()
    assert (responses.loc[~not_converted, "revenue"].astype(float) > 0).all()


def test_daily_batches_put_each_of_the_last_days_in_its_own_folder(tmp_path):
    summary = generate(tmp_path, customers=1000, days=120, daily_batches=3, seed=9, bad_share=0.0, workers=1)
    end = date.fromisoformat(END)
    dates = [str(end - timedelta(days=k)) for k in (2, 1, 0)]
    assert summary.batch_dates == dates
    ts_col = {
        "crm_customers": "updated_at",
        "orders": "order_ts",
        "events": "ts",
        "feedback": "ts",
        "social": "observed_at",
    }
    for source, col in ts_col.items():
        by_folder: dict[str, list[str]] = {}
        for rel, _, r in records(tmp_path, source):
            by_folder.setdefault(rel.split("/")[2], []).append(r[col][:10])
        assert set(by_folder) <= set(dates), source
        assert max(by_folder[dates[0]]) <= dates[0], source
        for d in dates[1:]:
            assert set(by_folder.get(d, [d])) == {d}, source
    for source in ("orders", "events"):
        assert {p.parent.name for p in files_of(tmp_path, source)} == set(dates), source
    assert {p.parent.name for p in files_of(tmp_path, "products")} == {dates[0]}
    crm_later = [r for rel, _, r in records(tmp_path, "crm_customers") if dates[0] not in rel]
    assert crm_later  # CRM changes arrive with the later batches
    manifest = json.loads((tmp_path / "truth" / "manifest.json").read_text())
    assert manifest["batch_dates"] == dates and manifest["end_date"] == END
    assert sum(manifest["sources"]["orders"]["records"].values()) == summary.counts["orders"]


# --- planted truth ------------------------------------------------------------------------------


def test_personas_have_the_configured_shares(data, truth):
    shares = truth["persona"].value_counts(normalize=True)
    assert set(shares.index) == set(PERSONAS)
    for persona, share in DEFAULT_SHARES.items():
        assert shares[persona] == pytest.approx(share, abs=0.005), persona


def test_persona_shares_can_be_configured(tmp_path):
    generate(tmp_path, customers=1000, workers=1, personas={"loyal_high_value": 1, "browser": 3})
    personas = pd.read_csv(tmp_path / "truth" / "customers.csv")["persona"].value_counts()
    assert personas.to_dict() == {"browser": 750, "loyal_high_value": 250}


def test_rules_in_truth_equal_the_rules_recomputed_from_the_orders_file(data, bad, truth):
    orders, items = order_frames(data, bad, truth)
    products = pd.read_csv(files_of(data, "products")[0], keep_default_na=False)
    category = products.drop_duplicates("sku").set_index("sku")["category"]
    baskets = items.groupby("order_id")["sku"].agg(set)
    cat_baskets = items.assign(cat=items["sku"].map(category)).groupby("order_id")["cat"].agg(set)
    assert len(baskets) == len(orders)
    rules = pd.read_csv(data / "truth" / "rules.csv")
    assert (rules["level"] == "sku").sum() == 5 and (rules["level"] == "category").any()
    for rule in rules.itertuples():
        b = baskets if rule.level == "sku" else cat_baskets
        ante, cons = set(rule.antecedent.split("|")), rule.consequent
        has_a = b.map(ante.issubset)
        has_c = b.map(lambda s, c=cons: c in s)
        support = (has_a & has_c).mean()
        confidence = (has_a & has_c).sum() / has_a.sum()
        lift = confidence / has_c.mean()
        assert rule.support == pytest.approx(support, rel=1e-12)
        assert rule.confidence == pytest.approx(confidence, rel=1e-12)
        assert rule.lift == pytest.approx(lift, rel=1e-12)
        if rule.level == "sku":
            assert rule.lift > 3 and rule.support > 0.01
            assert rule.confidence == pytest.approx(rule.planted_probability, abs=0.12)


def test_planted_journeys_bring_the_follow_up_category_within_the_delay(data, bad, truth):
    from custseg.datagen.catalog import JOURNEY_DELAY_DAYS, JOURNEYS

    planted = pd.read_csv(data / "truth" / "journeys.csv")
    assert list(zip(planted["trigger"], planted["follow_up"], planted["probability"], strict=True)) == list(JOURNEYS)
    orders, items = order_frames(data, bad, truth)
    products = pd.read_csv(files_of(data, "products")[0], keep_default_na=False)
    category = products.drop_duplicates("sku").set_index("sku")["category"]
    done = orders.loc[orders["status"] == "completed", ["order_id", "order_ts"]]
    lines = items.assign(cat=items["sku"].map(category)).merge(done, on="order_id").dropna(subset=["buyer"])
    lines["day"] = pd.to_datetime(lines["order_ts"]).dt.normalize()
    first = lines.groupby(["buyer", "cat"])["day"].min().unstack()
    lo, hi = JOURNEY_DELAY_DAYS
    last_start = pd.Timestamp(END) - pd.Timedelta(days=hi)
    for trigger, follow_up, prob in JOURNEYS:
        # Customers whose first trigger order came before any follow-up order, early enough
        # for the whole delay to fit before the end date (churners stop early: left out).
        churner = truth.set_index("customer_id")["churner"].reindex(first.index) == "1"
        starts = first[trigger]
        fb = first[follow_up]
        eligible = starts.notna() & (starts <= last_start) & (fb.isna() | (fb > starts)) & ~churner
        gap = (fb[eligible] - starts[eligible]).dt.days
        converted = gap.between(lo, hi).mean()
        # The first trigger converts with the planted probability; other orders add a little.
        assert prob - 0.05 <= converted <= prob + 0.25, (trigger, follow_up, converted, int(eligible.sum()))


def test_churners_stopped_buying_at_least_90_days_before_the_end(data, bad, truth):
    orders, _ = order_frames(data, bad, truth)
    last = pd.to_datetime(orders.groupby("buyer")["order_ts"].max())
    count = orders.groupby("buyer").size()
    churners = truth.loc[truth["churner"] == "1", "customer_id"]
    assert (truth.loc[truth["churner"] == "1", "persona"] == "churning").all() and len(churners) > 200
    cutoff = pd.Timestamp(END) + pd.Timedelta(days=1) - pd.Timedelta(days=90)
    assert (last.reindex(churners) < cutoff).all()
    assert (count.reindex(churners) >= 3).all()
    loyal = truth.loc[truth["persona"] == "loyal_high_value", "customer_id"]
    assert (last.reindex(loyal) >= cutoff).mean() > 0.95


def test_bargain_hunters_buy_on_discount_and_big_spenders_buy_big(data, bad, truth):
    orders, items = order_frames(data, bad, truth)
    persona = truth.set_index("customer_id")["persona"]
    items["persona"] = items["buyer"].map(persona)
    discount = items.groupby("persona")["discount"].mean()
    assert discount["bargain_hunter"] > 0.3
    assert discount.drop("bargain_hunter").max() < 0.08
    items["paid"] = items["qty"] * items["unit_price"] * (1 - items["discount"])
    basket = items.groupby(["persona", "order_id"])["paid"].sum().groupby("persona").median()
    assert basket["occasional_big_spender"] > 4 * basket.drop("occasional_big_spender").max()


def test_personas_separate_on_frequency_recency_and_tenure(data, bad, truth):
    orders, _ = order_frames(data, bad, truth)
    t = truth.set_index("customer_id")
    t["orders"] = orders.groupby("buyer").size().reindex(t.index).fillna(0)
    t["recency"] = (pd.Timestamp(END) - pd.to_datetime(orders.groupby("buyer")["order_ts"].max())).dt.days
    t["tenure"] = (pd.Timestamp(END) - pd.to_datetime(t["signup_date"])).dt.days
    med = t.groupby("persona")[["orders", "recency", "tenure"]].median()
    assert med.loc["loyal_high_value", "orders"] > 1.5 * med.drop("loyal_high_value")["orders"].max()
    assert med.loc["new_customer", "tenure"] <= 60 and med.drop("new_customer")["tenure"].min() > 150
    assert med.loc["browser", "orders"] <= 1 and med.loc["occasional_big_spender", "orders"] <= 5
    events = pd.DataFrame([r for _, _, r in records(data, "events", bad)])
    ids = pd.read_csv(data / "truth" / "identities.csv", dtype=str)
    device = ids[ids["identifier_type"] == "device_id"].set_index("identifier")["customer_id"]
    who = events["customer_id"].fillna(events["device_id"].map(device))
    sessions = events.groupby(who)["session_id"].nunique().reindex(t.index).fillna(0)
    per_order = (sessions / t["orders"].clip(lower=1)).groupby(t["persona"]).median()
    assert per_order.idxmax() == "browser"


def test_identities_cover_loyalty_phones_and_logged_in_devices(data, bad, truth):
    ids = pd.read_csv(data / "truth" / "identities.csv", dtype=str, keep_default_na=False)
    assert set(ids["identifier_type"]) == {"customer_id", "email", "phone", "device_id"}
    assert not ids.duplicated().any()
    owner = ids.set_index(["identifier_type", "identifier"])["customer_id"]
    assert owner.index.is_unique  # an identifier never points at two customers
    orders = pd.DataFrame([r for _, _, r in records(data, "orders", bad)])
    phones = set(orders["loyalty_phone"].dropna())
    assert phones <= set(ids.loc[ids["identifier_type"] == "phone", "identifier"])
    events = pd.DataFrame([r for _, _, r in records(data, "events", bad)])
    logins = events[events["event_type"] == "login"]
    pairs = set(zip(logins["device_id"], logins["customer_id"], strict=True))
    devices = ids[ids["identifier_type"] == "device_id"]
    assert pairs == set(zip(devices["identifier"], devices["customer_id"], strict=True))
    linked = events["device_id"].isin(devices["identifier"])
    assert (linked & events["customer_id"].isna()).sum() > 100  # anonymous browsing, attributable later
    social = pd.DataFrame([r for _, _, r in records(data, "social", bad)])
    assert set(social["email"]) <= set(ids.loc[ids["identifier_type"] == "email", "identifier"])
    assert (social["email"] != social["email"].str.lower()).any()
    crm = pd.DataFrame([r for _, _, r in records(data, "crm_customers", bad)])
    assert crm["customer_id"].duplicated().any()  # updates: the later updated_at wins
    latest = crm.sort_values("updated_at").drop_duplicates("customer_id", keep="last").set_index("customer_id")
    t = truth.set_index("customer_id")
    assert set(latest.index) == set(t.index)
    assert (latest.loc[t.index, "email"] == t["email"]).all() and (latest.loc[t.index, "phone"] == t["phone"]).all()


def test_campaign_truth_plants_a_recoverable_uplift(data, bad, truth):
    camps = pd.read_csv(data / "truth" / "campaigns.csv")
    assert len(camps) == 6 and set(camps["channel"]) == {"email", "sms", "ads"}
    assert (camps["treatment_rate"] > camps["control_rate"] + 0.05).all()
    resp = pd.DataFrame([r for _, _, r in records(data, "campaign_responses", bad)])
    resp["converted"] = resp["converted_ts"] != ""
    rates = resp.groupby(["campaign_id", "group"])["converted"].mean().unstack()
    camps = camps.set_index("campaign_id")
    assert np.allclose(rates["treatment"], camps["observed_treatment_rate"], atol=1e-6)
    uplift = (rates["treatment"] - rates["control"]).mean()
    assert uplift == pytest.approx(camps["treatment_effect"].mean(), abs=0.05)
    treated = resp[resp["group"] == "treatment"].join(truth.set_index("customer_id"), on="customer_id")
    p = treated["responder_propensity"].astype(float)
    y = treated["converted"]
    auc = (p.rank()[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum())
    assert auc > 0.75


# --- bad records --------------------------------------------------------------------------------


def test_every_bad_record_class_is_injected_and_listed(data, bad):
    for source, classes in BAD_CLASSES.items():
        assert set(bad.loc[bad["source"] == source, "bad_class"]) == set(classes), source
    clean = {s: len(records(data, s, bad)) for s in COLUMNS}
    for source, n in clean.items():
        share = (bad["source"] == source).sum() / n
        assert share < 0.05, source
    assert bad.loc[bad["source"] == "events", "bad_class"].size / clean["events"] == pytest.approx(0.02, abs=0.005)


KEYS = {
    "crm_customers": "customer_id",
    "products": "sku",
    "orders": "order_id",
    "events": "event_id",
    "feedback": "feedback_id",
    "social": "handle",
    "campaign_responses": "customer_id",
}
DATES = {
    "crm_customers": ["signup_date", "birth_date", "updated_at"],
    "orders": ["order_ts"],
    "events": ["ts"],
    "feedback": ["ts"],
    "social": ["observed_at"],
    "campaign_responses": ["sent_ts"],
}
TS = {
    "crm_customers": "updated_at",
    "orders": "order_ts",
    "events": "ts",
    "feedback": "ts",
    "social": "observed_at",
    "campaign_responses": "sent_ts",
}
LAST_TS = f"{END} 23:59:59"


def has_defect(cls: str, source: str, r: dict, known: set[str]) -> bool:
    """Whether a parsed record shows the defect its class names (duplicates are checked on the text)."""
    if cls == "missing_id":
        return r[KEYS[source]] in (None, "")
    if cls == "unparsable_date":
        return any(r[c] in UNPARSABLE for c in DATES[source])
    if cls == "future_timestamp":
        return r[TS[source]] > LAST_TS
    if cls == "unknown_customer":
        return (r["email"] if source == "social" else r["customer_id"]) not in known
    if cls == "negative_price":
        return any(i["unit_price"] < 0 for i in r["items"]) if source == "orders" else float(r["list_price"]) < 0
    if cls == "negative_quantity":
        return any(i["qty"] < 0 for i in r["items"])
    if cls == "rating_out_of_range":
        return not 1 <= int(r["rating"]) <= 5
    if cls == "negative_value":
        return float(r["followers"] if source == "social" else r["revenue"]) < 0
    raise AssertionError(f"unexpected class {cls}")


def test_listed_bad_lines_have_their_defect_and_clean_lines_do_not(data, bad, truth):
    ids = pd.read_csv(data / "truth" / "identities.csv", dtype=str, keep_default_na=False)
    known = set(truth["customer_id"]) | set(ids.loc[ids["identifier_type"] == "email", "identifier"])
    for path in sorted((data / "landing").rglob("part-*")):
        rel = path.relative_to(data).as_posix()
        source = rel.split("/")[1]
        lines = path.read_text().splitlines()
        listed = bad[bad["file"] == rel].set_index("line")["bad_class"].to_dict()
        counts = pd.Series(lines).value_counts()
        header = next(csv.reader([lines[0]])) if path.suffix == ".csv" else None
        for n, text in enumerate(lines, 1):
            if header and n == 1:
                continue
            cls = listed.get(n)
            if cls == "malformed_json":
                with pytest.raises(json.JSONDecodeError):
                    json.loads(text)
                continue
            r = json.loads(text) if header is None else dict(zip(header, next(csv.reader([text])), strict=True))
            if cls is None:
                assert r[KEYS[source]] not in (None, ""), (rel, n)
                assert all(r[c] not in UNPARSABLE for c in DATES.get(source, [])), (rel, n)
                assert source not in TS or r[TS[source]] <= LAST_TS, (rel, n)
            elif cls.startswith("duplicate"):
                assert counts[text] >= 2, (rel, n)  # repeats a clean line exactly
            else:
                assert has_defect(cls, source, r, known), (rel, n, cls)


def test_bad_share_zero_writes_only_clean_records(tmp_path):
    summary = generate(tmp_path, customers=300, bad_share=0.0, workers=1)
    assert pd.read_csv(tmp_path / "truth" / "bad_records.csv").empty
    assert sum(summary.bad_counts.values()) == 0
    for source in ("orders", "events", "social"):
        for path in files_of(tmp_path, source):
            for line in path.read_text().splitlines():
                json.loads(line)


# --- summary, manifest, CLI ---------------------------------------------------------------------


def test_summary_and_manifest_agree_with_the_files(data, bad):
    manifest = json.loads((data / "truth" / "manifest.json").read_text())
    assert manifest["parameters"]["customers"] == 1500 and manifest["end_date"] == END
    assert manifest["start_date"] == str(date.fromisoformat(END) - timedelta(days=365))
    for source, info in manifest["sources"].items():
        n = sum(len(p.read_text().splitlines()) - (p.suffix == ".csv") for p in files_of(data, source))
        assert sum(info["records"].values()) == n == manifest["counts"][source], source
        assert sum(info["bad_records"].values()) == (bad["source"] == source).sum(), source
        assert info["columns"] == COLUMNS[source]


def test_main_parses_the_documented_flags_and_generates(tmp_path):
    rc = main(
        [
            "--customers",
            "200",
            "--days",
            "90",
            "--seed",
            "3",
            "--out",
            str(tmp_path),
            "--end-date",
            "2026-01-31",
            "--bad-share",
            "0.02",
            "--daily-batches",
            "2",
            "--workers",
            "1",
        ]
    )
    assert rc == 0
    manifest = json.loads((tmp_path / "truth" / "manifest.json").read_text())
    assert manifest["batch_dates"] == ["2026-01-30", "2026-01-31"]
    assert manifest["parameters"]["days"] == 90 and manifest["parameters"]["bad_share"] == 0.02


@pytest.mark.parametrize(
    "kwargs",
    [
        {"customers": 0},
        {"bad_share": 0.7},
        {"daily_batches": 0},
        {"products": 50},
        {"personas": {"vip": 1.0}},
    ],
)
def test_bad_arguments_are_rejected_with_the_argument_named(tmp_path, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs)).rstrip("s")):
        generate(tmp_path, **{"customers": 100, **kwargs})
