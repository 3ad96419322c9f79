"""relay: a client connection that closes mid-body ends the relay quietly, on both paths.

Deterministic counterpart of tests/integration/test_client_abort.py: the client's
transport is closed right before the relay gets the third CRM chunk, so the next
write meets a closing transport ("Cannot write to closing transport") every time,
before the event loop could deliver connection_lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.relay import RelayResult, pass_through, rewrite
from gateway.upstream import UpstreamResponse

CHUNK = b"y" * 4096
CHUNKS = 50


class Upper:
    """A BodyRewriter double: upper-cases what it is fed (never buffers)."""

    content_type = "text/plain"

    def feed(self, data: bytes) -> bytes:
        return data.upper()

    def finish(self) -> bytes:
        return b""


class ClientLeaves(UpstreamResponse):
    """The real CRM response; the client hangs up just before the third chunk is relayed."""

    request: web.Request

    async def chunks(self) -> AsyncIterator[bytes]:
        n = 0
        async for chunk in super().chunks():
            n += 1
            if n == 3:
                assert self.request.transport is not None
                self.request.transport.close()
            yield chunk


def crm_app(shared: dict[str, Any]) -> web.Application:
    async def body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        for _ in range(CHUNKS):
            await resp.write(CHUNK)
            await asyncio.sleep(0.005)  # separate chunks on the gateway side
        await resp.write_eof()
        shared["crm_finished"] = True
        return resp

    app = web.Application()
    app.router.add_get("/body", body)
    return app


def gateway_app(shared: dict[str, Any], crm_url: str, mode: str) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        async with aiohttp.ClientSession() as session:
            raw = await session.get(crm_url + "/body")
            up = ClientLeaves(raw.status, raw.reason or "", list(raw.headers.items()), raw)
            up.request = request
            headers = [("X-Request-Id", "req-1"), ("Content-Type", "text/plain")]
            if mode == "pass_through":
                result = await pass_through(request, up, headers, limit=0)
            else:
                result = await rewrite(request, up, headers, Upper(), report_only=False)
            shared["result"] = result
            shared["crm_closed"] = raw.closed
            return result.response

    app = web.Application()
    app.router.add_get("/", handler)
    return app


async def _fetch(url: str) -> bytes:
    got = b""
    try:
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            assert r.status == 200
            async for chunk in r.content.iter_any():
                got += chunk
    except aiohttp.ClientError:
        pass  # the response was cut short, as it should be
    return got


@pytest.mark.parametrize("mode", ["pass_through", "rewrite"])
async def test_closing_client_transport_stops_the_relay_with_one_warning(
    aiohttp_server: Any, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    shared: dict[str, Any] = {"crm_finished": False}
    crm = await aiohttp_server(crm_app(shared))
    gw = await aiohttp_server(gateway_app(shared, str(crm.make_url("")).rstrip("/"), mode))

    got = await _fetch(str(gw.make_url("/")))
    for _ in range(100):  # the handler returns once the relay has stopped
        if "result" in shared:
            break
        await asyncio.sleep(0.01)

    result: RelayResult = shared["result"]
    assert result.client_gone
    assert shared["crm_closed"], "the CRM response is closed, not read to the end"
    assert not shared["crm_finished"]
    assert len(got) < CHUNKS * len(CHUNK)
    assert result.bytes_out < CHUNKS * len(CHUNK)
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    [warning] = [r for r in caplog.records if r.name == "gateway.relay"]
    assert warning.levelno == logging.WARNING
    assert "req-1" in warning.getMessage()
    assert "Cannot write to closing transport" in warning.getMessage()
