"""HTML renderings and escaped identifiers (issue 12, item 3), against real servers.

DRF's browsable API returns the same records embedded in HTML, where only the
free-text scan sees them; character references and JSON escapes hide numbers
from that scan. On sensitive routes the gateway asks the CRM for the declared
type only (format-override parameters dropped, Accept narrowed), refuses any
other type, and undoes escapes before every free-text scan. Each case checks
what the CRM was asked and that no protected value reaches the L1 caller in
clear, in any spelling a client could decode.
"""

from __future__ import annotations

import html.parser
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.integration.gateway_harness import Gateway, start_gateway
from tests.integration.policy_http_harness import DemoCrm, start_demo_crm
from tests.security.surface_upstream import (
    CUSTOMERS,
    DETECTABLE_KEYS,
    LOW,
    SurfaceUpstream,
    decoded_views,
    in_clear,
    protected_values,
    start_surface_gateway,
    start_surface_upstream,
)

PROTECTED = protected_values()
DETECTABLE = protected_values(DETECTABLE_KEYS)


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


async def get(gw: Gateway, path: str, **headers: str) -> tuple[int, dict[str, str], str]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url + path, headers={**LOW, **headers}) as r,
    ):
        return r.status, dict(r.headers), (await r.read()).decode("utf-8", "replace")


def no_leak(text: str, values: dict[str, str] = PROTECTED) -> None:
    for view in decoded_views(text):
        assert in_clear(view, values) == []


class _Checker(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.cells = 0
        self.bad_refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.cells += tag == "td"

    def handle_data(self, data: str) -> None:
        if "&#" in data:  # a reference the parser could not read is left as data
            self.bad_refs.append(data)


# --- negotiation: the CRM is asked for JSON, whatever the client asked ----------------


@pytest.mark.parametrize(
    "query",
    ["?format=api", "?FORMAT=api", "?%66ormat=api", "?_format=api&output=html&format=api"],
)
async def test_format_override_is_dropped_and_json_comes_back_masked(
    gw: Gateway, upstream: SurfaceUpstream, query: str
) -> None:
    status, headers, body = await get(gw, "/api/customers" + query)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    seen = upstream.seen[-1]
    assert seen.accept == "application/json"
    assert "format" not in seen.query.lower() and "output" not in seen.query
    assert "%66" not in seen.query
    assert len(orjson.loads(body)["results"]) == len(CUSTOMERS)
    no_leak(body)


@pytest.mark.parametrize(
    "accept",
    [
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",  # a browser
        "text/html, application/json;q=0.1",
        "*/*",
    ],
)
async def test_browser_accept_is_narrowed_to_the_declared_type(
    gw: Gateway, upstream: SurfaceUpstream, accept: str
) -> None:
    status, headers, body = await get(gw, f"/api/customers/{CUSTOMERS[0]['id']}", Accept=accept)
    assert status == 200
    assert upstream.seen[-1].accept == "application/json"
    assert headers["Content-Type"].startswith("application/json")
    assert "<pre" not in body
    no_leak(body)


async def test_html_only_accept_is_refused_before_the_crm(
    gw: Gateway, upstream: SurfaceUpstream
) -> None:
    status, _, body = await get(gw, "/api/customers", Accept="text/html")
    assert status == 406
    assert json.loads(body)["error"] == "not_acceptable"
    assert upstream.seen == []  # the CRM was never asked


async def test_undeclared_html_from_the_crm_is_refused_and_audited(
    gw: Gateway, upstream: SurfaceUpstream
) -> None:
    status, _, body = await get(gw, "/api/stubborn/customers?format=api")
    assert status == 502
    assert json.loads(body)["error"] == "undeclared_response_type"
    assert "text/html" in json.loads(body)["message"]
    assert upstream.seen[-1].accept == "application/json"
    no_leak(body)
    audit = Path(gw.settings.path(gw.settings.audit.file))
    for _ in range(100):
        if audit.exists() and b"undeclared_response_type" in audit.read_bytes():
            break
        await __import__("asyncio").sleep(0.05)
    assert b"undeclared_response_type" in audit.read_bytes()


async def test_no_content_type_is_undeclared(tmp_path: Path) -> None:
    from tests.security.surface_upstream import start_raw_upstream

    card = CUSTOMERS[0]["bank_card"]
    body = f"<html><body>{card}</body></html>".encode()
    raw = await start_raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    gateway = await start_surface_gateway(tmp_path, raw.url)
    try:
        status, _, text = await get(gateway, "/api/customers")
        assert status == 502
        assert json.loads(text)["error"] == "undeclared_response_type"
        assert card not in text
    finally:
        await gateway.stop()
        await raw.stop()


# --- escapes: what a route declares as HTML or script is scanned decoded ----------------


async def test_character_references_are_decoded_before_the_scan(gw: Gateway) -> None:
    status, headers, body = await get(gw, "/api/rendered/customers")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    no_leak(body, DETECTABLE)
    checker = _Checker()
    checker.feed(body)
    checker.close()
    assert checker.cells == 5 * len(CUSTOMERS)  # the page kept its structure
    assert checker.bad_refs == []
    assert "*" in html.unescape(body)  # masked, not removed


async def test_javascript_escapes_are_decoded_before_the_scan(gw: Gateway) -> None:
    status, _, body = await get(gw, "/api/script/customers")
    assert status == 200
    no_leak(body, DETECTABLE)
    for line in body.splitlines()[1:]:  # every string literal is still a valid one
        for literal in re.findall(r'"((?:[^"\\]|\\.)*)"', line):
            json.loads(f'"{literal}"')
    assert len(body.splitlines()) == len(CUSTOMERS) + 1


async def test_escaped_identifiers_inside_json_strings(gw: Gateway) -> None:
    status, _, body = await get(gw, "/api/escaped/customers")
    assert status == 200
    doc = orjson.loads(body)  # still valid JSON
    assert [r["id"] for r in doc["results"]] == [c["id"] for c in CUSTOMERS]
    no_leak(body, DETECTABLE)
    for row in doc["results"]:
        no_leak(json.dumps(row, ensure_ascii=False), DETECTABLE)


# --- the demo CRM -----------------------------------------------------------------


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[DemoCrm, Gateway]]:
    crm = await start_demo_crm(count=30)
    gateway = await start_gateway(tmp_path, crm.url)
    yield crm, gateway
    await gateway.stop()
    await crm.stop()


def demo_values(crm: DemoCrm) -> dict[str, str]:
    keys = ("name", "id_number", "mobile", "email", "bank_card", "address")
    return {f"{r['id']}.{k}": str(r[k]) for r in crm.records for k in keys if r.get(k)}


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/api/customers?format=api", {}),
        ("/api/customers", {"Accept": "text/html,*/*;q=0.8"}),
        ("/api/customers/C000003?format=api", {}),
        ("/api/customers/export.csv?format=api", {"Accept": "*/*"}),
    ],
)
async def test_demo_crm_browsable_requests_get_masked_structured_bodies(
    demo: tuple[DemoCrm, Gateway], path: str, extra: dict[str, str]
) -> None:
    crm, gateway = demo
    status, headers, body = await get(gateway, path, **extra)
    assert status == 200
    assert not headers["Content-Type"].startswith("text/html")
    for view in decoded_views(body):
        assert in_clear(view, demo_values(crm)) == []


async def test_demo_crm_csv_export_refuses_an_html_only_client(
    demo: tuple[DemoCrm, Gateway],
) -> None:
    _, gateway = demo
    status, _, body = await get(gateway, "/api/customers/export.csv", Accept="text/html")
    assert status == 406
    assert "text/csv" in json.loads(body)["message"]
