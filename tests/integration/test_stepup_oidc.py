"""Step-up that means MFA (issue 14, item 3), end to end over HTTP.

A real OpenID provider of the tests' own (tests/integration/oidc_provider.py) signs
ID tokens; the gateway fetches its JWKS over HTTP, asks a real OPA with the
repository's policy and reads the demo CRM. A risk officer (L4) reviewing a
customer needs MFA: a password-only token is refused with the RFC 9470 challenge
(`acr_values`, `max_age` of the L4 level), a fresh `amr=[pwd, otp]` token is
served, and the same sign-in, once older than `max_age`, is refused again.
Static API keys and CRM tokens never satisfy step-up, whatever the directory says.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import yaml

from gateway.identity.apikeys import hash_key
from tests.conftest import ROOT, OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.integration.oidc_provider import OidcProvider
from tests.integration.policy_http_harness import (
    ALWAYS_OPEN,
    DemoCrm,
    policy_copy,
    start_demo_crm,
    start_policy_gateway,
)

pytestmark = pytest.mark.integration

AUDIENCE = "crm-gateway"
CRM_JWT_SECRET = "crm-signing-secret-for-tests-0123456789"
L4_MAX_AGE = 900


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    import orjson

    base = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
    hours = {**base["time_place"], "hours": ALWAYS_OPEN, "holidays": []}
    proc = OpaProcess([policy_copy(tmp_path_factory.mktemp("rego") / "p", ROOT, time_place=hours)])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
async def crm() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=60)
    yield c
    await c.stop()


@pytest.fixture
async def idp() -> AsyncIterator[OidcProvider]:
    provider = OidcProvider(audience=AUDIENCE, passwords={"u-risk": "correct horse"})
    await provider.start()
    yield provider
    await provider.stop()


def write_directory(path: Path) -> Path:
    """A risk officer without the flag, and one the directory marks `mfa: true`
    (on the entry and on the key) who signs in with a static key or a CRM token."""
    officer = {"roles": ["risk_officer"], "department": "risk", "clearance": "L4"}
    doc = {
        "subjects": [
            {"id": "u-risk", **officer},
            {
                "id": "u-flagged",
                "email": "flagged@bank.example",
                **officer,
                "mfa": True,
                "api_keys": [
                    {"id": "k-flagged", "hash": hash_key("flagged-key", None), "mfa": True}
                ],
            },
        ]
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture
async def gw(
    tmp_path: Path,
    crm: DemoCrm,
    opa: OpaProcess,
    idp: OidcProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Gateway]:
    monkeypatch.setenv("CRM_GATEWAY_CRM_JWT_SECRET", CRM_JWT_SECRET)
    g = await start_policy_gateway(
        tmp_path,
        crm,
        **{
            "policy.engine": "external",
            "policy.url": opa.url,
            "identity.directory": str(write_directory(tmp_path / "people.yaml")),
            "identity.directory_mfa": False,  # the shipped default
            "identity.authenticators": ["oidc", "crm_jwt", "api_key"],
            "identity.oidc": {
                "issuer": idp.issuer,
                "audience": [AUDIENCE],
                "jwks_url": idp.jwks_url,
                "required_claims": ["exp", "iat", "sub"],
            },
            "identity.crm_jwt": {"required_claims": [], "subject_claim": "user_email"},
            "identity.step_up_max_age": {"L3": 3600, "L4": L4_MAX_AGE},
        },
    )
    yield g
    await g.stop()


def plain(crm: DemoCrm) -> dict[str, Any]:
    return next(r for r in crm.records if r["grade"] == "C" and r["tier"] == "一般")


async def review(gw: Gateway, crm: DemoCrm, auth: dict[str, str]) -> tuple[int, str, str]:
    """A risk review of one customer: (status, body, WWW-Authenticate)."""
    url = f"{gw.url}/api/customers/{plain(crm)['id']}"
    headers = {"X-Purpose": "risk_review", **auth}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, await r.text(), r.headers.get("WWW-Authenticate", "")


async def token(idp: OidcProvider, **form: str) -> tuple[str, str]:
    """(id_token, refresh_token) from the provider's token endpoint, over HTTP."""
    async with aiohttp.ClientSession() as s, s.post(f"{idp.issuer}/token", data=form) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    return str(body["id_token"]), str(body["refresh_token"])


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_step_up_with_a_real_oidc_provider(
    gw: Gateway, crm: DemoCrm, idp: OidcProvider
) -> None:
    name = plain(crm)["name"]
    pwd_only, _ = await token(
        idp, grant_type="password", username="u-risk", password="correct horse"
    )
    status, body, challenge = await review(gw, crm, bearer(pwd_only))
    assert status == 401, body
    assert name not in body
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_user_authentication"' in challenge
    assert "acr_values=" in challenge
    assert f"max_age={L4_MAX_AGE}" in challenge

    fresh, sid = await token(
        idp, grant_type="password", username="u-risk", password="correct horse", otp=idp.otp
    )
    claims = jwt.decode(fresh, options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"]
    assert abs(claims["auth_time"] - time.time()) < 60
    status, body, challenge = await review(gw, crm, bearer(fresh))
    assert status == 200, body
    assert name in body
    assert challenge == ""

    # The same sign-in, refreshed after max_age: a new token, the old auth_time.
    idp.age(sid, L4_MAX_AGE + 120)
    stale, _ = await token(idp, grant_type="refresh_token", refresh_token=sid)
    assert jwt.decode(stale, options={"verify_signature": False})["amr"] == ["pwd", "otp"]
    status, body, challenge = await review(gw, crm, bearer(stale))
    assert status == 401, body
    assert name not in body
    assert f"max_age={L4_MAX_AGE}" in challenge


async def test_a_wrong_otp_gets_no_token(idp: OidcProvider) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{idp.issuer}/token",
            data={"grant_type": "password", "username": "u-risk", "password": "correct horse",
                  "otp": "not-the-code"},
        ) as r,
    ):  # fmt: skip
        assert r.status == 400


async def test_directory_flag_does_not_make_a_static_key_mfa(gw: Gateway, crm: DemoCrm) -> None:
    status, body, challenge = await review(gw, crm, {"X-Api-Key": "flagged-key"})
    assert status == 401, body
    assert plain(crm)["name"] not in body
    assert 'error="insufficient_user_authentication"' in challenge


async def test_directory_flag_does_not_make_a_non_expiring_crm_token_mfa(
    gw: Gateway, crm: DemoCrm
) -> None:
    forever = jwt.encode({"user_email": "flagged@bank.example"}, CRM_JWT_SECRET, "HS256")
    status, body, challenge = await review(gw, crm, bearer(forever))
    assert status == 401, body
    assert plain(crm)["name"] not in body
    assert 'error="insufficient_user_authentication"' in challenge
