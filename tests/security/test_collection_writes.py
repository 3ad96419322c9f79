"""Writes that name a record in the body, not in the path: upserts, bulk and batch bodies.

Blind writes were refused on record routes (`PATCH /api/customers/C102`), but a
CRM that upserts by the body's id (`POST /api/customers {"id": "C102", ...}`),
takes bulk bodies (`PATCH /api/customers [{"id": "C102", ...}]`), prefers the
body's id to the path's, or runs batch envelopes whose operations carry their
own paths (`{"operations": [{"method": "PATCH", "path": "/api/customers/C102"}]}`)
lets a caller change a record the record rules hide from them. Every record a
write names (the catalog's id key at the top of the body, in a top-level list or
under a one-key envelope, and record paths the body carries) is read through the
catalog's read route first and the write is refused with 403
`record_not_visible` if any is hidden; an id the CRM does not know is a create.
Checked at the CRM (no body naming a hidden record arrived).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.gateway_harness import Gateway
from tests.security.test_writes import HIDDEN, crm, gw, opa, send  # noqa: F401 - fixtures
from tests.security.write_upstream import WriteCrm

pytestmark = pytest.mark.integration
J = [("Content-Type", "application/json")]


def _bodies(cid: str) -> list[tuple[str, str, str, Any]]:
    return [
        ("upsert by id", "POST", "/api/customers", {"id": cid, "notes": "x"}),
        ("bulk create", "POST", "/api/customers", [{"id": "C100"}, {"id": cid, "notes": "x"}]),
        ("bulk patch", "PATCH", "/api/customers", [{"id": cid, "notes": "x"}]),
        ("bulk put", "PUT", "/api/customers", [{"id": cid, "notes": "x"}]),
        ("bulk delete", "DELETE", "/api/customers", [{"id": cid}]),
        ("enveloped", "POST", "/api/customers", {"customer": {"id": cid, "notes": "x"}}),
        ("enveloped list", "PATCH", "/api/customers", {"data": [{"id": cid, "notes": "x"}]}),
        ("body id over path id", "PATCH", "/api/customers/C100", {"id": cid, "notes": "x"}),
        ("batch operations", "POST", "/api/customers",
         {"operations": [{"method": "PATCH", "path": f"/api/customers/{cid}",
                          "body": {"notes": "x"}}]}),
        ("batch url", "POST", "/api/customers",
         {"requests": [{"method": "DELETE", "url": f"http://crm.internal/api/customers/{cid}"}]}),
    ]  # fmt: skip


CASES = [(cid, *b) for cid in HIDDEN for b in _bodies(cid)]


@pytest.mark.parametrize(
    ("cid", "name", "method", "path", "body"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
async def test_writes_naming_a_hidden_record_never_reach_the_crm(
    gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
    cid: str,
    name: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    status, answer = await send(gw, method, path, "cs", J, json.dumps(body).encode())
    assert status == 403, (cid, name, answer)
    assert answer["error"] == "record_not_visible", answer
    assert not crm.named(cid), (cid, name)


CLEAN: list[tuple[str, str, str, Any]] = [
    ("create without id", "POST", "/api/customers", {"grade": "C", "tier": "一般", "notes": "x"}),
    ("create with a new id", "POST", "/api/customers", {"id": "C900", "notes": "x"}),
    ("upsert a visible record", "POST", "/api/customers", {"id": "C100", "notes": "x"}),
    ("bulk of visible records", "PATCH", "/api/customers", [{"id": "C100"}, {"id": "C106"}]),
    ("nested ids are not records", "PATCH", "/api/customers/C100",
     {"notes": "x", "consent": {"id": "C102", "marketing": True}}),
    ("same id as the path", "PATCH", "/api/customers/C100", {"id": "C100", "notes": "x"}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "method", "path", "body"), CLEAN, ids=[c[0] for c in CLEAN])
async def test_writes_naming_visible_or_new_records_arrive(
    gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
    name: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    raw = json.dumps(body).encode()
    status, answer = await send(gw, method, path, "cs", J, raw)
    assert status == 200, (name, answer)
    assert any(r.body == raw for rs in crm.received.values() for r in rs)


async def test_too_many_named_records_are_refused(gw: Gateway, crm: WriteCrm) -> None:  # noqa: F811
    body = [{"id": f"C9{i:03d}"} for i in range(101)]
    status, answer = await send(gw, "PATCH", "/api/customers", "cs", J, json.dumps(body).encode())
    assert status == 403, answer
    assert answer["error"] == "record_not_visible"
    assert crm.received == {}
