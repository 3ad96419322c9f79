"""The per-process stage objects `handler.py` runs, held in one `AppKey`.

`app.py` builds a `Stages` at start-up (and closes it on shutdown); the handler
only reads it. The few helpers here translate between stages' values
(an access record -> an audit event; a raw write body -> a guarded one) so
the handler itself stays a list of steps.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.audit.event import (
    AccessFacts,
    AuditDecision,
    AuditRequest,
    AuditSubject,
    Event,
    access_events,
)
from gateway.core import headers as h
from gateway.core.catalog import Catalog, RouteMatch, check_body, query_names
from gateway.core.links import LinkMap, link_map, public_base
from gateway.core.masking import Masker
from gateway.core.model import Decision, Subject
from gateway.core.query_guard import body_criteria
from gateway.core.record import Access
from gateway.core.report import ReportSummary
from gateway.core.requestbody import BodyLimits, parse_write_body, query_reading
from gateway.core.taxonomy import Taxonomy
from gateway.core.visibility import TooManyNamed, named_records
from gateway.core.writeguard import guard_body
from gateway.errors import RecordNotVisible, Unauthenticated
from gateway.routes import RouteTable
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.access.console import Governance
    from gateway.access.reveal import RevealService
    from gateway.audit.emitter import AuditEmitter
    from gateway.identity import Identity, RequestGuard
    from gateway.monitor.anomaly import AnomalyDetector
    from gateway.monitor.metrics import Metrics
    from gateway.policy.engine import DecisionOutcome, PolicyEngine, PolicyRequest
    from gateway.policy.filters import FilterGuard
    from gateway.state.revocation import RevocationList
    from gateway.upstream import Upstream

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
log = logging.getLogger(__name__)
_CLIENT = web.RequestKey("client_address", h.ClientAddress)


@dataclass(slots=True)
class Stages:
    settings: Settings
    upstream: Upstream
    identity: Identity
    revocations: RevocationList
    guard: RequestGuard
    policy: PolicyEngine
    taxonomy: Taxonomy
    catalog: Catalog
    masker: Masker
    audit: AuditEmitter
    metrics: Metrics
    routes: RouteTable
    trusted_proxies: tuple[Network, ...]
    spoofable_headers: frozenset[str]
    identity_headers: Callable[[Subject], list[tuple[str, str]]]
    anomaly: AnomalyDetector | None = None
    case_insensitive: bool = False
    filters: FilterGuard | None = None  # search/filter oracles (set by app.py)
    governance: Governance | None = None  # access requests, grants, break-glass, lockdown
    reveal: RevealService | None = None  # reveal with reason: handles and the endpoint

    async def decide(
        self, subject: Subject, request: PolicyRequest, request_id: str
    ) -> DecisionOutcome:
        """The policy's decision as governance settles it: single-use export grants
        consumed (atomically across replicas), the lockdown profile applied."""
        outcome = await self.policy.decide(subject, request)
        if self.governance is None:
            return outcome
        return await self.governance.settle(
            subject, request, outcome, request_id, self.policy.decide
        )

    def record(self, access: Access) -> None:
        """Audit and count one finished request. Never raises into the request."""
        try:
            self._observe(access)
            for event in self._events(access):
                self.audit.emit(event)
            self.metrics.observe_access(access, (time.perf_counter() - access.started) * 1000)
        except Exception:
            log.exception("audit record failed for request %s", access.request_id)

    def _observe(self, access: Access) -> None:
        """Feed the anomaly detector (distinct customers, blocked bursts, honeytokens)."""
        if self.anomaly is None or access.subject is None:
            return
        from gateway.monitor.anomaly import ids_by_level

        self.anomaly.observe(
            subject_id=access.subject.id,
            record_ids_by_level=ids_by_level(access.report),
            blocked=access.status in (403, 429)
            or (access.decision is not None and not access.decision.allow),
            now=datetime.now(UTC),
        )

    def _honeytoken(self, access: Access) -> bool:
        if self.anomaly is None or access.report is None:
            return False
        return bool(self.anomaly.check_honeytokens(access.report.records.ids))

    async def record_durable(self, access: Access) -> None:
        """Strict audit mode: the release event is durable before data leaves (or 503)."""
        events = self._events(access, status=200, phase="release")
        await self.audit.emit_all(events, durable=True)

    def _events(
        self, access: Access, status: int | None = None, phase: str = "final"
    ) -> list[Event]:
        facts = AccessFacts(
            request_id=access.request_id,
            subject=_audit_subject(access),
            request=AuditRequest(
                method=access.method,
                route=access.route,
                operation=access.operation,
                purpose=access.purpose,
                pii_categories=tuple(access.pii_categories),
                justification=access.justification,
                honeytoken=self._honeytoken(access),
                reveal_handles=access.reveal_handles,
            ),
            decision=_audit_decision(access),
            report=access.report or ReportSummary(),
            status=access.status if status is None else status,
            latency_ms=(time.perf_counter() - access.started) * 1000,
            now=time.time(),
            phase=phase,
        )
        return access_events(facts, self.settings.audit.ids_per_event)

    async def authenticate(self, request: web.Request) -> Subject:
        """Who is calling, by the gateway's own authenticators (revoked subjects refused);
        repeated failures from one address are throttled (the data path, reveals)."""
        await self.guard.check_auth_allowed(request)
        try:
            return await self.identity.authenticate(request)
        except Unauthenticated:
            await self.guard.record_auth_failure(request)
            raise

    def inbound_headers(self, headers: list[tuple[str, str]], request: web.Request) -> h.Headers:
        """Client headers minus rewrite headers and odd-named ones (core/headers.py)."""
        guard, forwarded = self.settings.guard, self.settings.forwarded
        return h.inbound_filter(
            headers,
            rewrite_allow=frozenset(forwarded.rewrite_headers_allow),
            from_trusted_proxy=h.is_trusted(request.remote or "", self.trusted_proxies),
            odd_names=guard.underscore_headers,
            odd_names_allow=frozenset(guard.underscore_headers_allow),
        )

    def client_address(self, request: web.Request) -> h.ClientAddress:
        """Who the client is, believing X-Forwarded-* only from trusted proxies: the one
        resolver for the audited address, zones and rate limits (once per request)."""
        found = request.get(_CLIENT)
        if found is None:
            found = request[_CLIENT] = self._resolve_client(request)
        return found

    def _resolve_client(self, request: web.Request) -> h.ClientAddress:
        return h.resolve_client(
            list(request.headers.items()),
            peer_ip=request.remote or "",
            scheme=request.scheme,
            host=request.host,
            trusted=self.trusted_proxies,
        )

    def link_map(self, request: web.Request) -> LinkMap | None:
        """Links to the CRM in a response are rewritten to the base this client used."""
        client = self.client_address(request)
        base = public_base(self.settings.listen.public_url, client.proto, client.host)
        return link_map(self.settings.upstream.url, self.settings.upstream.aliases, base)

    def upstream_headers(
        self,
        request: web.Request,
        client: h.ClientAddress,
        request_id: str,
        subject: Subject | None,
        *,
        sensitive: bool,
    ) -> h.Headers:
        """The headers the CRM gets: the client's, less hop-by-hop, forwarding, method
        overrides, spoofable identity and the gateway's own opt-ins (on sensitive routes
        also ranges, conditionals and encodings the gateway cannot decode), plus the
        gateway's forwarding headers, the request id and the caller's identity headers."""
        settings = self.settings
        items = h.strip_hop_by_hop(request.headers.items())
        drop = set(h.FORWARDING) | {"host", "expect", "content-length"} | h.METHOD_OVERRIDE
        drop.add(settings.reveal.request_header.lower())  # the gateway's own opt-in
        if sensitive:
            drop |= h.RANGE_REQUEST | h.CONDITIONAL | {"accept-encoding"}
        out = self.inbound_headers(h.without(items, drop | self.spoofable_headers), request)
        if settings.upstream.preserve_host:
            out.append(("Host", request.host))
        if sensitive:
            accept = h.decodable_accept_encoding(request.headers.get("Accept-Encoding"))
            out.append(("Accept-Encoding", accept))
        out += h.forwarding_headers(
            client,
            via=f"1.1 {settings.listen.via_name}",
            emit_x_forwarded=settings.forwarded.emit_x_forwarded,
            emit_forwarded=settings.forwarded.emit_forwarded,
        )
        out.append(("X-Request-Id", request_id))
        if subject is not None:
            if subject.auth_method == "api_key":
                # The gateway's own key means nothing to the CRM and must not reach its logs.
                out = h.without(out, {"authorization"})
            out += self.identity_headers(subject)
        return out

    def guard_write(
        self,
        raw: bytes,
        content_types: list[str],
        content_encodings: list[str],
        decision: Decision,
        crm_route: RouteMatch | None,
        query: str = "",
        *,
        replaces: bool = False,
        dispatch: frozenset[str] = frozenset(),
    ) -> bytes:
        """Parse a write body of any type (415 if it cannot be inspected), refuse
        masked placeholders and unauthorised fields in it and in the query string;
        the bytes to forward. A body that `replaces` the record (PUT) is never
        stripped: a field left out would be erased, so its placeholders are refused."""
        settings = self.settings.classification
        body = self._parse(raw, content_types, content_encodings)
        names = dispatch
        if dispatch and crm_route is not None and crm_route.route.query:
            names = dispatch | query_names(query)  # a CRM merging body and query reads either
        check_body(body.field_names(), names)  # a page chosen by the query, not the body
        if query:
            body.also.append(query_reading(query))
        rewritten, _report = guard_body(
            body,
            route=crm_route.route if crm_route else None,
            taxonomy=self.taxonomy,
            decision=decision,
            mode="reject" if replaces else settings.masked_write,
            validate_entry=settings.entry_validation,
        )
        return raw if rewritten is None else rewritten

    def _parse(self, raw: bytes, content_types: list[str], content_encodings: list[str]) -> Any:
        limits = self.settings.limits
        return parse_write_body(
            raw,
            content_types,
            content_encodings,
            BodyLimits(
                max_decoded=limits.max_request_body or limits.max_decompressed_body,
                max_ratio=limits.max_decompression_ratio,
            ),
        )

    def body_criteria(
        self,
        raw: bytes,
        content_types: list[str],
        content_encodings: list[str],
        crm_route: RouteMatch | None,
    ) -> list[dict[str, Any]]:
        """Search, sort and filter criteria in a write body, one dict per reading."""
        body = self._parse(raw, content_types, content_encodings)
        route = crm_route.route if crm_route else None
        found = (body_criteria(r.tree, route) for r in body.readings)
        return [c for c in found if c]

    def named_records(
        self, raw: bytes, content_types: list[str], content_encodings: list[str], path: str
    ) -> list[str]:
        """Read paths of the records a (guarded) write body names besides its path's."""
        body = self._parse(raw, content_types, content_encodings)
        try:
            return named_records([r.tree for r in body.readings], path, self.catalog)
        except TooManyNamed as exc:
            raise RecordNotVisible(
                f"{exc}; their record rules cannot all be checked", reason="too_many_records"
            ) from exc


def _audit_subject(access: Access) -> AuditSubject:
    subject = access.subject
    if subject is None:
        return AuditSubject(id="anonymous", ip=access.client_ip)
    return AuditSubject(
        id=subject.id,
        ip=access.client_ip,
        department=subject.department,
        roles=tuple(sorted(subject.roles)),
        mfa=subject.mfa,
        clearance=subject.clearance,
        auth_method=subject.auth_method,
        partner=subject.partner,
    )


def _audit_decision(access: Access) -> AuditDecision:
    decision = access.decision
    reason = "; ".join(r for r in ((decision.reason if decision else ""), access.error or "") if r)
    return AuditDecision(
        allow=decision.allow if decision else False,
        reason=reason,
        revision=decision.revision if decision else "",
        cache_hit=access.cache_hit,
        report_only=access.report_only,
        audit_level=decision.obligations.audit_level if decision else "basic",
    )


STAGES = web.AppKey("stages", Stages)
