"""Identifiers above the write clearance inside free text and query languages.

The guard judged a string under an unknown key only when the whole string was one
identifier, so a card number inside a sentence, or a GraphQL mutation
(`{"query": "mutation { updateCustomer(id: \\"C100\\", bankCard: \\"6222...\\") }"}`),
an OData/SQL-ish expression or a JSON document carried as a string reached the
CRM from a caller who may not write cards. Every string a write carries is now
scanned with the detectors; a category the caller may not write is refused (403)
whether it stands alone, in prose, or in a query. Checked at the CRM.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.gateway_harness import Gateway
from tests.security.test_writes import crm, gw, opa, send  # noqa: F401 - fixtures
from tests.security.write_upstream import WriteCrm

pytestmark = pytest.mark.integration

CARD = "6222600260001072444"  # Luhn-valid

BODIES: list[tuple[str, dict[str, Any]]] = [
    ("graphql mutation", {"query": 'mutation { updateCustomer(id: "C100", bankCard: "'
                                   + CARD + '") { id } }'}),
    ("graphql variables as text", {"query": "mutation U($v: String) { u(v: $v) }",
                                   "variables": json.dumps({"card": CARD})}),
    ("odata expression", {"$patch": f"bank_card eq '{CARD}'"}),
    ("sql-ish", {"statement": f"UPDATE customers SET card='{CARD}' WHERE id='C100'"}),  # noqa: S608
    ("card in prose under an unknown key", {"memo": f"客户新卡号 {CARD}，请更新"}),
    ("card in notes", {"notes": f"客户新卡号 {CARD}"}),
    ("card spaced in a remark", {"remark": "卡号 6222 6002 6000 1072 444"}),
    ("nested string", {"payload": {"text": f"card={CARD}"}}),
    ("list of strings", {"lines": ["第一行", f"卡 {CARD}"]}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body"), BODIES, ids=[b[0] for b in BODIES])
async def test_identifiers_above_clearance_in_text_never_reach_the_crm(
    gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
    name: str,
    body: dict[str, Any],
) -> None:
    hdrs = [("Content-Type", "application/json")]
    raw = json.dumps(body, ensure_ascii=False).encode()
    for method, path in (("PATCH", "/api/customers/C100"), ("POST", "/api/customers")):
        status, answer = await send(gw, method, path, "cs", hdrs, raw)
        assert status == 403, (name, method, answer)
        assert answer["error"] == "forbidden", answer
    assert crm.received == {}


CLEAN: list[tuple[str, dict[str, Any]]] = [
    ("graphql within clearance", {"query": 'mutation { u(id: "C100", mobile: "13800001111") }'}),
    ("prose with a mobile", {"notes": "客户来电 13800001111，已回访"}),
    ("prose with dates and amounts", {"notes": "2024-05-17 到期 120000 元，订单 20240517001"}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body"), CLEAN, ids=[b[0] for b in CLEAN])
async def test_text_within_clearance_arrives(
    gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
    name: str,
    body: dict[str, Any],
) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode()
    hdrs = [("Content-Type", "application/json")]
    status, answer = await send(gw, "PATCH", "/api/customers/C100", "cs", hdrs, raw)
    assert status == 200, (name, answer)
    assert crm.last("C100").body == raw
