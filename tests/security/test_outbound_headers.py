"""Identifiers in response headers (issue 12, item 4, headers), against real servers.

The hostile upstream puts customer identifiers in `Set-Cookie`, `Location`,
`Refresh`, `Link`, `Content-Disposition` (RFC 8187 and raw UTF-8 file names),
custom `X-*` headers (plain and spelled with character references), `Warning`
and a header *name*, on 200, 204, 302, 404 and HEAD responses; a raw socket
upstream sends an obs-folded header line. Every case reads the raw header bytes
the client receives and checks that no identifier is in them in clear, in any
spelling a client could decode.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.integration.gateway_harness import Gateway, raw_request
from tests.security.surface_upstream import (
    CUSTOMERS,
    DETECTABLE_KEYS,
    SurfaceUpstream,
    decoded_views,
    in_clear,
    protected_values,
    start_raw_upstream,
    start_surface_gateway,
    start_surface_upstream,
)

DETECTABLE = protected_values(DETECTABLE_KEYS)
CUSTOMER = CUSTOMERS[1]


@pytest.fixture
async def upstream() -> AsyncIterator[SurfaceUpstream]:
    up = await start_surface_upstream()
    yield up
    await up.stop()


@pytest.fixture
async def gw(tmp_path: Path, upstream: SurfaceUpstream) -> AsyncIterator[Gateway]:
    gateway = await start_surface_gateway(tmp_path, upstream.url)
    yield gateway
    await gateway.stop()


async def raw_get(gw: Gateway, path: str, method: str = "GET") -> tuple[int, str, list[str]]:
    """Status, the raw header block as the client's bytes (UTF-8 read), and header names."""
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
        "Authorization: Bearer test-partner-key\r\nConnection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(request)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head = raw.partition(b"\r\n\r\n")[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    names = [ln.partition(":")[0].strip().lower() for ln in lines[1:]]
    return int(lines[0].split()[1]), head, names


def no_leak(head: str) -> None:
    words = re.sub(
        r"=\?UTF-8\?B\?([^?]*)\?=",
        lambda m: base64.b64decode(m.group(1)).decode("utf-8", "replace"),
        head,
    )
    for view in [*decoded_views(head), unquote(unquote(head)), words]:
        assert in_clear(view, DETECTABLE) == [], head


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        (f"/api/headers/{CUSTOMER['id']}", "GET", 200),
        (f"/api/headers/{CUSTOMER['id']}?status=204", "GET", 204),
        (f"/api/headers/{CUSTOMER['id']}?status=302", "GET", 302),
        (f"/api/headers/{CUSTOMER['id']}?status=404", "GET", 404),
        (f"/api/headers/{CUSTOMER['id']}", "HEAD", 200),
    ],
)
async def test_identifiers_in_every_header_are_masked(
    gw: Gateway, upstream: SurfaceUpstream, path: str, method: str, status: int
) -> None:
    got, head, names = await raw_get(gw, path, method)
    assert got == status
    assert upstream.seen, "the CRM was asked"
    # the headers are still there, masked: the client's flows keep working
    for name in (
        "set-cookie",
        "location",
        "refresh",
        "link",
        "x-customer-mobile",
        "x-customer-card",
        "x-customer-note",
        "warning",
        "content-disposition",
    ):
        assert name in names, head
    assert names.count("set-cookie") == 2
    assert not any(n.startswith("x-id-") for n in names)  # a name holding an ID is dropped
    no_leak(head)


async def test_raw_utf8_file_name_is_scanned_as_text(gw: Gateway) -> None:
    status, head, _ = await raw_get(gw, f"/api/headers/{CUSTOMER['id']}/utf8")
    assert status == 200
    disposition = next(ln for ln in head.split("\r\n") if ln.lower().startswith("content-disp"))
    assert CUSTOMER["id_number"] not in disposition
    assert CUSTOMER["name"] in disposition  # read as UTF-8 (not mojibake), the name intact
    no_leak(head)


async def test_cookie_attributes_and_values_are_scanned_apart(gw: Gateway) -> None:
    _, head, _ = await raw_get(gw, f"/api/headers/{CUSTOMER['id']}")
    cookies = [ln for ln in head.split("\r\n") if ln.lower().startswith("set-cookie")]
    assert cookies[0].split(":", 1)[1].strip().startswith("last_viewed=")
    assert "Path=/api/customers/" in cookies[0]
    assert "HttpOnly" in cookies[1]
    no_leak("\n".join(cookies))


async def test_identifiers_in_headers_of_non_sensitive_routes_keep_flowing(
    tmp_path: Path, upstream: SurfaceUpstream
) -> None:
    """The control: with the route marked non-sensitive the same headers arrive
    unmasked, so the cases above can fail."""
    gateway = await start_surface_gateway(
        tmp_path, upstream.url, routes=[{"path": "/api/headers/*", "sensitive": False}]
    )
    try:
        _, head, _ = await raw_get(gateway, f"/api/headers/{CUSTOMER['id']}")
        assert CUSTOMER["mobile"] in head
    finally:
        await gateway.stop()


async def test_obs_folded_header_from_the_crm_is_unfolded_and_masked(tmp_path: Path) -> None:
    """aiohttp's client parser unfolds obs-fold (the continuation joins the value with
    a space) before the gateway sees it; the joined value is scanned whole and leaves
    as one line, so the folded identifier is masked and no fold reaches the client."""
    c = CUSTOMERS[2]
    body = b'{"ok": true}'
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"X-Contact: mobile\r\n " + c["mobile"].encode() + b"\r\n"
        b"X-Folded-Id: first line\r\n\t" + c["id_number"].encode() + b"\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    raw = await start_raw_upstream(response)
    gateway = await start_surface_gateway(tmp_path, raw.url)
    try:
        status, headers, _ = await raw_request(
            gateway.port,
            b"GET /api/headers/x HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer test-partner-key\r\nConnection: close\r\n\r\n",
        )
        assert status == 200
        values = dict(headers)
        assert "x-contact" in values and "x-folded-id" in values
        text = "\n".join(f"{k}: {v}" for k, v in headers)
        assert c["mobile"] not in text and c["id_number"] not in text
        assert "*" in values["x-contact"]  # masked, not dropped
    finally:
        await gateway.stop()
        await raw.stop()


@pytest.mark.parametrize("sensitive", [True, False], ids=["sensitive", "not_sensitive"])
async def test_front_server_directives_never_leave_the_gateway(
    tmp_path: Path, upstream: SurfaceUpstream, sensitive: bool
) -> None:
    """X-Accel-Redirect, X-Sendfile and the like make an nginx or Apache in front of the
    gateway serve a file the gateway never saw: dropped on every route."""
    routes = [] if sensitive else [{"path": "/api/front/*", "sensitive": False}]
    gateway = await start_surface_gateway(tmp_path, upstream.url, routes=routes)
    try:
        status, head, names = await raw_get(gateway, f"/api/front/{CUSTOMER['id']}")
    finally:
        await gateway.stop()
    assert status == 200, head
    assert upstream.seen
    for name in names:
        assert not name.startswith("x-accel"), head
        assert name not in ("x-sendfile", "x-lighttpd-send-file", "x-litespeed-location",
                            "x-reproxy-url"), head  # fmt: skip
    assert "/var/crm" not in head and "protected" not in head
