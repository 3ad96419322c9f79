"""Issue 11, item 8: one error boundary. A real exception provoked inside a real gateway
(a stage, the upstream client, the enforcer, the relay, a middleware, an admin
endpoint) becomes `500 internal_error` as JSON with the request id, is audited
with the error and logged with its traceback, and never passes a body. Once
bytes are out the connection is aborted instead of finishing the response.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from gateway import handler as handler_module
from gateway.app import create_app
from gateway.identity.service import Identity
from gateway.policy.engine import PolicyEngine
from gateway.server import start_site
from gateway.stages import Stages
from gateway.upstream import Upstream
from tests.integration.gateway_harness import Gateway, gateway_settings, start_gateway
from tests.integration.policy_http_harness import DemoCrm, start_demo_crm
from tests.security.inbound_gateway import audited_reason, event_for
from tests.security.lenient_upstream import PERSONAL, clear_values, send_raw

KEY = {"X-API-Key": "test-sales-key"}  # gateway_harness.USERS: L2 sales, static policy


class Boom(RuntimeError):
    """The provoked fault."""


def _raise(*_: Any, **__: Any) -> Any:
    raise Boom("provoked fault")


async def _araise(*_: Any, **__: Any) -> Any:
    raise Boom("provoked fault")


@pytest.fixture
async def demo() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=20)
    yield c
    await c.stop()


@pytest.fixture
async def gw(tmp_path: Path, demo: DemoCrm) -> AsyncIterator[Gateway]:
    g = await start_gateway(tmp_path, demo.url)
    yield g
    await g.stop()


async def _assert_internal_error(
    gw: Gateway, demo: DemoCrm, status: int, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    assert status == 500, body
    assert headers["content-type"].startswith("application/json")
    doc = orjson.loads(body)
    assert doc["error"] == "internal_error"
    assert doc["request_id"] == headers["x-request-id"]
    assert "provoked" not in body.decode()  # the exception text stays in the log and audit
    assert headers.get("server") == "crm-gateway"
    for rec in demo.records:
        assert clear_values(rec, body, PERSONAL) == []
    event = await event_for(gw, doc["request_id"])
    assert event["http_response"]["code"] == 500
    assert "internal_error" in audited_reason(event) and "Boom" in audited_reason(event)
    return event


FAULTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "identity stage": lambda mp: mp.setattr(Identity, "authenticate", _araise),
    "policy stage": lambda mp: mp.setattr(PolicyEngine, "decide", _araise),
    "upstream client": lambda mp: mp.setattr(Upstream, "send", _araise),
    "enforcer": lambda mp: mp.setattr(handler_module, "build_enforcer", _raise),
    "body rewriter": lambda mp: mp.setattr(handler_module, "make_body_rewriter", _raise),
    "relay": lambda mp: mp.setattr(handler_module, "rewrite", _araise),
    "request pii scan": lambda mp: mp.setattr(handler_module, "classify_request", _raise),
    "audit-less stage helper": lambda mp: mp.setattr(Stages, "identity_headers", _raise),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_fault_in_the_request_path_is_a_typed_audited_500(
    gw: Gateway,
    demo: DemoCrm,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    FAULTS[fault](monkeypatch)
    rec = demo.records[0]
    with caplog.at_level(logging.ERROR):
        status, headers, body = await send_raw(gw.port, "GET", f"/api/customers/{rec['id']}", KEY)
    await _assert_internal_error(gw, demo, status, headers, body)
    assert any(r.exc_info and isinstance(r.exc_info[1], Boom) for r in caplog.records)


async def test_a_fault_in_the_write_guard_is_a_typed_audited_500(
    gw: Gateway, demo: DemoCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Stages, "guard_write", _raise)
    rec = demo.records[0]
    status, headers, body = await send_raw(
        gw.port,
        "PATCH",
        f"/api/customers/{rec['id']}",
        {**KEY, "Content-Type": "application/json"},
        body=b'{"mobile": "13812345678"}',
    )
    await _assert_internal_error(gw, demo, status, headers, body)
    port = int(demo.url.rsplit(":", 1)[1])
    _, _, stored = await send_raw(port, "GET", f"/api/customers/{rec['id']}")
    assert orjson.loads(stored)["customer"]["mobile"] == rec["mobile"]  # nothing written


async def test_a_fault_after_bytes_went_out_aborts_the_connection(
    gw: Gateway, demo: DemoCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def half_then_boom(
        request: web.Request, up: Any, headers: list[tuple[str, str]], *_: Any, **__: Any
    ) -> Any:
        resp = web.StreamResponse(status=200)
        resp.headers["X-Request-Id"] = dict(headers)["X-Request-Id"]
        resp.content_type = "application/json"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"customer": {"id": "')
        raise Boom("provoked fault mid-body")

    monkeypatch.setattr(handler_module, "rewrite", half_then_boom)
    rec = demo.records[0]
    status, headers, body = await send_raw(gw.port, "GET", f"/api/customers/{rec['id']}", KEY)
    assert status == 200  # the status line was out already ...
    assert not body.rstrip().endswith(b"}")  # ... but the body never completes
    assert clear_values(rec, body, PERSONAL) == []
    event = await event_for(gw, headers["x-request-id"])
    assert "internal_error" in audited_reason(event) and "Boom" in audited_reason(event)


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_fault_in_a_middleware_is_caught_by_the_boundary(
    tmp_path: Path, demo: DemoCrm, when: str
) -> None:
    @web.middleware
    async def faulty(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if when == "before":
            raise Boom("provoked fault before the handler")
        await handler(request)  # an answer not yet sent (a 401 here), then the fault
        raise Boom("provoked fault after the handler")

    settings = gateway_settings(tmp_path, demo.url)
    app = create_app(settings)
    app.middlewares.append(faulty)  # inside the boundary, like any later middleware
    runner = await start_site(app, settings)
    gw = Gateway(runner, settings, settings.listen.port)
    try:
        rec = demo.records[0]
        status, headers, body = await send_raw(
            gw.port, "GET", f"/api/customers/{rec['id']}", KEY if when == "before" else {}
        )
        await _assert_internal_error(gw, demo, status, headers, body)
    finally:
        await gw.stop()


async def test_a_fault_while_preparing_the_answer_is_caught_by_the_boundary(
    tmp_path: Path, demo: DemoCrm
) -> None:
    """After the handler: a response hook that fails once (the first answer's headers)."""
    calls: list[str] = []

    async def hook(request: web.Request, response: web.StreamResponse) -> None:
        calls.append(str(response.status))
        if len(calls) == 1:
            raise Boom("provoked fault while preparing the answer")

    settings = gateway_settings(tmp_path, demo.url)
    app = create_app(settings)
    app.on_response_prepare.append(hook)
    runner = await start_site(app, settings)
    gw = Gateway(runner, settings, settings.listen.port)
    try:
        status, headers, body = await send_raw(gw.port, "GET", "/api/customers/C000001")
        await _assert_internal_error(gw, demo, status, headers, body)
        assert calls == ["401", "500"]  # the refusal failed to go out; the typed 500 did
    finally:
        await gw.stop()


async def test_a_fault_in_an_admin_endpoint_is_caught_by_the_boundary(
    gw: Gateway, demo: DemoCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.monitor.metrics import Metrics

    monkeypatch.setattr(Metrics, "render", _raise)
    status, headers, body = await send_raw(gw.port, "GET", f"{gw.settings.admin.prefix}/metrics")
    await _assert_internal_error(gw, demo, status, headers, body)


async def test_the_gateway_serves_on_after_a_fault(
    gw: Gateway, demo: DemoCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = demo.records[0]
    with monkeypatch.context() as mp:
        mp.setattr(PolicyEngine, "decide", _araise)
        status, _, _ = await send_raw(gw.port, "GET", f"/api/customers/{rec['id']}", KEY)
        assert status == 500
    status, _, body = await send_raw(gw.port, "GET", f"/api/customers/{rec['id']}", KEY)
    assert status == 200, body
