"""A body on a read is a filter nobody checked: GET, HEAD and OPTIONS carry none.

The search and filter guard reads the query string; the write guard reads the
bodies of writes. A `GET /api/customers` with `{"query": {"prefix": {"bank_card":
"6222"}}}` (Elasticsearch style), `{"filter": {"mobile": "139..."}}` or a
GraphQL document in the body of a GET went to the CRM unread, and a CRM that
honours it (Elasticsearch, Django REST Framework views reading `request.data`,
Spring `@RequestBody` on GET) answers "is this the number?" just as `?bank_card=`
would. On a sensitive route a read with a body is refused (400
`read_with_body`) before the CRM; an empty body (`Content-Length: 0`) is fine.
Checked at the CRM, which records every body it receives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import headers
from tests.security.hostile_upstream import VISIBLE
from tests.security.records_harness import opa_process, records_gateway, serve

pytestmark = pytest.mark.integration

BODIES = [
    b'{"query": {"prefix": {"bank_card": "6222"}}}',
    b'{"filter": {"mobile": "13912345678"}}',
    b'query { customers(bankCard: "6222*") { id } }',
    b"bank_card=6222600260001072444",
]


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("rego") / "open")


@pytest.fixture
async def crm() -> AsyncIterator[list[bytes]]:
    received: list[bytes] = []

    async def any_read(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(body=orjson.dumps({"results": VISIBLE[:2]}),
                            content_type="application/json")  # fmt: skip

    app = web.Application()
    app.router.add_route("*", "/api/customers", any_read)
    runner, url = await serve(app)
    received.append(url.encode())  # first item: where it listens
    yield received
    await runner.cleanup()


@pytest.fixture
async def gw(tmp_path: Path, crm: list[bytes], opa: OpaProcess) -> AsyncIterator[Gateway]:
    g = await records_gateway(tmp_path, crm[0].decode(), opa)
    yield g
    await g.stop()


async def _read(gw: Gateway, method: str, body: bytes | None, **extra: str) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method, gw.url + "/api/customers", data=body, headers={**headers("cs"), **extra}
        ) as r,  # fmt: skip
    ):
        return r.status, await r.read()


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
@pytest.mark.parametrize("body", BODIES, ids=["es-prefix", "filter", "graphql", "form"])
async def test_a_read_with_a_body_never_reaches_the_crm(
    gw: Gateway, crm: list[bytes], method: str, body: bytes
) -> None:
    status, raw = await _read(gw, method, body, Content_Type="application/json")
    assert status == 400, raw[:300]
    if method != "HEAD":
        assert orjson.loads(raw)["error"] == "read_with_body"
    assert crm[1:] == [], "the CRM received the read"


async def test_a_read_with_a_chunked_body_never_reaches_the_crm(
    gw: Gateway, crm: list[bytes]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield BODIES[0]

    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url + "/api/customers", data=chunks(), headers=headers("cs")) as r,
    ):
        assert r.status == 400
    assert crm[1:] == []


async def test_reads_without_a_body_pass(gw: Gateway, crm: list[bytes]) -> None:
    status, _ = await _read(gw, "GET", None)
    assert status == 200
    status, _ = await _read(gw, "GET", b"")  # Content-Length: 0
    assert status == 200
    assert crm[1:] == [b"", b""]
