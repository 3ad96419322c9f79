"""Links back to the CRM and bearer-token URLs (issue 12, item 5), against real servers.

The hostile upstream answers with absolute links to itself (DRF `next`/`previous`,
`Location`, `Content-Location`, `Link`, `Refresh`, URLs in notes, JSON-escaped
`http:\\/\\/` links) and with URLs that carry bearer secrets (BottleCRM-style
`/portal/invoice/<token>`, `?token=`, `&sig=`, `X-Amz-Signature=`). The client
must see only the gateway's public base, never the upstream's origin, and never
a token, whatever its clearance (credentials are L5: removed for everyone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from tests.integration.gateway_harness import Gateway
from tests.security.surface_upstream import (
    CUSTOMERS,
    LOW,
    TOKENS,
    SurfaceUpstream,
    decoded_views,
    in_clear,
    protected_values,
    start_surface_gateway,
    start_surface_upstream,
)

ADMIN = {"Authorization": "Bearer test-admin-key"}  # L4: still never sees a token


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


async def get(
    url: str, headers: dict[str, str], *, redirects: bool = False
) -> tuple[int, list[tuple[str, str]], str]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, headers=headers, allow_redirects=redirects) as r,
    ):
        return r.status, list(r.headers.items()), (await r.read()).decode("utf-8", "replace")


def upstream_named(upstream: SurfaceUpstream, text: str) -> list[str]:
    return [
        o
        for o in (f"127.0.0.1:{upstream.port}", f"localhost:{upstream.port}", "crm.internal")
        if any(o in view for view in decoded_views(text))
    ]


def tokens_in(text: str) -> list[str]:
    return [name for name, token in TOKENS.items() if any(token in v for v in decoded_views(text))]


def everything(headers: list[tuple[str, str]], body: str) -> str:
    return "\n".join(f"{k}: {v}" for k, v in headers) + "\n\n" + body


@pytest.mark.parametrize("caller", [LOW, ADMIN], ids=["L1", "L4"])
async def test_drf_page_links_point_at_the_gateway_and_tokens_are_gone(
    gw: Gateway, upstream: SurfaceUpstream, caller: dict[str, str]
) -> None:
    status, headers, body = await get(gw.url + "/api/invoices/?limit=3", caller)
    assert status == 200
    doc = orjson.loads(body)
    assert doc["next"].startswith(gw.url + "/api/invoices/?")
    text = everything(headers, body)
    assert upstream_named(upstream, text) == []
    assert tokens_in(text) == []
    link = dict(headers)["Link"]
    assert link.startswith(f"<{gw.url}/api/invoices/")
    for row in doc["results"]:
        assert row["share_link"].startswith(gw.url + "/portal/invoice/")
        assert row["escaped_link"].startswith(gw.url.replace("/", "\\/"))


async def test_pagination_followed_through_the_gateway(
    gw: Gateway, upstream: SurfaceUpstream
) -> None:
    url: str | None = gw.url + "/api/invoices/?limit=3"
    pages = 0
    seen_ids: list[str] = []
    while url:
        assert urlsplit(url).netloc == f"127.0.0.1:{gw.port}"
        status, headers, body = await get(url, LOW)
        assert status == 200
        assert upstream_named(upstream, everything(headers, body)) == []
        doc = orjson.loads(body)
        seen_ids += [r["id"] for r in doc["results"]]
        url = doc["next"]
        pages += 1
    assert pages == 2 and len(seen_ids) == len(CUSTOMERS)
    back = orjson.loads((await get(gw.url + "/api/invoices/?limit=3&offset=3", LOW))[2])
    assert back["previous"].startswith(gw.url + "/api/invoices/")


async def test_redirect_headers_name_the_gateway(gw: Gateway, upstream: SurfaceUpstream) -> None:
    status, headers, body = await get(gw.url + "/api/moved", LOW)
    assert status == 302
    values = dict(headers)
    assert values["Location"] == gw.url + "/api/customers/C000001"
    assert values["Content-Location"].startswith(gw.url)
    assert values["Link"].startswith(f"<{gw.url}/api/customers>")
    assert values["Refresh"] == f"0; url={gw.url}/api/customers"
    assert upstream_named(upstream, everything(headers, body)) == []


async def test_redirect_followed_lands_on_the_gateway(
    gw: Gateway, upstream: SurfaceUpstream
) -> None:
    status, _, body = await get(gw.url + "/api/moved", LOW, redirects=True)
    assert status == 200
    assert orjson.loads(body)["customer"]["id"] == "C000001"
    assert in_clear(body, protected_values()) == []


async def test_configured_public_url_and_aliases(tmp_path: Path, upstream: SurfaceUpstream) -> None:
    gateway = await start_surface_gateway(
        tmp_path,
        upstream.url,
        **{
            "listen.public_url": "https://crm.example.com",
            "upstream.aliases": ["http://crm.internal:8000"],
        },
    )
    try:
        for query in ("", "&origin=http://crm.internal:8000", "&origin=https://CRM.INTERNAL:8000"):
            status, headers, body = await get(gateway.url + "/api/invoices/?limit=3" + query, LOW)
            assert status == 200
            doc = orjson.loads(body)
            assert doc["next"].startswith("https://crm.example.com/api/invoices/")
            assert doc["results"][0]["share_link"].startswith("https://crm.example.com/portal/")
            assert upstream_named(upstream, everything(headers, body)) == []
            assert tokens_in(body) == []
    finally:
        await gateway.stop()


async def test_links_rewritten_on_non_sensitive_routes_too(
    tmp_path: Path, upstream: SurfaceUpstream
) -> None:
    gateway = await start_surface_gateway(
        tmp_path, upstream.url, routes=[{"path": "/api/moved", "sensitive": False}]
    )
    try:
        status, headers, _ = await get(gateway.url + "/api/moved", LOW)
        assert status == 302
        assert dict(headers)["Location"] == gateway.url + "/api/customers/C000001"
    finally:
        await gateway.stop()


async def test_an_untrusted_host_header_never_makes_an_absolute_link_elsewhere(
    gw: Gateway, upstream: SurfaceUpstream
) -> None:
    """A Host the gateway cannot use as a base (a path, a quote) gives relative links."""
    status, headers, body = await get(
        gw.url + "/api/moved", {**LOW, "Host": 'evil.example/"><script>'}
    )
    assert status == 302
    assert dict(headers)["Location"] == "/api/customers/C000001"
    assert upstream_named(upstream, everything(headers, body)) == []
