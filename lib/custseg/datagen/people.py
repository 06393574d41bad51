"""Customers of one block: planted attributes, CRM rows and raw identifier spellings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from custseg.datagen import personas as P
from custseg.datagen.catalog import CATEGORIES
from custseg.datagen.context import BLOCK, DAY, MAX_DEVICES, Context, customer_number, device_number
from custseg.datagen.fmt import Field, Records

FIRST_F = (
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Emily",
    "Sophie",
    "Grace",
    "Mia",
    "Poppy",
    "Ella",
    "Lily",
    "Evie",
    "Jessica",
    "Chloe",
    "Hannah",
    "Lucy",
    "Charlotte",
    "Freya",
    "Ruby",
    "Zara",
)
FIRST_M = (
    "Oliver",
    "George",
    "Harry",
    "Noah",
    "Jack",
    "Leo",
    "Arthur",
    "Muhammad",
    "Oscar",
    "Charlie",
    "Jacob",
    "Thomas",
    "Henry",
    "William",
    "James",
    "Samuel",
    "Daniel",
    "Ethan",
    "Liam",
    "Ryan",
)
LAST = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Wright",
    "Robinson",
    "Wood",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Khan",
    "Clarke",
    "Lewis",
    "Hughes",
    "Edwards",
    "Turner",
    "Hill",
    "Moore",
    "Cooper",
    "Ward",
    "Morris",
)
DOMAINS = (
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "hotmail.co.uk",
    "icloud.com",
    "btinternet.com",
)
CITIES = (
    ("London", "London", 9.0),
    ("Birmingham", "West Midlands", 2.0),
    ("Manchester", "North West", 2.0),
    ("Leeds", "Yorkshire and the Humber", 1.5),
    ("Glasgow", "Scotland", 1.2),
    ("Liverpool", "North West", 1.0),
    ("Bristol", "South West", 1.0),
    ("Sheffield", "Yorkshire and the Humber", 1.0),
    ("Edinburgh", "Scotland", 1.0),
    ("Cardiff", "Wales", 0.8),
    ("Newcastle upon Tyne", "North East", 0.8),
    ("Nottingham", "East Midlands", 0.7),
    ("Leicester", "East Midlands", 0.7),
    ("Southampton", "South East", 0.6),
    ("Brighton", "South East", 0.6),
    ("Belfast", "Northern Ireland", 0.7),
    ("Cambridge", "East of England", 0.4),
    ("Norwich", "East of England", 0.4),
    ("Oxford", "South East", 0.4),
    ("Plymouth", "South West", 0.5),
)
REGIONS = tuple(dict.fromkeys(c[1] for c in CITIES))
STORES_PER_CITY = 3
GENDERS = ("F", "M", "X")
BOOLS = ("false", "true")
# Raw spellings of one phone number (10 national digits starting with 7).
PHONE_FORMATS = ("+44 {a} {b}", "0{a} {b}", "(0){a}-{b}", "44{a}{b}", "+44{a}{b}", "0{a}{b}")
CRM_PHONE_P = np.array([0.3, 0.3, 0.15, 0.1, 0.1, 0.05])
LOYALTY_PHONE_P = np.array([0.15, 0.35, 0.15, 0.1, 0.1, 0.15])
# Raw spellings of one e-mail: as is, Capitalised, UPPER, " padded ", Title.Case, "trailing ".
CRM_EMAIL_P = np.array([0.8, 0.06, 0.04, 0.04, 0.03, 0.03])
SOCIAL_EMAIL_P = np.array([0.7, 0.1, 0.1, 0.0, 0.1, 0.0])
P_CRM_UPDATE = 0.05

CRM_FIELDS = [
    Field("customer_id", "id", prefix="C", width=7),
    Field("name", "str", text=True),
    Field("email", "str", text=True),
    Field("phone", "str", text=True),
    Field("gender", "ref", table="gender"),
    Field("birth_date", "date"),
    Field("city", "ref", table="city", text=True),
    Field("region", "ref", table="region", text=True),
    Field("signup_date", "date"),
    Field("member_tier", "ref", table="tier"),
    Field("opt_in_email", "ref", table="bool"),
    Field("opt_in_sms", "ref", table="bool"),
    Field("opt_in_ads", "ref", table="bool"),
    Field("updated_at", "ts"),
]
STATIC_TABLES = {
    "gender": pa.array(list(GENDERS)),
    "city": pa.array([c[0] for c in CITIES]),
    "region": pa.array(list(REGIONS)),
    "tier": pa.array(list(P.TIERS)),
    "bool": pa.array(list(BOOLS)),
}
CITY_REGION = np.array([REGIONS.index(c[1]) for c in CITIES])


def mailbox_number(g: np.ndarray) -> np.ndarray:
    """A number that makes e-mails and handles unique without giving the customer id away."""
    return (np.asarray(g, dtype=np.int64) * 48_271 + 5_557) % 10**7


@dataclass
class Customers:
    g: np.ndarray
    num: np.ndarray
    persona: np.ndarray
    signup: np.ndarray  # epoch day
    act_lo: np.ndarray  # first / last day the customer is active in the period
    act_hi: np.ndarray
    birth: np.ndarray
    gender: np.ndarray
    city: np.ndarray
    store: np.ndarray
    tier: np.ndarray
    opt_in: np.ndarray  # (n, 3) email, sms, ads
    daypart: np.ndarray
    channel: np.ndarray
    favs: np.ndarray  # (n, 3) category codes, -1 unused
    devices: np.ndarray  # (n, 3) device numbers, -1 unused
    propensity: np.ndarray
    name: pa.Array
    email: pa.Array  # canonical, lower case
    phone: pa.Array  # 10 national digits

    def __len__(self) -> int:
        return len(self.g)


def make_customers(ctx: Context, block: int) -> Customers:
    rng = ctx.rng(block, 0)
    g = np.arange(block * BLOCK, min((block + 1) * BLOCK, ctx.n_customers), dtype=np.int64)
    n = len(g)
    persona = P.allocate(n, ctx.shares, rng)
    lo, hi = P.TENURE[persona].T
    signup = ctx.end_day - rng.integers(lo.astype(int), hi.astype(int) + 1)
    act_lo = np.maximum(signup, ctx.start_day)
    act_hi = np.full(n, ctx.end_day, dtype=np.int64)
    stop = ctx.end_day - rng.integers(P.CHURN_STOP_DAYS[0], P.CHURN_STOP_DAYS[1] + 1, n)
    churn = persona == P.CHURNING
    act_hi[churn] = np.clip(np.maximum(stop, act_lo + 14), None, ctx.end_day)[churn]
    gender = P.choose_rows(np.tile([0.48, 0.48, 0.04], (n, 1)), rng)
    age = np.clip(rng.normal(P.AGE[persona, 0], P.AGE[persona, 1]), 18, 85)
    birth = ctx.end_day - (age * 365.25).astype(np.int64) - rng.integers(0, 365, n)
    city_w = np.array([c[2] for c in CITIES])
    city = rng.choice(len(CITIES), n, p=city_w / city_w.sum())
    store = city * STORES_PER_CITY + rng.integers(0, STORES_PER_CITY, n)
    tier = P.choose_rows(P.TIER[persona], rng)
    opt_in = rng.random((n, 3)) < P.OPT_IN[persona]
    daypart = P.choose_rows(P.DAYPART[persona], rng)
    channel = P.choose_rows(P.CHANNEL[persona], rng)
    gumbel = np.log(P.CATEGORY_WEIGHTS[persona]) - np.log(-np.log(rng.random((n, len(CATEGORIES)))))
    favs = np.argsort(-gumbel, axis=1)[:, :3]
    n_fav = 1 + rng.binomial(2, 0.5, n)
    favs = np.where(np.arange(3) < n_fav[:, None], favs, -1)
    n_dev = 1 + rng.binomial(MAX_DEVICES - 1, P.P_EXTRA_DEVICE[persona])
    j = np.arange(MAX_DEVICES)
    devices = np.where(j < n_dev[:, None], device_number(g[:, None], j), -1)
    logit = (
        P.RESPONDER_BASE
        + P.RESPONDER_PERSONA[persona]
        + 0.5 * opt_in[:, 0]
        + 0.25 * tier
        - 0.015 * (age - 45)
        + rng.normal(0, P.RESPONDER_NOISE, n)
    )
    propensity = 1.0 / (1.0 + np.exp(-logit))
    is_f = (gender == 0) | ((gender == 2) & (rng.random(n) < 0.5))
    first_names = np.where(
        is_f,
        np.array(FIRST_F)[rng.integers(0, len(FIRST_F), n)],
        np.array(FIRST_M)[rng.integers(0, len(FIRST_M), n)],
    )
    last_names = np.array(LAST)[rng.integers(0, len(LAST), n)]
    num = customer_number(g)
    name = pa.array(np.char.add(np.char.add(first_names, " "), last_names).tolist())
    local = np.char.add(np.char.add(np.char.lower(first_names), "."), np.char.lower(last_names))
    email = np.char.add(np.char.add(local, mailbox_number(g).astype(str)), "@")
    email = np.char.add(email, np.array(DOMAINS)[rng.integers(0, len(DOMAINS), n)])
    national = 7_000_000_000 + (g * 179_424_673 + 3_331_333 + ctx.seed * 7_919) % 1_000_000_000
    return Customers(
        g,
        num,
        persona,
        signup,
        act_lo,
        act_hi,
        birth,
        gender,
        city,
        store,
        tier,
        opt_in,
        daypart,
        channel,
        favs,
        devices,
        propensity,
        name,
        pa.array(email.tolist()),
        pa.array(national.astype(str).tolist()),
    )


def phone_spellings(digits: pa.Array, fmt: np.ndarray) -> pa.Array:
    """The 10-digit numbers spelled in PHONE_FORMATS[fmt] (one format per row)."""
    a = pc.utf8_slice_codeunits(digits, 0, 4)
    b = pc.utf8_slice_codeunits(digits, 4, 10)
    variants = []
    for f in PHONE_FORMATS:
        head, rest = f.split("{a}")
        mid, tail = rest.split("{b}")
        variants.append(pc.binary_join_element_wise(head, a, mid, b, tail, ""))
    return pc.choose(pa.array(fmt.astype(np.int8)), *variants)


def email_spellings(email: pa.Array, variant: np.ndarray) -> pa.Array:
    """Raw spellings of canonical e-mails: case and surrounding blanks vary by `variant`."""
    variants = [
        email,
        pc.utf8_capitalize(email),
        pc.utf8_upper(email),
        pc.binary_join_element_wise(" ", email, " ", ""),
        pc.utf8_title(email),
        pc.binary_join_element_wise(email, " ", ""),
    ]
    return pc.choose(pa.array(variant.astype(np.int8)), *variants)


@dataclass
class Spellings:
    """Which raw spelling (code) of a customer's e-mail or phone appeared somewhere."""

    cust: np.ndarray  # block-local customer index
    code: np.ndarray  # index into the e-mail variants / PHONE_FORMATS


def crm_records(ctx: Context, c: Customers) -> tuple[Records, pa.Array, pa.Array, Spellings, Spellings]:
    """CRM rows (a few customers twice, the later updated_at wins), the latest raw e-mail and
    phone per customer, and the spellings of e-mails and phones used."""
    rng = ctx.rng(int(c.g[0]) // BLOCK, 1)
    n = len(c)
    updated = c.signup * DAY + rng.integers(8 * 3600, 22 * 3600, n)
    upd = (rng.random(n) < P_CRM_UPDATE) & (c.signup < ctx.end_day - 1)
    ui = np.flatnonzero(upd)
    k = len(ui)
    later = ctx.end_day - np.minimum(rng.exponential(30, k).astype(np.int64), ctx.end_day - c.signup[ui] - 1)
    rows = np.concatenate([np.arange(n), ui])
    email_v = np.concatenate(
        [
            P.choose_rows(np.tile(CRM_EMAIL_P, (n, 1)), rng),
            P.choose_rows(np.tile(CRM_EMAIL_P, (k, 1)), rng),
        ]
    )
    phone_f = np.concatenate(
        [
            P.choose_rows(np.tile(CRM_PHONE_P, (n, 1)), rng),
            P.choose_rows(np.tile(CRM_PHONE_P, (k, 1)), rng),
        ]
    )
    tier = np.concatenate([c.tier, np.minimum(c.tier[ui] + (rng.random(k) < 0.5), 3)])
    opt = np.concatenate([c.opt_in, c.opt_in[ui] ^ (rng.random((k, 3)) < 0.2)])
    city = np.concatenate([c.city, np.where(rng.random(k) < 0.2, rng.integers(0, len(CITIES), k), c.city[ui])])
    ts = np.concatenate([updated, later * DAY + rng.integers(0, DAY, k)])
    email = email_spellings(pc.take(c.email, pa.array(rows)), email_v)
    phone = phone_spellings(pc.take(c.phone, pa.array(rows)), phone_f)
    # update rows sit at random places, sometimes before the row they replace
    order = np.argsort(np.concatenate([np.arange(n) * 2.0, rng.uniform(0, 2 * n, k)]), kind="stable")
    cols = {
        "customer_id": c.num[rows],
        "name": pc.take(c.name, pa.array(rows)),
        "email": email,
        "phone": phone,
        "gender": c.gender[rows],
        "birth_date": c.birth[rows],
        "city": city,
        "region": CITY_REGION[city],
        "signup_date": c.signup[rows],
        "member_tier": tier,
        "opt_in_email": opt[:, 0].astype(np.int64),
        "opt_in_sms": opt[:, 1].astype(np.int64),
        "opt_in_ads": opt[:, 2].astype(np.int64),
        "updated_at": ts,
    }
    rec = Records(cols, ctx.batch_of(ts), dict(STATIC_TABLES)).take(order)
    latest = np.arange(n)
    latest_email = pc.take(email, pa.array(latest))
    latest_phone = pc.take(phone, pa.array(latest))
    if k:
        latest_email = pc.replace_with_mask(latest_email, pa.array(upd), pc.take(email, pa.array(n + np.arange(k))))
        latest_phone = pc.replace_with_mask(latest_phone, pa.array(upd), pc.take(phone, pa.array(n + np.arange(k))))
    return rec, latest_email, latest_phone, Spellings(rows, email_v), Spellings(rows, phone_f)
