"""Identity: authenticator order, disabled/revoked subjects, certificate names, overrides."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.core.model import Subject
from gateway.errors import Unauthenticated
from gateway.identity.apikeys import hash_key
from gateway.identity.authn.apikey import ApiKeyAuthenticator
from gateway.identity.authn.base import DirectoryHandle
from gateway.identity.authn.mtls import cert_names
from gateway.identity.authn.oidc import apply_overrides, mfa_from_claims
from gateway.identity.directory import Directory
from gateway.identity.errors import SubjectRevoked
from gateway.identity.service import Identity
from gateway.settings import Settings
from gateway.state.revocation import RevocationList

from .conftest import DEMO_DIRECTORY, RequestFactory


async def _identity(**identity: object) -> tuple[Identity, RevocationList]:
    revocations = await RevocationList.open(None)
    settings = Settings.model_validate({"identity": {"directory": str(DEMO_DIRECTORY), **identity}})
    return await Identity.open(settings, revocations), revocations


async def test_first_recognising_authenticator_decides(make_request: RequestFactory) -> None:
    identity, _ = await _identity()
    subject = await identity.authenticate(
        make_request(headers={"Authorization": "Bearer demo-admin-key"})
    )
    # The demo key's `mfa: true` proves no second factor: not MFA by default.
    assert (subject.id, subject.auth_method, subject.mfa) == ("u-admin", "api_key", False)
    with pytest.raises(Unauthenticated) as info:
        await identity.authenticate(make_request())
    assert info.value.details == {"accepted": ["api_key"]}
    await identity.close()
    legacy, _ = await _identity(directory_mfa=True)
    subject = await legacy.authenticate(
        make_request(headers={"Authorization": "Bearer demo-admin-key"})
    )
    assert subject.mfa is True
    await legacy.close()


async def test_revoked_subject_and_revoked_key(make_request: RequestFactory) -> None:
    identity, revocations = await _identity()
    request = make_request(headers={"X-Api-Key": "demo-cs-key"})
    assert (await identity.authenticate(request)).id == "u-cs"
    await revocations.revoke("k-cs-demo", reason="leaked", by="sec")
    with pytest.raises(SubjectRevoked):
        await identity.authenticate(request)
    await revocations.restore("k-cs-demo", by="sec")
    await revocations.revoke("u-cs", reason="离职", by="sec")
    with pytest.raises(SubjectRevoked, match="revoked"):
        await identity.authenticate(request)
    with pytest.raises(SubjectRevoked, match="disabled"):
        await identity.authenticate(make_request(headers={"X-Api-Key": "demo-departed-key"}))


async def test_key_expiry_uses_the_clock(make_request: RequestFactory) -> None:
    handle = DirectoryHandle(Directory.load(DEMO_DIRECTORY))
    after = ApiKeyAuthenticator(handle, "X-Api-Key", clock=lambda: datetime(2027, 7, 1, tzinfo=UTC))
    before = ApiKeyAuthenticator(
        handle, "X-Api-Key", clock=lambda: datetime(2027, 6, 1, tzinfo=UTC)
    )
    request = make_request(headers={"X-Api-Key": "demo-partner-key"})
    assert (await before.authenticate(request)) is not None
    with pytest.raises(Unauthenticated, match="expired"):
        await after.authenticate(request)


async def test_case_insensitive_crm_scopes(make_request: RequestFactory) -> None:
    handle = DirectoryHandle(Directory.load(DEMO_DIRECTORY))
    auth = ApiKeyAuthenticator(handle, "X-Api-Key", case_insensitive_paths=True)
    subject = await auth.authenticate(
        make_request("/API/Customers/7", headers={"X-Api-Key": "demo-partner-key"})
    )
    assert subject is not None
    mixed = Directory.from_data(
        {
            "subjects": [
                {
                    "id": "u",
                    "api_keys": [
                        {"id": "k", "hash": hash_key("mixed", None), "routes": ["/API/Customers/*"]}
                    ],
                }
            ]
        }
    )
    mixed_auth = ApiKeyAuthenticator(
        DirectoryHandle(mixed), "X-Api-Key", case_insensitive_paths=True
    )
    assert await mixed_auth.authenticate(
        make_request("/api/CUSTOMERS/7", headers={"X-Api-Key": "mixed"})
    )


def test_certificate_names() -> None:
    cert = {
        "subject": ((("countryName", "CN"),), (("commonName", "u-auditor"),)),
        "subjectAltName": (("DNS", "svc.bank.example"), ("email", "auditor@bank.example")),
    }
    assert cert_names(cert, "cn") == ["u-auditor"]
    assert cert_names(cert, "san_dns") == ["svc.bank.example"]
    assert cert_names(cert, "san_email") == ["auditor@bank.example"]
    assert cert_names({}, "cn") == []


def test_claim_overrides_and_mfa() -> None:
    base = Subject(id="u", roles=("sales",), clearance="L2")
    out = apply_overrides(
        base, {"groups": "a b", "lvl": "L3"}, {"roles": "groups", "clearance": "lvl"}
    )
    assert (out.roles, out.clearance) == (("a", "b"), "L3")
    with pytest.raises(Unauthenticated):
        apply_overrides(base, {"lvl": "L9"}, {"clearance": "lvl"})
    assert apply_overrides(base, {}, {"roles": "groups"}) is base
    assert mfa_from_claims({"amr": ["pwd", "hwk"]}, ("hwk",), ())
    assert not mfa_from_claims({"amr": "hwk"}, ("hwk",), ())
    assert mfa_from_claims({"acr": "gold"}, (), ("gold",))
    assert not mfa_from_claims({}, ("mfa",), ())
