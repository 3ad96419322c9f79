"""Customer identifiers in the request line are reported by category, never by value."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.request_pii import classify_request
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]
ID = "11010519491231002X"  # GB 11643 example, valid check digit
CARD = "6222600260001072444"  # valid Luhn, UnionPay prefix


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.load(ROOT / "config" / "taxonomy.yaml")


def test_search_by_id_number_in_query(taxonomy: Taxonomy) -> None:
    hits = classify_request("/api/customers/search", f"q={ID}&page=2", taxonomy=taxonomy)
    assert [(h.category, h.level, h.where) for h in hits] == [("id_number", "L2", "query:q")]
    assert ID not in repr(hits)
    assert hits[0].to_audit() == {"category": "id_number", "level": "L2", "where": "query:q"}


def test_mobile_and_card_in_path_segments(taxonomy: Taxonomy) -> None:
    hits = classify_request(f"/api/cards/{CARD}/owner/13812345678", "", taxonomy=taxonomy)
    assert {(h.category, h.where) for h in hits} == {("bank_card", "path"), ("mobile", "path")}
    assert {h.level for h in hits} == {"L4", "L2"}


def test_percent_encoded_and_key_named_parameters(taxonomy: Taxonomy) -> None:
    hits = classify_request("/api/x", "mobile=138%2012345678&idNo=abc", taxonomy=taxonomy)
    assert {(h.category, h.where) for h in hits} == {
        ("mobile", "query:mobile"),
        ("id_number", "query:idNo"),
    }


def test_nothing_in_an_ordinary_request(taxonomy: Taxonomy) -> None:
    assert classify_request("/api/customers", "page=3&page_size=20", taxonomy=taxonomy) == []
    assert classify_request("/api/customers/C000123", "", taxonomy=taxonomy) == []


def test_without_taxonomy_level_is_empty_and_hits_are_deduplicated() -> None:
    hits = classify_request("/", "q=13812345678&q=13912345678")
    assert [(h.category, h.level, h.where) for h in hits] == [("mobile", "", "query:q")]
