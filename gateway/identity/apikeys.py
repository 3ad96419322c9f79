"""API-key hashing and lookup. The directory file holds only hashes, never keys.

Two hash forms are accepted in the directory:

- `hmac-sha256:<hex>`: HMAC-SHA256 keyed with a pepper from the environment
  (`identity.api_key_pepper_env`). A leaked directory file is then useless
  without the pepper. This is what `crm-gateway users hash-key` writes when the
  pepper is set, and what production should use.
- `sha256:<hex>`: plain SHA-256, for the demo directory (works with no env).

API keys are long random strings, so a fast hash is enough (no password
stretching needed). Lookup buckets stored hashes by a short, non-secret prefix
of the digest and compares every candidate in the bucket with
`hmac.compare_digest`, without stopping at the first match: the time taken does
not depend on how much of a stored hash a guess matches.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

PLAIN = "sha256"
PEPPERED = "hmac-sha256"
_BUCKET = 6  # hex characters of the digest used to pick a bucket

T = TypeVar("T")


def pepper_from_env(env_name: str, environ: Mapping[str, str] | None = None) -> bytes | None:
    value = (os.environ if environ is None else environ).get(env_name, "")
    return value.encode() if value else None


def hash_key(key: str, pepper: bytes | None) -> str:
    """The directory form of `key`: peppered HMAC when a pepper is given."""
    if pepper:
        return f"{PEPPERED}:{hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()}"
    return f"{PLAIN}:{hashlib.sha256(key.encode()).hexdigest()}"


def generate_key(prefix: str = "cgw") -> str:
    """A new random API key (256 bits), prefixed so leaks are easy to grep for."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_key_command(pepper_env: str, key: str | None = None) -> tuple[str, str]:
    """For `crm-gateway users hash-key [KEY]`: (the key, its directory hash).

    Without KEY a new key is generated. The clear key is for the caller to hand
    over once; only the hash goes into the directory.
    """
    clear = key or generate_key()
    return clear, hash_key(clear, pepper_from_env(pepper_env))


def parse_hash(stored: str) -> tuple[str, str]:
    """Split and check a stored hash; raises ValueError naming what is wrong."""
    scheme, sep, digest = stored.partition(":")
    if not sep or scheme not in (PLAIN, PEPPERED):
        raise ValueError(f"API key hash must start with '{PLAIN}:' or '{PEPPERED}:'")
    digest = digest.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("API key hash must be 64 hex characters after the scheme")
    return scheme, digest


class KeyIndex(Generic[T]):
    """Maps stored hashes to owners; `find(key)` checks a presented key."""

    def __init__(self, entries: Iterable[tuple[str, T]], pepper: bytes | None) -> None:
        self._pepper = pepper
        self._buckets: dict[tuple[str, str], list[tuple[bytes, T]]] = {}
        for stored, owner in entries:
            scheme, digest = parse_hash(stored)
            bucket = self._buckets.setdefault((scheme, digest[:_BUCKET]), [])
            bucket.append((digest.encode(), owner))
        self.has_peppered = any(scheme == PEPPERED for scheme, _ in self._buckets)

    def find(self, key: str) -> T | None:
        found: T | None = None
        for stored in self._candidates(key):
            scheme, digest = stored.split(":", 1)
            for candidate, owner in self._buckets.get((scheme, digest[:_BUCKET]), ()):
                if hmac.compare_digest(candidate, digest.encode()) and found is None:
                    found = owner
        return found

    def _candidates(self, key: str) -> list[str]:
        out = [hash_key(key, None)]
        if self._pepper:
            out.append(hash_key(key, self._pepper))
        return out
