"""Reveal handles: opaque, sealed, short-lived references to one masked value.

A handle names one field of one record, for one caller, and nothing else; it is
the only way to ask `POST /_gateway/reveal` for a value. Its content is sealed
with AES-256-GCM (confidential and integrity-protected: a client can neither
read the route or level in it nor change a byte of it) under a key derived
with HKDF from `reveal.key_env` (the same on every replica), with a fixed
associated-data label so no other sealed blob of the gateway opens as a handle.

Bound in it: the subject id, a fingerprint of the credential it was issued to
(the API key's id, the token's session id, the auth method), the catalog's read
route for the record, the record id, the field, its category and level, the
issuing request id, and the expiry. `unseal` checks the seal
(`reveal_handle_invalid`) and the expiry (`reveal_handle_expired`); `owned`,
once the caller is authenticated, that it is theirs (`reveal_not_yours`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.access.errors import RevealHandleExpired, RevealHandleInvalid, RevealNotYours
from gateway.core.model import Subject
from gateway.errors import ConfigError

VERSION = 1
_AAD = b"crm-gateway reveal handle v1"
_NONCE = 12
MAX_HANDLE_CHARS = 1024  # a longer string is not one of ours


@dataclass(frozen=True, slots=True)
class Handle:
    subject: str
    fingerprint: str
    route: str  # the catalog's read route (its name)
    record_id: str
    field: str
    category: str
    level: str
    expires: int  # epoch seconds
    issued_by_request: str

    def _pack(self) -> bytes:
        return orjson.dumps(
            [
                VERSION,
                self.subject,
                self.fingerprint,
                self.route,
                self.record_id,
                self.field,
                self.category,
                self.level,
                self.expires,
                self.issued_by_request,
            ]
        )

    @classmethod
    def _unpack(cls, raw: bytes) -> Handle:
        data: Any = orjson.loads(raw)
        if not isinstance(data, list) or len(data) != 10 or data[0] != VERSION:
            raise ValueError("not a handle of this version")
        _, subject, fp, route, rid, key, category, level, expires, request = data
        texts = (subject, fp, route, rid, key, category, level, request)
        if not all(isinstance(v, str) for v in texts) or type(expires) is not int:
            raise ValueError("malformed handle")
        return cls(subject, fp, route, rid, key, category, level, expires, request)


def credential_fingerprint(subject: Subject) -> str:
    """What ties a handle to the sign-in it was issued to, where the credential
    says (API key id, token session or id); the subject and auth method otherwise."""
    attrs = subject.attributes
    parts = [subject.id, subject.auth_method]
    for name in ("credential_id", "sid", "session_id"):
        value = attrs.get(name)
        if isinstance(value, str | int):
            parts.append(f"{name}={value}")
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


class HandleCodec:
    def __init__(self, key: bytes) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"crm-gateway reveal handles"
        ).derive(key)
        self._aead = AESGCM(derived)

    def seal(self, handle: Handle) -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, handle._pack(), _AAD)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def unseal(self, token: Any, now: float | None = None) -> Handle:
        """The handle, if this gateway sealed it and it is current (whose it is: `owned`)."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_HANDLE_CHARS:
            raise RevealHandleInvalid("the reveal handle is missing or malformed")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            handle = Handle._unpack(self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _AAD))
        except (ValueError, InvalidTag) as exc:
            raise RevealHandleInvalid(
                "the reveal handle was not issued by this gateway or was altered"
            ) from exc
        if handle.expires <= (time.time() if now is None else now):
            raise RevealHandleExpired(
                "the reveal handle has expired; reload the record to get a new one",
                record_id=handle.record_id,
                field=handle.field,
            )
        return handle


def owned(handle: Handle, subject: Subject) -> Handle:
    """The handle, if it was issued to this subject on this credential."""
    if handle.subject != subject.id or handle.fingerprint != credential_fingerprint(subject):
        raise RevealNotYours("the reveal handle was issued to another caller or sign-in")
    return handle


def handle_key(key_env: str, fallback: bytes, environ: Any = None) -> bytes:
    """The key material: `key_env` (hex, >= 32 bytes), else `fallback` (the
    pseudonym key, itself required in production); HKDF separates the two uses."""
    env = os.environ if environ is None else environ
    raw = env.get(key_env, "")
    if not raw:
        return fallback
    try:
        key = bytes.fromhex(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{key_env}: the reveal handle key must be hex") from exc
    if len(key) < 32:
        raise ConfigError(f"{key_env}: the reveal handle key must be at least 32 bytes")
    return key
