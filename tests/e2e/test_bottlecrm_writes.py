"""Acceptance (issue 11 items 4-6): no masked or forbidden write reaches a real BottleCRM.

The low-clearance caller is BottleCRM's sales user (L1 at the gateway, the
managed engine: OPA with the repository's rego/). It writes to its own contact
in every body type a client can send (JSON, form, multipart, text/plain, no
Content-Type, JSON under other labels, GBK JSON), with masked placeholders in
every style and with fields above its write clearance. What BottleCRM holds is
then read directly as its org admin (not through the gateway): nothing changed.
The controls show the gateway does let a legitimate write through (a field
the caller may write, in the same body types BottleCRM parses), so the
"nothing changed" assertion can fail. Blind writes: BottleCRM's admin, made an
L1 sales employee at the gateway, may not change grade A/B or 流失 contacts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.e2e.conftest import BottleCRM
from tests.e2e.gateway_bottlecrm import start_bottlecrm_gateway, write_low_directory
from tests.integration.gateway_harness import Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

BOUNDARY = "----gw-bcrm-writes-0x9f"

# (field path, placeholder) in BottleCRM's contact shape; custom fields nest in JSON.
PLACEHOLDERS: list[tuple[str, str]] = [
    ("phone", "185＊＊＊＊0203"),
    ("phone", "139••••5678"),
    ("phone", "139●●●●5678"),
    ("phone", "139××××5678"),
    ("phone", "139xxxx5678"),
    ("phone", "139****5678"),
    ("phone", "139######78"),
    ("phone", "[已脱敏]"),
    ("email", "z***@example.com"),
    ("email", "z***@***.com"),
    ("email", "[REDACTED]"),
    ("email", "(masked)"),
    ("first_name", "某"),
    ("last_name", "徐某"),
    ("first_name", "**"),
    ("last_name", "<已隐藏>"),
    ("address_line", "浙江省杭州市西湖区****"),
    ("description", "客户手机139****5678，已回访"),
    ("custom_fields.id_number", "210102••••••••9473"),
    ("custom_fields.id_number", "110105********002X"),
    ("custom_fields.bank_card", "622202******1234"),
    ("custom_fields.bank_card", "pn_abcdefghijklmnop"),
    ("custom_fields.annual_income", "10–50万"),
]
# Fields above the sales user's write clearance (L1): real-looking new values.
ABOVE: list[tuple[str, str]] = [
    ("phone", "13800001111"),
    ("email", "new.owner@example.com"),
    ("first_name", "伟"),
    ("custom_fields.bank_card", "6222600260001072445"),
    ("custom_fields.id_number", "11010519491231002X"),
    ("custom_fields.annual_income", "990000"),
]


def _nested(path: str, value: str) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    return {head: _nested(rest, value)} if rest else {head: value}


def _flat_key(path: str) -> str:
    head, _, rest = path.partition(".")
    return f"{head}[{rest}]" if rest else head


def bodies(path: str, value: str) -> list[tuple[str, dict[str, str], bytes]]:
    """(body type, headers, body) for one field in every body type."""
    as_json = json.dumps(_nested(path, value), ensure_ascii=False)
    flat = [(_flat_key(path), value)]
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{_flat_key(path)}"\r\n\r\n'
        f"{value}\r\n--{BOUNDARY}--\r\n"
    )
    gbk = "".join(c if _gbk(c) else f"\\u{ord(c):04x}" for c in as_json).encode("gbk")
    return [
        ("json", {"Content-Type": "application/json"}, as_json.encode()),
        ("form", {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(flat).encode()),
        ("multipart", {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, part.encode()),
        ("text/plain json", {"Content-Type": "text/plain"}, as_json.encode()),
        ("text/plain form", {"Content-Type": "text/plain"}, urlencode(flat).encode()),
        ("no content type", {}, as_json.encode()),
        ("application/x-json", {"Content-Type": "application/x-json"}, as_json.encode()),
        ("vnd.api+json", {"Content-Type": "application/vnd.api+json"}, as_json.encode()),
        ("gbk json", {"Content-Type": "application/json; charset=gbk"}, gbk),
    ]


def _gbk(c: str) -> bool:
    try:
        c.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


def _snapshot(crm: BottleCRM, contact_id: str) -> dict[str, Any]:
    """The contact as BottleCRM's org admin reads it, straight from BottleCRM."""
    reply = crm.request("GET", f"/api/contacts/{contact_id}/", token=crm.tokens["admin"])
    assert reply.status == 200, reply.body[:300]
    obj: dict[str, Any] = reply.json()["contact_obj"]
    keep = ("first_name", "last_name", "phone", "email", "description", "custom_fields")
    out = {k: obj.get(k) for k in keep}
    out["address"] = reply.json().get("address_obj") or obj.get("address")
    return out


async def _send(
    session: aiohttp.ClientSession,
    gw: Gateway,
    method: str,
    path: str,
    token: str,
    hdrs: dict[str, str],
    body: bytes,
) -> tuple[int, str]:
    send = {"Authorization": f"Bearer {token}", "X-Purpose": "sales", **hdrs}
    async with session.request(method, gw.url + path, headers=send, data=body) as resp:
        return resp.status, (await resp.read()).decode("utf-8", "replace")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as s:
        yield s


def _own_contact(crm: BottleCRM) -> dict[str, Any]:
    for row in crm.seeded["contacts"]:
        if (
            row.get("assigned_to_sales")
            and row["grade"] == "C"
            and row["tier"] == "一般"
            and row["owner"] == "u-sales-01"
        ):
            return dict(row)
    raise AssertionError("the seed has no plain contact assigned to the sales user")


async def test_low_clearance_writes_of_every_body_type_never_reach_bottlecrm(
    tmp_path: Path, bottlecrm: BottleCRM, session: aiohttp.ClientSession
) -> None:
    gw = await start_bottlecrm_gateway(tmp_path, bottlecrm, engine="managed")
    token = bottlecrm.tokens["sales"]
    contact = _own_contact(bottlecrm)
    path = f"/api/contacts/{contact['id']}/"
    before = _snapshot(bottlecrm, contact["id"])
    refused: dict[str, int] = {}
    try:
        for cases, kind in ((PLACEHOLDERS, "placeholder"), (ABOVE, "above clearance")):
            for field, value in cases:
                for body_type, hdrs, body in bodies(field, value):
                    for method in ("PATCH", "PUT"):
                        status, text = await _send(session, gw, method, path, token, hdrs, body)
                        assert status in (403, 409, 415), (kind, field, value, body_type, text)
                        refused[str(status)] = refused.get(str(status), 0) + 1
    finally:
        await gw.stop()
    after = _snapshot(bottlecrm, contact["id"])
    assert after == before, "a refused write reached BottleCRM"
    text = json.dumps(after, ensure_ascii=False)
    for _, value in PLACEHOLDERS + ABOVE:
        if value not in json.dumps(before, ensure_ascii=False):
            assert value not in text
    print(f"\nrefused by status: {refused}")
    assert sum(refused.values()) == 2 * 9 * (len(PLACEHOLDERS) + len(ABOVE))


async def test_a_permitted_write_does_reach_bottlecrm(
    tmp_path: Path, bottlecrm: BottleCRM, session: aiohttp.ClientSession
) -> None:
    """The control: the same caller, a field it may write (an L1 tag of the record),
    reaches BottleCRM through the gateway, so the test above can fail."""
    gw = await start_bottlecrm_gateway(tmp_path, bottlecrm, engine="managed")
    contact = _own_contact(bottlecrm)
    path = f"/api/contacts/{contact['id']}/"
    try:
        for body_type, hdrs, body in bodies("city", "绍兴市")[:3]:  # JSON, form, multipart
            status, text = await _send(
                session, gw, "PATCH", path, bottlecrm.tokens["sales"], hdrs, body
            )
            assert status == 200, (body_type, text)
    finally:
        await gw.stop()
    reply = bottlecrm.request("GET", path, token=bottlecrm.tokens["admin"])
    assert "绍兴市" in reply.body.decode(), "the permitted write did not reach BottleCRM"


async def test_blind_writes_to_hidden_contacts_never_reach_bottlecrm(
    tmp_path: Path, bottlecrm: BottleCRM, session: aiohttp.ClientSession
) -> None:
    low = write_low_directory(tmp_path / "low.yaml")  # BottleCRM's admin, L1 sales here
    gw = await start_bottlecrm_gateway(
        tmp_path, bottlecrm, engine="managed", **{"identity.directory": str(low)}
    )
    hidden = [r for r in bottlecrm.seeded["contacts"] if r["grade"] in ("A", "B")]
    hidden += [r for r in bottlecrm.seeded["contacts"] if r["tier"] == "流失"][:2]
    assert hidden, "the seed has no grade A/B or 流失 contact"
    before = {r["id"]: _snapshot(bottlecrm, r["id"]) for r in hidden}
    try:
        for row in hidden:
            path = f"/api/contacts/{row['id']}/"
            for method, body in (("PATCH", b'{"city": "x"}'), ("PUT", b'{"city": "x"}'),
                                 ("DELETE", b"")):  # fmt: skip
                hdrs = {"Content-Type": "application/json"} if body else {}
                status, text = await _send(
                    session, gw, method, path, bottlecrm.tokens["admin"], hdrs, body
                )
                assert status == 403, (row["grade"], row["tier"], method, text)
                if method != "DELETE":  # sales may not delete at all: refused before
                    assert "record_not_visible" in text, text
        plain = next(r for r in bottlecrm.seeded["contacts"]
                     if r["grade"] == "C" and r["tier"] == "一般")  # fmt: skip
        status, text = await _send(
            session, gw, "PATCH", f"/api/contacts/{plain['id']}/", bottlecrm.tokens["admin"],
            {"Content-Type": "application/json"}, '{"city": "嘉兴市"}'.encode(),
        )  # fmt: skip
        assert status == 200, text  # the control: a visible contact takes the same write
    finally:
        await gw.stop()
    for cid, snap in before.items():
        assert _snapshot(bottlecrm, cid) == snap
