"""A client that hangs up mid-response is a normal event, not a gateway fault.

A real socket client reads the start of a long streamed response and resets the
connection. The gateway must stop relaying, close the CRM response, log no
traceback, record the access, and go on serving the next request.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer
from yarl import URL

from tests.integration.gateway_harness import Gateway

KEY = "test-sales-key"  # clearance L2, see gateway_harness.DIRECTORY
BLOCK = b"x" * 65536
BLOCKS = 512  # 32 MB: far more than the socket buffers and what the client reads
ATTEMPTS = 3


class Upstream:
    def __init__(self) -> None:
        self.dropped = asyncio.Event()  # the gateway closed the CRM connection mid-body
        self.finished = False


def upstream_app(state: Upstream) -> web.Application:
    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "application/octet-stream"
        await resp.prepare(request)
        try:
            for _ in range(BLOCKS):
                await resp.write(BLOCK)
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            state.dropped.set()
            raise
        state.finished = True
        return resp

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/plain/stream", stream)
    app.router.add_get("/plain/ok", ok)
    return app


@dataclass
class Served:
    """The test CRM's server (the `gw` fixture reads its URL) and its state."""

    server: TestServer
    state: Upstream

    def make_url(self, path: str) -> URL:
        return self.server.make_url(path)


@pytest.fixture
async def upstream(aiohttp_server: AiohttpServer) -> Served:
    state = Upstream()
    return Served(await aiohttp_server(upstream_app(state)), state)


async def _read_then_reset(port: int, path: str, want: int) -> bytes:
    """GET `path`, read `want` bytes of the response, then reset (RST) the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode())
    await writer.drain()
    seen = b""
    while len(seen) < want:
        chunk = await asyncio.wait_for(reader.read(65536), timeout=10)
        assert chunk, f"the gateway closed the response after {len(seen)} bytes"
        seen += chunk
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    return seen


def _tracebacks(records: list[logging.LogRecord]) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in records if r.exc_info or r.levelno >= 40]


def _audit_events(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [orjson.loads(line) for line in lines if line.strip()]


async def test_client_reset_mid_stream_is_a_warning_and_gateway_keeps_serving(
    gw: Gateway, upstream: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(ATTEMPTS):
        upstream.state.dropped.clear()
        head = await _read_then_reset(gw.port, "/plain/stream", want=200_000)
        assert head.startswith(b"HTTP/1.1 200")
        # the gateway stopped relaying and closed the CRM response
        await asyncio.wait_for(upstream.state.dropped.wait(), timeout=10)
        async with aiohttp.ClientSession() as s:
            async with s.get(gw.url + "/plain/ok", headers={"Authorization": f"Bearer {KEY}"}) as r:
                assert r.status == 200
                assert await r.text() == "ok"
    assert not upstream.state.finished

    assert _tracebacks(caplog.records) == []
    warned = [r for r in caplog.records if r.name == "gateway.relay"]
    assert warned, "the write to the closing transport was not reached"
    assert all("client disconnected mid-response" in r.getMessage() for r in warned)

    await gw.stop()  # flushes the audit file
    events = _audit_events(Path(gw.settings.audit.file))
    aborted = [e for e in events if b"/plain/stream" in orjson.dumps(e)]
    assert len(aborted) == ATTEMPTS, "every access the client cut short is still audited"
    reasons = [e["unmapped"]["crm"]["decision"]["reason"] for e in aborted]
    assert all("client_disconnected" in str(r) for r in reasons), reasons
