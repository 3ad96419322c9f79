"""One validation for `check-config` and `serve`: the same problems, all at once.

A production file that `check-config` passes starts (the keys `serve` needs are the
ones it checks); a file with several problems lists every one of them in both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import gateway.server
from gateway.app import _pseudonym_key
from gateway.audit.keys import load_hmac_key, load_seal_key
from gateway.checks import startup_problems
from gateway.cli import main
from gateway.errors import ConfigError
from gateway.settings import Settings, load_settings
from gateway.settings.validate import validate

AUDIT_KEY = "CRM_GATEWAY_AUDIT_KEY"
PSEUDONYM_KEY = "CRM_GATEWAY_PSEUDONYM_KEY"


@pytest.fixture(autouse=True)
def _no_gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CRM_GATEWAY"):
            monkeypatch.delenv(key)


def _production(tmp_path: Path, extra: str = "") -> Path:
    seal = tmp_path / "seal.pem"
    seal.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        "environment: production\n"
        "upstream: {url: 'http://127.0.0.1:9'}\n"
        "redis: {url: 'redis://127.0.0.1:1/0'}\n"
        f"audit: {{seal_key_file: '{seal}'}}\n" + extra,
        encoding="utf-8",
    )
    return cfg


THREE_PROBLEMS = (
    "policy.report_only: report-only mode in production leaves data unmasked",
    "audit.hmac_key_env: CRM_GATEWAY_AUDIT_KEY: the audit HMAC key must be hex",
    "classification.pseudonym_key_env: CRM_GATEWAY_PSEUDONYM_KEY must be set in production "
    "(pseudonymisation key)",
)


def _three_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(AUDIT_KEY, "not hex at all")
    return _production(tmp_path, "policy: {report_only: true}\n")


def _errors(text: str) -> list[str]:
    return [line.removeprefix("error: ") for line in text.splitlines() if line.startswith("error:")]


def test_check_config_lists_all_three_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _three_problems(tmp_path, monkeypatch)
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert _errors(err) == list(THREE_PROBLEMS)
    assert "3 problem(s)" in err


def test_serve_refuses_listing_the_same_three(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _three_problems(tmp_path, monkeypatch)
    assert main(["check-config", str(cfg)]) == 1
    from_check = _errors(capsys.readouterr().err)
    assert main(["serve", "--config", str(cfg)]) == 2
    from_serve = _errors(capsys.readouterr().err)
    assert from_serve == from_check == list(THREE_PROBLEMS)


def test_a_config_check_config_passes_is_accepted_by_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(AUDIT_KEY, "a1" * 32)
    monkeypatch.setenv(PSEUDONYM_KEY, "a pseudonymisation key of some length")
    cfg = _production(tmp_path)
    assert main(["check-config", str(cfg)]) == 0
    settings = load_settings(cfg)
    assert startup_problems(settings) == []
    # What start-up then loads does not refuse either (these raised one at a time before).
    assert len(load_hmac_key(settings)) == 32
    load_seal_key(settings)
    assert _pseudonym_key(settings) == b"a pseudonymisation key of some length"
    reached: list[Settings] = []

    async def _serve_forever(s: Settings, reuse_port: bool, on_ready: object) -> None:
        reached.append(s)  # past validation: the real site would open here

    monkeypatch.setattr(gateway.server, "_serve_forever", _serve_forever)
    assert main(["serve", "--config", str(cfg)]) == 0
    assert [s.environment for s in reached] == ["production"]


def test_production_needs_each_key_development_does_not(tmp_path: Path) -> None:
    cfg = _production(tmp_path)
    problems = startup_problems(load_settings(cfg), environ={})
    assert [p.split(":")[0] for p in problems] == [
        "audit.hmac_key_env",
        "classification.pseudonym_key_env",
    ]
    dev = load_settings(cfg).with_overrides(environment="development")
    assert startup_problems(dev, environ={}) == []


def test_report_only_is_an_error_in_production_only(tmp_path: Path) -> None:
    env = {AUDIT_KEY: "a1" * 32, PSEUDONYM_KEY: "k" * 32}
    settings = load_settings(_production(tmp_path, "policy: {report_only: true}\n"))
    assert startup_problems(settings, env) == [THREE_PROBLEMS[0]]
    assert startup_problems(settings.with_overrides(environment="development"), env) == []


def _static(**sections: object) -> Settings:
    """A development file naming the upstream and the static engine, plus `sections`."""
    base = {"upstream": {"url": "http://127.0.0.1:9"}, "policy": {"engine": "static"}}
    return Settings.model_validate({**base, **sections})


def test_keys_sinks_and_authenticators_are_checked_as_start_up_would(tmp_path: Path) -> None:
    seal = tmp_path / "seal.pem"
    seal.write_text("not a key", encoding="utf-8")
    settings = _static(
        audit={"seal_key_file": str(seal), "sinks": ["hec"]},
        identity={"authenticators": ["api_key", "crm_jwt"]},
    )
    env = {"CRM_GATEWAY_REVEAL_KEY": "abcd"}
    assert startup_problems(settings, env) == [
        f"audit.seal_key_file: {seal} is not an Ed25519 private key (PEM)",
        "reveal.key_env: CRM_GATEWAY_REVEAL_KEY: the reveal handle key must be at least "
        "32 bytes (64 hex)",
        "identity.crm_jwt.secret_env: crm_jwt is enabled but CRM_GATEWAY_CRM_JWT_SECRET is "
        "unset or shorter than 32 bytes",
        "audit.sinks: the hec sink needs audit.hec_url and CRM_GATEWAY_HEC_TOKEN",
    ]


def test_the_directory_is_read_by_its_owner_for_both_commands(tmp_path: Path) -> None:
    broken = tmp_path / "directory.yaml"
    broken.write_text("subjects: [{id: 7}]\n", encoding="utf-8")
    settings = _static(identity={"directory": str(broken)})
    problems = startup_problems(settings, {})
    assert problems and all(p.startswith(f"identity.directory: {broken}: ") for p in problems)
    assert validate(settings, {}) == []  # without the reader: the file is there, no more
    broken.unlink()
    assert validate(settings, {}) == [f"identity.directory: {broken} does not exist"]


def test_production_without_a_seal_key_file_is_a_problem(tmp_path: Path) -> None:
    env = {AUDIT_KEY: "a1" * 32, PSEUDONYM_KEY: "k" * 32}
    cfg = _production(tmp_path)
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("seal_key_file", "file"), "utf-8")
    settings = load_settings(cfg)
    assert startup_problems(settings, env) == [
        "audit.seal_key_file: not set: production needs an Ed25519 seal key "
        "(it does not generate one)"
    ]


def test_retired_audit_keys_are_checked_and_loaded_for_verification(tmp_path: Path) -> None:
    from gateway.audit.keys import load_retired_hmac_keys, load_retired_seal_public_keys

    pub = tmp_path / "old-seal.pem.pub"
    pub.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    missing = tmp_path / "gone.pub"
    settings = _static(audit={"seal_retired_public_keys": [str(pub), str(missing)]})
    env = {"CRM_GATEWAY_AUDIT_KEYS_RETIRED": f"{'ab' * 32}, nothex {'cd' * 8}"}
    assert validate(settings, env) == [
        "audit.hmac_retired_keys_env: CRM_GATEWAY_AUDIT_KEYS_RETIRED: retired HMAC key 2 "
        "must be hex",
        "audit.hmac_retired_keys_env: CRM_GATEWAY_AUDIT_KEYS_RETIRED: retired HMAC key 3 "
        "must be at least 32 bytes (64 hex)",
        f"audit.seal_retired_public_keys: {missing} is not a readable Ed25519 public key (PEM)",
    ]
    good = {"CRM_GATEWAY_AUDIT_KEYS_RETIRED": f"{'ab' * 32} {'cd' * 32}"}
    assert load_retired_hmac_keys(settings, good) == [b"\xab" * 32, b"\xcd" * 32]
    assert load_retired_hmac_keys(settings, {}) == []
    with pytest.raises(ConfigError, match="cannot read the seal public key"):
        load_retired_seal_public_keys(settings)
    one = _static(audit={"seal_retired_public_keys": [str(pub)]})
    assert len(load_retired_seal_public_keys(one)) == 1


def test_a_managed_opa_fed_by_bundles_needs_its_config_file_not_rego_dir(tmp_path: Path) -> None:
    missing = tmp_path / "opa-config.yaml"
    settings = Settings.model_validate(
        {"policy": {"engine": "managed", "opa_config_file": str(missing),
                    "rego_dir": str(tmp_path / "no-rego"), "opa_binary": sys.executable}}
    )  # fmt: skip
    assert [p for p in validate(settings, {}) if p.startswith("policy.")] == [
        f"policy.opa_config_file: {missing} does not exist"
    ]
    missing.write_text("services: {}\n", encoding="utf-8")
    assert [p for p in validate(settings, {}) if p.startswith("policy.")] == []
