"""The one error boundary around every request, and the gateway's own `Server` header.

`handle()` catches what happens while proxying (it holds the access record);
this middleware is the net around everything else the app serves (admin
endpoints, other middlewares, a fault in the handler's own error arms). Either
way an unexpected exception becomes `500 internal_error` as JSON with the
request id, is logged with its traceback, and is audited; once bytes of a
response are out, the connection is aborted instead (a body is never finished).
Protocol-level errors (oversized or malformed requests) never reach the app;
`server.py` answers those.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.handler import (
    Access,
    error_response,
    internal_error_reason,
    internal_error_response,
    request_id_of,
)
from gateway.relay import ConnectionAborted, abort
from gateway.stages import STAGES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_boundary(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request_id_of(request)
    started = time.perf_counter()
    try:
        return await handler(request)
    except (web.HTTPException, asyncio.CancelledError, ConnectionAborted):
        raise
    except Exception as exc:
        stages = request.app.get(STAGES)
        if stages is not None:
            access = Access(request_id=rid, started=started, method=request.method)
            access.status, access.error = 500, internal_error_reason(exc)
            stages.record(access)
        if request.writer.output_size > 0:
            abort(request)
            raise ConnectionAborted(internal_error_reason(exc)) from exc
        from gateway.errors import GatewayError

        if isinstance(exc, GatewayError):
            return error_response(exc, rid, stages)
        return internal_error_response(exc, rid, stages)


def server_header(name: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An `on_response_prepare` hook: every response names the gateway, never the
    Python/aiohttp versions (nor the CRM's server software)."""

    async def _set(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = name

    return _set
