"""The one error boundary around every request, and the gateway's own `Server` header.

`handle()` catches what happens while proxying (it holds the access record);
this middleware is the net around everything else the app serves (admin
endpoints, other middlewares, a fault in the handler's own error arms, the
`on_response_prepare` hooks: it prepares the response itself). Either
way an unexpected exception becomes `500 internal_error` as JSON with the
request id, is logged with its traceback, and is audited; once bytes of a
response are out, the connection is aborted instead (a body is never finished).
Protocol-level errors (oversized or malformed requests) never reach the app;
`server.py` answers those.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.core.record import Access
from gateway.errors import GatewayError, MethodNotAllowed, NotFound
from gateway.handler import (
    error_response,
    internal_error_reason,
    internal_error_response,
    request_id_of,
)
from gateway.relay import ConnectionAborted, abort
from gateway.stages import STAGES, Stages

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_boundary(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request_id_of(request)
    started = time.perf_counter()
    stages = request.app.get(STAGES)
    try:
        _refuse_method(request, stages)
        response = await handler(request)
        if not response.prepared:  # headers go out here, inside the boundary
            await response.prepare(request)
    except web.HTTPNotFound as exc:  # the router found nothing (an authority-form target)
        error: GatewayError = NotFound("no such resource")
        cause: BaseException = exc
    except web.HTTPMethodNotAllowed as exc:
        error, cause = MethodNotAllowed(f"the {request.method} method is not allowed here"), exc
    except (web.HTTPException, asyncio.CancelledError, ConnectionAborted):
        raise
    except GatewayError as exc:
        error, cause = exc, exc
    except Exception as exc:
        _record(stages, rid, started, request, 500, internal_error_reason(exc))
        if request.writer.output_size > 0:
            abort(request)
            raise ConnectionAborted(internal_error_reason(exc)) from exc
        return internal_error_response(exc, rid, stages)
    else:
        return response
    _record(stages, rid, started, request, error.status, f"{error.code}: {error.message}")
    if isinstance(cause, web.HTTPException):
        log.info("refused %s %s: %s", request.method, error.code, cause.reason)
    return error_response(error, rid, stages)


def _refuse_method(request: web.Request, stages: Stages | None) -> None:
    """TRACE reflects headers, CONNECT tunnels: refused before any route (guard.refused_methods)."""
    if stages is not None and request.method.upper() in stages.settings.guard.refused_methods:
        raise MethodNotAllowed(f"the {request.method} method is not allowed through the gateway")


def _record(
    stages: Stages | None, rid: str, started: float, request: web.Request, status: int, error: str
) -> None:
    if stages is None:
        return
    access = Access(request_id=rid, started=started, method=request.method)
    access.status, access.error = status, error[:200]
    stages.record(access)


def server_header(name: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An `on_response_prepare` hook: every response names the gateway, never the
    Python/aiohttp versions (nor the CRM's server software)."""

    async def _set(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = name

    return _set
