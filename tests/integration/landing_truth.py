"""Consent rebuilt from the landing CRM files with the standard library only (issue 28, item 3).

The export tests check consent against this, not against silver.customers (which the code under
test writes). The rules are re-implemented here from the documented behaviour, not imported:
- the generator's bad lines (truth/bad_records.csv) never count: the pipeline quarantines them;
- the latest row per trimmed customer_id wins, by updated_at, then batch date, then file;
- an opt-in is one of true / 1 / yes / y / t (any case, trimmed), anything else is no consent;
- customer_key is HMAC-SHA256 of ``customer_id:<id>`` under the run's salt (Python's ``hmac``);
- the ad platforms' hashes are plain SHA-256 of the trimmed lower-case e-mail and of the E.164 phone.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

YES = {"true", "1", "yes", "y", "t"}
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
TS_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
CHANNEL_FIELD = {"email": "opt_in_email", "sms": "opt_in_sms", "ads": "opt_in_ads"}


@dataclass(frozen=True)
class Consent:
    customer_id: str
    customer_key: str
    opt_in_email: bool
    opt_in_sms: bool
    opt_in_ads: bool
    email: str | None  # normalized
    phone_e164: str | None
    email_sha256: str | None
    phone_sha256: str | None

    def allows(self, channel: str) -> bool:
        return bool(getattr(self, CHANNEL_FIELD[channel]))


def customer_key(customer_id: str, salt: str) -> str:
    return hmac.new(salt.encode(), f"customer_id:{customer_id}".encode(), hashlib.sha256).hexdigest()


def e164(phone: str, country_code: str = "44") -> str | None:
    digits = re.sub(r"[^0-9]", "", phone or "")
    if digits.startswith("00"):
        national = digits[2:]
    elif digits.startswith("0"):
        national = country_code + digits[1:]
    elif digits.startswith(country_code) and len(digits) > 10:
        national = digits
    else:
        national = country_code + digits
    return "+" + national if 8 <= len(national) <= 15 and digits else None


def _ts(value: str) -> datetime | None:
    for fmt in TS_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
    return None


def _sha(value: str | None) -> str | None:
    return hashlib.sha256(value.encode()).hexdigest() if value else None


def landing_consent(home: Path, salt: str) -> dict[str, Consent]:
    """customer_key -> the customer's latest consent, from landing/crm_customers and the truth files."""
    bad = set()
    with open(home / "truth" / "bad_records.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["source"] == "crm_customers":
                bad.add((r["file"], int(r["line"])))
    latest: dict[str, tuple[tuple, dict]] = {}
    for path in sorted((home / "landing" / "crm_customers").glob("*/*.csv")):
        rel = str(path.relative_to(home))
        batch = path.parent.name
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                if (rel, reader.line_num) in bad:
                    continue
                cid = (row["customer_id"] or "").strip()
                ts = _ts(row["updated_at"] or "")
                if not cid or ts is None:
                    continue
                order = (ts, batch, rel)
                if cid not in latest or order > latest[cid][0]:
                    latest[cid] = (order, row)
    out = {}
    for cid, (_, row) in latest.items():
        email = (row["email"] or "").strip().lower()
        email = email if EMAIL.fullmatch(email) else None
        phone = e164(row["phone"] or "")
        key = customer_key(cid, salt)
        out[key] = Consent(
            customer_id=cid,
            customer_key=key,
            opt_in_email=(row["opt_in_email"] or "").strip().lower() in YES,
            opt_in_sms=(row["opt_in_sms"] or "").strip().lower() in YES,
            opt_in_ads=(row["opt_in_ads"] or "").strip().lower() in YES,
            email=email,
            phone_e164=phone,
            email_sha256=_sha(email),
            phone_sha256=_sha(phone),
        )
    return out
