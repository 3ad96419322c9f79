"""What every authenticator shares: the protocol, the directory handle, header helpers."""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from aiohttp import web

from gateway.core import headers as h
from gateway.core.model import Subject
from gateway.errors import ConfigError, Unauthenticated
from gateway.identity.directory import Directory, Entry, Match

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Authenticator(Protocol):
    name: str

    async def authenticate(self, request: web.Request) -> Subject | None:
        """A Subject, None for "not my credential", or raise for "mine but invalid"."""
        ...


class DirectoryHandle:
    """The current directory, re-read when its file changes (checked every few seconds),
    so `disabled: true` written by the security team takes effect without a restart."""

    def __init__(
        self,
        directory: Directory,
        path: Path | None = None,
        pepper: bytes | None = None,
        check_every: float = 2.0,
    ) -> None:
        self._directory = directory
        self._path = path
        self._pepper = pepper
        self._check_every = check_every
        self._mtime = self._stat()
        self._checked = time.monotonic()

    @classmethod
    def load(cls, path: Path, pepper: bytes | None, check_every: float = 2.0) -> DirectoryHandle:
        return cls(Directory.load(path, pepper), path, pepper, check_every)

    def _stat(self) -> float:
        if self._path is None:
            return 0.0
        try:
            return os.stat(self._path).st_mtime
        except OSError:
            return 0.0

    def replace(self, directory: Directory) -> None:
        """Swap in a directory from elsewhere (the Redis-shared copy)."""
        self._directory = directory

    def current(self) -> Directory:
        now = time.monotonic()
        if self._path is not None and now - self._checked >= self._check_every:
            self._checked = now
            mtime = self._stat()
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    self._directory = Directory.load(self._path, self._pepper)
                except ConfigError as exc:
                    # A broken edit keeps the previous directory; it never empties it.
                    log.warning("directory %s not reloaded: %s", self._path, exc.problems)
        return self._directory


def lookup(directory: Directory, match: Match, value: str, source: str) -> Entry:
    entry = directory.find(match, value)
    if entry is None:
        raise Unauthenticated(f"{source} identifies {value!r}, who is not in the gateway directory")
    return entry


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def looks_like_jwt(token: str) -> bool:
    parts = token.split(".")
    return len(parts) == 3 and all(parts[:2]) and parts[0].startswith("eyJ")


def peer_address(request: web.Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The TCP peer (never a forwarded header): whom trusted-header checks are about."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    host = peer[0] if isinstance(peer, tuple) and peer else request.remote
    return h.parse_address(host) if host else None
