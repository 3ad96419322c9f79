"""Identity and guard settings are validated at start-up, naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.settings import Settings, load_settings


def _problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        Settings().with_overrides(**data)
    return "\n".join(info.value.problems)


@pytest.mark.parametrize("algs", [["none"], ["HS256"], ["RS256", "HS512"], []])
def test_oidc_accepts_only_asymmetric_algorithms(algs: list[str]) -> None:
    assert "identity.oidc.algorithms" in _problems({"identity.oidc.algorithms": algs})


def test_oidc_needs_issuer_jwks_and_audience() -> None:
    text = _problems({"identity.authenticators": ["oidc"], "identity.oidc.issuer": "https://i"})
    assert "oidc is enabled but oidc.issuer, jwks_url or audience is empty" in text


def test_trusted_headers_need_source_networks() -> None:
    assert "source_networks is empty" in _problems({"identity.authenticators": ["trusted_header"]})
    assert "not an IP network" in _problems(
        {"identity.trusted_headers.source_networks": ["10.0.0.0/33"]}
    )


def test_unknown_authenticator() -> None:
    assert "identity.authenticators" in _problems({"identity.authenticators": ["kerberos"]})


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ({"guard.working_hours": [{"roles": ["sales"], "timezone": "Mars/Olympus"}]}, "timezone"),
        ({"guard.working_hours": [{"start": "25:00"}]}, "start"),
        ({"guard.working_hours": [{"days": ["someday"]}]}, "days"),
        ({"guard.network_rules": [{"allow": ["300.1.1.1/8"]}]}, "allow"),
        ({"guard.network_zones": {"internal": ["nope"]}}, "network_zones"),
        ({"guard.rate_limits": [{"name": "x", "limit": 0, "period": 1}]}, "limit"),
        ({"guard.method_override": "ignore"}, "method_override"),
    ],
)
def test_guard_settings_are_checked(override: dict[str, Any], where: str) -> None:
    assert where in _problems(override)


def test_guard_from_environment() -> None:
    settings = load_settings(
        environ={
            "CRM_GATEWAY__GUARD__METHOD_OVERRIDE": "strip",
            "CRM_GATEWAY__IDENTITY__AUTHENTICATORS": "[api_key, crm_introspection]",
        }
    )
    assert settings.guard.method_override == "strip"
    assert settings.identity.authenticators == ("api_key", "crm_introspection")
