"""A small OpenID provider for tests: a real HTTP server with discovery, a JWKS and a
token endpoint that signs ID tokens (RS256) the way an identity provider does.

`POST /token` with `grant_type=password` signs the user in: `amr` is `["pwd"]`, or
`["pwd", "otp"]` when a correct one-time code is sent as `otp`; `auth_time` is the
moment of that sign-in. `grant_type=refresh_token` issues a new token for the same
sign-in, so `auth_time` and `amr` stay those of the sign-in, as OIDC requires.
`age(sid, seconds)` moves a sign-in into the past (time passing, without a sleep).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import free_port


@dataclass
class SignIn:
    user: str
    amr: list[str]
    auth_time: int


@dataclass
class OidcProvider:
    audience: str
    passwords: dict[str, str]
    otp: str = field(default_factory=lambda: f"{secrets.randbelow(10**6):06d}")
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = "test-idp-1"
    port: int = field(default_factory=free_port)
    sign_ins: dict[str, SignIn] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def age(self, sid: str, seconds: int) -> None:
        self.sign_ins[sid].auth_time -= seconds

    async def _discovery(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_url,
                "token_endpoint": f"{self.issuer}/token",
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": ["sub", "acr", "amr", "auth_time", "sid"],
            }
        )

    async def _jwks(self, _: web.Request) -> web.Response:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return web.json_response({"keys": [jwk]})

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = form.get("grant_type")
        if grant == "password":
            user = str(form.get("username", ""))
            if self.passwords.get(user) != form.get("password"):
                return web.json_response({"error": "invalid_grant"}, status=400)
            amr = ["pwd"]
            if "otp" in form:
                if form["otp"] != self.otp:
                    return web.json_response({"error": "invalid_grant"}, status=400)
                amr.append("otp")
            sid = secrets.token_urlsafe(8)
            self.sign_ins[sid] = SignIn(user, amr, int(time.time()))
        elif grant == "refresh_token":
            sid = str(form.get("refresh_token", ""))
            if sid not in self.sign_ins:
                return web.json_response({"error": "invalid_grant"}, status=400)
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        return web.json_response(
            {"id_token": self._sign(sid), "refresh_token": sid, "token_type": "Bearer"}
        )

    def _sign(self, sid: str) -> str:
        s = self.sign_ins[sid]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": s.user,
            "iat": now,
            "exp": now + 300,
            "auth_time": s.auth_time,
            "amr": s.amr,
            "acr": "urn:test:mfa" if "otp" in s.amr else "urn:test:pwd",
            "sid": sid,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
