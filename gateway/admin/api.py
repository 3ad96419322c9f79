"""The admin API under `{prefix}/admin/`: JSON for the security team's console.

Every call is authenticated by the gateway's own authenticators (OIDC, API
keys, CRM introspection, mTLS, ...), must come from `admin.allowed_networks`,
and acts as the caller's *directory* entry: roles and department are read from
the directory, never from the request, and a caller missing from it is
refused (`not_in_directory`). State-changing calls (POST, DELETE) also need
the `access.csrf_header` header and a JSON body: a browser cannot send either
cross-site without a CORS preflight, which the gateway never grants, so pages
built on this API are CSRF-safe whatever the session mechanism.

The routes and their shapes are in `openapi.py`, served at `{prefix}/admin/openapi.json`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web

from gateway.access.errors import NotInDirectory
from gateway.access.requests import NewRequest
from gateway.access.roles import Principal, principal
from gateway.admin.openapi import openapi_document
from gateway.errors import (
    ClientError,
    Forbidden,
    GatewayError,
    UnsupportedMediaType,
)
from gateway.stages import STAGES, Stages


class CsrfHeaderRequired(Forbidden):
    code = "csrf_header_required"


Handler = Callable[[web.Request, Stages, Principal], Awaitable[Any]]
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def json_response(body: Any, status: int = 200) -> web.Response:
    resp = web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    return resp


def check_network(request: web.Request, stages: Stages) -> None:
    peer = ipaddress.ip_address(request.remote or "0.0.0.0")
    nets = [ipaddress.ip_network(n, strict=False) for n in stages.settings.admin.allowed_networks]
    if not any(peer in net for net in nets):
        raise Forbidden("the admin API is not reachable from this network")


def check_csrf(request: web.Request, stages: Stages) -> None:
    """State-changing calls carry the custom header (and a JSON body when they have one)."""
    if request.method not in STATE_CHANGING:
        return
    header = stages.settings.access.csrf_header
    if not request.headers.get(header, "").strip():
        raise CsrfHeaderRequired(f"state-changing admin calls need the {header} header")
    if request.body_exists:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise UnsupportedMediaType("admin calls take application/json bodies")


async def authenticated(request: web.Request, stages: Stages) -> Principal:
    """The caller as their directory entry, with console roles from the directory."""
    check_network(request, stages)
    subject = await stages.authenticate(request)  # key guessing is throttled here too
    entry = stages.identity.directory.current().get(subject.id)
    if entry is None:
        raise NotInDirectory(f"{subject.id} is not in the gateway directory")
    known = dataclasses.replace(entry.subject, auth_method=subject.auth_method, mfa=subject.mfa)
    check_csrf(request, stages)
    return principal(known, stages.settings.access, via="api", ip=request.remote)


async def body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise ClientError("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ClientError("the body must be a JSON object")
    return data


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ClientError(f"{key} must be a string")
    return value


def _strs(data: Any, key: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ClientError(f"{key} must be a list of strings")
    return tuple(value)


def _governance(stages: Stages) -> Any:
    if stages.governance is None:
        raise GatewayError("governance is not configured on this gateway")
    return stages.governance


def endpoint(fn: Handler, status: int = 200) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        stages = request.app[STAGES]
        try:
            who = await authenticated(request, stages)
            return json_response(await fn(request, stages, who), status)
        except GatewayError as exc:
            return json_response(exc.to_body(), exc.status)

    return handle


# -- handlers ------------------------------------------------------------------------


async def me(request: web.Request, stages: Stages, who: Principal) -> Any:
    s = who.subject
    return {
        "id": s.id,
        "display_name": s.display_name,
        "department": s.department,
        "console_roles": sorted(who.roles),
        "clearance": s.clearance,  # the directory's; console roles never add to it
        "mfa": s.mfa,
    }


def _new_request(data: dict[str, Any], who: Principal) -> NewRequest:
    scope = data.get("scope") or {}
    if not isinstance(scope, dict):
        raise ClientError("scope must be an object")
    hours = data.get("duration_hours")
    seconds = data.get("duration_seconds")
    duration = None
    for value, unit in ((hours, 3600), (seconds, 1)):
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ClientError("a duration is a positive number")
            duration = timedelta(seconds=float(value) * unit)
    if scope.get("customers") or scope.get("categories"):
        raise ClientError(
            "scope by customer ids or categories is not enforced by this gateway; "
            "scope by level, grant type, operations and routes"
        )
    entry = data.get("entry")
    if entry is not None and not isinstance(entry, dict):
        raise ClientError("entry must be an object")
    level = scope.get("level", data.get("level"))
    return NewRequest(
        kind=_str(data, "kind") or "grant",
        subject=_str(data, "subject") or who.id,
        purpose=_str(data, "purpose"),
        justification=_str(data, "justification"),
        grant_type=scope.get("grant_type") or data.get("grant_type"),
        level=level if isinstance(level, str) else None,
        operations=_strs(scope, "operations"),
        routes=_strs(scope, "routes"),
        duration=duration,
        clearance=data.get("clearance") if isinstance(data.get("clearance"), str) else None,
        roles=_strs(data, "roles") if "roles" in data else None,
        entry=entry,
        single_use=scope.get("single_use") is True,
    )


async def create_request(request: web.Request, stages: Stages, who: Principal) -> Any:
    return await _governance(stages).requests.create(who, _new_request(await body(request), who))


async def list_requests(request: web.Request, stages: Stages, who: Principal) -> Any:
    q = request.query
    items = await _governance(stages).requests.list(
        who, state=q.get("state"), subject=q.get("subject"), kind=q.get("kind")
    )
    return {"requests": items}


async def get_request(request: web.Request, stages: Stages, who: Principal) -> Any:
    return await _governance(stages).requests.get(request.match_info["id"], who)


async def approve(request: web.Request, stages: Stages, who: Principal) -> Any:
    data = await body(request)
    return await _governance(stages).requests.approve(
        request.match_info["id"], who, _str(data, "comment")
    )


async def reject(request: web.Request, stages: Stages, who: Principal) -> Any:
    data = await body(request)
    return await _governance(stages).requests.reject(
        request.match_info["id"], who, _str(data, "reason")
    )


async def withdraw(request: web.Request, stages: Stages, who: Principal) -> Any:
    data = await body(request)
    return await _governance(stages).requests.withdraw(
        request.match_info["id"], who, _str(data, "reason")
    )


async def list_grants(request: web.Request, stages: Stages, who: Principal) -> Any:
    state = request.query.get("state")
    items = await _governance(stages).requests.list(who, state=state, kind="grant")
    return {"grants": items}


async def revoke_grant(request: web.Request, stages: Stages, who: Principal) -> Any:
    data = await body(request)
    return await _governance(stages).requests.revoke(
        request.match_info["id"], who, _str(data, "reason")
    )


async def break_glass(request: web.Request, stages: Stages, who: Principal) -> Any:
    data = await body(request)
    grant, review = await _governance(stages).break_glass(who, _str(data, "justification"))
    return {"grant": grant, "review": review}


async def list_reviews(request: web.Request, stages: Stages, who: Principal) -> Any:
    items = await _governance(stages).list_reviews(who, state=request.query.get("state"))
    return {"reviews": items}


async def close_review(request: web.Request, stages: Stages, who: Principal) -> Any:
    data = await body(request)
    return await _governance(stages).close_review(
        request.match_info["id"], who, _str(data, "outcome"), _str(data, "notes")
    )


async def get_lockdown(request: web.Request, stages: Stages, who: Principal) -> Any:
    current = _governance(stages).lockdown.current
    return {"active": current is not None, **(current or {})}


async def lockdown_on(request: web.Request, stages: Stages, who: Principal) -> Any:
    data = await body(request)
    return await _governance(stages).switch_lockdown(who, True, _str(data, "reason"))


async def lockdown_off(request: web.Request, stages: Stages, who: Principal) -> Any:
    data = await body(request)
    return await _governance(stages).switch_lockdown(who, False, _str(data, "reason"))


async def openapi(request: web.Request) -> web.Response:
    prefix = request.app[STAGES].settings.admin.prefix
    return json_response(openapi_document(prefix))


def add_api_routes(app: web.Application, prefix: str) -> None:
    base = f"{prefix}/admin"
    r = app.router
    r.add_get(f"{base}/openapi.json", openapi)
    r.add_get(f"{base}/me", endpoint(me))
    r.add_get(f"{base}/requests", endpoint(list_requests))
    r.add_post(f"{base}/requests", endpoint(create_request, 201))
    r.add_get(base + "/requests/{id}", endpoint(get_request))
    r.add_post(base + "/requests/{id}/approve", endpoint(approve))
    r.add_post(base + "/requests/{id}/reject", endpoint(reject))
    r.add_post(base + "/requests/{id}/withdraw", endpoint(withdraw))
    r.add_get(f"{base}/grants", endpoint(list_grants))
    r.add_post(base + "/grants/{id}/revoke", endpoint(revoke_grant))
    r.add_post(f"{base}/break-glass", endpoint(break_glass, 201))
    r.add_get(f"{base}/reviews", endpoint(list_reviews))
    r.add_post(base + "/reviews/{id}/close", endpoint(close_review))
    r.add_get(f"{base}/lockdown", endpoint(get_lockdown))
    r.add_post(f"{base}/lockdown", endpoint(lockdown_on))
    r.add_post(f"{base}/lockdown/lift", endpoint(lockdown_off))
