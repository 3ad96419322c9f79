"""JWTs the CRM issues itself, verified locally with the CRM's shared secret.

BottleCRM, for one, signs access tokens with HS256 and its `SECRET_KEY`. When
that secret is given to the gateway (env var, never the config file) the
gateway can check such tokens without a call to the CRM. Only the configured
HMAC algorithms are accepted; the secret never verifies an RS/ES token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt
from aiohttp import web
from jwt.exceptions import InvalidTokenError

from gateway.core.model import Subject
from gateway.errors import ConfigError, Unauthenticated
from gateway.identity.authn.base import DirectoryHandle, bearer_token, lookup
from gateway.identity.authn.oidc import unverified
from gateway.settings import CrmJwtSettings


class CrmJwtAuthenticator:
    name = "crm_jwt"

    def __init__(
        self, settings: CrmJwtSettings, directory: DirectoryHandle, environ: Mapping[str, str]
    ) -> None:
        secret = environ.get(settings.secret_env, "")
        if len(secret.encode()) < 32:  # RFC 7518 3.2: at least the hash size
            raise ConfigError(
                f"crm_jwt is enabled but env {settings.secret_env} is unset or shorter "
                "than 32 bytes"
            )
        self._secret = secret.encode()
        self._s = settings
        self._directory = directory

    async def authenticate(self, request: web.Request) -> Subject | None:
        token = bearer_token(request)
        parsed = unverified(token) if token else None
        if token is None or parsed is None:
            return None
        header, _ = parsed
        alg = header.get("alg")
        if alg not in self._s.algorithms:
            raise Unauthenticated(f"token algorithm {alg!r} is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[str(alg)],
                leeway=self._s.leeway,
                options={"require": list(self._s.required_claims), "verify_aud": False},
            )
        except InvalidTokenError as exc:
            raise Unauthenticated(f"token refused: {exc}") from exc
        name = claims.get(self._s.subject_claim)
        if not isinstance(name, str | int) or name == "":
            raise Unauthenticated(f"token has no {self._s.subject_claim!r} claim")
        entry = lookup(self._directory.current(), self._s.directory_match, str(name), "the token")
        return entry.subject_for("crm_jwt", mfa=False, token_id=claims.get("jti"))
