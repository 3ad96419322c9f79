"""health (liveness), ready (upstream, OPA and Redis reachable), metrics (Prometheus,
only to `admin.allowed_networks`: its labels name routes and error codes)."""

from __future__ import annotations

import asyncio
import ipaddress

import orjson
from aiohttp import web

from gateway.admin.api import add_api_routes
from gateway.admin.console import add_console_routes
from gateway.admin.coverage import add_coverage_routes
from gateway.admin.reveal import reveal
from gateway.admin.revocations import add_revocation_routes
from gateway.core.detectors import native
from gateway.errors import Forbidden, NotFound
from gateway.stages import STAGES
from gateway.state.client import ping


def _json(body: object, status: int = 200) -> web.Response:
    resp = web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def health(request: web.Request) -> web.Response:
    stages = request.app[STAGES]
    compiled, why = native.status()
    body: dict[str, object] = {"status": "ok", "detectors": "compiled" if compiled else "python"}
    if not compiled:  # as safe, slower: an operator should know
        body["detectors_note"] = why
    if stages.settings.policy.report_only:
        body["report_only"] = True
        body["warning"] = "REPORT-ONLY MODE: responses are NOT masked"
    return _json(body)


async def ready(request: web.Request) -> web.Response:
    stages = request.app[STAGES]
    settings = stages.settings
    upstream_ok, policy_ok, redis_ok = await asyncio.gather(
        stages.upstream.reachable(),
        stages.policy.ready(),
        ping(settings.redis.url) if settings.redis.url else _true(),
    )
    stale = stages.revocations.stale_for()
    max_stale = settings.identity.revocation_max_staleness
    revocations_ok = not (settings.redis.url and max_stale and stale > max_stale)
    checks = {
        "upstream": upstream_ok,
        "policy": policy_ok,
        "redis": redis_ok if settings.redis.url else "not configured",
        "revocations": revocations_ok,
    }
    ok = upstream_ok and policy_ok and redis_ok and revocations_ok
    body: dict[str, object] = {
        "status": "ready" if ok else "not ready",
        "checks": checks,
        # Which policy decides here (data revision, bundle revisions): a rollout is
        # visible replica by replica.
        "policy_revision": stages.policy.revision,
    }
    if settings.policy.report_only:
        body["report_only"] = True
    return _json(body, 200 if ok else 503)


async def _true() -> bool:
    return True


def _from_admin_network(request: web.Request, networks: tuple[str, ...]) -> bool:
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(n, strict=False) for n in networks)


async def metrics(request: web.Request) -> web.Response:
    stages = request.app[STAGES]
    if not _from_admin_network(request, stages.settings.admin.allowed_networks):
        err = Forbidden("metrics are served only to admin.allowed_networks")
        return _json(err.to_body(), err.status)
    body, content_type = stages.metrics.render(
        policy=stages.policy,
        audit=stages.audit,
        report_only=stages.settings.policy.report_only,
    )
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = content_type
    return resp


async def not_found(request: web.Request) -> web.Response:
    err = NotFound("no such gateway endpoint")
    return _json(err.to_body(), err.status)


def add_routes(app: web.Application, prefix: str) -> None:
    app.router.add_get(f"{prefix}/health", health)
    app.router.add_get(f"{prefix}/ready", ready)
    app.router.add_get(f"{prefix}/metrics", metrics)
    add_revocation_routes(app, prefix)
    add_coverage_routes(app, prefix)
    add_api_routes(app, prefix)
    app.router.add_post(f"{prefix}/reveal", reveal)
    add_console_routes(app, prefix)
    app.router.add_route("*", prefix + "/{tail:.*}", not_found)
