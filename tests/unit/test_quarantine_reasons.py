"""Every quarantine reason of every source: a minimal bad record gets exactly its reason, and its
neighbour (the same record with the offending field just inside the rule) is accepted.

All cases are landed as small files (one per source, plus one with an undeclared CSV column),
read with the ingest readers (``read_raw``: the JSON / CSV / whitespace parsing, the
corrupt-record and UTF-8 handling) and validated with ``with_reasons``, all sources in one
Spark job. ``test_every_reason_a_source_declares_has_a_case`` derives the reasons each source
can give from its spec, so a rule added without a case here fails the suite.

Whole-file reasons (``empty_file``, ``wrong_delimiter``, ``corrupt_gzip``, ...) are
tested in test_ingest_files.py; ``unreadable_file`` here, on ``file_checks.inspect``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from functools import reduce

import pytest

from custseg.file_checks import FileCheck
from custseg.ingest import Bounds, read_raw, with_reasons
from custseg.sources.base import WHITESPACE, SourceSpec
from custseg.sources.catalog import SOURCES
from custseg.sources.flat import FlatSettings, flat_spec

D = "2026-06-30"
TOLERANCE_HOURS = 48  # conf/base.yaml ingest.future_tolerance_hours
BOUNDS = Bounds(max_price=1_000_000.0, max_qty=100_000)  # conf/base.yaml ingest.bounds
# A timestamp is in the future after the end of D plus the tolerance: 2026-07-03 00:00:00.
NOT_LATE = "2026-07-02 23:59:59"
TOO_LATE = "2026-07-03 00:00:01"
EXTRA = "coupon"  # a field no source declares
TAG = r"case=([a-z0-9_]+)\.(accept|reject)"  # every record carries its case and kind in a free-text field


@dataclass(frozen=True)
class Source:
    spec: SourceSpec
    base: dict[str, object]  # a good record (raw values as the upstream writes them)
    tag_col: str  # a column no rule looks at: holds "case=<name>.<accept|reject>"
    id_col: str | None  # made unique per record (so that only duplicate_id cases share one)
    complete: bool = True  # its cases must cover every reason its spec declares

    @property
    def columns(self) -> list[str]:
        return [c for c in self.spec.columns if self.spec.header_name(c)]

    @property
    def sep(self) -> str:
        return " " if self.spec.delimiter == WHITESPACE else self.spec.delimiter

    def header(self, extra: tuple[str, ...] = ()) -> bytes:
        return self.sep.join([self.spec.header_name(c) for c in self.columns] + list(extra)).encode()

    def record(self, case: str, kind: str, over: dict[str, object]) -> dict[str, object]:
        rec = {self.tag_col: f"case={case}.{kind}", **{k: v for k, v in self.base.items() if k != self.tag_col}}
        if self.id_col:
            rec[self.id_col] = f"{case}.{kind}"
        rec.update(over)
        return rec

    def line(self, rec: dict[str, object], extra: tuple[str, ...] = ()) -> bytes:
        if self.spec.fmt == "jsonl":
            return json.dumps(rec, ensure_ascii=False).encode()
        values = ["" if rec.get(c) is None else str(rec[c]) for c in self.columns]
        return self.sep.join(values + [str(rec[e]) for e in extra]).encode()


@dataclass(frozen=True)
class Case:
    source: str
    name: str
    reason: str | None  # None: not a defect, the "reject" record is accepted too
    bad: bytes
    good: bytes
    bad_has_extra_column: bool = False  # CSV: the bad line goes to a file with the EXTRA column


@dataclass
class Cases:
    items: list[Case] = field(default_factory=list)

    def add(
        self, label: str, src: Source, reason: str | None, bad: dict, good: dict | None = None, name: str = ""
    ) -> None:
        """A case: the base record with ``bad`` (expected ``reason``) and with ``good`` (accepted)."""
        name = name or str(reason)
        self.items.append(
            Case(
                label,
                name,
                reason,
                src.line(src.record(name, "reject", bad)),
                src.line(src.record(name, "accept", good or {})),
            )
        )


def item(**over: object) -> list[dict[str, object]]:
    """Two order lines, the second one with ``over`` (a rule looks at every element)."""
    first = {"sku": "s1", "qty": 2, "unit_price": 2.5, "discount": 0.1}
    return [first, {**first, "sku": "s2", **over}]


FLAT_COLUMNS = {c: c for c in ("order_id", "sku", "description", "qty", "order_ts", "unit_price", "customer_id")}
FLAT_BASE = {
    "order_id": "536365",
    "sku": "85123A",
    "description": "",
    "qty": "6",
    "order_ts": "2026-06-30 08:26:00",
    "unit_price": "2.55",
    "customer_id": "17850",
    "country": "United Kingdom",
    "amount": "15.30",
}

SRC: dict[str, Source] = {
    "crm_customers": Source(
        SOURCES["crm_customers"],
        {
            "customer_id": "",
            "name": "",
            "email": "ann@example.org",
            "phone": "+33 6 12 34 56 78",
            "gender": "F",
            "birth_date": "1990-01-31",
            "city": "Lyon",
            "region": "ARA",
            "signup_date": "2024-01-15",
            "member_tier": "gold",
            "opt_in_email": "true",
            "opt_in_sms": "false",
            "opt_in_ads": "true",
            "updated_at": "2026-06-30 08:00:00",
        },
        "name",
        "customer_id",
    ),
    "products": Source(
        SOURCES["products"],
        {"sku": "", "name": "", "category": "tea", "subcategory": "green", "brand": "Leaf", "list_price": "4.50"},
        "name",
        "sku",
    ),
    "orders": Source(
        SOURCES["orders"],
        {
            "order_id": "",
            "customer_id": "c1",
            "order_ts": "2026-06-30 10:00:00",
            "channel": "web",
            "store_id": "",
            "status": "completed",
            "items": item(),
        },
        "store_id",
        "order_id",
    ),
    "events": Source(
        SOURCES["events"],
        {
            "event_id": "",
            "ts": "2026-06-30T10:00:00",
            "device_id": "d1",
            "customer_id": "c1",
            "session_id": "s1",
            "event_type": "product_view",
            "sku": "s1",
            "category": "tea",
            "page": "",
            "duration_ms": "1200",
            "utm_source": "newsletter",
        },
        "page",
        "event_id",
    ),
    "feedback": Source(
        SOURCES["feedback"],
        {
            "feedback_id": "",
            "customer_id": "c1",
            "ts": "2026-06-30 09:00:00",
            "channel": "web",
            "rating": "4",
            "nps": "8",
            "text": "",
        },
        "text",
        "feedback_id",
    ),
    "social": Source(
        SOURCES["social"],
        {
            "platform": "",
            "handle": "@ann",
            "email": "ann@example.org",
            "followers": "120",
            "posts": "3",
            "shares": "1",
            "mentions": "0",
            "observed_at": "2026-06-30 12:00:00",
        },
        "platform",
        None,
    ),
    "campaign_responses": Source(
        SOURCES["campaign_responses"],
        {
            "campaign_id": "cmp1",
            "customer_id": "c1",
            "channel": "",
            "group": "treatment",
            "sent_ts": "2026-06-29 09:00:00",
            "opened_ts": "2026-06-29 10:00:00",
            "clicked_ts": "",
            "converted_ts": "2026-06-30 10:00:00",
            "revenue": "12.50",
        },
        "channel",
        None,
    ),
    # flat_transactions, as configured for a file with invoice ids (Online Retail) ...
    "flat_transactions": Source(
        flat_spec(FlatSettings(columns={**FLAT_COLUMNS, "amount": "", "country": "Country"})),
        FLAT_BASE,
        "description",
        "order_id",
    ),
    # ... for one without invoice ids but with line totals (orders are customer + day) ...
    "flat_without_invoices": Source(
        flat_spec(FlatSettings(columns={**FLAT_COLUMNS, "order_id": "", "country": "", "amount": "amount"})),
        FLAT_BASE,
        "description",
        None,
    ),
    # ... and whitespace-aligned text (CDNOW): the reader's own cases only.
    "flat_whitespace": Source(
        flat_spec(
            FlatSettings(
                columns={**FLAT_COLUMNS, "country": "", "amount": ""}, delimiter=WHITESPACE, ts_format="yyyyMMdd"
            )
        ),
        {**FLAT_BASE, "order_ts": "20260630"},
        "description",
        "order_id",
        complete=False,
    ),
}


def _specific(c: Cases) -> None:
    """The source rules of sources/catalog.py and sources/flat.py, the bounds and the future check."""
    s = "crm_customers"
    crm = SRC[s]
    c.add(s, crm, "missing_customer_id", {"customer_id": None})
    c.add(s, crm, "missing_customer_id", {"customer_id": "  "}, name="blank_customer_id")
    c.add(s, crm, "bad_signup_date", {"signup_date": "2024-02-30"}, {"signup_date": None})
    c.add(s, crm, "bad_updated_at", {"updated_at": "30/06/2026 08:00"}, {"updated_at": "2026-06-30T08:00:00+02:00"})
    c.add(s, crm, "bad_updated_at", {"updated_at": None}, name="missing_updated_at")
    c.add(s, crm, "bad_birth_date", {"birth_date": "31.01.1990"}, {"birth_date": None})
    c.add(s, crm, "future_updated_at", {"updated_at": TOO_LATE}, {"updated_at": NOT_LATE})
    c.add(s, crm, "future_signup_date", {"signup_date": TOO_LATE}, {"signup_date": NOT_LATE})
    # An update of a customer (same id, another updated_at) in the same extract: not a duplicate.
    update = {"customer_id": "same-customer"}
    c.add(s, crm, None, {**update, "updated_at": "2026-06-30 09:00:00"}, update, name="crm_update")

    s = "products"
    prd = SRC[s]
    c.add(s, prd, "missing_sku", {"sku": None})
    c.add(s, prd, "missing_category", {"category": ""}, {"category": "x"})
    c.add(s, prd, "bad_list_price", {"list_price": "-0.01"}, {"list_price": "0"})
    c.add(s, prd, "bad_list_price", {"list_price": "four"}, {"list_price": None}, name="list_price_not_a_number")
    c.add(s, prd, "list_price_out_of_bounds", {"list_price": "1000000.01"}, {"list_price": "1000000"})
    c.add(s, prd, "list_price_out_of_bounds", {"list_price": "Infinity"}, name="list_price_infinity")
    c.add(s, prd, "list_price_out_of_bounds", {"list_price": "NaN"}, name="list_price_nan")

    s = "orders"
    o = SRC[s]
    c.add(s, o, "missing_order_id", {"order_id": None})
    c.add(s, o, "bad_order_ts", {"order_ts": "2026-06-31 10:00:00"}, {"order_ts": "2026-06-30"})
    c.add(s, o, "bad_order_ts", {"order_ts": None}, name="missing_order_ts")
    c.add(s, o, "future_order_ts", {"order_ts": TOO_LATE}, {"order_ts": NOT_LATE})
    c.add(s, o, "no_items", {"items": []}, {"items": item()[:1]})
    c.add(s, o, "no_items", {"items": None}, name="items_absent")
    c.add(s, o, "bad_item_price", {"items": item(unit_price=-0.01)}, {"items": item(unit_price=0)})
    c.add(s, o, "bad_item_price", {"items": item(unit_price=None)}, name="missing_item_price")
    c.add(s, o, "bad_item_price", {"items": item(unit_price="free")}, name="item_price_not_a_number")
    c.add(s, o, "bad_item_qty", {"items": item(qty=0)}, {"items": item(qty=1)})
    c.add(s, o, "bad_item_qty", {"items": item(qty=None)}, name="missing_item_qty")
    c.add(s, o, "bad_item_qty", {"items": item(qty="1.5")}, {"items": item(qty="3")}, name="fractional_item_qty")
    c.add(s, o, "bad_item_discount", {"items": item(discount=1.01)}, {"items": item(discount=1)})
    c.add(s, o, "bad_item_discount", {"items": item(discount=-0.01)}, {"items": item(discount=None)}, "neg_discount")
    c.add(s, o, "bad_status", {"status": "shipped"}, {"status": " Returned "})
    c.add(s, o, "bad_status", {"status": None}, {"status": "cancelled"}, name="missing_status")
    c.add(s, o, "bad_channel", {"channel": "fax"}, {"channel": None})
    c.add(
        s, o, "item_unit_price_out_of_bounds", {"items": item(unit_price="1000000.01")}, {"items": item(unit_price=1e6)}
    )
    c.add(s, o, "item_qty_out_of_bounds", {"items": item(qty=100_001)}, {"items": item(qty=100_000)})

    s = "events"
    e = SRC[s]
    c.add(s, e, "missing_event_id", {"event_id": ""})
    c.add(s, e, "missing_device_id", {"device_id": None}, {"customer_id": None})
    c.add(s, e, "bad_ts", {"ts": "2026-06-30 25:00:00"}, {"ts": "2026-06-30 23:59:59"})
    c.add(s, e, "bad_ts", {"ts": None}, name="missing_ts")
    c.add(s, e, "future_ts", {"ts": TOO_LATE}, {"ts": NOT_LATE})
    c.add(s, e, "bad_duration", {"duration_ms": "-1"}, {"duration_ms": "0"})
    c.add(s, e, "bad_duration", {"duration_ms": "slow"}, {"duration_ms": None}, name="duration_not_a_number")
    c.add(s, e, "bad_event_type", {"event_type": "teleport"}, {"event_type": " LOGIN "})
    c.add(s, e, "bad_event_type", {"event_type": None}, name="missing_event_type")

    s = "feedback"
    f = SRC[s]
    c.add(s, f, "missing_feedback_id", {"feedback_id": None})
    c.add(s, f, "missing_customer_id", {"customer_id": None})
    c.add(s, f, "bad_ts", {"ts": "yesterday"})
    c.add(s, f, "future_ts", {"ts": TOO_LATE}, {"ts": NOT_LATE})
    c.add(s, f, "rating_out_of_range", {"rating": "0"}, {"rating": "1"})
    c.add(s, f, "rating_out_of_range", {"rating": "6"}, {"rating": "5"}, name="rating_above_5")
    c.add(s, f, "nps_out_of_range", {"nps": "-1"}, {"nps": "0"})
    c.add(s, f, "nps_out_of_range", {"nps": "11"}, {"nps": "10"}, name="nps_above_10")
    c.add(s, f, "bad_channel", {"channel": "pigeon"}, {"channel": "call_center"})

    s = "social"
    so = SRC[s]
    c.add(s, so, "missing_handle", {"handle": None}, {"email": None})
    c.add(s, so, "bad_followers", {"followers": "-1"}, {"followers": "0"})
    c.add(s, so, "bad_observed_at", {"observed_at": "last week"}, {"observed_at": None})
    c.add(s, so, "future_observed_at", {"observed_at": TOO_LATE}, {"observed_at": NOT_LATE})

    s = "campaign_responses"
    cr = SRC[s]
    c.add(s, cr, "missing_campaign_id", {"campaign_id": None})
    c.add(s, cr, "missing_customer_id", {"customer_id": ""})
    c.add(s, cr, "bad_group", {"group": "holdout"}, {"group": "Control"})
    c.add(s, cr, "bad_group", {"group": None}, name="missing_group")
    c.add(s, cr, "bad_sent_ts", {"sent_ts": "2026-06-29 9h"})
    c.add(s, cr, "bad_sent_ts", {"sent_ts": None}, name="missing_sent_ts")
    c.add(s, cr, "bad_converted_ts", {"converted_ts": "soon"}, {"converted_ts": None})
    c.add(s, cr, "bad_revenue", {"revenue": "-0.01"}, {"revenue": "0"})
    c.add(s, cr, "revenue_out_of_bounds", {"revenue": "1000000.01"}, {"revenue": "1000000.00"})
    c.add(s, cr, "future_sent_ts", {"sent_ts": TOO_LATE}, {"sent_ts": NOT_LATE})

    for s in ("flat_transactions", "flat_without_invoices"):
        ft = SRC[s]
        declared = declared_reasons(ft.spec)
        flat_cases = [
            ("missing_order_id", {"order_id": None}, {}),
            ("missing_customer_id", {"customer_id": None}, {}),
            ("missing_sku", {"sku": None}, {}),
            ("bad_qty", {"qty": "0"}, {"qty": "-1"}),  # a negative quantity is a return
            ("bad_qty", {"qty": "1.5"}, {"qty": "3.0"}, "fractional_qty"),
            ("bad_unit_price", {"unit_price": "-0.01"}, {"unit_price": "0"}),
            ("bad_unit_price", {"unit_price": None}, {}, "missing_unit_price"),
            ("bad_amount", {"amount": "-0.01"}, {"amount": "0"}),
            ("bad_amount", {"amount": None}, {}, "missing_amount"),
            ("bad_order_ts", {"order_ts": "2026-06-30T08:26:00"}, {}),  # not the configured ts_format
            ("future_order_ts", {"order_ts": TOO_LATE}, {"order_ts": NOT_LATE}),
            ("unit_price_out_of_bounds", {"unit_price": "1000000.01"}, {"unit_price": "1000000"}),
            ("qty_out_of_bounds", {"qty": "-100001"}, {"qty": "-100000"}),
            ("amount_out_of_bounds", {"amount": "1000000.01"}, {"amount": "1000000"}),
        ]
        for reason, bad, good, *name in flat_cases:
            if reason in declared:
                c.add(s, ft, reason, bad, good, *name)
    s = "flat_whitespace"
    c.add(s, SRC[s], "bad_order_ts", {"order_ts": "2026-06-30"})
    c.add(s, SRC[s], "future_order_ts", {"order_ts": "20260704"}, {"order_ts": "20260702"})


def _generic(c: Cases) -> None:
    """The reader's and the batch's reasons, for every source."""
    for label, src in SRC.items():
        # A garbled byte, past the whole-file check; a well-formed non-ASCII character is fine.
        bad = src.line(src.record("invalid_utf8", "reject", {})).replace(b".reject", b".reject\xff", 1)
        good = src.line(src.record("invalid_utf8", "accept", {src.tag_col: "case=invalid_utf8.accept\u00e9"}))
        c.items.append(Case(label, "invalid_utf8", "invalid_utf8", bad, good))
        if src.spec.fmt == "jsonl":
            full = src.line(src.record("malformed_json", "reject", {}))
            good = src.line(src.record("malformed_json", "accept", {}))
            c.items.append(Case(label, "malformed_json", "malformed_json", full[: len(full) // 2], good))
            c.add(label, src, f"unknown_field:{EXTRA}", {EXTRA: "SUMMER"}, name="unknown_field")
        else:
            # A row with its last field missing; the tag goes first so the short row still carries it.
            rec = src.record("malformed_csv_row", "reject", {})
            short = src.sep.join([str(rec[src.tag_col])] + [str(rec[col] or "") for col in src.columns[1:-1]])
            good = src.line(src.record("malformed_csv_row", "accept", {}))
            c.items.append(Case(label, "malformed_csv_row", "malformed_csv_row", short.encode(), good))
            # ... and one with a field too many (a delimiter inside a value, unquoted).
            long = src.line(src.record("csv_row_too_long", "reject", {})) + src.sep.encode() + b"x"
            good = src.line(src.record("csv_row_too_long", "accept", {}))
            c.items.append(Case(label, "csv_row_too_long", "malformed_csv_row", long, good))
            bad = src.line(src.record("unknown_field", "reject", {EXTRA: "SUMMER"}), (EXTRA,))
            good = src.line(src.record("unknown_field", "accept", {}))
            c.items.append(Case(label, "unknown_field", f"unknown_field:{EXTRA}", bad, good, True))
        if src.spec.key:
            # Both copies carry one id; the first in (_source_file, raw_record) order is kept, and
            # the two raw records differ only in their tag, where "accept" sorts before "reject".
            same = {src.spec.key: "same-id"}
            c.add(label, src, "duplicate_id", same, same)


def declared_reasons(spec: SourceSpec) -> set[str]:
    """Every reason ``with_reasons`` / ``read_raw`` can give a record of ``spec`` (file-level ones aside)."""
    out = {code for code, _ in spec.rules}
    out |= {f"future_{ts}" for ts in spec.ts_cols}
    out |= {f"item_{c.split('.', 1)[1]}_out_of_bounds" if "." in c else f"{c}_out_of_bounds" for c in spec.money_cols}
    out |= {f"item_{c.split('.', 1)[1]}_out_of_bounds" if "." in c else f"{c}_out_of_bounds" for c in spec.qty_cols}
    out |= {"invalid_utf8", f"unknown_field:{EXTRA}", "malformed_json" if spec.fmt == "jsonl" else "malformed_csv_row"}
    if spec.key:
        out.add("duplicate_id")
    return out


def build_cases() -> list[Case]:
    c = Cases()
    _specific(c)
    _generic(c)
    return c.items


CASES = build_cases()


def _land(root, label: str, src: Source, cases: list[Case]) -> list[FileCheck]:
    """The source's files and their (passing) whole-file checks, as file_checks would make them."""
    folder = root / label
    folder.mkdir()
    ext = "jsonl" if src.spec.fmt == "jsonl" else "csv"
    files = {(): [], (EXTRA,): []}
    for case in cases:
        files[(EXTRA,) if case.bad_has_extra_column else ()].append(case.bad)
        files[()].append(case.good)
    checks = []
    for i, (extra, lines) in enumerate(files.items()):
        if not lines:
            continue
        path = folder / f"part-{i}.{ext}"
        header = [src.header(extra)] if src.spec.fmt == "csv" else []
        path.write_bytes(b"\n".join(header + lines) + b"\n")
        names = tuple(src.header(extra).decode().split(src.sep)) if src.spec.fmt == "csv" else ()
        checks.append(FileCheck(str(path), path.stat().st_size, None, names, src.header(extra).decode(), extra))
    return checks


@pytest.fixture(scope="module")
def verdicts(spark, tmp_path_factory) -> dict[tuple[str, str, str], list[str]]:
    """(source, case, accept|reject) -> the record's reasons; every landed record comes back exactly once."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    root = tmp_path_factory.mktemp("quarantine_reasons")
    parts = []
    for label, src in SRC.items():
        checks = _land(root, label, src, [c for c in CASES if c.source == label])
        validated = read_raw(spark, src.spec, checks).transform(
            with_reasons(src.spec, D, TOLERANCE_HOURS, on_unknown_fields="quarantine", bounds=BOUNDS)
        )
        parts.append(
            validated.select(
                F.lit(label).alias("source"),
                F.regexp_extract("raw_record", TAG, 1).alias("case"),
                F.regexp_extract("raw_record", TAG, 2).alias("kind"),
                "reasons",
            )
        )
    rows = reduce(DataFrame.unionByName, parts).collect()  # a few hundred test records
    out: dict[tuple[str, str, str], list[str]] = {}
    for r in rows:
        key = (r["source"], r["case"], r["kind"])
        assert key not in out, f"record {key} read twice"
        out[key] = list(r["reasons"])
    expected = {(c.source, c.name, kind) for c in CASES for kind in ("accept", "reject")}
    assert set(out) == expected, f"lost: {sorted(expected - set(out))}; unexpected: {sorted(set(out) - expected)}"
    return out


@pytest.mark.parametrize("case", CASES, ids=[f"{c.source}-{c.name}" for c in CASES])
def test_bad_record_gets_exactly_its_reason_and_its_neighbour_is_accepted(verdicts, case):
    assert verdicts[(case.source, case.name, "reject")] == ([case.reason] if case.reason else []), case.bad
    assert verdicts[(case.source, case.name, "accept")] == [], case.good


@pytest.mark.parametrize("label", [k for k, s in SRC.items() if s.complete])
def test_every_reason_a_source_declares_has_a_case(label):
    covered = {c.reason for c in CASES if c.source == label and c.reason}
    assert covered == declared_reasons(SRC[label].spec)


def test_a_rejected_copy_never_makes_its_clean_original_a_duplicate(spark, tmp_path):
    """A defective copy of a record keeps its id (a malformed JSON line still parses it) and may
    sort first; the duplicate check ranks only the records no other rule rejects."""

    order = json.dumps({"order_id": "o1", **{k: v for k, v in SRC["orders"].base.items() if k != "order_id"}})
    landed = {
        "orders": [order[:60], order],  # the cut copy sorts before its original
        "products": [
            "sku,name,category,subcategory,brand,list_price",
            "p1,Tea,tea,green,Leaf,-4.50",
            "p1,Tea,tea,green,Leaf,4.50",
        ],
    }
    got = {}
    for source, lines in landed.items():
        spec = SOURCES[source]
        path = tmp_path / f"{source}.{spec.fmt}"
        path.write_text("\n".join(lines) + "\n")
        header = tuple(lines[0].split(",")) if spec.fmt == "csv" else ()
        check = FileCheck(str(path), path.stat().st_size, None, header, lines[0] if header else "")
        validated = read_raw(spark, spec, [check]).transform(with_reasons(spec, D, TOLERANCE_HOURS, bounds=BOUNDS))
        got[source] = sorted(
            (r["raw_record"], list(r["reasons"])) for r in validated.select("raw_record", "reasons").collect()
        )
    assert got["orders"] == [(order[:60], ["malformed_json"]), (order, [])]
    price = '{"sku":"p1","name":"Tea","category":"tea","subcategory":"green","brand":"Leaf","list_price":"%s"}'
    assert got["products"] == [(price % "-4.50", ["bad_list_price"]), (price % "4.50", [])]


def test_every_catalog_source_is_covered():
    assert set(SOURCES) <= set(SRC)


def test_a_gzip_file_whose_first_bytes_do_not_decompress_is_unreadable():
    from custseg.file_checks import inspect

    spec = SOURCES["feedback"]
    garbage = b"PK\x03\x04 a zip archive named .gz"
    assert inspect(spec, "f.csv.gz", len(garbage), garbage, b"").reason == "unreadable_file"
    fine = gzip.compress(b"feedback_id,customer_id,ts,channel,rating,nps,text\nf1,c1,2026-06-30,web,4,8,ok\n")
    assert inspect(spec, "f.csv.gz", len(fine), fine, b"").reason is None
