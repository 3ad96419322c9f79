"""`Identity`: the one call the handler makes to learn who is calling.

It tries the configured authenticators in order (the first that recognises the
credential decides) and then refuses subjects that are disabled in the
directory or on the revocation list, so a departed employee's still-valid token
stops working on every replica as soon as the revocation propagates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from gateway.core.model import Subject
from gateway.errors import ConfigError, Unauthenticated
from gateway.identity.apikeys import pepper_from_env
from gateway.identity.authn.apikey import ApiKeyAuthenticator
from gateway.identity.authn.base import Authenticator, DirectoryHandle, utcnow
from gateway.identity.authn.crmjwt import CrmJwtAuthenticator
from gateway.identity.authn.headers import TrustedHeaderAuthenticator
from gateway.identity.authn.introspection import CrmFetch, CrmIntrospectionAuthenticator
from gateway.identity.authn.jwks import JwksCache
from gateway.identity.authn.mtls import MtlsAuthenticator
from gateway.identity.authn.oidc import OidcAuthenticator
from gateway.identity.directory import Directory
from gateway.identity.errors import RevocationListStale, SubjectRevoked
from gateway.identity.mfa import judge
from gateway.settings import IdentitySettings, Settings
from gateway.state.directory import DirectoryStore
from gateway.state.revocation import RevocationList


class Identity:
    """Use `await Identity.open(settings, revocations)`; `await close()` at shutdown."""

    def __init__(
        self,
        authenticators: list[Authenticator],
        directory: DirectoryHandle,
        revocations: RevocationList,
        session: aiohttp.ClientSession | None = None,
        *,
        max_staleness: float = 0.0,
        store: DirectoryStore | None = None,
        settings: IdentitySettings | None = None,
    ) -> None:
        self.authenticators = authenticators
        self.directory = directory
        self._revocations = revocations
        self._session = session
        self._max_staleness = max_staleness
        self._store = store
        self._settings = settings or IdentitySettings()

    @classmethod
    async def open(
        cls,
        settings: Settings,
        revocations: RevocationList,
        *,
        environ: Mapping[str, str] | None = None,
        crm: CrmFetch | None = None,
    ) -> Identity:
        """`crm` is the gateway's one CRM client (`Upstream.fetch`), which CRM
        introspection asks; identity never opens a connection to the CRM itself."""
        env = os.environ if environ is None else environ
        ident = settings.identity
        pepper = pepper_from_env(ident.api_key_pepper_env, env)
        store: DirectoryStore | None = None
        if ident.directory_source == "redis":
            directory, store = await _follow_redis_directory(settings, pepper)
        else:
            directory = DirectoryHandle.load(settings.path(ident.directory), pepper)
        # the identity provider's JWKS (OIDC) is fetched over identity's own session
        session = aiohttp.ClientSession() if "oidc" in ident.authenticators else None
        built: list[Authenticator] = []
        try:
            for name in ident.authenticators:
                built.append(_build(name, settings, directory, session, crm, env))
        except BaseException:
            if session is not None:
                await session.close()
            if store is not None:
                await store.close()
            raise
        return cls(
            built,
            directory,
            revocations,
            session,
            max_staleness=ident.revocation_max_staleness,
            store=store,
            settings=ident,
        )

    async def authenticate(self, request: web.Request) -> Subject:
        for authenticator in self.authenticators:
            subject = await authenticator.authenticate(request)
            if subject is not None:
                self.check_active(subject)
                return judge(subject, self._settings, self.directory.current(), utcnow())
        raise Unauthenticated(
            "no credential the gateway accepts",
            accepted=[a.name for a in self.authenticators],
        )

    def check_active(self, subject: Subject) -> None:
        """Refuse disabled or revoked subjects (and revoked individual credentials)."""
        if self._max_staleness and self._revocations.stale_for() > self._max_staleness:
            raise RevocationListStale(
                "this gateway cannot confirm the revocation list with Redis; refusing all callers"
            )
        if subject.disabled:
            raise SubjectRevoked(f"subject {subject.id} is disabled", subject=subject.id)
        credential = subject.attributes.get("credential_id")
        if self._revocations.is_revoked(subject.id) or (
            isinstance(credential, str) and self._revocations.is_revoked(credential)
        ):
            raise SubjectRevoked(f"access for {subject.id} has been revoked", subject=subject.id)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._store is not None:
            await self._store.close()


async def _follow_redis_directory(
    settings: Settings, pepper: bytes | None
) -> tuple[DirectoryHandle, DirectoryStore]:
    """A handle kept current from the Redis-shared directory (refused if none is published)."""
    if not settings.redis.url:
        raise ConfigError("identity.directory_source is redis but redis.url is empty")
    handle: DirectoryHandle | None = None

    def apply(document: dict[str, Any], version: int) -> None:
        if handle is not None:
            handle.replace(Directory.from_data(document, pepper, source=f"redis v{version}"))

    store = await DirectoryStore.open(settings.redis.url, apply)
    if store.document is None:
        await store.close()
        raise ConfigError(
            "no directory is published in Redis: run `crm-gateway users publish-directory FILE`"
        )
    try:
        first = Directory.from_data(store.document, pepper, source=f"redis v{store.version}")
    except ConfigError:
        await store.close()
        raise
    handle = DirectoryHandle(first)
    return handle, store


def _build(
    name: str,
    settings: Settings,
    directory: DirectoryHandle,
    session: aiohttp.ClientSession | None,
    crm: CrmFetch | None,
    environ: Mapping[str, str],
) -> Authenticator:
    ident = settings.identity
    if name == "api_key":
        return ApiKeyAuthenticator(
            directory,
            ident.api_key_header,
            case_insensitive_paths=settings.guard.case_insensitive_paths,
        )
    if name == "trusted_header":
        return TrustedHeaderAuthenticator(ident.trusted_headers, directory)
    if name == "mtls":
        return MtlsAuthenticator(ident.mtls, directory, settings.path)
    if name == "crm_jwt":
        return CrmJwtAuthenticator(ident.crm_jwt, directory, environ)
    if name == "oidc":
        assert session is not None  # opened above whenever oidc is listed
        oidc = ident.oidc
        jwks = JwksCache(
            session,
            oidc.jwks_url,
            ttl=oidc.jwks_cache_ttl,
            min_refresh_interval=oidc.jwks_min_refresh_interval,
            timeout=oidc.timeout,
        )
        return OidcAuthenticator(oidc, directory, jwks)
    if not (ident.crm_introspection.url or settings.upstream.url):
        raise ConfigError("crm_introspection needs identity.crm_introspection.url or upstream.url")
    if crm is None:
        raise ConfigError(
            "identity.authenticators: crm_introspection asks the CRM through the gateway's "
            "CRM client, and none was given (Identity.open(..., crm=upstream.fetch))"
        )
    return CrmIntrospectionAuthenticator(
        ident.crm_introspection, settings.upstream.url, directory, crm
    )
