"""Moving bodies between the client and the CRM: request bodies out, response bodies back.

Responses go one of two ways:
- `pass_through`: bytes as the CRM sent them (Content-Length and Content-Encoding kept);
  used only on routes the configuration marks non-sensitive.
- `rewrite`: through a `BodyRewriter`. Headers are held until the first rewritten
  bytes exist, so a body the masker rejects early becomes a clean JSON error; a
  body rejected after bytes were sent aborts the connection (the client sees a
  truncated response, never the rest of the original).

A client that goes away mid-response is a normal event, not a gateway fault: the
write fails with ConnectionResetError ("Cannot write to closing transport"), the
relay stops, closes the CRM response, logs one warning line and returns the
result marked `client_gone`, so the caller still records the access.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.core import headers as h
from gateway.core import outbound_headers as outbound
from gateway.core.codecs import BodyTooLarge
from gateway.core.enforce import Enforcer
from gateway.core.links import LinkMap
from gateway.core.rewrite import BlockResponse, BodyRewriter, RewriteError, UnidentifiedRecords
from gateway.errors import (
    AuditUnavailable,
    BlockedByPolicy,
    RequestTimeout,
    RequestTooLarge,
    ResponseRewriteFailed,
    ResponseTooLarge,
    UncataloguedRoute,
)
from gateway.upstream import UpstreamResponse

NO_BODY_STATUSES = frozenset({204, 304})

log = logging.getLogger(__name__)


class ConnectionAborted(Exception):
    """The response was already under way when it had to stop; the transport is closed."""


class _ClientGone(Exception):
    """A write to the client failed because the client closed the connection.

    Raised only by the client-side write helpers below, so a reset on the CRM side
    is never mistaken for the client leaving.
    """


@dataclass(slots=True)
class RelayResult:
    response: web.StreamResponse
    bytes_in: int = 0
    bytes_out: int = 0
    rewritten: bool = False
    would_block: str | None = None  # report-only: why enforcement would have refused
    client_gone: bool = False  # the client disconnected before the body was complete


def has_body(method: str, status: int) -> bool:
    return not (method == "HEAD" or status in NO_BODY_STATUSES or 100 <= status < 200)


async def stream_request_body(
    request: web.Request, *, limit: int, chunk_timeout: float
) -> AsyncIterator[bytes]:
    """The client's body as it arrives, with a size cap and a per-chunk deadline."""
    seen = 0
    while True:
        try:
            chunk = await asyncio.wait_for(request.content.readany(), chunk_timeout)
        except TimeoutError as exc:
            raise RequestTimeout("the client stopped sending the request body") from exc
        if not chunk:
            return
        seen += len(chunk)
        if limit and seen > limit:
            raise RequestTooLarge(f"request body exceeds {limit} bytes", limit=limit)
        yield chunk


async def read_request_body(request: web.Request, *, limit: int, chunk_timeout: float) -> bytes:
    parts = [
        c async for c in stream_request_body(request, limit=limit, chunk_timeout=chunk_timeout)
    ]
    return b"".join(parts)


def _start(status: int, reason: str, headers: h.Headers) -> web.StreamResponse:
    resp = web.StreamResponse(status=status, reason=reason)
    for name, value in headers:
        resp.headers.add(name, value)
    return resp


async def _to_client(write: Awaitable[object]) -> None:
    """Await one write to the client (prepare, write, write_eof); a reset there
    means the client left (aiohttp's ClientConnectionResetError included)."""
    try:
        await write
    except ConnectionResetError as exc:
        raise _ClientGone(str(exc)) from exc


def _client_gone(
    up: UpstreamResponse, headers: h.Headers, result: RelayResult, exc: _ClientGone
) -> RelayResult:
    """Stop relaying: drop the CRM connection, note it once (no traceback), keep the result."""
    up.abort()
    result.client_gone = True
    log.warning(
        "client disconnected mid-response (request %s, status %d): stopped after %d of %d "
        "bytes read from the CRM: %s",
        h.first(headers, "x-request-id") or "-",
        result.response.status,
        result.bytes_out,
        result.bytes_in,
        exc,
    )
    return result


async def without_body(
    request: web.Request, up: UpstreamResponse, headers: h.Headers
) -> RelayResult:
    """HEAD, 204, 304, 1xx: headers only (Content-Length kept for HEAD/304 as sent)."""
    if up.status in NO_BODY_STATUSES:
        headers = h.without(headers, ["content-length"])
    resp = _start(up.status, up.reason, headers)
    result = RelayResult(resp)
    try:
        await _to_client(resp.prepare(request))
        await _to_client(resp.write_eof())
    except _ClientGone as exc:
        return _client_gone(up, headers, result, exc)
    return result


async def pass_through(
    request: web.Request, up: UpstreamResponse, headers: h.Headers, *, limit: int
) -> RelayResult:
    resp = _start(up.status, up.reason, headers)
    if h.first(headers, "content-length") is None:
        resp.enable_chunked_encoding()
    result = RelayResult(resp)
    try:
        await _to_client(resp.prepare(request))
        async for chunk in up.chunks():
            result.bytes_in += len(chunk)
            if limit and result.bytes_in > limit:
                abort(request)
                raise ConnectionAborted(f"response exceeded {limit} bytes")
            await _to_client(resp.write(chunk))
            result.bytes_out += len(chunk)
        await _to_client(resp.write_eof())
    except _ClientGone as exc:
        return _client_gone(up, headers, result, exc)
    return result


async def rewrite(
    request: web.Request,
    up: UpstreamResponse,
    headers: h.Headers,
    rewriter: BodyRewriter,
    *,
    report_only: bool,
    before_release: Callable[[], Awaitable[None]] | None = None,
    late_headers: Callable[[bool], h.Headers] | None = None,
    hold: bool = False,
    hold_limit: int = 0,
) -> RelayResult:
    """Stream the CRM body through `rewriter`. In report-only mode the rewriter still
    runs (so audit sees what would change) but the original bytes are sent.

    `before_release` runs before any bytes leave (strict audit: the event must be
    durable before the data is released); if it raises, nothing more is sent.

    `late_headers` (reveal handles) are headers known only once the body is
    rewritten: the rewritten bytes are held until the body ends, or until more
    than `hold_limit` bytes are held (then `late_headers(True)`: the rest of the
    body may hold more than the headers say); the body itself is unchanged.
    `hold` holds them so too, for a body the rewriter may still refuse (a bulk
    quota that blocks): refused before its first byte leaves, the caller gets a
    clean 403 instead of a cut connection, whichever chunks the CRM sent.
    """
    out_headers = h.without(headers, h.REWRITE_INVALIDATED | {"cache-control", "content-type"})
    if not report_only:
        out_headers += [
            ("Content-Type", rewriter.content_type),
            ("Cache-Control", "private, no-store"),
        ]
    else:
        out_headers = [
            *h.without(headers, {"content-length"}),
            ("X-Gateway-Report-Only", "true"),
        ]
    resp = _start(up.status, up.reason, out_headers)
    result = RelayResult(resp, rewritten=not report_only)
    pending: list[bytes] = []
    held: list[bytes] = []
    held_size = 0

    def add_late(more: bool) -> None:
        if late_headers is not None:
            for name, value in late_headers(more):
                resp.headers.add(name, value)

    async def send(data: bytes) -> None:
        nonlocal held_size
        if not data:
            return
        if (hold or late_headers is not None) and not resp.prepared:
            held.append(data)
            held_size += len(data)
            if held_size <= hold_limit:
                return
            data = b"".join(held)
            held.clear()
            add_late(True)
        if before_release is not None:
            await before_release()
        if not resp.prepared:
            resp.enable_chunked_encoding()
            await _to_client(resp.prepare(request))
        result.bytes_out += len(data)
        await _to_client(resp.write(data))

    try:
        try:
            async for chunk in up.chunks():
                result.bytes_in += len(chunk)
                out = _feed(rewriter, chunk, result) if report_only else rewriter.feed(chunk)
                await send(chunk if report_only else out)
            tail = _finish(rewriter, result) if report_only else rewriter.finish()
            if not report_only:
                pending.append(tail)
        except (RewriteError, BlockResponse, ResponseTooLarge, AuditUnavailable) as exc:
            if resp.prepared:
                abort(request)
                raise ConnectionAborted(str(exc)) from exc
            raise as_gateway_error(exc) from exc
        body_tail = b"".join(held + pending)
        if not resp.prepared:
            add_late(False)
            # The whole body was held (buffered codecs): send it with an exact length.
            if before_release is not None and body_tail:
                await before_release()
            resp.content_length = len(body_tail)
            await _to_client(resp.prepare(request))
            result.bytes_out += len(body_tail)
            await _to_client(resp.write(body_tail))
        else:
            await send(body_tail)
        await _to_client(resp.write_eof())
    except _ClientGone as exc:
        return _client_gone(up, out_headers, result, exc)
    return result


def _feed(rewriter: BodyRewriter, chunk: bytes, result: RelayResult) -> bytes:
    """Report-only: run the rewriter for its report; the CRM's bytes go out unchanged."""
    if result.would_block is None:
        try:
            rewriter.feed(chunk)
        except (RewriteError, BlockResponse) as exc:
            result.would_block = f"{type(exc).__name__}: {exc}"
    return b""


def _finish(rewriter: BodyRewriter, result: RelayResult) -> bytes:
    if result.would_block is None:
        try:
            rewriter.finish()
        except (RewriteError, BlockResponse) as exc:
            result.would_block = f"{type(exc).__name__}: {exc}"
    return b""


def as_gateway_error(exc: Exception) -> Exception:
    if isinstance(exc, UnidentifiedRecords):
        return UncataloguedRoute(exc.reason)
    if isinstance(exc, BlockResponse):
        return BlockedByPolicy(exc.reason)
    if isinstance(exc, ResponseTooLarge | AuditUnavailable):
        return exc
    if isinstance(exc, BodyTooLarge):
        return ResponseTooLarge(f"the CRM response is too large to rewrite safely: {exc}")
    return ResponseRewriteFailed(f"the CRM response could not be rewritten safely: {exc}")


def abort(request: web.Request) -> None:
    """Close the client connection mid-response (never finish a body we cannot vouch for)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def response_headers(
    up: UpstreamResponse, enforcer: Enforcer | None, links: LinkMap | None
) -> h.Headers:
    """The CRM's headers: links rewritten; on sensitive routes identifiers masked;
    never a directive for a front server (X-Accel-Redirect, X-Sendfile)."""
    headers = h.response_hygiene(up.headers)
    try:
        if enforcer is None:
            return outbound.rewrite_links(headers, links)
        return outbound.scan_headers(
            headers, enforcer.rewrite_text, links, counts=enforcer.drops_records
        )
    except outbound.FoldedHeader as exc:
        raise ResponseRewriteFailed(str(exc)) from exc
    except BlockResponse as exc:
        raise BlockedByPolicy(exc.reason) from exc
