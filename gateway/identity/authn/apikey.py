"""API keys from the directory (`Authorization: Bearer <key>` or the configured header)."""

from __future__ import annotations

from aiohttp import web

from gateway.core.model import Subject
from gateway.core.paths import normalize_path
from gateway.errors import Unauthenticated
from gateway.identity.authn.base import Clock, DirectoryHandle, bearer_token, utcnow
from gateway.identity.errors import CredentialOutOfScope

# A request made on behalf of another (the reveal endpoint reads a record through
# the catalog's read route): the key's route scope is checked against that
# (method, path) instead of the request's own.
SCOPE_TARGET = web.RequestKey("credential_scope_target", tuple)


class ApiKeyAuthenticator:
    """A key in the dedicated header is always ours; an unknown *bearer* value is left
    to the next authenticator (it may be an IdP token or a CRM credential)."""

    name = "api_key"

    def __init__(
        self,
        directory: DirectoryHandle,
        header: str,
        *,
        case_insensitive_paths: bool = False,
        clock: Clock = utcnow,
    ) -> None:
        self._directory = directory
        self._header = header
        self._case_insensitive = case_insensitive_paths
        self._clock = clock

    async def authenticate(self, request: web.Request) -> Subject | None:
        from_header = request.headers.get(self._header, "").strip()
        key = from_header or bearer_token(request)
        if not key:
            return None
        found = self._directory.current().find_api_key(key)
        if found is None:
            if from_header:
                raise Unauthenticated(f"unknown API key in {self._header}")
            return None
        entry, api_key = found
        if api_key.expires is not None and self._clock() >= api_key.expires:
            raise Unauthenticated(f"API key {api_key.id} expired at {api_key.expires.isoformat()}")
        method, path = request.get(SCOPE_TARGET) or (
            request.method,
            normalize_path(request.rel_url.raw_path, case_insensitive=self._case_insensitive),
        )
        if not api_key.allows(method, path, case_insensitive=self._case_insensitive):
            raise CredentialOutOfScope(
                f"API key {api_key.id} is not issued for {method} {path}",
                routes=list(api_key.routes),
                methods=list(api_key.methods),
            )
        return entry.subject_for("api_key", mfa=False, credential_id=api_key.id)
