"""`POST {prefix}/reveal`: one masked value, for a stated reason (查看明文).

    CSRF header + JSON body -> the handle opens (sealed here, current, for the
      record and field the body names, if it names them)
      -> authenticate (as on the data path; an API key's route scope is checked
         against GET <the record's read path>) -> the handle is the caller's
      -> reason -> request guard and anomaly throttle
      -> policy decision (operation "reveal" on the record's read route, lockdown
         applied) -> the category still revealable -> rate limit
      -> fetch the record again from the CRM through the read route, as the caller
      -> record rules -> the one value -> audit event (durable) -> answer

Any failure refuses (fail closed) and is audited as `reveal_refused` with its
code; a reveal is audited as `field_revealed` in the tamper-evident chain before
the value leaves. The answer is JSON with `Cache-Control: no-store`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from gateway.access.errors import RevealNotAllowed
from gateway.access.handles import Handle, owned
from gateway.admin.api import body, check_csrf, json_response
from gateway.audit.governance import build_governance_event
from gateway.core.model import Decision, Subject
from gateway.errors import GatewayError, NotFound, RateLimited, StepUpRequired
from gateway.handler import error_response, request_id_of
from gateway.identity.authn.apikey import SCOPE_TARGET
from gateway.policy.engine import PolicyRequest
from gateway.stages import STAGES, Stages
from gateway.visibility import read_record

log = logging.getLogger(__name__)


async def reveal(request: web.Request) -> web.StreamResponse:
    stages = request.app[STAGES]
    rid = request_id_of(request)
    service = stages.reveal
    if service is None or not service.cfg.enabled:
        err = NotFound("reveal is not enabled on this gateway")
        return error_response(err, rid, stages)
    subject: Subject | None = None
    handle: Handle | None = None
    sealed: Handle | None = None
    reason: str | None = None
    route: str | None = None
    try:
        check_csrf(request, stages)
        data = await body(request)
        sealed = service.unseal(data.get("handle"), data.get("record"), data.get("field"))
        match, path = service.read_route(sealed)
        route = match.template
        request[SCOPE_TARGET] = ("GET", path)
        subject = await stages.authenticate(request)
        handle = owned(sealed, subject)
        reason = service.check_reason(data.get("reason"))
        guard = await stages.guard.check(request, subject, route)
        if stages.anomaly is not None and stages.anomaly.is_throttled(subject.id):
            raise RateLimited("throttled after unusual activity", retry_after=60.0)
        settings = stages.settings
        purpose = request.headers.get(settings.policy.purpose_header)
        justified = bool(request.headers.get(settings.policy.justification_header))
        outcome = await stages.decide(
            subject,
            PolicyRequest(
                method="GET",
                operation="reveal",
                route_template=route,
                purpose=purpose,
                justification=justified,
                network_zone=guard.network_zone,
                network_allowed=guard.network_allowed,
                now=datetime.now(UTC),
                report_only=False,  # a reveal is never a dry run
            ),
            rid,
        )
        decision = outcome.decision
        _obligations(decision, justified, subject)
        service.check_decision(decision, handle)
        await service.count(subject, decision, stages.audit.emit)
        client = stages.client_address(request)
        headers = stages.upstream_headers(request, client, rid, subject, sensitive=True)
        doc = await read_record(stages.upstream, path, headers)
        value = service.extract(doc, match, handle, decision, subject, stages.masker)
        event = service.change(
            "field_revealed",
            subject,
            request_id=rid,
            ip=guard.client_ip,
            reason=reason,
            handle=handle,
            route=route,
            details={
                "decision": "allowed",
                "revision": decision.revision,
                "purpose": purpose,
            },
        )
        await stages.audit.emit_durable(build_governance_event(event))  # before the value leaves
    except GatewayError as exc:
        _refused(stages, exc, subject, rid, request, reason, handle or sealed, route)
        return error_response(exc, rid, stages)
    resp = json_response(
        {
            "record_id": handle.record_id,
            "field": handle.field,
            "category": handle.category,
            "level": handle.level,
            "value": value,
            "request_id": rid,
        }
    )
    resp.headers["X-Request-Id"] = rid
    return resp


def _obligations(decision: Decision, justified: bool, subject: Subject) -> None:
    """The decision's own refusals, as on the data path."""
    if not decision.allow:
        raise RevealNotAllowed(decision.reason or "the policy denies this reveal")
    ob = decision.obligations
    if ob.step_up:
        raise StepUpRequired(
            "revealing this value needs a stronger sign-in (multi-factor authentication)",
            acr_values=ob.acr_values,
            max_age=subject.step_up_max_age,
        )
    if ob.justification_required and not justified:
        raise RevealNotAllowed("break-glass access needs a justification (X-Justification header)")


def _refused(
    stages: Stages,
    exc: GatewayError,
    subject: Subject | None,
    rid: str,
    request: web.Request,
    reason: str | None,
    handle: Handle | None,
    route: str | None,
) -> None:
    """Every refusal in the chain, with its stable code (never raises)."""
    if stages.reveal is None:
        return
    try:
        change = stages.reveal.change(
            "reveal_refused",
            subject,
            request_id=rid,
            ip=request.remote,
            reason=reason,
            handle=handle,
            route=route,
            details={"decision": "refused", "code": exc.code, "message": exc.message[:200]},
        )
        stages.audit.emit(build_governance_event(change))
    except Exception:  # auditing must not turn a refusal into a 500
        log.exception("reveal refusal not audited (%s)", rid)
