"""Conditional requests are an oracle on masked values: on sensitive routes they stop here.

A CRM whose ETag is a digest of the unmasked record answers `If-None-Match:
<digest of a guess>` with 304 exactly when the guess is right, and a write with
`If-Match` with 412 when it is wrong. The caller never sees a validator on a
sensitive route (the gateway drops ETag and Last-Modified from rewritten bodies),
so any validator it sends is a guess: the gateway drops `If-None-Match`,
`If-Match`, `If-Modified-Since`, `If-Unmodified-Since` and `If-Range` before the
CRM. Checked at the CRM (it records what arrived) and by the answers: a right
guess and a wrong one get the same status. The control shows the CRM itself is
the oracle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import headers
from tests.security.conditional_upstream import (
    CUSTOMER,
    LAST_MODIFIED,
    ConditionalCrm,
    etag_of,
    start_conditional_crm,
)
from tests.security.records_harness import opa_process, records_gateway

pytestmark = pytest.mark.integration
PATH = f"/api/customers/{CUSTOMER['id']}"
RIGHT = etag_of(CUSTOMER)  # what a caller who guessed every masked value would send
WRONG = etag_of({**CUSTOMER, "risk_level": "C9"})


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("rego") / "open")


@pytest.fixture
async def crm() -> AsyncIterator[ConditionalCrm]:
    c = await start_conditional_crm()
    yield c
    await c.stop()


@pytest.fixture
async def gw(tmp_path: Path, crm: ConditionalCrm, opa: OpaProcess) -> AsyncIterator[Gateway]:
    g = await records_gateway(tmp_path, crm.url, opa)
    yield g
    await g.stop()


async def _status(base: str, method: str, extra: dict[str, str]) -> tuple[int, dict[str, str]]:
    data = b'{"notes": "x"}' if method == "PATCH" else None
    hdrs = {**headers("cs"), **extra}
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, base + PATH, headers=hdrs, data=data) as r,
    ):
        await r.read()
        return r.status, dict(r.headers)


async def test_the_crm_alone_answers_guesses(crm: ConditionalCrm) -> None:
    """The control: straight at the CRM, a right guess and a wrong one differ."""
    assert (await _status(crm.url, "GET", {"If-None-Match": RIGHT}))[0] == 304
    assert (await _status(crm.url, "GET", {"If-None-Match": WRONG}))[0] == 200
    assert (await _status(crm.url, "PATCH", {"If-Match": WRONG}))[0] == 412


@pytest.mark.parametrize(
    ("method", "name", "right", "wrong"),
    [
        ("GET", "If-None-Match", RIGHT, WRONG),
        ("GET", "If-None-Match", f"W/{RIGHT}", f"W/{WRONG}"),
        ("HEAD", "If-None-Match", RIGHT, WRONG),
        ("GET", "If-Modified-Since", LAST_MODIFIED, "Mon, 01 Jan 1990 00:00:00 GMT"),
        ("GET", "If-Range", RIGHT, WRONG),
        ("PATCH", "If-Match", RIGHT, WRONG),
        ("PATCH", "If-Unmodified-Since", LAST_MODIFIED, "Mon, 01 Jan 1990 00:00:00 GMT"),
    ],
)
async def test_guessed_validators_never_reach_the_crm(
    gw: Gateway, crm: ConditionalCrm, method: str, name: str, right: str, wrong: str
) -> None:
    got_right, hdrs = await _status(gw.url, method, {name: right})
    got_wrong, _ = await _status(gw.url, method, {name: wrong})
    assert got_right == got_wrong == 200, (method, name, got_right, got_wrong)
    assert crm.seen, "the CRM was not asked"
    assert all(seen == {} for seen in crm.seen), crm.seen
    assert "ETag" not in hdrs and "Last-Modified" not in hdrs


async def test_twin_spellings_of_validators_never_reach_the_crm(
    gw: Gateway, crm: ConditionalCrm
) -> None:
    """`If_None_Match` is the same CGI variable (HTTP_IF_NONE_MATCH) to a WSGI CRM."""
    async with aiohttp.ClientSession() as s:
        for name in ("If_None_Match", "if-none-match", "IF-NONE-MATCH"):
            async with s.get(gw.url + PATH, headers={**headers("cs"), name: RIGHT}) as r:
                assert r.status == 200, name
    assert all(seen == {} for seen in crm.seen), crm.seen
