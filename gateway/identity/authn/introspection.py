"""Ask the CRM who a credential belongs to (e.g. BottleCRM `GET /api/auth/me/`).

For CRMs that issue their own tokens (PATs, org keys, sessions) the gateway
cannot verify them itself, so it forwards the caller's credential headers,
unchanged, to a configured "who am I" endpoint and maps the answer (user id or
e-mail at configurable JSON paths) to a directory entry.

Answers are cached briefly, bounded (LRU), keyed by a SHA-256 of the credential
headers: the cache never holds a credential. Refusals are cached for a shorter
time so a bad token cannot hammer the CRM. A CRM that cannot answer is a 503,
not a refusal and not a pass.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from gateway.core.model import Subject
from gateway.errors import GatewayError, Unauthenticated
from gateway.identity.authn.base import DirectoryHandle, lookup
from gateway.identity.errors import IdentityProviderUnavailable
from gateway.settings import CrmIntrospectionSettings

# Cached answer: (user id, e-mail) or None for "the CRM refused this credential".
_Answer = tuple[str, str] | None


class CrmFetch(Protocol):
    """The gateway's one CRM client, as identity sees it (`Upstream.fetch`, wired by
    app.py): GET an absolute URL, return status and body; a CRM that cannot be
    reached raises a `GatewayError` (UpstreamUnavailable, UpstreamTimeout)."""

    def __call__(
        self, url: str, headers: Mapping[str, str], *, timeout: float
    ) -> Awaitable[tuple[int, bytes]]: ...


def json_path(data: Any, path: str) -> Any:
    """`user.email` -> data["user"]["email"]; list indices as numbers (`orgs.0.id`)."""
    node = data
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


class CrmIntrospectionAuthenticator:
    name = "crm_introspection"

    def __init__(
        self,
        settings: CrmIntrospectionSettings,
        base_url: str,
        directory: DirectoryHandle,
        fetch: CrmFetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._s = settings
        self._url = (settings.url or base_url).rstrip("/") + settings.path
        self._directory = directory
        self._fetch = fetch
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, _Answer]] = OrderedDict()
        self.calls = 0

    async def authenticate(self, request: web.Request) -> Subject | None:
        creds = [(h, request.headers[h]) for h in self._s.forward_headers if h in request.headers]
        if not creds:
            return None
        answer = await self._answer(creds)
        if answer is None:
            raise Unauthenticated("the CRM did not accept the presented credential")
        user_id, email = answer
        if self._s.directory_match == "email":
            entry = lookup(self._directory.current(), "email", email, "the CRM")
        else:
            entry = lookup(self._directory.current(), self._s.directory_match, user_id, "the CRM")
        return entry.subject_for("crm_introspection", mfa=False, crm_user_id=user_id)

    async def _answer(self, creds: list[tuple[str, str]]) -> _Answer:
        digest = hashlib.sha256()
        for name, value in creds:
            digest.update(name.lower().encode() + b"\0" + value.encode() + b"\0")
        key = digest.digest()
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            return cached[1]
        answer = await self._ask(creds)
        ttl = self._s.cache_ttl if answer is not None else self._s.negative_cache_ttl
        if ttl > 0:
            self._cache[key] = (now + ttl, answer)
            self._cache.move_to_end(key)
            while len(self._cache) > self._s.cache_size:
                self._cache.popitem(last=False)
        return answer

    async def _ask(self, creds: list[tuple[str, str]]) -> _Answer:
        self.calls += 1
        try:
            status, body = await self._fetch(self._url, dict(creds), timeout=self._s.timeout)
        except GatewayError as exc:
            raise IdentityProviderUnavailable(f"CRM introspection failed: {exc}") from exc
        if status in (401, 403):
            return None
        if status >= 400:
            raise IdentityProviderUnavailable(f"CRM introspection failed: status {status}")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise IdentityProviderUnavailable(f"CRM introspection failed: {exc}") from exc
        user_id = json_path(data, self._s.user_id_path)
        email = json_path(data, self._s.email_path)
        if user_id in (None, "") and email in (None, ""):
            return None
        return ("" if user_id is None else str(user_id), "" if email is None else str(email))
