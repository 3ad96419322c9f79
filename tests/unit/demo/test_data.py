"""Synthetic customers: valid check digits, consistent fields, deterministic output."""

from __future__ import annotations

import re

import pytest

from gateway.demo.checksums import (
    is_valid_resident_id,
    luhn_check_digit,
    luhn_valid,
    resident_id_check_char,
)
from gateway.demo.data import CUSTOMER_KEYS, generate_customer, generate_customers, generate_note
from gateway.demo.vocab import MOBILE_PREFIXES, REGIONS, TIERS

CUSTOMERS = generate_customers(7, 200)


def test_known_check_digits() -> None:
    # GB 11643 worked example and a well-known Luhn test number.
    assert resident_id_check_char("11010519491231002") == "X"
    assert is_valid_resident_id("11010519491231002X")
    assert not is_valid_resident_id("110105194912310021")
    assert luhn_check_digit("7992739871") == "3"
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_default_count_and_ids() -> None:
    assert len(CUSTOMERS) == 200
    assert [c["id"] for c in CUSTOMERS[:3]] == ["C000001", "C000002", "C000003"]
    assert all(tuple(c) == CUSTOMER_KEYS for c in CUSTOMERS)


@pytest.mark.parametrize("customer", CUSTOMERS[:50], ids=lambda c: c["id"])
def test_resident_id_is_consistent(customer: dict[str, object]) -> None:
    number = str(customer["id_number"])
    assert is_valid_resident_id(number)
    assert number[:6] in {r.code for r in REGIONS}
    assert number[6:14] == str(customer["birth_date"]).replace("-", "")
    assert (int(number[16]) % 2 == 1) == (customer["gender"] == "男")


def test_all_ids_and_cards_validate() -> None:
    assert all(is_valid_resident_id(c["id_number"]) for c in CUSTOMERS)
    for c in CUSTOMERS:
        assert c["bank_card"].startswith("62")
        assert len(c["bank_card"]) == 19
        assert luhn_valid(c["bank_card"])


def test_contact_fields_look_real() -> None:
    regions = {r.code: r for r in REGIONS}
    for c in CUSTOMERS:
        assert c["mobile"][:3] in MOBILE_PREFIXES
        assert re.fullmatch(r"1\d{10}", c["mobile"])
        region = regions[c["id_number"][:6]]
        code, local = c["landline"].split("-")
        assert code == region.area_code
        assert len(local) == region.local_digits
        assert local[0] in "2345678"
        assert re.fullmatch(r"[a-z]+\d*@[a-z.]+", c["email"])
        assert c["address"].startswith(tuple(r.province for r in REGIONS))
        assert re.fullmatch(r"(A\d{9}|00\d{8})", c["securities_account"])
        assert re.fullmatch(r"\d{6}", c["query_password"])


def test_values_have_the_right_types_and_ranges() -> None:
    for c in CUSTOMERS:
        assert isinstance(c["annual_income"], int)
        assert isinstance(c["total_assets"], float)
        assert isinstance(c["balance"], float)
        assert c["grade"] in {"A", "B", "C"}
        assert c["tier"] in TIERS
        assert c["owner"].startswith("u-")
        assert set(c["consent"]) == {"marketing", "sharing"}
        for row in c["holdings"]:
            assert re.fullmatch(r"(60|68|00|30)\d{4}", row["code"])
            assert row["quantity"] % 100 == 0


def test_every_grade_and_tier_occurs() -> None:
    assert {c["grade"] for c in CUSTOMERS} == {"A", "B", "C"}
    assert {c["tier"] for c in CUSTOMERS} == set(TIERS)
    assert len({c["owner"] for c in CUSTOMERS}) >= 3


def test_deterministic_and_independent_of_count() -> None:
    assert generate_customers(7, 200) == CUSTOMERS
    assert generate_customers(7, 10) == CUSTOMERS[:10]
    assert generate_customer(7, 41) == CUSTOMERS[41]
    assert generate_customers(8, 10) != CUSTOMERS[:10]


def test_notes_carry_pii() -> None:
    note = generate_note(7, 3, CUSTOMERS[3])
    assert note["id"] == "N000004"
    assert note["customer_id"] == "C000004"
    assert CUSTOMERS[3]["mobile"] in note["text"]
    assert CUSTOMERS[3]["name"] in note["text"]
    with_pii = [c for c in CUSTOMERS if c["mobile"] in c["notes"] or c["id_number"] in c["notes"]]
    assert len(with_pii) > 20


def test_negative_count_rejected() -> None:
    with pytest.raises(ValueError, match="count"):
        generate_customers(7, -1)
