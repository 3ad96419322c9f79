"""The gateway as an HTTP/1.1 intermediary (RFC 9110/9112), over real sockets.

Upstream is a real aiohttp server on loopback that records what it received;
framing-sensitive checks use a raw socket client.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
from collections.abc import AsyncIterator
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

from tests.integration.gateway_harness import Gateway, raw_request, start_gateway

KEY = "test-sales-key"  # clearance L2, see gateway_harness.DIRECTORY
ADMIN = "test-admin-key"  # clearance L4


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.cancelled = asyncio.Event()


def upstream_app(rec: Recorder) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        rec.requests.append(
            {
                "method": request.method,
                "path": request.raw_path,
                "host": request.host,
                "headers": list(request.headers.items()),
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
        )
        resp = web.json_response(rec.requests[-1])
        resp.headers["Connection"] = "X-Upstream-Private"
        resp.headers["X-Upstream-Private"] = "secret-hop"
        return resp

    async def cookies(request: web.Request) -> web.Response:
        resp = web.Response(text="ok", content_type="text/plain")
        resp.headers.add("Set-Cookie", "a=1; Path=/")
        resp.headers.add("Set-Cookie", "b=2; Path=/")
        resp.headers.add("Cache-Control", "no-cache")
        resp.headers.add("Cache-Control", "private")
        return resp

    async def customer(request: web.Request) -> web.Response:
        doc = {
            "customer": {
                "id": "C1",
                "name": "张伟",
                "mobile": "13812345678",
                "id_number": "11010519491231002X",
            }
        }
        raw = orjson.dumps(doc)
        if request.query.get("gzip"):
            resp = web.Response(body=gzip.compress(raw), content_type="application/json")
            resp.headers["Content-Encoding"] = "gzip"
            return resp
        return web.Response(
            body=raw,
            content_type="application/json",
            headers={"ETag": '"v1"', "Accept-Ranges": "bytes"},
        )

    async def plain_gzip(request: web.Request) -> web.Response:
        resp = web.Response(body=gzip.compress(b"hello " * 100), content_type="text/plain")
        resp.headers["Content-Encoding"] = "gzip"
        return resp

    async def no_content(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def not_modified(request: web.Request) -> web.Response:
        return web.Response(status=304, headers={"ETag": '"v1"'})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def hang(request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            rec.cancelled.set()
            raise
        return web.Response(text="never")

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        for _ in range(64):
            await resp.write(b"x" * 65536)
        await resp.write_eof()
        return resp

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            await sock.send_str("echo:" + msg.data)
        return sock

    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/plain/echo", echo)
    app.router.add_route("*", "/api/echo", echo)
    app.router.add_get("/plain/cookies", cookies)
    app.router.add_get("/plain/gzip", plain_gzip)
    app.router.add_get("/api/customer", customer)
    app.router.add_get("/plain/204", no_content)
    app.router.add_get("/plain/304", not_modified)
    app.router.add_get("/api/slow", slow)
    app.router.add_get("/api/hang", hang)
    app.router.add_get("/plain/big", big)
    app.router.add_get("/api/big", big)
    app.router.add_get("/ws/echo", ws)
    app.router.add_get("/api/ws", ws)
    return app


@dataclass
class Upstream:
    """The recording CRM: its test server and what it received."""

    server: TestServer
    rec: Recorder

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def make_url(self, path: str) -> URL:
        return self.server.make_url(path)


@pytest.fixture
async def upstream(aiohttp_server: AiohttpServer) -> Upstream:
    rec = Recorder()
    return Upstream(await aiohttp_server(upstream_app(rec)), rec)


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_hop_by_hop_headers_are_removed_both_ways(gw: Gateway, upstream: Upstream) -> None:
    async with aiohttp.ClientSession() as s:
        hdrs = {
            **auth(),
            "Connection": "keep-alive, X-Client-Private",
            "X-Client-Private": "1",
            "TE": "trailers",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
            "Keep-Alive": "300",
        }
        async with s.get(gw.url + "/plain/echo", headers=hdrs) as r:
            assert r.status == 200
            assert "X-Upstream-Private" not in r.headers
            assert r.headers.getall("Via")[-1] == "1.1 crm-gateway"
    seen = {k.lower() for k, _ in upstream.rec.requests[-1]["headers"]}
    assert not seen & {"x-client-private", "te", "proxy-authorization", "keep-alive"}


async def test_forwarding_headers_set_and_client_copies_not_trusted(
    gw: Gateway, upstream: Upstream
) -> None:
    async with aiohttp.ClientSession() as s:
        hdrs = {
            **auth(),
            "X-Forwarded-For": "6.6.6.6",
            "Forwarded": "for=6.6.6.6",
            "X-Forwarded-Host": "evil.example",
            "X-Real-IP": "6.6.6.6",
        }
        async with s.get(gw.url + "/plain/echo", headers=hdrs) as r:
            assert r.status == 200
    got = {k.lower(): v for k, v in upstream.rec.requests[-1]["headers"]}
    assert got["x-forwarded-for"] == "127.0.0.1"
    assert got["x-forwarded-proto"] == "http"
    assert "evil.example" not in got.get("x-forwarded-host", "")
    assert "forwarded" not in got and "x-real-ip" not in got
    assert got["via"] == "1.1 crm-gateway"


async def test_absolute_form_and_host_header_cannot_redirect_upstream(
    gw: Gateway, upstream: Upstream
) -> None:
    status, _, _ = await raw_request(
        gw.port,
        f"GET http://attacker.example/plain/echo HTTP/1.1\r\nHost: attacker.example\r\n"
        f"Authorization: Bearer {KEY}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert status == 200
    rec = upstream.rec.requests[-1]
    assert rec["path"] == "/plain/echo"
    assert rec["host"] == f"127.0.0.1:{upstream.port}"


async def test_request_body_streams_upstream_intact(upstream: Upstream, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 40_000  # ~10 MB, chunked
    gw = await start_gateway(
        tmp_path, str(upstream.make_url("")).rstrip("/"), **{"limits.max_request_body": 20_000_000}
    )

    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(gw.url + "/plain/echo", data=gen(), headers=auth()) as r:
                body = await r.json()
            # Over the limit while streaming (no Content-Length): refused, nothing half-sent.
            async with s.post(
                gw.url + "/plain/echo", data=gen(), headers=auth(), params={"again": "1"}
            ) as r:
                assert r.status == 200
    finally:
        await gw.stop()
    assert body["length"] == len(payload)
    assert body["sha256"] == hashlib.sha256(payload).hexdigest()


async def test_chunked_request_over_limit_is_413(gw: Gateway, upstream: Upstream) -> None:
    async def gen() -> AsyncIterator[bytes]:
        for _ in range(30):
            yield b"y" * 100_000

    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + "/plain/echo", data=gen(), headers=auth()) as r:
            assert r.status == 413


async def test_oversized_request_refused_before_reaching_crm(
    gw: Gateway, upstream: Upstream
) -> None:
    before = len(upstream.rec.requests)
    async with aiohttp.ClientSession() as s:
        async with s.post(
            gw.url + "/plain/echo", data=b"x" * (gw.max_request_body + 1), headers=auth()
        ) as r:
            assert r.status == 413
            assert (await r.json())["error"] == "request_too_large"
        async with s.get(gw.url + "/plain/echo", headers=auth()) as r:
            assert r.status == 200  # still serving others
    assert len(upstream.rec.requests) == before + 1


async def test_duplicate_set_cookie_and_cache_control_preserved(gw: Gateway) -> None:
    status, headers, _ = await raw_request(
        gw.port,
        f"GET /plain/cookies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Connection: close\r\n\r\n".encode(),
    )
    assert status == 200
    assert [v for k, v in headers if k == "set-cookie"] == ["a=1; Path=/", "b=2; Path=/"]
    assert [v for k, v in headers if k == "cache-control"] == ["no-cache", "private"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("HEAD", "/plain/echo", 200),
        ("GET", "/plain/204", 204),
        ("GET", "/plain/304", 304),
        ("HEAD", "/api/customer", 200),
    ],
)
async def test_no_body_responses_carry_no_body(
    gw: Gateway, method: str, path: str, status: int
) -> None:
    got_status, headers, body = await raw_request(
        gw.port,
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Connection: close\r\n\r\n".encode(),
    )
    assert got_status == status
    assert body == b""
    names = [k for k, _ in headers]
    assert not ("content-length" in names and "transfer-encoding" in names)


async def test_content_length_and_chunked_never_both(gw: Gateway) -> None:
    for path in ("/plain/echo", "/api/customer", "/plain/big", "/api/echo"):
        _, headers, _ = await raw_request(
            gw.port,
            f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Connection: close\r\n\r\n".encode(),
        )
        names = [k for k, _ in headers]
        assert not ("content-length" in names and "transfer-encoding" in names), path


async def test_gzip_passthrough_keeps_encoding_and_bytes(gw: Gateway) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.get(gw.url + "/plain/gzip", headers=auth()) as r:
            raw = await r.read()
            assert r.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw) == b"hello " * 100


async def test_gzip_on_sensitive_route_is_decoded_masked_and_relabelled(gw: Gateway) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.get(gw.url + "/api/customer?gzip=1", headers=auth("test-partner-key")) as r:
            raw = await r.read()
            assert r.status == 200
            assert "Content-Encoding" not in r.headers
            assert r.headers["Cache-Control"] == "private, no-store"
            assert "ETag" not in r.headers
    doc = orjson.loads(raw)  # plain JSON, not gzip bytes
    assert "13812345678" not in raw.decode()
    assert doc["customer"]["id"] == "C1"


async def test_range_never_serves_raw_slices_on_sensitive_routes(
    gw: Gateway, upstream: Upstream
) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            gw.url + "/api/echo", headers={**auth(), "Range": "bytes=0-10", "If-Range": '"v1"'}
        ) as r,
    ):
        assert r.status == 200
    seen = {k.lower() for k, _ in upstream.rec.requests[-1]["headers"]}
    assert "range" not in seen and "if-range" not in seen


async def test_upstream_unreachable_is_502_json_without_trace(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    gw = await start_gateway(tmp_path, f"http://127.0.0.1:{dead}")
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(gw.url + "/plain/echo", headers=auth()) as r:
                body = await r.json()
                assert r.status == 502
                assert body["error"] == "upstream_unavailable"
                assert "Traceback" not in orjson.dumps(body).decode()
    finally:
        await gw.stop()


async def test_upstream_timeout_is_504(upstream: Upstream, tmp_path: Path) -> None:
    gw = await start_gateway(
        tmp_path, str(upstream.make_url("")).rstrip("/"), **{"upstream.read_timeout": 0.5}
    )
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(gw.url + "/api/slow", headers=auth()) as r:
                assert r.status == 504
                assert (await r.json())["error"] == "upstream_timeout"
    finally:
        await gw.stop()


async def test_slow_headers_are_cut_off_and_others_still_served(
    upstream: Upstream, tmp_path: Path
) -> None:
    gw = await start_gateway(
        tmp_path, str(upstream.make_url("")).rstrip("/"), **{"listen.header_timeout": 1.0}
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"GET /plain/echo HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
        await writer.drain()
        async with aiohttp.ClientSession() as s:
            async with s.get(gw.url + "/plain/echo", headers=auth()) as r:
                assert r.status == 200
        data = await asyncio.wait_for(reader.read(), timeout=5)  # closed by the gateway
        assert data == b""
        writer.close()
    finally:
        await gw.stop()


async def test_client_disconnect_cancels_upstream_call(gw: Gateway, upstream: Upstream) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(
        f"GET /api/hang HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode()
    )
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await asyncio.wait_for(upstream.rec.cancelled.wait(), timeout=5)


async def test_response_over_limit_on_rewritten_route_is_refused(
    upstream: Upstream, tmp_path: Path
) -> None:
    gw = await start_gateway(
        tmp_path, str(upstream.make_url("")).rstrip("/"), **{"limits.max_response_body": 100_000}
    )
    try:
        async with aiohttp.ClientSession() as s:
            try:
                async with s.get(gw.url + "/api/big", headers=auth()) as r:
                    body = await r.read()
                    # Either a clean 502 before any byte, or an aborted stream: never the full body.
                    assert r.status == 502 or len(body) < 64 * 65536
            except aiohttp.ClientPayloadError:
                pass
    finally:
        await gw.stop()


async def test_websocket_refused_by_default_allowed_per_route(gw: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await s.ws_connect(gw.url + "/api/ws", headers=auth())
        assert exc.value.status == 501
        async with s.ws_connect(gw.url + "/ws/echo", headers=auth()) as ws:
            await ws.send_str("hi")
            msg = await ws.receive(timeout=5)
            assert msg.data == "echo:hi"


async def test_admin_endpoints_answered_by_gateway_never_forwarded(
    gw: Gateway, upstream: Upstream
) -> None:
    before = len(upstream.rec.requests)
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.url + "/_gateway/health") as r:
            assert r.status == 200
            health = await r.json()
            assert health["status"] == "ok" and health["detectors"] == "compiled"
        async with s.get(gw.url + "/_gateway/ready") as r:
            assert (await r.json())["checks"]["upstream"] is True
        async with s.get(gw.url + "/_gateway/nope", headers=auth()) as r:
            assert r.status == 404
    status, _, _ = await raw_request(
        gw.port,
        f"GET /plain/../_gateway/secret HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Connection: close\r\n\r\n".encode(),
    )
    assert status == 404
    assert len(upstream.rec.requests) == before


async def test_unknown_caller_gets_401_and_crm_never_sees_it(
    gw: Gateway, upstream: Upstream
) -> None:
    before = len(upstream.rec.requests)
    async with aiohttp.ClientSession() as s:
        for hdrs in ({}, {"Authorization": "Bearer wrong"}, {"X-Remote-User": "u-admin"}):
            async with s.get(gw.url + "/plain/echo", headers=hdrs) as r:
                assert r.status == 401
                assert (await r.json())["error"] in ("unauthenticated", "invalid_credentials")
    assert len(upstream.rec.requests) == before


async def test_identity_headers_from_clients_are_stripped(gw: Gateway, upstream: Upstream) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            gw.url + "/plain/echo",
            headers={**auth(), "X-Remote-User": "u-admin", "X-Gateway-Clearance": "L5"},
        ) as r,
    ):
        assert r.status == 200
    seen = {k.lower() for k, _ in upstream.rec.requests[-1]["headers"]}
    assert "x-remote-user" not in seen and "x-gateway-clearance" not in seen
