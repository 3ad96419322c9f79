"""`GET {prefix}/admin/catalog/coverage`: what observe mode shows the catalog lacks.

The same report as `crm-gateway catalog coverage` (gateway.core.observe.coverage):
routes seen but not catalogued, field paths with detector hits the catalog does
not name, catalog routes and field rules never seen, with request counts. Counts
and categories only. For the security team (`admin.roles`), from
`admin.allowed_networks`; 404 `observe_off` when observe mode is not enabled, 503
`observations_unavailable` when the store (Redis) does not answer.
"""

from __future__ import annotations

from aiohttp import web

from gateway.admin.api import authenticated, check_network, json_response
from gateway.core.observe import coverage
from gateway.errors import Forbidden, GatewayError, NotFound, ServerError
from gateway.observing import OBSERVATIONS
from gateway.stages import STAGES
from gateway.state.errors import StoreUnavailable


class ObserveOff(NotFound):
    code = "observe_off"


class ObservationsUnavailable(ServerError):
    status = 503
    code = "observations_unavailable"


async def catalog_coverage(request: web.Request) -> web.Response:
    stages = request.app[STAGES]
    try:
        check_network(request, stages)
        who = await authenticated(request, stages)
        if not set(who.subject.roles) & set(stages.settings.admin.roles):
            raise Forbidden("the coverage report needs a security administrator role")
        store = request.app.get(OBSERVATIONS)
        if store is None:
            raise ObserveOff("observe mode is off (classification.observe.enabled)")
        try:
            snapshot = await store.snapshot()
        except StoreUnavailable as exc:
            raise ObservationsUnavailable(f"the observation store did not answer: {exc}") from exc
        report = coverage(stages.catalog, snapshot)
        return json_response({"shared": store.shared, **report.to_dict()})
    except GatewayError as exc:
        return json_response(exc.to_body(), exc.status)


def add_coverage_routes(app: web.Application, prefix: str) -> None:
    app.router.add_get(f"{prefix}/admin/catalog/coverage", catalog_coverage)
