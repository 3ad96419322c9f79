"""The identity provider's signing keys (JWKS), fetched with aiohttp and cached.

An unknown `kid` triggers one refetch (the IdP may have rotated keys), but at
most once per `min_refresh_interval`: a flood of tokens with random `kid`s must
not turn the gateway into a JWKS hammer. Concurrent misses share one fetch.

Only asymmetric keys are kept (RSA, EC, OKP). A symmetric (`oct`) key in a JWKS
is ignored, so an HS256 token can never be checked against anything published.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
from jwt.exceptions import PyJWKError

from gateway.errors import Unauthenticated
from gateway.identity.errors import IdentityProviderUnavailable

# Which algorithms each key type may verify (and, for EC, which curve).
_FAMILIES: dict[str, tuple[str, ...]] = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512"),
    "OKP": ("EdDSA",),
}
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def key_accepts(jwk: dict[str, Any], alg: str) -> bool:
    """May this JWK verify a signature made with `alg`? (No cross-family use.)"""
    kty = jwk.get("kty")
    if not isinstance(kty, str) or alg not in _FAMILIES.get(kty, ()):
        return False
    if "alg" in jwk and jwk["alg"] != alg:
        return False
    if jwk.get("use", "sig") != "sig":
        return False
    return kty != "EC" or jwk.get("crv") == _EC_CURVES[alg]


class JwksCache:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        ttl: float,
        min_refresh_interval: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._url = url
        self._ttl = ttl
        self._min_refresh = min_refresh_interval
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._keys: list[dict[str, Any]] = []
        self._fetched_at: float | None = None
        self._miss_at: float | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key_for(self, kid: str | None, alg: str) -> Any:
        """The public key object for (kid, alg), refetching once on a miss."""
        now = self._clock()
        if not self._keys and self._failed_at is not None and now - self._failed_at < 1.0:
            # The IdP just failed: do not turn every request into another fetch.
            raise IdentityProviderUnavailable("the JWKS endpoint is unavailable")
        if self._fetched_at is None or now - self._fetched_at >= self._ttl:
            await self._refresh(force=True)
        jwk = self._pick(kid, alg)
        if jwk is None:
            await self._refresh(force=False)
            jwk = self._pick(kid, alg)
        if jwk is None:
            raise Unauthenticated(
                f"no signing key {kid!r} for {alg} at the identity provider", kid=kid
            )
        try:
            return jwt.PyJWK(jwk, algorithm=alg).key
        except PyJWKError as exc:
            raise Unauthenticated(f"signing key {kid!r} is unusable: {exc}") from exc

    def _pick(self, kid: str | None, alg: str) -> dict[str, Any] | None:
        usable = [k for k in self._keys if key_accepts(k, alg)]
        if kid is not None:
            return next((k for k in usable if k.get("kid") == kid), None)
        # No kid: only unambiguous when exactly one key fits.
        return usable[0] if len(usable) == 1 else None

    async def _refresh(self, *, force: bool) -> None:
        """force: the cache is empty or stale. Otherwise a `kid` miss, which may refetch
        only if no other miss did within `min_refresh_interval`."""
        started = self._fetched_at
        async with self._lock:
            if self._fetched_at != started:
                return  # another request refreshed while we waited
            now = self._clock()
            if not force:
                if self._miss_at is not None and now - self._miss_at < self._min_refresh:
                    return
                self._miss_at = now
            self._keys = await self._fetch()
            self._fetched_at = now

    async def _fetch(self) -> list[dict[str, Any]]:
        self.fetches += 1
        try:
            async with self._session.get(self._url, timeout=self._timeout) as resp:
                resp.raise_for_status()
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if self._keys:
                return self._keys  # keep serving the last good keys
            self._failed_at = self._clock()
            raise IdentityProviderUnavailable(f"cannot fetch the JWKS: {exc}") from exc
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list):
            raise IdentityProviderUnavailable("JWKS document has no 'keys' list")
        return [k for k in keys if isinstance(k, dict) and k.get("kty") in _FAMILIES]
