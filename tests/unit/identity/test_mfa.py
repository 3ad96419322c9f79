"""Which sign-ins count as MFA for step-up (gateway/identity/mfa.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.core.model import Subject
from gateway.errors import ConfigError
from gateway.identity.directory import Directory
from gateway.identity.mfa import fresh, judge
from gateway.settings import IdentitySettings, load_settings

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DIRECTORY = Directory.from_data(
    {
        "subjects": [
            {"id": "u-flag", "clearance": "L4", "mfa": True},
            {
                "id": "u-key",
                "clearance": "L3",
                "api_keys": [{"id": "k-hw", "hash": "sha256:" + "0" * 64, "mfa": True}],
            },
        ]
    }
)


def oidc(clearance: str, auth_time: object, *, second_factor: bool = True) -> Subject:
    return Subject(
        id="u-flag",
        clearance=clearance,
        auth_method="oidc",
        mfa=second_factor,
        attributes={"auth_time": auth_time},
    )


@pytest.mark.parametrize(
    ("clearance", "age", "expected"),
    [("L4", 60, True), ("L4", 899, True), ("L4", 1000, False), ("L3", 1000, True),
     ("L3", 4000, False), ("L1", 3500, True), ("L1", 3700, False)],
)  # fmt: skip
def test_oidc_mfa_needs_a_fresh_auth_time_per_level(
    clearance: str, age: int, expected: bool
) -> None:
    settings = IdentitySettings(
        step_up_max_age={"L3": 3600, "L4": 900}, step_up_default_max_age=3600
    )
    subject = judge(oidc(clearance, NOW.timestamp() - age), settings, DIRECTORY, NOW)
    assert subject.mfa is expected
    assert subject.step_up_max_age == {"L4": 900}.get(clearance, 3600)


def test_oidc_without_second_factor_or_auth_time_is_not_mfa() -> None:
    settings = IdentitySettings()
    assert not judge(oidc("L4", NOW.timestamp(), second_factor=False), settings, DIRECTORY, NOW).mfa
    assert not judge(oidc("L4", None), settings, DIRECTORY, NOW).mfa
    assert not judge(oidc("L4", "1700000000"), settings, DIRECTORY, NOW).mfa
    assert not judge(oidc("L4", True), settings, DIRECTORY, NOW).mfa


def test_auth_time_in_the_future_is_refused() -> None:
    assert fresh(NOW.timestamp() + 10, NOW, 900, 30)
    assert not fresh(NOW.timestamp() + 120, NOW, 900, 30)


@pytest.mark.parametrize("method", ["api_key", "crm_jwt", "crm_introspection", "mtls"])
@pytest.mark.parametrize(("subject_id", "credential"), [("u-flag", None), ("u-key", "k-hw")])
def test_directory_flags_count_only_with_directory_mfa(
    method: str, subject_id: str, credential: str | None
) -> None:
    attrs = {"credential_id": credential} if credential else {}
    subject = Subject(id=subject_id, auth_method=method, mfa=True, attributes=attrs)
    assert not judge(subject, IdentitySettings(), DIRECTORY, NOW).mfa
    legacy = IdentitySettings(directory_mfa=True)
    assert judge(subject, legacy, DIRECTORY, NOW).mfa


def test_entry_flag_is_not_passed_on_by_subject_for() -> None:
    entry = DIRECTORY.get("u-flag")
    assert entry is not None
    assert entry.subject_for("api_key", mfa=False).mfa is False
    assert entry.flags_mfa(None)


def test_production_refuses_directory_mfa() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            None,
            environ={
                "CRM_GATEWAY__ENVIRONMENT": "production",
                "CRM_GATEWAY__REDIS__URL": "redis://127.0.0.1:6379/0",
                "CRM_GATEWAY__IDENTITY__DIRECTORY_MFA": "true",
            },
        )
    assert "identity.directory_mfa" in " ".join(info.value.problems) + info.value.message
