"""Observe mode on the data path: one call per response (`observe_response`, in
handler._respond) hands the enforcer an Observer and returns the function that
records what it saw, in the background, once the body has been relayed.

A failed write to the store is logged and dropped: observations are a report for
the catalog's reviewers, never a reason to fail or delay a response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.core.catalog import RouteMatch
from gateway.core.enforce import Enforcer
from gateway.core.observe import Observer
from gateway.settings import Settings
from gateway.state.errors import StoreUnavailable
from gateway.state.observations import ObservationStore, open_store

OBSERVATIONS = web.AppKey("observations", ObservationStore)
_PENDING = web.AppKey("observations_pending", set[asyncio.Task[None]])
_MAX_LEAVES = web.AppKey("observations_max_leaves", int)
log = logging.getLogger(__name__)


def _noop() -> None:
    return None


def observe_response(
    request: web.Request, template: str, crm_route: RouteMatch | None, enforcer: Enforcer | None
) -> Callable[[], None]:
    """Attach an observer to `enforcer` when observe mode is on; call the result
    when the response is done."""
    store = request.app.get(OBSERVATIONS)
    if store is None or enforcer is None:
        return _noop
    observer = Observer(
        crm_route.template if crm_route else template,
        crm_route.route if crm_route else None,
        max_leaves=request.app[_MAX_LEAVES],
    )
    enforcer.observer = observer
    pending = request.app[_PENDING]

    def done() -> None:
        if not observer.paths and observer.catalogued:
            return
        task = asyncio.get_running_loop().create_task(_record(store, observer))
        pending.add(task)
        task.add_done_callback(pending.discard)

    return done


async def _record(store: ObservationStore, observer: Observer) -> None:
    try:
        await store.record(observer.to_dict())
    except StoreUnavailable as exc:
        log.warning("observation of %s not recorded: %s", observer.template, exc)


def add_observations(app: web.Application, settings: Settings) -> None:
    """Open the store at start-up when `classification.observe.enabled`."""
    if not settings.classification.observe.enabled:
        return
    app[_MAX_LEAVES] = settings.classification.observe.max_leaves

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_store(settings) as store:
            app[OBSERVATIONS] = store
            app[_PENDING] = set()
            yield
            with contextlib.suppress(Exception):
                await asyncio.gather(*app[_PENDING], return_exceptions=True)

    app.cleanup_ctx.append(ctx)
