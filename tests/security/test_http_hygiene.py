"""Issue 11, smaller items: TRACE/TRACK/CONNECT refused, no invented request headers,
no `Server: Python/aiohttp` on any answer, 414/431 for oversized requests.

Raw sockets on both sides: the client sends exactly the bytes written here (a
client library would add Accept, User-Agent, Accept-Encoding itself) and the
lenient CRM records exactly the headers the gateway sent.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import ConfigError
from gateway.settings import load_settings
from tests.integration.gateway_harness import Gateway
from tests.security.inbound_gateway import (
    StartGateway,
    api_key,
    audited_reason,
    crm,
    event_for,
    gw,
    make_gateway,
    opa,
)
from tests.security.lenient_upstream import LenientCrm, Seen, plain, send_raw

__all__ = ["crm", "gw", "make_gateway", "opa"]


def _last(crm: LenientCrm, before: int) -> Seen:
    seen = crm.seen[before:]
    assert len(seen) == 1, [s.target for s in seen]
    return seen[0]


def _json_error(status: int, headers: dict[str, str], body: bytes, code: str) -> dict[str, str]:
    assert headers.get("content-type", "").startswith("application/json"), (status, body)
    doc: dict[str, str] = orjson.loads(body)
    assert doc["error"] == code, doc
    assert doc["request_id"] and headers.get("x-request-id") == doc["request_id"]
    assert headers.get("server") == "crm-gateway"
    return doc


# --- TRACE, TRACK, CONNECT ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "TRACK", "trace", "Trace"])
@pytest.mark.parametrize("target", ["/api/customers/C000011", "/api/health", "/static/app.js"])
async def test_trace_and_track_are_refused_before_the_crm(
    gw: Gateway, crm: LenientCrm, method: str, target: str
) -> None:
    before = len(crm.seen)
    status, headers, body = await send_raw(
        gw.port, method, target, {**api_key("sales"), "Cookie": "session=s3cret"}
    )
    assert status == 405, body  # "trace": old servers match methods in any case
    _json_error(status, headers, body, "method_not_allowed")
    assert "TRACE" not in headers.get("allow", "") and "GET" in headers.get("allow", "")
    event = await event_for(gw, headers["x-request-id"])
    assert "method_not_allowed" in audited_reason(event)
    assert b"s3cret" not in body and key_not_in(body)
    assert crm.seen[before:] == []


def key_not_in(body: bytes) -> bool:
    return api_key("sales")["X-API-Key"].encode() not in body


async def test_connect_is_refused(gw: Gateway, crm: LenientCrm) -> None:
    before = len(crm.seen)
    status, headers, body = await send_raw(gw.port, "CONNECT", "127.0.0.1:22", api_key("sales"))
    assert status in (400, 405), body
    _json_error(status, headers, body, "method_not_allowed" if status == 405 else "bad_request")
    assert crm.seen[before:] == []


async def test_refused_methods_are_configurable(
    make_gateway: StartGateway, crm: LenientCrm
) -> None:
    gw = await make_gateway(**{"guard.refused_methods": ["TRACK"]})
    before = len(crm.seen)
    status, _, body = await send_raw(gw.port, "TRACE", "/static/app.js", api_key("sales"))
    assert status == 200, body  # let through on purpose: the CRM reflects it
    assert _last(crm, before).method == "TRACE"
    assert key_not_in(body)  # the gateway's own credential never reached the CRM
    status, _, _ = await send_raw(gw.port, "TRACK", "/static/app.js", api_key("sales"))
    assert status == 405


def test_refused_methods_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"CRM_GATEWAY__GUARD__REFUSED_METHODS": "['TRA CE']"})
    assert any(p.startswith("guard.refused_methods") for p in info.value.problems)


# --- no invented request headers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "who"),
    [("/api/customers/C000011", "sales"), ("/static/app.js", "sales"), ("/api/health", None)],
)
async def test_the_gateway_invents_no_request_headers(
    gw: Gateway, crm: LenientCrm, target: str, who: str | None
) -> None:
    before = len(crm.seen)
    await send_raw(gw.port, "GET", target, api_key(who) if who else {})
    seen = _last(crm, before)
    names = {n.lower() for n in seen.header_names()}
    assert "user-agent" not in names
    assert "content-type" not in names
    if target.startswith("/api/customers"):
        # sensitive: the gateway asks for what it decodes, the types the catalog
        # declares for the route (never an invented */*) and no compression
        assert [v for n, v in seen.headers if n.lower() == "accept"] == ["application/json"]
        assert [v for n, v in seen.headers if n.lower() == "accept-encoding"] == ["identity"]
    else:
        assert "accept" not in names
        assert "accept-encoding" not in names


async def test_client_accept_and_user_agent_pass_unchanged(gw: Gateway, crm: LenientCrm) -> None:
    before = len(crm.seen)
    await send_raw(
        gw.port,
        "GET",
        f"/api/customers/{plain(crm)['id']}",
        {**api_key("sales"), "Accept": "application/json", "User-Agent": "LegacyClient/1.0"},
    )
    seen = _last(crm, before)
    assert [v for n, v in seen.headers if n.lower() == "accept"] == ["application/json"]
    assert [v for n, v in seen.headers if n.lower() == "user-agent"] == ["LegacyClient/1.0"]


async def test_a_write_without_content_type_gets_none_invented(
    gw: Gateway, crm: LenientCrm
) -> None:
    before = len(crm.seen)
    await send_raw(gw.port, "PUT", "/static/upload.txt", api_key("sales"), body=b"hello")
    names = {n.lower() for n in _last(crm, before).header_names()}
    assert "content-type" not in names and "accept" not in names


# --- Server header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "who", "status"),
    [
        ("GET", "/api/customers/C000011", None, 401),
        ("GET", "/api/customers/C000011", "sales", 200),
        ("GET", "/static/%c0%ae%c0%ae/x", "sales", 400),
        ("GET", "/api/health", None, 200),
        ("GET", "/_gateway/nothing-here", None, 404),
        ("TRACE", "/", None, 405),
        ("GET", "/api/customers;x/1", "sales", 400),
    ],
)
async def test_no_answer_names_python_or_aiohttp(
    gw: Gateway, method: str, target: str, who: str | None, status: int
) -> None:
    got, headers, body = await send_raw(gw.port, method, target, api_key(who) if who else {})
    assert got == status, body
    assert headers.get("server") == "crm-gateway"
    assert "python" not in str(headers).lower() and "aiohttp" not in str(headers).lower()
    assert b"aiohttp" not in body and b"Python/" not in body


async def test_malformed_requests_get_a_json_error_without_server_software(
    gw: Gateway, crm: LenientCrm
) -> None:
    before = len(crm.seen)
    status, headers, body = await send_raw(gw.port, "GET", "/static/\udcef\udcbc\udc8e", {})
    assert status == 400
    _json_error(status, headers, body, "bad_request")
    assert crm.seen[before:] == []


# --- oversized requests: 414 and 431 -----------------------------------------------------


async def test_an_oversized_uri_gets_414(gw: Gateway, crm: LenientCrm) -> None:
    limit = gw.settings.listen.max_line_size
    before = len(crm.seen)
    for target in ("/api/customers/" + "a" * limit, "/static/x?q=" + "b" * limit):
        status, headers, body = await send_raw(gw.port, "GET", target, api_key("sales"))
        assert status == 414, body
        _json_error(status, headers, body, "uri_too_long")
        event = await event_for(gw, headers["x-request-id"])
        assert "uri_too_long" in audited_reason(event)
    assert crm.seen[before:] == []
    status, _, _ = await send_raw(
        gw.port, "GET", "/static/" + "a" * (limit - 200), api_key("sales")
    )
    assert status == 200  # under the limit: served


@pytest.mark.parametrize("where", ["value", "name"])
async def test_an_oversized_header_gets_431(gw: Gateway, crm: LenientCrm, where: str) -> None:
    limit = gw.settings.listen.max_field_size
    big = "v" * (limit + 10)
    header = {"X-Big": big} if where == "value" else {"X-" + big: "1"}
    before = len(crm.seen)
    status, headers, body = await send_raw(
        gw.port, "GET", "/static/x", {**api_key("sales"), **header}
    )
    assert status == 431, body
    _json_error(status, headers, body, "request_header_too_large")
    assert crm.seen[before:] == []
    status, _, _ = await send_raw(
        gw.port, "GET", "/static/x", {**api_key("sales"), "X-Big": "v" * (limit - 200)}
    )
    assert status == 200


async def test_too_many_headers_get_431(gw: Gateway, crm: LenientCrm) -> None:
    many = [(f"X-H{i}", "1") for i in range(gw.settings.listen.max_headers + 5)]
    before = len(crm.seen)
    status, headers, body = await send_raw(gw.port, "GET", "/static/x", many)
    assert status == 431, body
    _json_error(status, headers, body, "request_header_too_large")
    assert crm.seen[before:] == []


async def test_limits_are_settings(make_gateway: StartGateway, crm: LenientCrm) -> None:
    gw = await make_gateway(
        **{"listen.max_line_size": 2048, "listen.max_field_size": 4096, "listen.max_headers": 32}
    )
    status, _, _ = await send_raw(gw.port, "GET", "/static/" + "a" * 2100, api_key("sales"))
    assert status == 414
    status, _, _ = await send_raw(
        gw.port, "GET", "/static/x", {**api_key("sales"), "X-Big": "v" * 4200}
    )
    assert status == 431
    status, _, _ = await send_raw(
        gw.port, "GET", "/static/x", [(f"X-H{i}", "1") for i in range(40)]
    )
    assert status == 431
    status, _, _ = await send_raw(
        gw.port, "GET", "/static/" + "a" * 1900, {**api_key("sales"), "X-Big": "v" * 3900}
    )
    assert status == 200


@pytest.mark.parametrize("who", [None, "sales"])
async def test_a_raw_utf8_query_gets_a_json_error_with_a_request_id(
    gw: Gateway, crm: LenientCrm, who: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """`?q=徐` sent as raw UTF-8 bytes (not percent-encoded), as some clients do: a
    JSON 400 with a request id, one log line that does not echo the query."""
    before = len(crm.seen)
    status, headers, body = await send_raw(
        gw.port, "GET", "/api/customers?q=徐", api_key(who) if who else {}
    )
    assert status == 400, body
    doc = _json_error(status, headers, body, "bad_request")
    assert "GET /api/customers" not in body.decode("utf-8", "replace")  # no echo
    assert "percent-encode" in doc["message"]
    assert crm.seen[before:] == []
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway.server"]
    assert logged and all("\n" not in m and "\\xe5" not in m for m in logged), logged
    assert not any(r.exc_info for r in caplog.records)
