"""Existence and facts oracles: a hidden record must answer exactly as a missing one.

Against the demo CRM, as customer service (`u-cs`, no grade A/B grant, no
流失/潜在 role): a hidden customer's detail page came back `200 {"customer":
null}` while a customer that does not exist came back `404`, so every id told
whether such a customer exists; and a write to a hidden customer was refused
with the rule that hid it ("grade A records need an approved grant"), which
tells the caller the customer's grade. Now, on record routes whose record rules
may drop records, a hidden record and a missing one get the same answer: `404
not_found` from the gateway for reads (the CRM's own 404 body replaced, so the
bodies match too) and one `record_not_visible` message for writes, the rule that
applied going to the audit event only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import DemoCrm, audit_events, headers, start_demo_crm
from tests.security.records_harness import opa_process, records_gateway

pytestmark = pytest.mark.integration
MISSING = "C999999"


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("rego") / "open")


@pytest.fixture
async def crm() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=60)
    yield c
    await c.stop()


@pytest.fixture
async def gw(tmp_path: Path, crm: DemoCrm, opa: OpaProcess) -> AsyncIterator[Gateway]:
    g = await records_gateway(tmp_path, crm.url, opa)
    yield g
    await g.stop()


def _hidden(crm: DemoCrm) -> list[dict[str, Any]]:
    """One customer of each kind the record rules hide from customer service."""
    kinds: list[Callable[[dict[str, Any]], bool]] = [
        lambda c: c["grade"] == "A",
        lambda c: c["grade"] == "B",
        lambda c: c["grade"] == "C" and c["tier"] == "流失",
        lambda c: c["grade"] == "C" and c["tier"] == "潜在",
    ]
    return [next(c for c in crm.records if kind(c)) for kind in kinds]


def _visible(crm: DemoCrm) -> dict[str, Any]:
    return next(c for c in crm.records if c["grade"] == "C" and c["tier"] == "一般")


async def _call(gw: Gateway, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    hdrs = headers("cs")
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, gw.url + path, headers=hdrs, data=body) as r,
    ):
        raw = await r.read()
        doc = orjson.loads(raw) if raw else None
        if isinstance(doc, dict):
            doc.pop("request_id", None)
        return r.status, doc


@pytest.mark.parametrize("suffix", ["", "/gzip"])
async def test_a_hidden_record_reads_like_a_missing_one(
    gw: Gateway, crm: DemoCrm, suffix: str
) -> None:
    missing = await _call(gw, "GET", f"/api/customers/{MISSING}{suffix}")
    assert missing[0] == 404
    for c in _hidden(crm):
        got = await _call(gw, "GET", f"/api/customers/{c['id']}{suffix}")
        assert got == missing, (c["grade"], c["tier"], got)


async def _head(gw: Gateway, path: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.head(gw.url + path, headers=headers("cs")) as r:
        kept = {k.lower(): v for k, v in r.headers.items()
                if k.lower() not in ("date", "x-request-id", "content-length")}  # fmt: skip
        return r.status, kept, await r.read()


async def test_head_of_a_hidden_record_is_like_head_of_a_missing_one(
    gw: Gateway, crm: DemoCrm
) -> None:
    """HEAD carries no body to drop the record from: it is read as GET, and answered so."""
    missing = await _head(gw, f"/api/customers/{MISSING}")
    assert missing[0] == 404
    for c in _hidden(crm):
        assert await _head(gw, f"/api/customers/{c['id']}") == missing, c["id"]
    status, kept, body = await _head(gw, f"/api/customers/{_visible(crm)['id']}")
    assert (status, body) == (200, b"")
    assert kept.get("cache-control") == "private, no-store"


async def test_a_visible_record_still_reads(gw: Gateway, crm: DemoCrm) -> None:
    c = _visible(crm)
    status, doc = await _call(gw, "GET", f"/api/customers/{c['id']}")
    assert status == 200
    assert doc["customer"]["id"] == c["id"]


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
async def test_a_write_to_a_hidden_record_answers_like_one_to_a_missing_one(
    gw: Gateway, crm: DemoCrm, method: str
) -> None:
    body = b'{"notes": "x"}' if method != "DELETE" else None
    missing = await _call(gw, method, f"/api/customers/{MISSING}", body)
    assert missing[0] == 403
    for c in _hidden(crm):
        got = await _call(gw, method, f"/api/customers/{c['id']}", body)
        assert got == missing, (c["grade"], c["tier"], got)
        text = orjson.dumps(got[1]).decode()
        assert c["grade"] + " " not in text and c["tier"] not in text and c["id"] not in text


async def test_the_rule_that_hid_the_record_is_audited(gw: Gateway, crm: DemoCrm) -> None:
    c = _hidden(crm)[0]
    await _call(gw, "PATCH", f"/api/customers/{c['id']}", b'{"notes": "x"}')
    await _call(gw, "GET", f"/api/customers/{c['id']}")
    wanted = ("record_not_visible", "grade A"), ("not_found", "hidden by the record rules")
    reasons: list[str] = []
    for _ in range(100):  # events are written asynchronously
        reasons = [str(e["unmapped"]["crm"]["decision"].get("reason", ""))
                   for e in audit_events(gw) if "crm" in e.get("unmapped", {})]  # fmt: skip
        if all(any(a in r and b in r for r in reasons) for a, b in wanted):
            break
        await asyncio.sleep(0.05)
    for a, b in wanted:
        assert any(a in r and b in r for r in reasons), (a, reasons)
