"""Search, sort and filter criteria in write bodies: the same oracle as in the query string.

`?sort=-bank_card` and `?where=bank_card like '6222%'` were refused, but the same
criteria as the body of a POST (`{"sort": "-bank_card"}`, `{"where": ...}`,
`{"q": "6222"}`) went to the CRM, and the catalog's `search_body: true` (a POST
search whose body fields are criteria) was never read at all. Now a write body's
search, sort and filter-expression keys (and every field of a `search_body`
route) are judged by the search and filter guard, with its lookups and rate
limit: refused with 403 `protected_field_filter`, checked at the CRM.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import OpaProcess
from tests.integration.gateway_harness import Gateway, start_gateway
from tests.integration.policy_http_harness import write_staff_directory
from tests.security.test_writes import crm, gw, opa, send  # noqa: F401 - fixtures
from tests.security.write_upstream import ROOT, WriteCrm

pytestmark = pytest.mark.integration
J = [("Content-Type", "application/json")]

REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("sort by card", {"sort": "-bank_card"}),
    ("ordering by balance", {"ordering": "balance", "page": 1}),
    ("order_by list", {"order_by": ["name", "annual_income desc"]}),
    ("where expression", {"where": "bank_card like '6222%'"}),
    ("mongo filter", {"filter": {"balance": {"$gt": 1000000}}}),
    ("partial number search", {"q": "6222"}),
    ("graphql query", {"query": '{ customers(filter: {bankCard: "6222"}) { id name } }'}),
]


@pytest.mark.parametrize(("name", "body"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_criteria_in_a_write_body_are_checked(
    gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
    name: str,
    body: dict[str, Any],
) -> None:
    status, answer = await send(gw, "POST", "/api/customers", "cs", J, json.dumps(body).encode())
    assert status == 403, (name, answer)
    assert answer["error"] in ("protected_field_filter", "forbidden"), answer
    assert crm.received == {}


async def test_criteria_within_clearance_pass(gw: Gateway, crm: WriteCrm) -> None:  # noqa: F811
    for body in ({"sort": "-created_at", "notes": "x"}, {"notes": "按姓名排序"}):
        raw = json.dumps(body, ensure_ascii=False).encode()
        status, answer = await send(gw, "POST", "/api/customers", "cs", J, raw)
        assert status in (200, 403), answer
        assert answer.get("error") != "protected_field_filter", answer
        assert any(r.body == raw for rs in crm.received.values() for r in rs)


@pytest.fixture
async def search_gw(
    tmp_path: Path,
    crm: WriteCrm,  # noqa: F811
    opa: OpaProcess,  # noqa: F811
) -> AsyncIterator[Gateway]:
    """A catalog with a POST search whose body fields are criteria (`search_body`)."""
    doc = yaml.safe_load((ROOT / "config" / "crm" / "demo.yaml").read_text(encoding="utf-8"))
    doc["routes"].insert(0, {"name": "customer_post_search", "path": "/api/customers",
                             "methods": ["POST"], "search": {"q": ["mobile", "name"]},
                             "search_body": True})  # fmt: skip
    catalog = tmp_path / "search.yaml"
    catalog.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    g = await start_gateway(
        tmp_path,
        crm.url,
        **{
            "identity.directory": str(write_staff_directory(tmp_path / "staff.yaml")),
            "policy.engine": "external",
            "policy.url": opa.url,
            "classification.catalog": str(catalog),
        },
    )
    yield g
    await g.stop()


@pytest.mark.parametrize(
    "body",
    [{"bank_card": "6222600260001072444"}, {"balance__gte": 100000}, {"q": "6222"}],
    ids=["card", "balance range", "partial search"],
)
async def test_a_search_body_route_reads_every_field_as_a_criterion(
    search_gw: Gateway,
    crm: WriteCrm,  # noqa: F811
    body: dict[str, Any],
) -> None:
    raw = json.dumps(body).encode()
    status, answer = await send(search_gw, "POST", "/api/customers", "cs", J, raw)
    assert status == 403, answer
    assert answer["error"] == "protected_field_filter", answer
    assert crm.received == {}
