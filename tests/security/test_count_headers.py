"""Counts in response headers say how many records a list had before the record rules.

A list with its hidden records dropped and its envelope totals removed still
told the caller how many there were in `X-Total-Count: 60` (json-server, Rails
`api-pagination`, react-admin), `X-Pagination-Total-Entries`, `X-Total`,
`Content-Range: items 0-59/60` or a page count: subtract what came back and the
hidden customers are counted, per filter (`?grade=A`). Where the record rules
may drop records, headers that count them are dropped too; other headers stay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.conftest import OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.security.hostile_upstream import COUNT, CUSTOMERS, HIDDEN
from tests.security.records_harness import fetch, opa_process, records_gateway, serve

pytestmark = pytest.mark.integration

COUNTING = {
    "X-Total-Count": str(COUNT),
    "X-Total": str(COUNT),
    "X-Pagination-Total-Entries": str(COUNT),
    "X-Pagination-Total-Count": str(COUNT),
    "X-Result-Count": str(COUNT),
    "X-Records-Total": str(COUNT),
    "Total-Count": str(COUNT),
    "X-Hidden-Count": str(len(HIDDEN)),
    "X-Total-Pages": "3",
    "Content-Range": f"items 0-{COUNT - 1}/{COUNT}",
}
OTHER = {"X-Api-Version": "2", "X-Request-Started": "1700000000"}


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("rego") / "open")


@pytest.fixture
async def gw(tmp_path: Path, opa: OpaProcess) -> AsyncIterator[Gateway]:
    async def page(request: web.Request) -> web.Response:
        body = orjson.dumps({"results": CUSTOMERS})
        return web.Response(body=body, content_type="application/json",
                            headers={**COUNTING, **OTHER})  # fmt: skip

    app = web.Application()
    app.router.add_route("*", "/counted/customers", page)
    runner, url = await serve(app)
    g = await records_gateway(tmp_path, url, opa)
    yield g
    await g.stop()
    await runner.cleanup()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_headers_that_count_records_are_dropped(gw: Gateway, method: str) -> None:
    import aiohttp

    from tests.integration.policy_http_harness import headers

    async with (
        aiohttp.ClientSession() as s,
        s.request(method, gw.url + "/counted/customers", headers=headers("cs")) as r,
    ):
        raw = await r.read()
        got = {k.lower(): v for k, v in r.headers.items()}
    assert r.status == 200, raw[:300]
    for name in COUNTING:
        assert name.lower() not in got, name
    for name, value in OTHER.items():
        assert got.get(name.lower()) == value, name
    if method == "GET":
        rows = orjson.loads(raw)["results"]
        assert len(rows) == COUNT - len(HIDDEN)


async def test_the_body_is_what_the_count_would_reveal(gw: Gateway) -> None:
    """The control: records were dropped, so a count of the CRM's list tells the caller more."""
    reply = await fetch(gw, "/counted/customers")
    assert len(orjson.loads(reply.raw)["results"]) < COUNT
