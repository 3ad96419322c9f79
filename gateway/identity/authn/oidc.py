"""OIDC / JWT bearer tokens signed by the organisation's identity provider.

A token is "mine" when its (unverified) `iss` is the configured issuer; then it
must pass everything or the request is refused: pinned asymmetric algorithm
(never `none`, never HS*), a key of the matching type from the JWKS, audience,
issuer, exp/nbf with a small leeway, and the required claims.

Who the caller is comes from the directory (by `sub` or another claim); the
token decides only MFA (`amr`/`acr`) and, where `claim_overrides` allows, named
subject fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jwt
from aiohttp import web
from jwt.exceptions import InvalidTokenError

from gateway.core.model import Subject
from gateway.errors import ConfigError, Unauthenticated
from gateway.identity.authn.base import DirectoryHandle, bearer_token, looks_like_jwt, lookup
from gateway.identity.authn.jwks import JwksCache
from gateway.identity.directory import LEVELS
from gateway.settings import OidcSettings
from gateway.settings.identity import OIDC_OVERRIDABLE

OVERRIDABLE = OIDC_OVERRIDABLE


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(header, claims) without checking anything, or None if it is not a JWT at all."""
    if not looks_like_jwt(token):
        return None
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except InvalidTokenError:
        return None
    return header, claims


def mfa_from_claims(
    claims: dict[str, Any], amr_values: tuple[str, ...], acr_values: tuple[str, ...]
) -> bool:
    amr = claims.get("amr")
    if isinstance(amr, list) and any(str(v) in amr_values for v in amr):
        return True
    return str(claims.get("acr", "")) in acr_values if acr_values else False


class OidcAuthenticator:
    name = "oidc"

    def __init__(self, settings: OidcSettings, directory: DirectoryHandle, jwks: JwksCache) -> None:
        bad = [f for f in settings.claim_overrides if f not in OVERRIDABLE]
        if bad:
            raise ConfigError(
                f"identity.oidc.claim_overrides: cannot override {bad}; only {OVERRIDABLE}"
            )
        self._s = settings
        self._directory = directory
        self._jwks = jwks

    async def authenticate(self, request: web.Request) -> Subject | None:
        token = bearer_token(request)
        parsed = unverified(token) if token else None
        if token is None or parsed is None:
            return None
        header, claims = parsed
        if claims.get("iss") != self._s.issuer:
            return None
        verified = await self.verify(token, header)
        return self._subject(verified)

    async def verify(self, token: str, header: dict[str, Any]) -> dict[str, Any]:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._s.algorithms:
            raise Unauthenticated(
                f"token algorithm {alg!r} is not accepted", accepted=list(self._s.algorithms)
            )
        kid = header.get("kid")
        key = await self._jwks.key_for(kid if isinstance(kid, str) else None, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=list(self._s.audience),
                issuer=self._s.issuer,
                leeway=self._s.leeway,
                options={"require": list(self._s.required_claims), "verify_aud": True},
            )
        except InvalidTokenError as exc:
            raise Unauthenticated(f"token refused: {exc}") from exc
        return claims

    def _subject(self, claims: dict[str, Any]) -> Subject:
        name = claims.get(self._s.subject_claim)
        if not isinstance(name, str) or not name:
            raise Unauthenticated(f"token has no {self._s.subject_claim!r} claim")
        mfa = mfa_from_claims(claims, self._s.mfa_amr, self._s.mfa_acr)
        context = {
            "token_issuer": claims.get("iss"),
            "token_id": claims.get("jti"),
            "acr": claims.get("acr"),
            "amr": claims.get("amr"),
            "auth_time": claims.get("auth_time"),
        }
        if self._s.require_directory_entry:
            entry = lookup(self._directory.current(), self._s.directory_match, name, "the token")
            subject = entry.subject_for("oidc", mfa=mfa, **context)
        else:
            maybe = self._directory.current().find(self._s.directory_match, name)
            subject = (
                maybe.subject_for("oidc", mfa=mfa, **context)
                if maybe
                else Subject(
                    id=name, display_name=name, auth_method="oidc", mfa=mfa, attributes=context
                )
            )
        return apply_overrides(subject, claims, self._s.claim_overrides)


def apply_overrides(subject: Subject, claims: dict[str, Any], overrides: dict[str, str]) -> Subject:
    """Replace only the fields the configuration lets the token decide."""
    changes: dict[str, Any] = {}
    for field, claim in overrides.items():
        if claim not in claims:
            continue
        value = claims[claim]
        if field == "roles":
            items = value.split() if isinstance(value, str) else value
            if not isinstance(items, list):
                raise Unauthenticated(f"claim {claim!r} must be a list of roles")
            changes["roles"] = tuple(str(v) for v in items)
        elif field == "clearance":
            if value not in LEVELS:
                raise Unauthenticated(f"claim {claim!r} is not a clearance level")
            changes["clearance"] = value
        else:
            changes[field] = str(value)
    return dataclasses.replace(subject, **changes) if changes else subject
