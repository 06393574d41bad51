"""One chunk of customers: every source of each block rendered, defects added, lines appended."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from custseg.datagen import personas as P
from custseg.datagen.bad_records import BAD_CLASSES, inject, truncate_malformed
from custseg.datagen.campaigns import CAMPAIGN_FIELDS, make_responses
from custseg.datagen.catalog import CATEGORY_NAMES, PRODUCT_FIELDS, product_records
from custseg.datagen.context import BLOCK, Context
from custseg.datagen.events import EVENT_FIELDS, EVENT_ID_SPAN, make_events
from custseg.datagen.feedback import (
    FEEDBACK_FIELDS,
    FEEDBACK_ID_SPAN,
    SOCIAL_FIELDS,
    make_feedback,
    make_social,
)
from custseg.datagen.fmt import Field, Records, csv_header, csv_lines, json_lines, render_column
from custseg.datagen.orders import ITEM_FIELDS, ORDER_FIELDS, ORDER_ID_SPAN, make_orders
from custseg.datagen.people import (
    CRM_FIELDS,
    Spellings,
    crm_records,
    email_spellings,
    make_customers,
    phone_spellings,
)
from custseg.datagen.writers import PartWriter

SOURCES = {  # name: (format, fields, fields of the record key in the bad-record list)
    "crm_customers": ("csv", CRM_FIELDS, ("customer_id",)),
    "products": ("csv", PRODUCT_FIELDS, ("sku",)),
    "orders": ("jsonl", ORDER_FIELDS, ("order_id",)),
    "events": ("jsonl", EVENT_FIELDS, ("event_id",)),
    "feedback": ("csv", FEEDBACK_FIELDS, ("feedback_id",)),
    "social": ("jsonl", SOCIAL_FIELDS, ("platform", "handle")),
    "campaign_responses": ("csv", CAMPAIGN_FIELDS, ("campaign_id", "customer_id")),
}
SOURCE_STREAM = {name: 10 + i for i, name in enumerate(SOURCES)}
CUSTOMER_ID = Field("customer_id", "id", prefix="C", width=7)
DEVICE_ID = Field("device_id", "id", prefix="D", width=9)
PERSONA_TABLE = pa.array(list(P.PERSONAS))
DAYPART_TABLE = pa.array(list(P.DAYPARTS))
CATEGORY_TABLE = pa.array(list(CATEGORY_NAMES))
BAD_COLUMNS = ["source", "batch_date", "file", "line", "record_key", "bad_class"]


@dataclass
class ChunkResult:
    chunk: int
    customers: pa.Table
    identities: pa.Table
    rule_counts: np.ndarray
    campaign_stats: np.ndarray
    bad: pd.DataFrame
    files: dict[tuple[str, int, int], tuple[str, int]] = field(default_factory=dict)


def render(source: str, rec: Records) -> pa.Array:
    fmt, fields, _ = SOURCES[source]
    if rec.items is not None:
        items = json_lines(ITEM_FIELDS, rec.items, newline=False)
        counts = np.bincount(rec.items.cols["order"], minlength=len(rec))
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        joined = pc.binary_join(pa.ListArray.from_arrays(offsets, items), ",")
        rec.cols["items"] = pc.binary_join_element_wise("[", joined, "]", "")
    return csv_lines(fields, rec) if fmt == "csv" else json_lines(fields, rec)


def emit(source: str, rec: Records, writer: PartWriter, rng: np.random.Generator) -> pd.DataFrame:
    """Render and write one block of a source; the listing of its bad rows."""
    fmt, fields, key = SOURCES[source]
    lines = truncate_malformed(source, render(source, rec), rec.bad, rng)
    rows = np.flatnonzero(rec.bad >= 0)
    header = csv_header(fields) if fmt == "csv" else None
    files, line_no, batch = writer.write(source, fmt, header, lines, rec.batch, rows)
    if len(rows) == 0:
        return pd.DataFrame(columns=BAD_COLUMNS)
    by_name = {f.name: f for f in fields}
    bad_rec = rec.take(rows)
    parts = [pc.fill_null(render_column(by_name[k], bad_rec.cols[k], bad_rec.tables), "") for k in key]
    record_key = pc.binary_join_element_wise(*parts, "|") if len(parts) > 1 else parts[0]
    return pd.DataFrame(
        {
            "source": source,
            "batch_date": np.array(writer.batch_dates)[batch],
            "file": files,
            "line": line_no,
            "record_key": record_key.to_pylist(),
            "bad_class": np.array(BAD_CLASSES[source])[rec.bad[rows]],
        }
    )


def run_block(ctx: Context, block: int, writer: PartWriter) -> tuple:
    c = make_customers(ctx, block)
    force = block == 0
    crm, email, phone, crm_emails, crm_phones = crm_records(ctx, c)
    orders = make_orders(ctx, c)
    events = make_events(ctx, c, orders)
    feedback, n_feedback = make_feedback(ctx, c)
    social, social_emails = make_social(ctx, c)
    responses, campaign_stats = make_responses(ctx, c)
    clean = {
        "crm_customers": (crm, None),
        "orders": (orders.records, _fresh(block, ORDER_ID_SPAN, orders.next_seq)),
        "events": (events.records, _fresh(block, EVENT_ID_SPAN, events.next_seq)),
        "feedback": (feedback, _fresh(block, FEEDBACK_ID_SPAN, n_feedback)),
        "social": (social, None),
        "campaign_responses": (responses, None),
    }
    bad = []
    for source, (rec, keys) in clean.items():
        rng = ctx.rng(block, SOURCE_STREAM[source])
        rec = inject(source, rec, ctx, rng, force, keys)
        bad.append(emit(source, rec, writer, rng))
    cid = render_column(CUSTOMER_ID, c.num, {})
    favs = [pc.take(CATEGORY_TABLE, pa.array(np.maximum(c.favs[:, j], 0), mask=c.favs[:, j] < 0)) for j in range(3)]
    truth = pa.table(
        {
            "customer_id": cid,
            "persona": pc.take(PERSONA_TABLE, pa.array(c.persona)),
            "churner": pa.array((c.persona == P.CHURNING).astype(np.int64)),
            "responder_propensity": pa.array(np.round(c.propensity, 6)),
            "favourite_categories": pc.binary_join_element_wise(*favs, "|", null_handling="skip"),
            "daypart": pc.take(DAYPART_TABLE, pa.array(c.daypart)),
            "signup_date": render_column(Field("d", "date"), c.signup, {}),
            "email": email,
            "phone": phone,
        }
    )
    spellings = (crm_emails, social_emails, crm_phones, orders.phones)
    identities = _identities(c, cid, *spellings, events.login_devices)
    return truth, identities, orders.rule_counts, campaign_stats, bad


def _fresh(block: int, span: int, start: int):
    """Surrogate keys for defective copies, continuing after the block's clean keys."""
    state = {"next": start}

    def keys(k: int) -> np.ndarray:
        out = block * span + state["next"] + np.arange(k)
        state["next"] += k
        return out

    return keys


def _unique(*spellings: Spellings) -> tuple[np.ndarray, np.ndarray]:
    cust = np.concatenate([s.cust for s in spellings]).astype(np.int64)
    code = np.concatenate([s.code for s in spellings]).astype(np.int64)
    key = np.unique(cust * 64 + code)
    return key // 64, key % 64


def _identities(c, cid: pa.Array, crm_emails, social_emails, crm_phones, loyalty_phones, devices) -> pa.Table:
    """Every raw identifier planted as resolvable to a customer, once per customer."""
    e_cust, e_code = _unique(crm_emails, social_emails)
    p_cust, p_code = _unique(crm_phones, loyalty_phones)
    d_cust, d_num = devices
    parts = [
        ("customer_id", cid, np.arange(len(c))),
        ("email", email_spellings(pc.take(c.email, pa.array(e_cust)), e_code), e_cust),
        ("phone", phone_spellings(pc.take(c.phone, pa.array(p_cust)), p_code), p_cust),
        ("device_id", render_column(DEVICE_ID, d_num, {}), d_cust),
    ]
    return pa.table(
        {
            "identifier_type": pa.concat_arrays([pa.array([t] * len(v), pa.string()) for t, v, _ in parts]),
            "identifier": pa.concat_arrays([v for _, v, _ in parts]),
            "customer_id": pa.concat_arrays([pc.take(cid, pa.array(k, pa.int64())) for _, _, k in parts]),
        }
    )


def run_chunk(ctx: Context, root: str, chunk: int, blocks: tuple[int, int]) -> ChunkResult:
    """Blocks [start, stop) into part files `part-<chunk>` under `root`."""
    writer = PartWriter(Path(root), chunk, ctx.batch_dates)
    truths, ids, rules, camps, bad = [], [], [], [], []
    try:
        for block in range(*blocks):
            t, i, r, k, b = run_block(ctx, block, writer)
            truths.append(t)
            ids.append(i)
            rules.append(r)
            camps.append(k)
            bad.extend(x for x in b if len(x))
    finally:
        files = writer.close()
    return ChunkResult(
        chunk,
        pa.concat_tables(truths),
        pa.concat_tables(ids),
        np.sum(rules, axis=0),
        np.sum(camps, axis=0),
        pd.concat(bad, ignore_index=True) if bad else pd.DataFrame(columns=BAD_COLUMNS),
        files,
    )


def write_products(ctx: Context, root: Path, seed: int) -> tuple[pd.DataFrame, dict]:
    """The catalog, once, into the first batch (with its own defects)."""
    writer = PartWriter(root, 0, ctx.batch_dates)
    rng = np.random.default_rng([seed, 2**31, 1])
    rec = inject("products", product_records(ctx.catalog), ctx, rng, True)
    try:
        bad = emit("products", rec, writer, rng)
    finally:
        files = writer.close()
    return bad, files


def block_range(n_customers: int, chunk_size: int) -> list[tuple[int, int]]:
    per_chunk = max(1, -(-chunk_size // BLOCK))
    n_blocks = -(-n_customers // BLOCK)
    return [(s, min(s + per_chunk, n_blocks)) for s in range(0, n_blocks, per_chunk)]
