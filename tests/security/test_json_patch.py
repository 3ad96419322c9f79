"""JSON Patch (RFC 6902) writes: the field a write changes is in `path`, not in a key.

`[{"op": "replace", "path": "/bank_card", "value": "..."}]` names the field in a
string, so a guard that judges keys sees `op`, `path` and `value` only. Every
operation is read as the write it is, under any label (`application/json-patch+json`,
plain JSON, no label): `add`/`replace` write `value` to `path`, `remove` writes
`path`, `move` writes both `from` and `path`, `copy` writes `path`; and an
operation that *reads* a field (`test` compares it with a guess and fails the
whole patch if wrong, `copy`/`move` carry its value into another field the caller
may see) needs that field in clear. Checked at the CRM (write_upstream records
what arrived); the clean controls show the same shapes arrive when allowed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.gateway_harness import Gateway
from tests.security.test_writes import crm, gw, opa, send  # noqa: F401 - fixtures
from tests.security.write_upstream import BASE, WriteCrm

pytestmark = pytest.mark.integration

CARD = "6222600260001072445"
LABELS = ["application/json-patch+json", "application/json", None]


def _patch(ops: list[dict[str, Any]], label: str | None) -> tuple[list[tuple[str, str]], bytes]:
    return ([("Content-Type", label)] if label else []), json.dumps(ops).encode()


# (operations, the error code the gateway answers with)
REFUSED: list[tuple[str, list[dict[str, Any]], str]] = [
    ("replace card", [{"op": "replace", "path": "/bank_card", "value": CARD}], "forbidden"),
    ("add card", [{"op": "add", "path": "/bank_card", "value": CARD}], "forbidden"),
    ("add nested card", [{"op": "add", "path": "/consent/bank_card", "value": CARD}],
     "forbidden"),
    ("escaped pointer", [{"op": "replace", "path": "/bank~1card~0", "value": CARD}],
     "forbidden"),  # `bank/card~` is no catalogued key, but the card is a card
    ("replace income", [{"op": "replace", "path": "/annual_income", "value": 1}], "forbidden"),
    ("pointer without slash", [{"op": "replace", "path": "balance", "value": 1}], "forbidden"),
    ("remove card", [{"op": "remove", "path": "/bank_card"}], "forbidden"),
    ("move onto card", [{"op": "move", "from": "/notes", "path": "/bank_card"}], "forbidden"),
    ("copy onto password", [{"op": "copy", "from": "/notes", "path": "/query_password"}],
     "forbidden"),
    ("placeholder", [{"op": "replace", "path": "/mobile", "value": "139****5678"}],
     "masked_value_write"),
    ("placeholder in list", [{"op": "add", "path": "/holdings/-", "value": {"name": "张*"}},
                             {"op": "replace", "path": "/name", "value": "徐某"}],
     "masked_value_write"),
    ("test password", [{"op": "test", "path": "/query_password", "value": "864200"},
                       {"op": "replace", "path": "/notes", "value": "x"}],
     "protected_field_patch"),
    ("test risk level", [{"op": "test", "path": "/risk_level", "value": "C3"}],
     "protected_field_patch"),
    ("copy card into notes", [{"op": "copy", "from": "/bank_card", "path": "/notes"}],
     "protected_field_patch"),
    ("move password into notes",
     [{"op": "move", "from": "/query_password", "path": "/notes"}], "protected_field_patch"),
    ("copy balance nested", [{"op": "copy", "from": "/balance", "path": "/consent/x"}],
     "protected_field_patch"),
]  # fmt: skip


@pytest.mark.parametrize("label", LABELS, ids=lambda v: v or "unlabelled")
@pytest.mark.parametrize(("name", "ops", "code"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_patch_operations_above_clearance_never_reach_the_crm(
    gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
    name: str,
    ops: list[dict[str, Any]],
    code: str,
    label: str | None,
) -> None:
    hdrs, body = _patch(ops, label)
    status, answer = await send(gw, "PATCH", "/api/customers/C100", "cs", hdrs, body)
    assert status in (403, 409), (name, answer)
    assert answer["error"] == code, (name, answer)
    assert crm.count("C100") == 0, name
    assert crm.records["C100"]["bank_card"] == BASE["bank_card"]


ALLOWED: list[tuple[str, list[dict[str, Any]]]] = [
    ("replace mobile", [{"op": "replace", "path": "/mobile", "value": "13800001111"}]),
    ("test and replace within clearance",
     [{"op": "test", "path": "/gender", "value": BASE["gender"]},
      {"op": "replace", "path": "/notes", "value": "已回访"}]),
    ("copy within clearance", [{"op": "copy", "from": "/employer", "path": "/notes"}]),
    ("remove notes", [{"op": "remove", "path": "/notes"}]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "ops"), ALLOWED, ids=[a[0] for a in ALLOWED])
async def test_patch_operations_within_clearance_arrive_unchanged(
    gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
    name: str,
    ops: list[dict[str, Any]],
) -> None:
    hdrs, body = _patch(ops, "application/json-patch+json")
    status, answer = await send(gw, "PATCH", "/api/customers/C100", "cs", hdrs, body)
    assert status == 200, (name, answer)
    assert crm.count("C100") == 1
    assert crm.last("C100").body == body


async def test_a_patch_to_a_hidden_record_is_refused(gw: Gateway, crm: WriteCrm) -> None:  # noqa: F811
    hdrs, body = _patch([{"op": "replace", "path": "/notes", "value": "x"}], None)
    status, answer = await send(gw, "PATCH", "/api/customers/C102", "cs", hdrs, body)
    assert status == 403
    assert answer["error"] == "record_not_visible"
    assert crm.count("C102") == 0


async def test_operation_lists_that_are_not_patches_are_still_records(
    gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
) -> None:
    """A list of objects with an `op` key but no `path` is an ordinary body: judged by keys."""
    hdrs, body = _patch([{"op": "note", "bank_card": CARD}], None)
    status, answer = await send(gw, "PATCH", "/api/customers/C100", "cs", hdrs, body)
    assert status == 403, answer
    assert answer["error"] == "forbidden"
    assert crm.count("C100") == 0


@pytest.mark.parametrize(
    "body",
    [{"consent": {"bank_card": CARD}}, {"consent": {"marketing": True, "balance": 1}},
     {"consent": [{"mobile": "139****5678"}]}],
    ids=["card", "balance", "placeholder"],
)  # fmt: skip
async def test_protected_keys_under_a_classified_object_are_judged_too(
    gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
    body: dict[str, Any],
) -> None:
    """`consent` is a category of its own; what sits under it is still written."""
    hdrs = [("Content-Type", "application/merge-patch+json")]
    status, answer = await send(gw, "PATCH", "/api/customers/C100", "cs", hdrs,
                                json.dumps(body).encode())  # fmt: skip
    assert status in (403, 409), answer
    assert crm.count("C100") == 0
