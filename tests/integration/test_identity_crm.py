"""CRM credentials: introspection against a loopback "who am I" endpoint, and CRM JWTs.

The endpoint answers in the shape of BottleCRM's `GET /api/auth/me/`
(`{"user": {"id", "email"}, ...}`, 403 for an unknown credential); the lead's e2e
suite runs the same authenticator against a real BottleCRM.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.errors import GatewayError
from gateway.identity.authn.introspection import CrmIntrospectionAuthenticator, json_path
from gateway.identity.service import Identity
from gateway.settings import Settings
from gateway.state.revocation import RevocationList
from gateway.upstream import Upstream

pytestmark = pytest.mark.integration

SECRET = "crm-django-secret-key-for-tests-0123456789"
DIRECTORY = """
subjects:
  - id: u-sales-01
    email: sales@bank.example
    roles: [sales]
    clearance: L2
    api_keys:
      - id: k-sales
        hash: "sha256:2e31555da0419daf4f3c32fc0f82de1ae01b8e6160702ca85ae3a21c69f4366d"
  - {id: u-cs, email: cs@bank.example, roles: [customer_service], clearance: L2}
"""
USERS = {
    "bcrm_pat_sales": ("42", "sales@bank.example"),
    "bcrm_pat_cs": ("43", "CS@bank.example"),
    "bcrm_pat_stranger": ("99", "stranger@bank.example"),
    "bcrm_pat_x1": ("1", "cs@bank.example"),
    "bcrm_pat_x2": ("2", "cs@bank.example"),
}


class WhoAmI:
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.broken = False

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(
            {k: v for k, v in request.headers.items() if k in ("Authorization", "Token")}
        )
        if self.broken:
            return web.Response(status=500)
        auth = request.headers.get("Authorization", "").removeprefix("Bearer ")
        cred = request.headers.get("Token") or auth
        if cred not in USERS:
            return web.json_response(
                {"detail": "Organization context is required. Please login again."}, status=403
            )
        uid, email = USERS[cred]
        return web.json_response({"user": {"id": uid, "email": email}, "organizations": []})


IDENTITY = web.AppKey("identity", Identity)
Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


async def whoami(request: web.Request) -> web.Response:
    try:
        subject = await request.app[IDENTITY].authenticate(request)
    except GatewayError as exc:
        return web.json_response(exc.to_body(), status=exc.status)
    return web.json_response(subject.to_policy())


@pytest.fixture
async def crm() -> AsyncIterator[tuple[WhoAmI, TestServer]]:
    endpoint = WhoAmI()
    app = web.Application()
    app.router.add_get("/api/auth/me/", endpoint.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield endpoint, server
    await server.close()


@pytest.fixture
async def gateway(
    crm: tuple[WhoAmI, TestServer], tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[tuple[Call, Identity]]]]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def build(**introspection: Any) -> tuple[Call, Identity]:
        (tmp_path / "directory.yaml").write_text(DIRECTORY)
        settings = Settings.model_validate(
            {
                "base_dir": str(tmp_path),
                "upstream": {"url": str(crm[1].make_url("/"))},
                "identity": {
                    "directory": "directory.yaml",
                    "authenticators": ["api_key", "crm_jwt", "crm_introspection"],
                    "crm_introspection": introspection,
                },
            }
        )
        upstream = Upstream.open(settings.upstream)  # the one CRM client, as app.py wires it
        identity = await Identity.open(
            settings,
            await RevocationList.open(None),
            environ={"CRM_GATEWAY_CRM_JWT_SECRET": SECRET},
            crm=upstream.fetch,
        )
        app = web.Application()
        app[IDENTITY] = identity
        app.router.add_get("/{tail:.*}", whoami)
        app.on_cleanup.append(lambda _: identity.close())
        app.on_cleanup.append(lambda _: upstream.close())
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)

        async def call(**headers: str) -> tuple[int, dict[str, Any]]:
            resp = await client.get("/api/contacts/", headers=headers)
            return resp.status, await resp.json()

        return call, identity

    yield build
    for client in clients:
        await client.close()


def _introspector(identity: Identity) -> CrmIntrospectionAuthenticator:
    found = [a for a in identity.authenticators if isinstance(a, CrmIntrospectionAuthenticator)]
    return found[0]


async def test_pat_is_introspected_passed_through_and_cached(gateway: Any, crm: Any) -> None:
    endpoint: WhoAmI = crm[0]
    call, identity = await gateway()
    status, body = await call(Authorization="Bearer bcrm_pat_sales")
    assert status == 200, body
    assert (body["id"], body["auth_method"]) == ("u-sales-01", "crm_introspection")
    assert endpoint.calls == [{"Authorization": "Bearer bcrm_pat_sales"}]
    assert (await call(Authorization="Bearer bcrm_pat_sales"))[0] == 200
    assert len(endpoint.calls) == 1  # answered from the cache
    # The cache is keyed by a digest, never by the credential.
    keys = list(_introspector(identity)._cache)
    assert all(isinstance(k, bytes) and len(k) == 32 and b"bcrm_pat" not in k for k in keys)


async def test_only_authorization_is_forwarded_by_default(gateway: Any, crm: Any) -> None:
    call, _ = await gateway()
    status, _body = await call(Token="bcrm_pat_cs")
    assert status == 401
    assert crm[0].calls == []  # the CRM was never asked about the Token header


async def test_token_header_and_email_case(gateway: Any, crm: Any) -> None:
    call, _ = await gateway(forward_headers=["Authorization", "Token"])
    status, body = await call(Token="bcrm_pat_cs")
    assert (status, body["id"]) == (200, "u-cs")
    assert crm[0].calls == [{"Token": "bcrm_pat_cs"}]


async def test_refusals_are_cached_briefly(gateway: Any, crm: Any) -> None:
    call, _ = await gateway(negative_cache_ttl=1.0)
    for _ in range(3):
        status, body = await call(Authorization="Bearer bcrm_pat_forged")
        assert status == 401
        assert "did not accept" in body["message"]
    assert len(crm[0].calls) == 1
    await asyncio.sleep(1.05)
    assert (await call(Authorization="Bearer bcrm_pat_forged"))[0] == 401
    assert len(crm[0].calls) == 2


async def test_positive_cache_expires(gateway: Any, crm: Any) -> None:
    call, _ = await gateway(cache_ttl=0.2)
    assert (await call(Authorization="Bearer bcrm_pat_sales"))[0] == 200
    await asyncio.sleep(0.25)
    assert (await call(Authorization="Bearer bcrm_pat_sales"))[0] == 200
    assert len(crm[0].calls) == 2


async def test_cache_is_bounded(gateway: Any) -> None:
    call, identity = await gateway(cache_size=2)
    for token in ("bcrm_pat_sales", "bcrm_pat_cs", "bcrm_pat_x1", "bcrm_pat_x2"):
        assert (await call(Authorization=f"Bearer {token}"))[0] == 200
    assert len(_introspector(identity)._cache) == 2


async def test_crm_user_outside_the_directory_is_refused(gateway: Any) -> None:
    call, _ = await gateway()
    status, body = await call(Authorization="Bearer bcrm_pat_stranger")
    assert status == 401
    assert "not in the gateway directory" in body["message"]


async def test_crm_failure_is_a_503_not_a_pass(gateway: Any, crm: Any) -> None:
    crm[0].broken = True
    call, _ = await gateway()
    status, body = await call(Authorization="Bearer bcrm_pat_sales")
    assert (status, body["error"]) == (503, "identity_provider_unavailable")


async def test_configurable_json_paths(gateway: Any) -> None:
    call, _ = await gateway(directory_match="id", user_id_path="user.email", email_path="none")
    # Matching "id" against the e-mail path: the directory id is not an e-mail, so refused.
    assert (await call(Authorization="Bearer bcrm_pat_sales"))[0] == 401
    assert json_path({"a": [{"b": 1}]}, "a.0.b") == 1
    assert json_path({"a": [{"b": 1}]}, "a.5.b") is None


async def test_api_key_is_answered_without_the_crm(gateway: Any, crm: Any) -> None:
    call, _ = await gateway()
    status, body = await call(Authorization="Bearer demo-sales-key")
    assert (status, body["auth_method"]) == (200, "api_key")
    assert crm[0].calls == []


def _crm_jwt(secret: str = SECRET, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "token_type": "access",
        "user_id": "42",
        "user_email": "sales@bank.example",
        "exp": now + 300,
        "iat": now,
        "jti": "j-1",
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


async def test_crm_jwt_is_verified_locally(gateway: Any, crm: Any) -> None:
    call, _ = await gateway()
    status, body = await call(Authorization=f"Bearer {_crm_jwt()}")
    assert (status, body["id"], body["auth_method"]) == (200, "u-sales-01", "crm_jwt")
    assert crm[0].calls == []


# Tokens are made when the test runs (not at collection): a long suite would
# otherwise see them expire and each case would fail for the wrong reason.
@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        (lambda: _crm_jwt(secret="another-secret-of-enough-length-0123456789"),
         "Signature verification"),
        (lambda: _crm_jwt(exp=int(time.time()) - 100), "expired"),
        (lambda: _crm_jwt(user_email="stranger@bank.example"), "not in the gateway directory"),
        (lambda: jwt.encode({"user_email": "sales@bank.example"}, SECRET, algorithm="HS256"),
         "exp"),
        (lambda: "eyJhbGciOiJub25lIn0.eyJ1c2VyX2VtYWlsIjoic2FsZXNAYmFuay5leGFtcGxlIn0.", "'none'"),
    ],
    ids=["other_secret", "expired", "unknown_user", "no_exp", "alg_none"],
)  # fmt: skip
async def test_bad_crm_jwts_are_refused(
    gateway: Any, token: Callable[[], str], fragment: str
) -> None:
    call, _ = await gateway()
    status, body = await call(Authorization=f"Bearer {token()}")
    assert status == 401, body
    assert fragment in body["message"]


async def test_crm_jwt_needs_its_secret(tmp_path: Path) -> None:
    from gateway.errors import ConfigError

    (tmp_path / "directory.yaml").write_text(DIRECTORY)
    settings = Settings.model_validate(
        {
            "base_dir": str(tmp_path),
            "identity": {"directory": "directory.yaml", "authenticators": ["crm_jwt"]},
        }
    )
    with pytest.raises(ConfigError, match="CRM_GATEWAY_CRM_JWT_SECRET"):
        await Identity.open(settings, await RevocationList.open(None), environ={})
