"""Seal key loading: a `.pub` that cannot be written is a warning, never a failed start-up."""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from gateway.audit import keys
from gateway.audit.keys import load_seal_key, load_seal_public_key, public_key_path
from gateway.errors import ConfigError
from gateway.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings().with_overrides(
        base_dir=str(tmp_path), **{"audit.seal_key_file": str(tmp_path / "keys/seal.pem")}
    )


def _seal_path(settings: Settings) -> Path:
    path = settings.seal_key_path()
    assert path is not None
    return path


def test_unset_key_files_are_generated_in_the_state_directory_not_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout, state = tmp_path / "checkout", tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("CRM_GATEWAY_AUDIT_KEY", raising=False)
    settings = Settings().with_overrides(base_dir=str(checkout))
    load_seal_key(settings)
    keys.load_hmac_key(settings)
    generated = sorted(p.name for p in (state / "crm-gateway").iterdir())
    assert generated == ["dev-hmac.key", "seal-ed25519.pem", "seal-ed25519.pem.pub"]
    assert not checkout.exists()  # nothing written into the checkout


def test_production_never_generates_a_seal_key(tmp_path: Path) -> None:
    settings = Settings().with_overrides(
        base_dir=str(tmp_path), environment="production", **{"redis.url": "redis://127.0.0.1:1"}
    )
    assert settings.seal_key_path() is None
    with pytest.raises(ConfigError, match=r"audit\.seal_key_file is not set"):
        load_seal_key(settings)
    assert load_seal_public_key(settings) is None


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    """The warnings `keys` logs (a fresh logger: a cached one would bypass the capture)."""
    with capture_logs() as logs:
        monkeypatch.setattr(keys, "log", structlog.get_logger("gateway.audit.keys"))
        yield logs


def _pub_warnings(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "audit_seal_public_key_not_written"]


def test_public_key_is_written_next_to_the_private_key(settings: Settings) -> None:
    key = load_seal_key(settings)
    public = load_seal_public_key(settings)
    assert isinstance(key, Ed25519PrivateKey)
    assert public is not None
    assert public.public_bytes_raw() == key.public_key().public_bytes_raw()


def test_unwritable_public_key_is_a_warning(
    settings: Settings, captured: list[MutableMapping[str, Any]]
) -> None:
    """Works as root too: the temporary file's path is a directory, so writing it fails."""
    private = _seal_path(settings)
    first = load_seal_key(settings)
    pub = public_key_path(private)
    pub.unlink()
    (pub.with_name(f".{pub.name}.{os.getpid()}.tmp")).mkdir()

    key = load_seal_key(settings)

    assert key.private_bytes_raw() == first.private_bytes_raw()
    assert not pub.exists()
    assert load_seal_public_key(settings) is None
    [warning] = _pub_warnings(captured)
    assert warning["log_level"] == "warning"
    assert warning["path"] == str(pub)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_key_directory_still_starts(
    settings: Settings, captured: list[MutableMapping[str, Any]]
) -> None:
    private = _seal_path(settings)
    first = load_seal_key(settings)
    public_key_path(private).unlink()
    directory = private.parent
    directory.chmod(0o500)
    try:
        key = load_seal_key(settings)
    finally:
        directory.chmod(0o700)
    assert key.private_bytes_raw() == first.private_bytes_raw()
    assert not public_key_path(private).exists()
    assert len(_pub_warnings(captured)) == 1
    assert [p.name for p in directory.iterdir()] == [private.name]  # no temp file left
