"""`create_app(settings)`: wiring only. Every long-lived client is opened in a
cleanup context and closed on shutdown, in reverse order."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from gateway import admin
from gateway.access.handles import HandleCodec, handle_key
from gateway.access.reveal import RevealService
from gateway.access.setup import open_governance
from gateway.audit.alerts import build_alert
from gateway.audit.durability import durable_levels
from gateway.audit.emitter import AuditEmitter
from gateway.boundary import error_boundary, server_header
from gateway.core import headers as h
from gateway.core.catalog import Catalog
from gateway.core.findings import Finding
from gateway.core.masking import Masker
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ConfigError, StartupError
from gateway.handler import handle
from gateway.identity.guard import RequestGuard
from gateway.identity.service import Identity
from gateway.identity.upstream_headers import spoofable_headers, upstream_identity_headers
from gateway.monitor.anomaly import AnomalyDetector
from gateway.monitor.metrics import Metrics
from gateway.observing import add_observations
from gateway.policy.engine import PolicyEngine
from gateway.policy.filters import FilterGuard
from gateway.routes import RouteTable
from gateway.settings import Settings
from gateway.stages import STAGES, Stages
from gateway.state.errors import StoreUnavailable
from gateway.state.grants import open_grant_store
from gateway.state.ratelimit import open_ratelimiter
from gateway.state.revocation import RevocationList
from gateway.upstream import Upstream

SETTINGS = web.AppKey("settings", Settings)


def create_app(settings: Settings) -> web.Application:
    if not settings.upstream.url:
        raise ConfigError(
            "upstream.url is required", ["upstream.url: required (the CRM's base URL)"]
        )
    app = web.Application(
        client_max_size=settings.limits.max_request_body or 2**62,
        middlewares=[error_boundary],
    )
    app[SETTINGS] = settings
    app.on_response_prepare.append(server_header(settings.listen.via_name))
    app.cleanup_ctx.append(_stages_ctx)
    add_observations(app, settings)
    admin.add_routes(app, settings.admin.prefix)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _pseudonym_key(settings: Settings) -> bytes:
    env = settings.classification.pseudonym_key_env
    key = os.environ.get(env, "")
    if key:
        return key.encode()
    if settings.environment == "production":
        raise ConfigError(f"{env} must be set in production (pseudonymisation key)")
    return b"crm-gateway-development-pseudonym-key"


async def _stages_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    taxonomy = Taxonomy.load(settings.path(settings.classification.taxonomy))
    catalog = Catalog.load(settings.path(settings.classification.catalog))
    durable_levels(settings.audit, taxonomy)  # an unknown level stops the start here
    async with contextlib.AsyncExitStack() as opened:  # closed in reverse, also on failure
        try:
            app[STAGES] = await _open_stages(settings, taxonomy, catalog, opened)
        except StoreUnavailable as exc:
            raise StartupError(
                f"redis.url: cannot use {redact_url(settings.redis.url)}: {exc} "
                "(the gateway does not start without its shared revocations and grants)"
            ) from exc
        yield


async def _open_stages(
    settings: Settings, taxonomy: Taxonomy, catalog: Catalog, opened: contextlib.AsyncExitStack
) -> Stages:
    audit = await AuditEmitter.open(settings)
    opened.push_async_callback(audit.close)  # closed last: the others may still emit
    upstream = Upstream.open(settings.upstream, settings.path)
    opened.push_async_callback(upstream.close)
    grants = await open_grant_store(settings)
    opened.push_async_callback(grants.close)
    revocations = await RevocationList.open(settings.redis.url or None)
    opened.push_async_callback(revocations.close)
    ratelimiter = await open_ratelimiter(settings.redis.url or None)
    opened.push_async_callback(ratelimiter.close)
    identity = await Identity.open(settings, revocations, crm=upstream.fetch)
    opened.push_async_callback(identity.close)

    async def _anomaly_revoke(subject_id: str, reason: str) -> None:
        await revocations.revoke(subject_id, reason=reason, by="anomaly-detector")

    metrics = Metrics(templates=(r.label for r in catalog.routes))

    def _alert(finding: Finding) -> None:
        metrics.alerts.inc(finding.kind, finding.action)
        audit.emit(build_alert(finding))

    anomaly = await AnomalyDetector.open(settings, emit=_alert, revoke=_anomaly_revoke)
    opened.push_async_callback(anomaly.close)
    policy = await PolicyEngine.open(
        settings,
        taxonomy=taxonomy,
        taxonomy_policy=taxonomy.to_policy(),
        grants=grants,
        record_inputs=True,
    )
    opened.push_async_callback(policy.close)
    governance = await open_governance(settings, grants, taxonomy, identity, audit)
    opened.push_async_callback(governance.close)
    return Stages(
        settings=settings,
        upstream=upstream,
        identity=identity,
        revocations=revocations,
        anomaly=anomaly,
        guard=RequestGuard.from_settings(settings, ratelimiter),
        policy=policy,
        taxonomy=taxonomy,
        catalog=catalog,
        masker=Masker(taxonomy, _pseudonym_key(settings)),
        audit=audit,
        metrics=metrics,
        routes=RouteTable(
            settings.routes,
            catalog=catalog,
            matrix_params=settings.guard.matrix_params,
            case_insensitive=settings.guard.case_insensitive_paths,
            rewrite_allow=settings.forwarded.rewrite_headers_allow,
            trusted_proxies=h.parse_networks(settings.forwarded.trusted_proxies),
        ),
        trusted_proxies=h.parse_networks(settings.forwarded.trusted_proxies),
        spoofable_headers=frozenset(n.lower() for n in spoofable_headers(settings)),
        identity_headers=lambda subject: list(upstream_identity_headers(settings, subject).items()),
        case_insensitive=settings.guard.case_insensitive_paths,
        filters=FilterGuard(
            taxonomy,
            ratelimiter,
            digest_key=_pseudonym_key(settings),
            on_probe=lambda subject_id, digests: anomaly.observe_probe(
                subject_id=subject_id, digests=digests, now=datetime.now(UTC)
            ),
        ),
        governance=governance,
        reveal=RevealService(
            settings,
            catalog=catalog,
            taxonomy=taxonomy,
            codec=HandleCodec(handle_key(settings.reveal.key_env, _pseudonym_key(settings))),
            limiter=ratelimiter,
        ),
    )


def redact_url(url: str) -> str:
    """`url` without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
