"""Loading the audit keys: the HMAC master key and the Ed25519 seal key.

The HMAC master key comes from the environment variable named by
`audit.hmac_key_env` (hex, at least 32 bytes); the security team holds the same
value to verify. Outside production, a missing key is generated once into
`audit.dev_key_file` (unset: the user's state directory, never the checkout) with
a loud warning, so a fresh checkout runs; production refuses to start without it.
The seal key is a PEM file; its public half is written next to it (`.pub`) for
verifiers who must not hold the HMAC key. After a rotation, the retired keys only
verify: retired HMAC keys in the variable `audit.hmac_retired_keys_env`, retired
seal public keys in the files `audit.seal_retired_public_keys` (docs/backup.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gateway.audit.oplog import get_logger
from gateway.errors import ConfigError
from gateway.settings import Settings

log = get_logger("gateway.audit.keys")


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` (mode 0600) atomically; FileExistsError if another worker won."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink()


def parse_hex_key(raw: str, source: str) -> bytes:
    try:
        key = bytes.fromhex(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{source}: the audit HMAC key must be hex") from exc
    if len(key) < 32:
        raise ConfigError(f"{source}: the audit HMAC key must be at least 32 bytes (64 hex)")
    return key


def load_hmac_key(settings: Settings, environ: dict[str, str] | None = None) -> bytes:
    env = os.environ if environ is None else environ
    name = settings.audit.hmac_key_env
    raw = env.get(name, "")
    if raw:
        return parse_hex_key(raw, name)
    if settings.environment == "production":
        raise ConfigError(f"{name} is not set: production needs the audit HMAC key")
    path = settings.dev_key_path()
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another worker created it first
            _write_private(path, secrets.token_hex(32).encode())
    log.warning(
        "audit_dev_key_in_use",
        path=str(path),
        detail=f"DEVELOPMENT ONLY: audit HMAC key read from a generated file; set {name}",
    )
    return parse_hex_key(path.read_text(encoding="ascii"), str(path))


def load_retired_hmac_keys(
    settings: Settings, environ: dict[str, str] | None = None
) -> list[bytes]:
    """The retired HMAC master keys, oldest last as listed (empty when unset)."""
    env = os.environ if environ is None else environ
    name = settings.audit.hmac_retired_keys_env
    raw = env.get(name, "").replace(",", " ").split()
    return [parse_hex_key(item, f"{name} (key {n})") for n, item in enumerate(raw, 1)]


def load_retired_seal_public_keys(settings: Settings) -> list[Ed25519PublicKey]:
    """The retired seal verification keys (`audit.seal_retired_public_keys`)."""
    return [_public_key(settings.path(p)) for p in settings.audit.seal_retired_public_keys]


def _public_key(path: Path) -> Ed25519PublicKey:
    try:
        loaded = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the seal public key: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key") from exc
    if not isinstance(loaded, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key")
    return loaded


def load_seal_key(settings: Settings) -> Ed25519PrivateKey:
    path = settings.seal_key_path()
    if path is None:
        raise ConfigError("audit.seal_key_file is not set: production needs the seal key")
    if not path.exists():
        if settings.environment == "production":
            raise ConfigError(f"audit.seal_key_file {path} does not exist")
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            _write_private(path, pem)
            log.warning(
                "audit_dev_key_generated",
                path=str(path),
                detail="DEVELOPMENT ONLY: Ed25519 seal key generated",
            )
        except FileExistsError:
            pass  # another worker created it first
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"audit.seal_key_file {path} is not an Ed25519 private key")
    _write_public(public_key_path(path), loaded)
    return loaded


def _write_public(pub: Path, key: Ed25519PrivateKey) -> None:
    """Publish the verification key next to the private one, if it is not there yet.

    Only a convenience for verifiers: the private key is what signing needs, so a
    read-only key directory (a mounted secret) logs a warning instead of stopping
    start-up; the public key can be exported from the private one elsewhere.
    """
    if pub.exists():
        return
    tmp = pub.with_name(f".{pub.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        tmp.replace(pub)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        log.warning(
            "audit_seal_public_key_not_written",
            path=str(pub),
            error=f"{type(exc).__name__}: {exc.strerror or exc}",
            detail="seal verification key not published; verifiers need it from elsewhere",
        )


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def load_seal_public_key(settings: Settings) -> Ed25519PublicKey | None:
    """The seal verification key, if its `.pub` file exists."""
    private = settings.seal_key_path()
    if private is None:
        return None
    path = public_key_path(private)
    if not path.exists():
        return None
    return _public_key(path)
