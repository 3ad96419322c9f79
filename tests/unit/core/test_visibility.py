"""Record rules before a write: the target record found in the read route's body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core.catalog import Catalog
from gateway.core.model import Decision
from gateway.core.visibility import needs_check, read_route, record_verdict, response_route, targets

ROOT = Path(__file__).resolve().parents[3]
CATALOG = Catalog.load(ROOT / "config" / "crm" / "demo.yaml")
BCRM = Catalog.load(ROOT / "config" / "crm" / "bottlecrm.yaml")
RULES = Decision.from_json(
    {
        "allow": True,
        "fields": {},
        "levels": {},
        "records": [
            {"when": {"grade": ["A", "B"]}, "record": "drop", "reason": "grade A/B need a grant"},
            {"when": {"tier": ["流失"]}, "record": "drop", "reason": "churned"},
            {"when": {"not_assigned": True}, "record": "drop", "reason": "assigned only"},
            {"when": {"tier": ["VIP"]}, "record": "show", "reason": "raise contact levels"},
        ],
    }
)


def _facts(path: str, doc: object, catalog: Catalog = CATALOG) -> list:  # type: ignore[type-arg]
    route = read_route(catalog, path)
    assert route is not None
    return targets(doc, route)


def test_record_rules_decide_visibility() -> None:
    def verdict(**rec: object) -> tuple[bool, str]:
        doc = {"customer": {"id": "C1", "owner": "me", "grade": "C", "tier": "一般", **rec}}
        v = record_verdict(RULES, _facts("/api/customers/C1", doc), "me")
        return v.visible, v.reason

    assert verdict() == (True, "")
    assert verdict(tier="VIP") == (True, "")  # a "show" rule hides nothing
    assert verdict(grade="B") == (False, "grade A/B need a grant")
    assert verdict(tier="流失") == (False, "churned")
    assert verdict(owner="someone else") == (False, "assigned only")


def test_no_record_found_is_not_visible() -> None:
    assert not record_verdict(RULES, _facts("/api/customers/C1", {"error": "x"}), "me").visible
    assert not record_verdict(RULES, [], "me").visible


def test_the_record_named_by_the_path_is_the_target() -> None:
    """BottleCRM's detail lists colleagues too: the write targets the path's id."""
    doc: dict[str, Any] = {
        "contact_obj": {"id": "k1", "custom_fields": {"grade": "C", "owner": "me"}},
        "colleagues": [{"id": "k2", "custom_fields": {"grade": "A", "owner": "me"}}],
    }
    facts = _facts("/api/contacts/k1/", doc, BCRM)
    assert [f.record_id for f in facts] == ["k1"]
    assert record_verdict(RULES, facts, "me").visible
    # k2's own page: its record is contact_obj; a colleague (side data) is no target
    page = {"contact_obj": doc["colleagues"][0], "colleagues": [doc["contact_obj"]]}
    facts = _facts("/api/contacts/k2/", page, BCRM)
    assert [f.record_id for f in facts] == ["k2"]
    assert not record_verdict(RULES, facts, "me").visible


def test_which_writes_are_checked() -> None:
    update = CATALOG.match("PATCH", "/api/customers/C1")
    assert needs_check("PATCH", "/api/customers/C1", CATALOG, update)
    assert needs_check("DELETE", "/api/customers/C1", CATALOG, None)
    assert needs_check("POST", "/api/contacts/k1/", BCRM, BCRM.match("POST", "/api/contacts/k1/"))
    assert not needs_check(
        "POST", "/api/customers", CATALOG, CATALOG.match("POST", "/api/customers")
    )
    assert not needs_check("GET", "/api/customers/C1", CATALOG, None)


def test_write_responses_use_the_read_routes_records() -> None:
    update = CATALOG.match("PATCH", "/api/customers/C1")
    chosen = response_route(CATALOG, "PATCH", "/api/customers/C1", update)
    assert chosen is not None and chosen.route.records == ("customer",)
    detail = CATALOG.match("GET", "/api/customers/C1")
    assert response_route(CATALOG, "GET", "/api/customers/C1", detail) is detail


def test_named_records_are_found_by_id_and_by_path() -> None:
    from gateway.core.catalog import Catalog
    from gateway.core.visibility import TooManyNamed, named_records

    cat = Catalog.load(ROOT / "config" / "crm" / "demo.yaml")
    assert named_records([{"id": "C102"}], "/api/customers", cat) == ["/api/customers/C102"]
    assert named_records([[{"id": "C100"}, {"id": 7}]], "/api/customers", cat) == [
        "/api/customers/C100",
        "/api/customers/7",
    ]
    assert named_records([{"data": [{"id": "C1"}]}], "/api/customers", cat) == ["/api/customers/C1"]
    assert named_records([{"id": "C100"}], "/api/customers/C100", cat) == []  # its own
    assert named_records([{"id": "C102"}], "/api/customers/C100", cat) == ["/api/customers/C102"]
    batch = {"ops": [{"path": "/api/customers/C104"}, {"url": "https://x/api/customers/C105?a=1"}]}
    assert named_records([batch], "/api/customers", cat) == [
        "/api/customers/C104",
        "/api/customers/C105",
    ]
    # ids deeper than an envelope are not records; paths that are not record routes are text
    deep = {"notes": "x", "consent": {"id": "C102"}, "link": "/api/health"}
    assert named_records([deep], "/api/customers/C100", cat) == []
    with pytest.raises(TooManyNamed):
        named_records([[{"id": f"C{i}"} for i in range(101)]], "/api/customers", cat)


def test_named_records_keep_a_trailing_slash_style() -> None:
    from gateway.core.visibility import named_records

    found = named_records([{"id": "b7f0"}], "/api/contacts/a1c2/", BCRM)
    assert found == ["/api/contacts/b7f0/"]
    assert read_route(BCRM, found[0]) is not None
