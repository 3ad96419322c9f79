"""OIDC bearer tokens against a real JWKS endpoint on loopback, with real signed tokens.

Every refusal case from the threat list: forged signature, `alg: none`, HS256
signed with the RSA public key, cross-family algorithm, expired, not yet valid,
wrong audience, wrong issuer, missing claims, unknown kid (refetched once, then
refused). Keys are generated per test run; nothing is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.errors import GatewayError
from gateway.identity.service import Identity
from gateway.settings import Settings
from gateway.state.revocation import RevocationList

pytestmark = pytest.mark.integration

ISSUER = "https://idp.test/realms/bank"
AUDIENCE = "crm-gateway"
DIRECTORY = """
subjects:
  - {id: u-sales-01, email: sales@bank.example, roles: [sales], department: retail, clearance: L2}
  - {id: u-manager, roles: [relationship_manager], department: wealth, clearance: L3}
  - {id: u-departed, roles: [sales], clearance: L2, disabled: true}
"""

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(public: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
    data: dict[str, Any] = json.loads(algo.to_jwk(public))
    data.update(kid=kid, use="sig", alg=alg)
    return data


class Jwks:
    """A JWKS endpoint whose key set the test can change; counts fetches."""

    def __init__(self) -> None:
        self.keys = [
            _jwk(RSA_KEY.public_key(), "rsa-1", "RS256"),
            _jwk(EC_KEY.public_key(), "ec-1", "ES256"),
        ]
        self.fetches = 0
        self.up = True

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if not self.up:
            return web.Response(status=503)
        return web.json_response({"keys": self.keys})


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u-sales-01",
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def rs256(payload: dict[str, Any], kid: str = "rsa-1", key: Any = RSA_KEY) -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to produce (alg none, HS256 keyed with a public key)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return f"{signing_input}.{_b64(sig)}"


IDENTITY = web.AppKey("identity", Identity)


async def whoami(request: web.Request) -> web.Response:
    identity = request.app[IDENTITY]
    try:
        subject = await identity.authenticate(request)
    except GatewayError as exc:
        return web.json_response(exc.to_body(), status=exc.status)
    return web.json_response(
        {
            **subject.to_policy(),
            "display_name": subject.display_name,
            "amr": subject.attributes.get("amr"),
        }
    )


Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


@pytest.fixture
async def jwks() -> AsyncIterator[tuple[Jwks, str]]:
    endpoint = Jwks()
    app = web.Application()
    app.router.add_get("/jwks", endpoint.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield endpoint, str(server.make_url("/jwks"))
    await server.close()


@pytest.fixture
async def make_identity(
    jwks: tuple[Jwks, str], tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[tuple[Call, RevocationList]]]]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def build(**oidc: Any) -> tuple[Call, RevocationList]:
        (tmp_path / "directory.yaml").write_text(DIRECTORY)
        settings = Settings.model_validate(
            {
                "base_dir": str(tmp_path),
                "identity": {
                    "directory": "directory.yaml",
                    "authenticators": ["api_key", "oidc"],
                    "oidc": {
                        "issuer": ISSUER,
                        "audience": [AUDIENCE],
                        "jwks_url": jwks[1],
                        "jwks_min_refresh_interval": 60,
                        "mfa_acr": ["urn:bank:mfa"],
                        "claim_overrides": {"department": "dept"},
                        **oidc,
                    },
                },
            }
        )
        revocations = await RevocationList.open(None)
        identity = await Identity.open(settings, revocations)
        app = web.Application()
        app[IDENTITY] = identity
        app.router.add_get("/{tail:.*}", whoami)
        app.on_cleanup.append(lambda _: identity.close())
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)

        async def call(token: str, path: str = "/api/customers") -> tuple[int, dict[str, Any]]:
            resp = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            return resp.status, await resp.json()

        return call, revocations

    yield build
    for client in clients:
        await client.close()


async def test_good_rs256_token(make_identity: Any) -> None:
    call, _ = await make_identity()
    status, body = await call(rs256(claims()))
    assert status == 200, body
    assert body["id"] == "u-sales-01"
    assert body["auth_method"] == "oidc"
    assert body["clearance"] == "L2"
    assert body["mfa"] is False


async def test_good_es256_token_and_mfa_from_amr(make_identity: Any) -> None:
    call, _ = await make_identity()
    token = jwt.encode(
        claims(amr=["pwd", "otp"], auth_time=int(time.time())),
        EC_KEY,
        algorithm="ES256",
        headers={"kid": "ec-1"},
    )
    status, body = await call(token)
    assert status == 200, body
    assert body["mfa"] is True
    assert body["amr"] == ["pwd", "otp"]


async def test_mfa_from_acr_and_allowed_claim_override_only(make_identity: Any) -> None:
    call, _ = await make_identity()
    status, body = await call(
        rs256(
            claims(
                acr="urn:bank:mfa",
                auth_time=int(time.time()),
                dept="private-banking",
                clearance="L5",
            )
        )
    )
    assert status == 200, body
    assert body["mfa"] is True
    assert body["department"] == "private-banking"  # allowed by claim_overrides
    assert body["clearance"] == "L2"  # not overridable: the directory decides


@pytest.mark.parametrize(
    ("case", "make_token", "fragment"),
    [
        ("forged signature", lambda: rs256(claims(), key=RSA_OTHER), "Signature verification"),
        ("alg none", lambda: handmade({"alg": "none", "typ": "JWT"}, claims(), None), "'none'"),
        (
            "HS256 keyed with the RSA public key",
            lambda: handmade(
                {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
                claims(),
                RSA_KEY.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            ),
            "'HS256'",
        ),
        (
            "RSA key claimed as ES256",
            lambda: handmade({"alg": "ES256", "typ": "JWT", "kid": "rsa-1"}, claims(), b"x" * 32),
            "no signing key",
        ),
        ("expired", lambda: rs256(claims(exp=int(time.time()) - 120)), "expired"),
        ("not yet valid", lambda: rs256(claims(nbf=int(time.time()) + 600)), "not yet valid"),
        ("wrong audience", lambda: rs256(claims(aud="another-app")), "Audience"),
        ("missing iat", lambda: rs256(claims(iat=None)), "iat"),
        ("missing exp", lambda: rs256(claims(exp=None)), "exp"),
        (
            "not in directory",
            lambda: rs256(claims(sub="u-stranger")),
            "not in the gateway directory",
        ),
    ],
)
async def test_bad_tokens_are_refused(
    make_identity: Any, case: str, make_token: Callable[[], str], fragment: str
) -> None:
    call, _ = await make_identity()
    status, body = await call(make_token())
    assert status == 401, (case, body)
    assert body["error"] == "unauthenticated"
    assert fragment in body["message"], (case, body)


async def test_wrong_issuer_is_not_ours(make_identity: Any) -> None:
    call, _ = await make_identity()
    status, body = await call(rs256(claims(iss="https://evil.example")))
    assert status == 401
    assert body["message"] == "no credential the gateway accepts"


async def test_unknown_kid_refetches_once_then_refuses(
    make_identity: Any, jwks: tuple[Jwks, str]
) -> None:
    endpoint = jwks[0]
    call, _ = await make_identity()
    assert (await call(rs256(claims())))[0] == 200
    assert endpoint.fetches == 1
    status, body = await call(rs256(claims(), kid="rotated-away"))
    assert status == 401
    assert "no signing key 'rotated-away'" in body["message"]
    assert endpoint.fetches == 2
    # A flood of unknown kids does not hammer the IdP (min refresh interval).
    for i in range(5):
        assert (await call(rs256(claims(), kid=f"random-{i}")))[0] == 401
    assert endpoint.fetches == 2


async def test_rotated_key_is_picked_up(make_identity: Any, jwks: tuple[Jwks, str]) -> None:
    endpoint = jwks[0]
    call, _ = await make_identity(jwks_min_refresh_interval=0)
    assert (await call(rs256(claims())))[0] == 200
    endpoint.keys.append(_jwk(RSA_OTHER.public_key(), "rsa-2", "RS256"))
    status, body = await call(rs256(claims(), kid="rsa-2", key=RSA_OTHER))
    assert status == 200, body


async def test_revoked_and_disabled_subjects_are_refused(make_identity: Any) -> None:
    call, revocations = await make_identity()
    token = rs256(claims())
    assert (await call(token))[0] == 200
    await revocations.revoke("u-sales-01", reason="离职", by="sec")
    status, body = await call(token)
    assert status == 403
    assert body["error"] == "subject_revoked"
    status, body = await call(rs256(claims(sub="u-departed")))
    assert (status, body["error"]) == (403, "subject_revoked")


async def test_jwks_unreachable_is_a_503(make_identity: Any, jwks: tuple[Jwks, str]) -> None:
    jwks[0].up = False
    call, _ = await make_identity()
    for _ in range(3):
        status, body = await call(rs256(claims()))
        assert status == 503
        assert body["error"] == "identity_provider_unavailable"
    assert jwks[0].fetches == 1  # failures are not retried on every request
