"""The one function that runs the stages of a proxied request, in order.

    normalise path -> route rule -> authenticate -> guard -> decide
      -> request body (write guard) -> CRM -> response body (mask) -> audit

Each stage returns a value that is passed on here; stages never call each
other. Every failure becomes a typed `GatewayError` with a JSON body, and on
the response path a failure never lets the CRM's original body through.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from gateway.audit.durability import durable_levels
from gateway.audit.event import requires_durable
from gateway.audit.oplog import bind_request
from gateway.core import headers as h
from gateway.core import negotiation
from gateway.core.catalog import RouteMatch, check_cookies
from gateway.core.codecs import CodecLimits, body_kind, make_body_rewriter
from gateway.core.documents import withheld_because
from gateway.core.enforce import Enforcer, build_enforcer
from gateway.core.links import LinkMap
from gateway.core.model import ALLOW, Decision, RecordVerb
from gateway.core.paths import normalize_path
from gateway.core.query_guard import audit_path, cookie_query
from gateway.core.record import Access
from gateway.core.report import outcome_of
from gateway.core.request_pii import classify_request
from gateway.core.rewrite import BlockResponse, BodyRewriter, RewriteError
from gateway.core.visibility import response_route
from gateway.errors import (
    BlockedByPolicy,
    DocumentWithheld,
    Forbidden,
    GatewayError,
    HiddenRecord,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    ReadWithBody,
    RequestTooLarge,
    ResponseRewriteFailed,
    ServerError,
    StepUpRequired,
    UndeclaredResponseType,
    UnsupportedUpgrade,
)
from gateway.identity.guard import strip_method_override_param
from gateway.identity.stepup import step_up_challenge, step_up_redirect, wants_html
from gateway.observing import observe_response
from gateway.policy.engine import PolicyRequest
from gateway.policy.obligations import enforce_obligations
from gateway.relay import (
    ConnectionAborted,
    RelayResult,
    abort,
    as_gateway_error,
    has_body,
    pass_through,
    read_request_body,
    response_headers,
    rewrite,
    stream_request_body,
    without_body,
)
from gateway.settings import RouteSettings
from gateway.stages import STAGES, Stages
from gateway.upstream import UpstreamResponse
from gateway.visibility import check_named_records, check_record_visible
from gateway.websocket import relay_websocket

ALLOWED_METHODS = "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE"
# Every other method's body is a write (DELETE with a body included): guarded, whatever its type.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPERATIONS = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "DELETE": "delete"}


REQUEST_ID = web.RequestKey("request_id", str)
log = logging.getLogger(__name__)


def request_id_of(request: web.Request) -> str:
    """The request's id: set once (by the error boundary middleware, or here)."""
    rid = request.get(REQUEST_ID)
    if rid is None:
        rid = request[REQUEST_ID] = os.urandom(16).hex()  # as random as uuid4, cheaper
    return rid


async def handle(request: web.Request) -> web.StreamResponse:
    stages = request.app[STAGES]
    access = Access(
        request_id=request_id_of(request), started=time.perf_counter(), method=request.method
    )
    bind_request(access.request_id)
    try:
        response = await _proxy(request, stages, access)
    except ConnectionAborted as exc:
        access.status, access.error = 502, f"aborted mid-response: {exc}"
        stages.record(access)
        raise
    except asyncio.CancelledError:
        # The client went away and aiohttp cancelled the handler: the access still
        # happened (the CRM may have answered), so it is recorded before unwinding.
        access.status = access.status or 499
        access.error = access.error or "client_disconnected"
        stages.record(access)
        raise
    except StepUpRequired as exc:
        access.status, access.error = exc.status, exc.code
        target = step_up_redirect(
            exc, stages.settings.identity.step_up_redirect, str(request.rel_url)
        )
        if target and wants_html(request.headers.get("Accept", "")):
            access.status = 303
            response = web.HTTPSeeOther(target)
        else:
            response = error_response(exc, access.request_id, stages)
    except GatewayError as exc:
        access.status, access.error = exc.status, exc.audit_text()
        response = error_response(exc, access.request_id, stages)
    except Exception as exc:  # the error boundary: whatever nothing else caught
        access.status, access.error = 500, internal_error_reason(exc)
        if request.writer.output_size > 0:  # bytes are out: stop, never finish the body
            stages.record(access)
            abort(request)
            raise ConnectionAborted(access.error) from exc
        response = internal_error_response(exc, access.request_id, stages)
    access.status = access.status or response.status
    stages.record(access)
    return response


def internal_error_reason(exc: BaseException) -> str:
    """What the audit event says about an unexpected error (type and message, bounded)."""
    return f"internal_error: {type(exc).__name__}: {exc}"[:200]


def internal_error_response(
    exc: BaseException, request_id: str, stages: Stages | None
) -> web.Response:
    """Log the traceback and answer a typed 500; nothing of any body is passed."""
    log.error("unexpected error in request %s", request_id, exc_info=exc)
    return error_response(
        ServerError("the gateway hit an unexpected error; the request was not completed"),
        request_id,
        stages,
    )


class _Located(NamedTuple):
    rule: RouteSettings
    crm_route: RouteMatch | None
    query: str
    client: h.ClientAddress


async def _proxy(request: web.Request, stages: Stages, access: Access) -> web.StreamResponse:
    """Locate the request, authorize it, guard what it sends, forward it, enforce the answer."""
    rule, crm_route, query, client = _locate(request, stages, access)
    decision: Decision | None = None
    if not rule.public:
        decision, query = await _authorize(request, stages, access, rule, crm_route, query)
    sensitive = rule.sensitive and decision is not None
    headers = stages.upstream_headers(request, client, access.request_id, access.subject,
                                      sensitive=sensitive)  # fmt: skip
    if _is_upgrade(request):  # only reached when the route allows WebSocket
        return await relay_websocket(request, stages.upstream, access.path + _qs(query), headers)
    if sensitive:
        headers, query = _negotiate(request, stages, crm_route, headers, query)
        if decision is not None and access.subject and not access.report_only:
            await check_record_visible(stages.upstream, stages.catalog, request.method,
                                       access.path, headers, decision, access.subject.id,
                                       crm_route, query or "")  # fmt: skip
    body = await _request_body(request, stages, decision, crm_route, sensitive, query, access)
    await _check_written_records(request, stages, access, decision, body, headers)
    if body is not None and not isinstance(body, bytes) and request.content_length is not None:
        headers.append(("Content-Length", str(request.content_length)))  # streamed as declared
    return await _forward(request, stages, access, decision, crm_route, sensitive,
                          headers, query, body)  # fmt: skip


def _locate(request: web.Request, stages: Stages, access: Access) -> _Located:
    """The path as the CRM reads it, its route rule and catalog route, the client, and
    what the request declares (purpose, justification, operation, PII in the URL)."""
    settings = stages.settings
    access.path = normalize_path(request.rel_url.raw_path, case_insensitive=stages.case_insensitive)
    if access.path == settings.admin.prefix or access.path.startswith(settings.admin.prefix + "/"):
        raise NotFound("no such gateway endpoint")  # admin paths are never forwarded
    query = request.rel_url.raw_query_string
    rule, crm_route = stages.routes.resolve(
        request.method, access.path, request.headers.items(), request.remote or "", query
    )
    dispatch = stages.routes.dispatch_params(access.path)
    if dispatch:  # a page chosen by the query alone, never by a cookie
        check_cookies(request.headers.getall("Cookie", []), dispatch)
    access.route = crm_route.template if crm_route else access.path
    access.request_pii = classify_request(access.path, query, taxonomy=stages.taxonomy)
    if _is_upgrade(request) and not rule.websocket:
        raise UnsupportedUpgrade("protocol upgrades (WebSocket) are not allowed on this route")
    client = stages.client_address(request)
    access.client_ip = client.ip
    access.purpose = request.headers.get(settings.policy.purpose_header)
    access.justification = bool(request.headers.get(settings.policy.justification_header))
    access.operation = _operation(request.method, crm_route)
    return _Located(rule, crm_route, query, client)


async def _authorize(
    request: web.Request,
    stages: Stages,
    access: Access,
    rule: RouteSettings,
    crm_route: RouteMatch | None,
    query: str,
) -> tuple[Decision, str]:
    """Authenticate, guard, decide, apply the obligations and the search guard: the
    decision, and the query as it goes on (a method override stripped)."""
    subject = await stages.authenticate(request)
    access.subject = subject
    guard = await stages.guard.check(request, subject, access.route)
    if stages.anomaly is not None and stages.anomaly.is_throttled(subject.id):
        raise RateLimited("throttled after unusual activity", retry_after=60.0)
    if guard.method_override_stripped:
        query = strip_method_override_param(query)
    outcome = await stages.decide(  # policy, then grants consumed and lockdown
        subject,
        PolicyRequest(
            method=request.method,
            operation=access.operation,
            route_template=access.route,
            purpose=access.purpose,
            justification=access.justification,
            network_zone=guard.network_zone,
            network_allowed=guard.network_allowed,
            now=datetime.now(UTC),
            report_only=rule.report_only,
        ),
        access.request_id,
    )
    decision = access.decision = outcome.decision
    access.cache_hit = outcome.cache_hit
    # a lockdown is enforced everywhere, report-only routes and decisions included
    access.report_only = (decision.report_only or rule.report_only) and not outcome.locked_down
    enforce_obligations(
        decision,
        purpose=access.purpose,
        justified=bool(access.justification),
        report_only=access.report_only,
        step_up_max_age=subject.step_up_max_age,
    )
    if rule.sensitive and stages.filters is not None:  # search/filter oracles
        access.route = access.route if crm_route else audit_path(access.route)
        route = crm_route.route if crm_route else None
        cookies = cookie_query(request.headers.getall("Cookie", []), route)  # read as params
        judged = "&".join(p for p in (query, cookies) if p)
        await stages.filters.check(subject.id, access.path, judged, decision, route,
                                   report_only=access.report_only)  # fmt: skip
    return decision, query


async def _check_written_records(
    request: web.Request,
    stages: Stages,
    access: Access,
    decision: Decision | None,
    body: Any,
    headers: h.Headers,
) -> None:
    """A guarded write's body may name records (upserts, bulk and batch bodies): each
    must be one the record rules let the caller see."""
    if (
        not isinstance(body, bytes)
        or decision is None
        or not decision.records
        or access.subject is None
        or access.report_only
    ):
        return
    named = stages.named_records(
        body,
        request.headers.getall("Content-Type", []),
        request.headers.getall("Content-Encoding", []),
        access.path,
    )
    await check_named_records(stages.upstream, stages.catalog, named, headers, decision,
                              access.subject.id)  # fmt: skip


async def _forward(
    request: web.Request,
    stages: Stages,
    access: Access,
    decision: Decision | None,
    crm_route: RouteMatch | None,
    sensitive: bool,
    headers: h.Headers,
    query: str,
    body: Any,
) -> web.StreamResponse:
    """Send the request to the CRM and answer with what enforcement makes of its reply."""
    # HEAD on a route whose record rules may drop records is read as GET: whether the
    # path's record is hidden can only be told from its body (see HiddenRecord)
    head_as_get = request.method == "HEAD" and _drops_records(decision) and not access.report_only
    method = "GET" if head_as_get and sensitive else request.method
    up = await stages.upstream.send(method, access.path + _qs(query), headers, body)
    try:
        enforced_as = response_route(stages.catalog, request.method, access.path, crm_route)
        response = await _respond(request, stages, access, up, decision, enforced_as, sensitive,
                                  head_as_get=method != request.method)  # fmt: skip
    except BaseException:
        up.abort()
        raise
    up.release()
    return response


async def _request_body(
    request: web.Request,
    stages: Stages,
    decision: Decision | None,
    crm_route: RouteMatch | None,
    sensitive: bool,
    query: str = "",
    access: Access | None = None,
) -> Any:
    limits = stages.settings.limits
    timeout = stages.settings.listen.body_timeout
    guarded = sensitive and decision is not None and request.method not in READ_METHODS
    if sensitive and request.method in READ_METHODS and request.body_exists:
        raise ReadWithBody(
            f"a {request.method} with a body is refused on this route: a filter or query in "
            "it could not be checked (send reads without a body)"
        )
    if guarded:  # cookies a lenient CRM reads as fields of the write count as the query's
        cookies = cookie_query(
            request.headers.getall("Cookie", []), crm_route.route if crm_route else None
        )
        query = "&".join(p for p in (query, cookies) if p)
    if not request.body_exists:
        if guarded and query:  # fields in the query string of a write
            assert decision is not None
            stages.guard_write(b"", [], [], decision, crm_route, query)
        return None
    declared = request.content_length
    if declared is not None and limits.max_request_body and declared > limits.max_request_body:
        raise RequestTooLarge(
            f"request body of {declared} bytes exceeds {limits.max_request_body}",
            limit=limits.max_request_body,
        )
    if not guarded:
        return stream_request_body(request, limit=limits.max_request_body, chunk_timeout=timeout)
    raw = await read_request_body(request, limit=limits.max_request_body, chunk_timeout=timeout)
    assert decision is not None  # guarded implies it; narrows the type for mypy
    if stages.filters is not None and access is not None and access.subject is not None:
        # criteria in the body (a POST search, `{"sort": ...}`): the search guard reads them
        for criteria in stages.body_criteria(raw, request.headers.getall("Content-Type", []),
                                             request.headers.getall("Content-Encoding", []),
                                             crm_route):  # fmt: skip
            await stages.filters.check(access.subject.id, access.path, "", decision,
                                       crm_route.route if crm_route else None,
                                       report_only=access.report_only, body=criteria)  # fmt: skip
    return stages.guard_write(
        raw,
        request.headers.getall("Content-Type", []),
        request.headers.getall("Content-Encoding", []),
        decision,
        crm_route,
        query,
        replaces=request.method == "PUT",
        dispatch=stages.routes.dispatch_params(access.path) if access is not None else frozenset(),
    )


def _declared_types(stages: Stages, crm_route: RouteMatch | None) -> tuple[str, ...]:
    return crm_route.route.response_types if crm_route else stages.catalog.response_types


def _negotiate(
    request: web.Request,
    stages: Stages,
    crm_route: RouteMatch | None,
    headers: h.Headers,
    query: str,
) -> tuple[h.Headers, str]:
    """Sensitive routes: the CRM is asked for a declared type only (format-override
    parameters dropped, Accept narrowed; 406 when the client accepts none)."""
    accept = negotiation.narrow_accept(
        request.headers.get("Accept"), _declared_types(stages, crm_route)
    )
    if accept is None:
        return headers, query
    query = negotiation.strip_format_params(query, stages.catalog.format_params)
    return [*h.without(headers, {"accept"}), ("Accept", accept)], query


async def _respond(
    request: web.Request,
    stages: Stages,
    access: Access,
    up: UpstreamResponse,
    decision: Decision | None,
    crm_route: RouteMatch | None,
    sensitive: bool,
    *,
    head_as_get: bool = False,
) -> web.StreamResponse:
    """The CRM's reply as enforcement makes it: relayed as is off sensitive routes,
    refused when it cannot be enforced, otherwise rewritten by the enforcer."""
    links = stages.link_map(request)
    enforcer = None
    if sensitive and decision is not None:
        enforcer = _enforcer_for(stages, access, decision, crm_route, links)
    observed = observe_response(request, access.route, crm_route, enforcer)  # observe mode
    late = _reveal_handles(request, stages, access, enforcer, decision, crm_route)
    try:
        headers = response_headers(up, enforcer, links)
    finally:
        if enforcer is not None:
            access.report = enforcer.report.summary()
    headers.append(("Via", f"1.1 {stages.settings.listen.via_name}"))
    headers.append(("X-Request-Id", access.request_id))
    if not has_body("GET" if head_as_get else request.method, up.status):
        if sensitive:  # the same validators and sizes a rewritten body would not carry
            headers = h.without(headers, h.REWRITE_INVALIDATED)
        return (await without_body(request, up, headers)).response
    if enforcer is None:
        limit = stages.settings.limits.max_streamed_response
        result = await pass_through(request, up, headers, limit=limit)
        _note_client_gone(access, result)
        return result.response
    _refuse_unenforceable(up, enforcer, access)
    if h.first(up.headers, "content-length") == "0":
        return (await without_body(request, up, headers)).response
    _check_declared_type(stages, access, up, crm_route)
    assert decision is not None  # an enforcer implies a decision
    document = _document_released(access, up, decision, crm_route, enforcer)
    rewriter = _body_rewriter(stages, up, headers, enforcer, document=document)
    hidden = _hidden_record_check(request, access, crm_route, headers, rewriter.content_type)
    if head_as_get:
        return await _head_answer(request, up, headers, rewriter, enforcer, access, hidden)
    return await _rewrite_body(request, stages, access, up, headers, rewriter, enforcer,
                               late, observed, hidden)  # fmt: skip


def _enforcer_for(
    stages: Stages,
    access: Access,
    decision: Decision,
    crm_route: RouteMatch | None,
    links: LinkMap | None,
) -> Enforcer:
    enforcer = build_enforcer(
        taxonomy=stages.taxonomy,
        # an uncatalogued path: the catalog-wide field names and record facts apply
        route=crm_route.route if crm_route else stages.catalog.fallback_route(),
        decision=decision,
        subject_id=access.subject.id if access.subject else "",
        masker=stages.masker,
        label=access.route,
    )
    enforcer.links = links
    return enforcer


def _refuse_unenforceable(up: UpstreamResponse, enforcer: Enforcer, access: Access) -> None:
    if up.status == 206:
        raise ResponseRewriteFailed("the CRM sent a partial body on a sensitive route")
    if up.status in (404, 410) and enforcer.drops_records and not access.report_only:
        # one answer for "absent" and "hidden by the record rules" (see HiddenRecord)
        raise NotFound("no such record")


def _check_declared_type(
    stages: Stages, access: Access, up: UpstreamResponse, crm_route: RouteMatch | None
) -> None:
    try:
        negotiation.check_response_type(  # the template only: a raw path may hold a token
            _declared_types(stages, crm_route),
            h.first(up.headers, "content-type"),
            crm_route.template if crm_route else "",
        )
    except UndeclaredResponseType as exc:
        if not access.report_only:
            raise
        access.error = f"report_only_would_block: {exc.code}"


def _document_released(
    access: Access,
    up: UpstreamResponse,
    decision: Decision,
    crm_route: RouteMatch | None,
    enforcer: Enforcer,
) -> bool:
    """A document route's rendered document (catalog `document: L3`): released whole
    or withheld whole (gateway.core.documents)."""
    level = crm_route.route.document if crm_route else None
    mime = negotiation.media_type(h.first(up.headers, "content-type"))
    if crm_route is None or level is None or body_kind(mime) != "binary":
        return False
    why = withheld_because(decision, level, crm_route.route.facts)
    if why is not None:
        exc = DocumentWithheld(
            f"{crm_route.template} answers with a document carrying {level} data, which this "
            f"caller may not see whole ({why}); read the record as data instead",
            level=level,
        )
        if not access.report_only:
            raise exc
        access.error = f"report_only_would_block: {exc.code}"
    enforcer.report.add_field("document", level, outcome_of(ALLOW))
    return True


def _body_rewriter(
    stages: Stages,
    up: UpstreamResponse,
    headers: h.Headers,
    enforcer: Enforcer,
    *,
    document: bool = False,
) -> BodyRewriter:
    limits = stages.settings.limits
    declared = h.first(up.headers, "content-length")
    return make_body_rewriter(
        h.first(headers, "content-type"),  # as scanned: its parameters may name someone
        h.first(up.headers, "content-encoding"),
        enforcer,
        content_length=int(declared) if declared and declared.isdigit() else None,
        document=document,
        limits=CodecLimits(
            max_buffered=limits.max_response_body,
            max_decompressed=limits.max_decompressed_body,
            max_ratio=limits.max_decompression_ratio,
        ),
        sensitive=True,
    )


async def _rewrite_body(
    request: web.Request,
    stages: Stages,
    access: Access,
    up: UpstreamResponse,
    headers: h.Headers,
    rewriter: BodyRewriter,
    enforcer: Enforcer,
    late: Callable[[bool], h.Headers] | None,
    observed: Callable[[], None],
    hidden: Callable[[Enforcer], None],
) -> web.StreamResponse:
    """Stream the rewritten body; before its first byte leaves, a hidden record the
    path names answers 404, and with durable audit the event is written first."""
    strict = durable_levels(stages.settings.audit, stages.taxonomy)
    released_records = -1
    hides = enforcer.drops_records and not access.report_only

    async def before_release() -> None:
        """A record the path names, hidden by the record rules, answers like a missing
        one (404); strict audit: what is about to leave is in a durable event first."""
        if hides:
            hidden(enforcer)
        if strict:
            await audit_before_release()

    async def audit_before_release() -> None:
        nonlocal released_records
        report = enforcer.report.summary()
        if report.records.seen == released_records or not requires_durable(report, strict):
            return
        released_records = report.records.seen
        access.report = report
        await stages.record_durable(access)

    try:
        result = await rewrite(
            request,
            up,
            headers,
            rewriter,
            report_only=access.report_only,
            before_release=before_release if strict or hides else None,
            late_headers=late,
            hold=enforcer.blocks_in_bulk,
            hold_limit=_hold_limit(stages, late is not None),
        )
    finally:
        access.report = enforcer.report.summary()
        observed()
    if result.would_block:
        access.error = f"report_only_would_block: {result.would_block}"[:200]
    _note_client_gone(access, result)
    return result.response


def _reveal_handles(
    request: web.Request,
    stages: Stages,
    access: Access,
    enforcer: Enforcer | None,
    decision: Decision | None,
    crm_route: RouteMatch | None,
) -> Callable[[bool], h.Headers] | None:
    """Reveal handles, when the caller asked for them and something could be revealed:
    the enforcer collects the masked fields, the header is built once the body is
    rewritten (`relay.rewrite` holds it until then). Without the opt-in: None, and
    the response is exactly what it would be without the feature."""
    service = stages.reveal
    if (
        service is None
        or enforcer is None
        or decision is None
        or access.subject is None
        or access.report_only
        or request.method != "GET"
        or not service.wanted(request.headers.get(service.cfg.request_header))
    ):
        return None
    targets = service.targets_for(decision, crm_route)
    if targets is None or crm_route is None:
        return None
    enforcer.reveal = targets
    subject, route = access.subject, crm_route

    def late(more: bool) -> h.Headers:
        value, access.reveal_handles = service.header(
            targets, subject, route, access.request_id, more=more
        )
        return [(service.cfg.response_header, value)]

    return late


def _drops_records(decision: Decision | None) -> bool:
    return decision is not None and any(r.record is not RecordVerb.SHOW for r in decision.records)


async def _head_answer(
    request: web.Request,
    up: UpstreamResponse,
    headers: h.Headers,
    rewriter: BodyRewriter,
    enforcer: Enforcer,
    access: Access,
    hidden: Callable[[Enforcer], None],
) -> web.StreamResponse:
    """HEAD read as GET: the body is rewritten (never sent) to learn whether the path's
    record is hidden, then only the headers a rewritten GET would carry go out."""
    try:
        async for chunk in up.chunks():
            rewriter.feed(chunk)
        rewriter.finish()
    except (RewriteError, BlockResponse) as exc:
        raise as_gateway_error(exc) from exc
    finally:
        access.report = enforcer.report.summary()
    hidden(enforcer)
    headers = h.without(headers, h.REWRITE_INVALIDATED | {"cache-control", "content-type"})
    headers += [("Content-Type", rewriter.content_type), ("Cache-Control", "private, no-store")]
    return (await without_body(request, up, headers)).response


def _hidden_record_check(
    request: web.Request,
    access: Access,
    crm_route: RouteMatch | None,
    headers: h.Headers,
    content_type: str,
) -> Callable[[Enforcer], None]:
    """Raises HiddenRecord when every record of the response was dropped and one of
    them is the request's own: named by the path (`/api/customers/C102`,
    `/api/customers/C102/gzip`) or, on a route that declares how the CRM answers a
    missing record (`absent:`), by a query value (`customer.do?method=detail&id=C102`).
    The answer is the CRM's own for a missing record when declared, with the headers
    a rewritten answer would carry (as the CRM's real one would), else a 404."""
    absent = crm_route.route.absent if crm_route else None

    def check(enforcer: Enforcer) -> None:
        report = enforcer.report
        if report.records_seen == 0 or report.records_dropped < report.records_seen:
            return
        named = set(access.path.split("/"))
        if absent is not None:
            named |= set(request.rel_url.query.values())
        if not any(rid in named for rid in report.record_ids):
            return
        answer = None
        if absent is not None:
            kept = h.without(headers, h.REWRITE_INVALIDATED | {"cache-control", "content-type"})
            like = [*kept, ("Content-Type", content_type), ("Cache-Control", "private, no-store")]
            answer = (absent.status, absent.body, like)
        raise HiddenRecord("no such record", absent=answer)

    return check


# A body held only because a blocking bulk quota may still refuse it is released past
# this size (a later refusal then cuts the connection): an export whose clear records
# stay under the quota should not sit in memory whole.
_BULK_HOLD = 8 * 1024 * 1024


def _hold_limit(stages: Stages, late_headers: bool) -> int:
    """How much rewritten output may be held before the first byte leaves: the whole
    buffered-rewrite limit for late (reveal) headers, less for a bulk quota's sake."""
    limit = stages.settings.limits.max_response_body or 64 * 1024 * 1024
    return limit if late_headers else min(limit, _BULK_HOLD)


def _note_client_gone(access: Access, result: RelayResult) -> None:
    """A response cut short by the client is audited as such (what was sent is in
    the report; the status stays the one the client was sent)."""
    if result.client_gone:
        access.error = access.error or "client_disconnected"


def _operation(method: str, crm_route: RouteMatch | None) -> str:
    if crm_route is not None and crm_route.route.export:
        return "export"
    return OPERATIONS.get(method, "modify")


def _is_upgrade(request: web.Request) -> bool:
    return (
        "upgrade" in request.headers.get("Connection", "").lower() or "Upgrade" in request.headers
    )


def _qs(query: str) -> str:
    return f"?{query}" if query else ""


def error_response(exc: GatewayError, request_id: str, stages: Stages | None) -> web.Response:
    if isinstance(exc, HiddenRecord) and exc.absent is not None:
        status, raw, headers = exc.absent  # the CRM's own "no such record"
        resp = web.Response(status=status, body=raw)
        for name, value in headers:
            resp.headers.add(name, value)
        resp.headers["X-Request-Id"] = request_id
        return resp
    body = orjson.dumps(exc.to_body(request_id))
    resp = web.Response(status=exc.status, body=body, content_type="application/json")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Request-Id"] = request_id
    if isinstance(exc, MethodNotAllowed):
        resp.headers["Allow"] = ALLOWED_METHODS
    if isinstance(exc, StepUpRequired) and stages is not None:
        resp.headers.update(step_up_challenge(exc, stages.settings.identity.step_up_realm))
    elif exc.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="crm-gateway"'
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(max(1, round(retry_after)))
    if isinstance(exc, BlockedByPolicy | Forbidden) and stages is not None:
        resp.headers["Vary"] = "Authorization"
    return resp
