"""Admin API for revocation: departed staff (离职) refused on every replica at once.

    POST   {prefix}/admin/revocations        {"subject": "u-1", "reason": "left"}
    DELETE {prefix}/admin/revocations/{id}
    GET    {prefix}/admin/revocations

Only from `admin.allowed_networks`, only for an authenticated directory subject
holding one of `admin.roles` (and, for changes, the CSRF header), and every
change is a governance event in the audit chain with who did it and why.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.access.roles import Principal
from gateway.admin.api import authenticated
from gateway.audit.governance import Change, build_governance_event
from gateway.errors import ClientError, Forbidden, GatewayError, NotFound
from gateway.stages import STAGES, Stages


def _json(body: Any, status: int = 200) -> web.Response:
    resp = web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def _admin(request: web.Request, stages: Stages) -> Principal:
    who = await authenticated(request, stages)
    if not set(who.subject.roles) & set(stages.settings.admin.roles):
        raise Forbidden("revocation needs a security administrator role")
    return who


def _audit(stages: Stages, admin: Principal, action: str, target: str, reason: str) -> None:
    change = Change(action, admin.actor(), subject=target, reason=reason)
    stages.audit.emit(build_governance_event(change))


async def _handle(request: web.Request, action: str) -> web.Response:
    stages = request.app[STAGES]
    try:
        admin = await _admin(request, stages)
        if action == "list":
            entries = await stages.revocations.list()
            return _json(
                {
                    "revoked": [
                        {"subject": e.subject_id, "reason": e.reason, "by": e.by, "at": e.at}
                        for e in entries
                    ]
                }
            )
        if action == "revoke":
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError as exc:
                raise ClientError('the body must be JSON: {"subject": ..., "reason": ...}') from exc
            target, reason = str(body.get("subject", "")), str(body.get("reason", "")).strip()
            if not target or not reason:
                raise ClientError("both 'subject' and a non-empty 'reason' are required")
            await stages.revocations.revoke(target, reason=reason, by=admin.id)
            _audit(stages, admin, "subject_revoked", target, reason)
            return _json({"revoked": target}, 201)
        target = request.match_info["subject"]
        if not await stages.revocations.restore(target, by=admin.id):
            raise NotFound(f"{target} is not revoked")
        _audit(stages, admin, "subject_restored", target, "restored")
        return _json({"restored": target})
    except GatewayError as exc:
        return _json(exc.to_body(), exc.status)


async def list_revocations(request: web.Request) -> web.Response:
    return await _handle(request, "list")


async def revoke(request: web.Request) -> web.Response:
    return await _handle(request, "revoke")


async def restore(request: web.Request) -> web.Response:
    return await _handle(request, "restore")


def add_revocation_routes(app: web.Application, prefix: str) -> None:
    app.router.add_get(f"{prefix}/admin/revocations", list_revocations)
    app.router.add_post(f"{prefix}/admin/revocations", revoke)
    app.router.add_delete(prefix + "/admin/revocations/{subject}", restore)
