"""Deterministic synthetic customers for the demo CRM.

Every record is derived from `(seed, index)` alone, so customer C000042 is the
same whether 50 or 5000 records were asked for, and tests can regenerate any
record without the server. Values are internally consistent (the birth date and
gender are encoded in the resident ID, the landline uses the district's area
code) because the gateway's detectors check such structure.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from gateway.demo.checksums import luhn_check_digit, resident_id_check_char
from gateway.demo.vocab import (
    CARD_BINS,
    EMAIL_DOMAINS,
    EMPLOYER_FORMS,
    EMPLOYER_PREFIXES,
    EMPLOYER_TRADES,
    GIVEN_FEMALE,
    GIVEN_MALE,
    GRADES,
    MOBILE_PREFIXES,
    NOTE_TEMPLATES,
    OWNERS,
    REGIONS,
    RISK_LEVELS,
    STOCKS,
    SURNAMES,
    TIERS,
    Region,
)

Customer = dict[str, Any]
"""A customer record exactly as the demo CRM serves it (see /tmp/demo_shape.md keys)."""

# Keys of a customer, in the order the CRM serialises them.
CUSTOMER_KEYS: tuple[str, ...] = (
    "id", "name", "gender", "id_number", "mobile", "landline", "email", "address",
    "employer", "birth_date", "annual_income", "total_assets", "balance", "bank_card",
    "securities_account", "holdings", "risk_level", "grade", "tier", "owner", "department",
    "consent", "notes", "query_password", "created_at",
)  # fmt: skip

_BIRTH_START = date(1950, 1, 1)
_BIRTH_SPAN_DAYS = (date(2004, 12, 31) - _BIRTH_START).days
_CREATED_START = date(2019, 1, 1)


def customer_id(index: int) -> str:
    """The CRM id of the record at zero-based `index` (C000001 is index 0)."""
    return f"C{index + 1:06d}"


def note_id(index: int) -> str:
    """The id of the note attached to the customer at `index`."""
    return f"N{index + 1:06d}"


def _rng(seed: int, index: int) -> random.Random:
    # A string seed is hashed with SHA-512 by `random`, stable across processes.
    return random.Random(f"crm-demo:{seed}:{index}")  # noqa: S311 - synthetic data, not secrets


def resident_id(rng: random.Random, region: Region, birth: date, male: bool) -> str:
    """An 18-character resident ID: region, birth date, sequence, gender digit, check."""
    seq = rng.randrange(0, 100)
    gender_digit = rng.choice("13579" if male else "02468")
    first17 = f"{region.code}{birth:%Y%m%d}{seq:02d}{gender_digit}"
    return first17 + resident_id_check_char(first17)


def bank_card(rng: random.Random) -> str:
    """A 19-digit UnionPay debit card number with a valid Luhn digit."""
    payload = rng.choice(CARD_BINS) + "".join(rng.choices("0123456789", k=12))
    return payload + luhn_check_digit(payload)


def mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(0, 10**8):08d}"


def landline(rng: random.Random, region: Region) -> str:
    first = rng.choice("2345678")
    rest = "".join(rng.choices("0123456789", k=region.local_digits - 1))
    return f"{region.area_code}-{first}{rest}"


def address(rng: random.Random, region: Region) -> str:
    city = "" if region.city == region.province else region.city
    street = rng.choice(region.streets)
    text = f"{region.province}{city}{region.district}{street}{rng.randrange(1, 300)}号"
    if rng.random() < 0.7:
        text += f"{rng.randrange(1, 12)}栋{rng.randrange(1, 30)}{rng.randrange(1, 5):02d}室"
    return text


def employer(rng: random.Random) -> str:
    return rng.choice(EMPLOYER_PREFIXES) + rng.choice(EMPLOYER_TRADES) + rng.choice(EMPLOYER_FORMS)


def securities_account(rng: random.Random) -> str:
    """Shanghai (A + 9 digits) or Shenzhen (00 + 8 digits) A-share account."""
    if rng.random() < 0.6:
        return "A" + f"{rng.randrange(0, 10**9):09d}"
    return "00" + f"{rng.randrange(0, 10**8):08d}"


def holdings(rng: random.Random) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for stock in rng.sample(STOCKS, k=rng.randrange(0, 4)):
        quantity = 100 * rng.randrange(1, 50)
        rows.append(
            {
                "code": stock.code,
                "name": stock.name,
                "quantity": quantity,
                "market_value": round(quantity * stock.price, 2),
            }
        )
    return rows


def surname_of(name: str) -> str:
    """The surname part of `name`, knowing the compound surnames in the list."""
    for surname, _ in SURNAMES:
        if len(surname) > 1 and name.startswith(surname):
            return surname
    return name[:1]


def note_text(rng: random.Random, customer: Customer) -> str:
    """Free text in the style of an RM's call notes, often quoting the customer's PII."""
    surname = surname_of(customer["name"])
    title = "先生" if customer["gender"] == "男" else "女士"
    template = rng.choice(NOTE_TEMPLATES)
    return template.format(
        name=surname if rng.random() < 0.5 else customer["name"],
        title=title,
        mobile=customer["mobile"],
        id_number=customer["id_number"],
        address=customer["address"],
        card_tail=customer["bank_card"][-4:],
        date=customer["created_at"][:10],
    )


def generate_customer(seed: int, index: int) -> Customer:
    """The customer at zero-based `index` for `seed`; same inputs, same record."""
    rng = _rng(seed, index)
    male = rng.random() < 0.5
    surname, surname_py = rng.choice(SURNAMES)
    given, given_py = rng.choice(GIVEN_MALE if male else GIVEN_FEMALE)
    region = rng.choice(REGIONS)
    birth = _BIRTH_START + timedelta(days=rng.randrange(0, _BIRTH_SPAN_DAYS + 1))
    income = rng.randrange(60, 3000) * 1000
    assets = round(income * rng.uniform(0.5, 12.0), 2)
    owner, department = rng.choice(OWNERS)
    created = _CREATED_START + timedelta(days=rng.randrange(0, 5 * 365))
    local = surname_py + given_py + (str(rng.randrange(1, 100)) if rng.random() < 0.4 else "")
    record: Customer = {
        "id": customer_id(index),
        "name": surname + given,
        "gender": "男" if male else "女",
        "id_number": resident_id(rng, region, birth, male),
        "mobile": mobile(rng),
        "landline": landline(rng, region),
        "email": f"{local}@{rng.choice(EMAIL_DOMAINS)}",
        "address": address(rng, region),
        "employer": employer(rng),
        "birth_date": birth.isoformat(),
        "annual_income": income,
        "total_assets": assets,
        "balance": round(assets * rng.uniform(0.01, 0.3), 2),
        "bank_card": bank_card(rng),
        "securities_account": securities_account(rng),
        "holdings": holdings(rng),
        "risk_level": rng.choice(RISK_LEVELS),
        "grade": rng.choices(GRADES, weights=(2, 3, 5))[0],
        "tier": rng.choices(TIERS, weights=(1, 2, 4, 2, 1))[0],
        "owner": owner,
        "department": department,
        "consent": {"marketing": rng.random() < 0.6, "sharing": rng.random() < 0.2},
        "notes": "",
        "query_password": f"{rng.randrange(0, 10**6):06d}",
        "created_at": f"{created.isoformat()}T{rng.randrange(9, 18):02d}:"
        f"{rng.randrange(0, 60):02d}:00+08:00",
    }
    record["notes"] = note_text(rng, record)
    return record


def generate_customers(seed: int = 7, count: int = 200) -> list[Customer]:
    """`count` customers C000001.. for `seed`."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return [generate_customer(seed, i) for i in range(count)]


def generate_note(seed: int, index: int, customer: Customer) -> dict[str, str]:
    """The standalone note for the customer at `index` (served by /api/notes/{id})."""
    rng = _rng(seed, -1 - index)
    title = "先生" if customer.get("gender") == "男" else "女士"
    first = f"客户{customer['name']}{title}手机{customer['mobile']}。"
    second = note_text(rng, customer)
    return {"id": note_id(index), "customer_id": customer["id"], "text": f"{first}{second}"}


_RELATIONS = ("配偶", "子女", "父亲", "母亲", "兄弟姐妹")


def household(customer: Customer) -> list[tuple[str, str, str]]:
    """The customer's family contacts (name, relation, mobile), 1-3 of them, derived
    from the customer's id: the legacy export packs them into one cell."""
    rng = random.Random(f"crm-demo:household:{customer['id']}")  # noqa: S311 - synthetic
    surname = surname_of(customer["name"])
    members = []
    for _ in range(rng.randrange(1, 4)):
        relation = rng.choice(_RELATIONS)
        own = relation in ("子女", "父亲") or rng.random() < 0.3
        family = surname if own else rng.choice(SURNAMES)[0]
        given = rng.choice(GIVEN_MALE + GIVEN_FEMALE)[0]
        members.append((family + given, relation, mobile(rng)))
    return members
