"""config/crm/bottlecrm.yaml checked against a live, seeded BottleCRM (no gateway involved).

For every catalogued GET route we can reach with seeded ids: each `records`
prefix must exist in the real body, the records must be found, and every leaf
that holds a seeded customer value must be covered by a catalog rule that gives
it a customer category (or marks it as free text), never `internal`. If
BottleCRM moves a field or the catalog misses one, this fails before the
gateway's masking assertions would silently pass over it.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.catalog import Catalog, RouteSpec
from tests.e2e.conftest import ROOT, BottleCRM
from tests.e2e.gateway_bottlecrm import READ_ROUTES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

CATALOG = Catalog.load(ROOT / "config" / "crm" / "bottlecrm.yaml")
NOT_CUSTOMER = {"internal", "customer_no"}

# Catalogued GET routes that return JSON records (the exports are CSV), by URL.
URLS = {name: url for name, url in READ_ROUTES.items() if not name.endswith("_export")}


def _records_at(body: Any, prefix: str) -> list[Any] | None:
    """Values at an ijson-style prefix (`a.b.item`); None when the path does not exist."""
    nodes = [body]
    for part in prefix.split(".") if prefix else []:
        nxt: list[Any] = []
        for node in nodes:
            if part == "item":
                if not isinstance(node, list):
                    return None
                nxt.extend(node)
            else:
                if not isinstance(node, dict) or part not in node:
                    return None
                nxt.append(node[part])
        nodes = nxt
    return nodes


def _uncovered(
    route: RouteSpec, value: Any, key: str, path: str, pii: set[str], skip: frozenset[int]
) -> list[str]:
    """Key paths holding seeded PII that the catalog leaves unclassified or calls internal.

    Objects whose id() is in `skip` (the records, checked on their own) are not entered.
    """
    if id(value) in skip:
        return []
    rule = route.rule_for(key, path) if key else None
    holds_pii = any(p in str(value) for p in pii)
    if rule is not None and rule.category is not None:
        return [f"{path} ({rule.category})"] if holds_pii and rule.category in NOT_CUSTOMER else []
    if rule is not None and rule.text:
        return []
    if isinstance(value, dict):
        return [
            hit
            for k, v in value.items()
            for hit in _uncovered(route, v, k, f"{path}.{k}" if path else k, pii, skip)
        ]
    if isinstance(value, list):
        return [hit for v in value for hit in _uncovered(route, v, key, f"{path}.item", pii, skip)]
    return [f"{path} (no rule)"] if holds_pii else []


def _seeded_pii(seeded: dict[str, Any]) -> set[str]:
    values: set[str] = set()
    for row in seeded["contacts"] + seeded["leads"]:
        values |= {row["id_number"], row["mobile"], row["bank_card"], row["email"]}
        values |= {row["address_line"], row["name"], row["last_name"] + row["first_name"]}
    for row in seeded["accounts"]:
        values |= {row["email"], row["mobile"], row["contact_person"]}
    return values


@pytest.mark.parametrize("route_name", sorted(URLS))
def test_catalog_covers_live_body(bottlecrm: BottleCRM, route_name: str) -> None:
    seeded = bottlecrm.seeded
    ids = {
        "contact": seeded["contacts"][0]["id"],
        "lead": seeded["leads"][0]["id"],
        "account": seeded["accounts"][0]["id"],
        "opportunity": seeded["opportunities"][0]["id"],
    }
    url = URLS[route_name].format(**ids)
    match = CATALOG.match("GET", url.split("?")[0])
    assert match is not None
    assert match.route.name == route_name
    reply = bottlecrm.request("GET", url, token=bottlecrm.tokens["admin"])
    assert reply.status == 200
    body = reply.json()

    records: list[Any] = []
    for prefix in match.route.records:
        found = _records_at(body, prefix)
        assert found is not None, f"{route_name}: records prefix {prefix!r} not in the body"
        records.extend(found)
    assert records, f"{route_name}: no records under {match.route.records}"
    assert all(isinstance(r, dict) for r in records)

    pii = _seeded_pii(seeded)
    assert any(p in str(r) for r in records for p in pii), "records hold no seeded PII"
    none: frozenset[int] = frozenset()
    problems = [hit for r in records for hit in _uncovered(match.route, r, "", "", pii, none)]
    assert problems == [], f"{route_name}: seeded PII not given a customer category"
    # Outside the records too: field rules still apply there (without record rules).
    outside = _uncovered(match.route, body, "", "", pii, frozenset(id(r) for r in records))
    assert outside == [], f"{route_name}: seeded PII outside the records not classified"


def test_record_facts_resolve(bottlecrm: BottleCRM) -> None:
    """grade/tier/owner/consent paths in `record:` point at real values."""
    from gateway.core.catalog import record_facts

    route = CATALOG.route("contact_list")
    assert route is not None
    body = bottlecrm.request(
        "GET", "/api/contacts/?limit=100", token=bottlecrm.tokens["admin"]
    ).json()
    by_id = {c["id"]: c for c in bottlecrm.seeded["contacts"]}
    for row in body["results"]:
        facts = record_facts(row, route.facts)
        want = by_id[row["id"]]
        assert (facts.record_id, facts.grade, facts.tier) == (
            want["id"],
            want["grade"],
            want["tier"],
        )
        assert want["owner"] in facts.assignees
