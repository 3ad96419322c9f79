"""Step-up challenges (RFC 9470) and the identity headers the CRM trusts."""

from __future__ import annotations

from multidict import CIMultiDict

from gateway.core.model import Subject
from gateway.errors import StepUpRequired
from gateway.identity.stepup import step_up_challenge, step_up_redirect, wants_html
from gateway.identity.upstream_headers import (
    apply_identity,
    strip_spoofable,
    upstream_identity_headers,
)
from gateway.settings import Settings


def test_challenge_names_acr_and_max_age() -> None:
    exc = StepUpRequired('L4 data needs a "fresh" MFA', acr_values="urn:mfa", max_age=300)
    header = step_up_challenge(exc, "crm-gateway")["WWW-Authenticate"]
    assert header == (
        'Bearer realm="crm-gateway", error="insufficient_user_authentication", '
        'error_description="L4 data needs a \\"fresh\\" MFA", acr_values="urn:mfa", max_age=300'
    )


def test_challenge_without_optional_parameters() -> None:
    header = step_up_challenge(StepUpRequired("mfa"), "r")["WWW-Authenticate"]
    assert "acr_values" not in header
    assert "max_age" not in header


def test_browser_redirect() -> None:
    exc = StepUpRequired("mfa", acr_values="urn:mfa", max_age=60)
    url = step_up_redirect(exc, "https://sso.example/stepup?x=1", "/api/customers/7")
    assert url == (
        "https://sso.example/stepup?x=1&return_to=%2Fapi%2Fcustomers%2F7"
        "&acr_values=urn%3Amfa&max_age=60"
    )
    assert step_up_redirect(exc, "", "/") is None
    assert wants_html("text/html,application/xhtml+xml")
    assert not wants_html("application/json")


def _settings() -> Settings:
    return Settings.model_validate(
        {
            "identity": {
                "upstream_identity_headers": {
                    "X-Remote-User": "{id}",
                    "X-Remote-Roles": "{roles}",
                    "X-Remote-Branch": "{branch}",
                    "X-Remote-Unknown": "{nothing}",
                    "X-Remote-Probe": "{id.__class__}|{id!r}|{clearance}",
                },
            },
            "guard": {"method_override": "strip"},
        }
    )


def test_upstream_headers_come_from_the_subject_only() -> None:
    subject = Subject(
        id="u-sales-01", roles=("sales", "reader"), attributes={"branch": "上海\r\nX-Evil: 1"}
    )
    headers = upstream_identity_headers(_settings(), subject)
    assert headers == {
        "X-Remote-User": "u-sales-01",
        "X-Remote-Roles": "sales,reader",
        "X-Remote-Branch": "上海X-Evil: 1",
        "X-Remote-Unknown": "",
        "X-Remote-Probe": "{id.__class__}|{id!r}|L0",
    }


def test_client_copies_are_stripped_before_the_gateway_sets_its_own() -> None:
    headers = CIMultiDict(
        [
            ("x-remote-user", "u-admin"),
            ("X-Remote-User", "u-admin"),
            ("X-Gateway-Clearance", "L5"),
            ("X-Remote-Roles", "security_admin"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("Accept", "application/json"),
        ]
    )
    strip_spoofable(headers, _settings())
    assert list(headers.items()) == [("Accept", "application/json")]
    apply_identity(headers, _settings(), Subject(id="u-cs", roles=("customer_service",)))
    assert headers.getall("X-Remote-User") == ["u-cs"]
    assert headers["X-Remote-Roles"] == "customer_service"


def test_gateway_api_keys_do_not_reach_the_crm() -> None:
    headers = CIMultiDict(
        [("Authorization", "Bearer demo-sales-key"), ("X-Api-Key", "demo-sales-key")]
    )
    apply_identity(headers, _settings(), Subject(id="u-sales-01", auth_method="api_key"))
    assert "Authorization" not in headers
    assert "X-Api-Key" not in headers
    crm_token = CIMultiDict([("Authorization", "Bearer bcrm_pat_x"), ("Token", "t")])
    apply_identity(crm_token, _settings(), Subject(id="u-1", auth_method="crm_introspection"))
    assert crm_token["Authorization"] == "Bearer bcrm_pat_x"
    assert crm_token["Token"] == "t"
