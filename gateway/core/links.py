"""Absolute links back to the CRM, rewritten to the gateway's public base.

A CRM builds absolute URLs from the Host it was sent (DRF's `next`/`previous`,
`Location` after a write, `Link` pagination, `Refresh`, links in bodies). Through
the gateway those name the upstream, which discloses it and invites clients to
go around the gateway. `LinkMap` knows the CRM's origins (the upstream URL, its
loopback twins, configured aliases) and the public base the client used, and
rewrites every spelling of those origins (`http://`, `https://`, scheme-relative
`//`, JSON-escaped `http:\\/\\/`) in a string. With no usable public base the
links become relative (`/api/...`), which resolves against the gateway too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_HOST_OK = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")
_DEFAULT_PORT = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class LinkMap:
    pattern: re.Pattern[str]
    base: str  # "scheme://host[:port]" or "" (relative links)

    def rewrite(self, text: str) -> str:
        if "//" not in text and "\\/\\/" not in text:
            return text
        return self.pattern.sub(self._replace, text)

    def _replace(self, m: re.Match[str]) -> str:
        return self.base.replace("/", "\\/") if "\\/" in m.group() else self.base

    def split(self, text: str) -> list[str]:
        """`text` cut at every occurrence of the public base, plain or JSON-escaped (kept
        as separate pieces, see `is_base`), so the gateway's own address is never
        scanned as customer data."""
        if not self.base:
            return [text]
        escaped = self.base.replace("/", "\\/")
        if self.base not in text and escaped not in text:
            return [text]
        return [p for p in re.split(f"({re.escape(self.base)}|{re.escape(escaped)})", text) if p]

    def is_base(self, piece: str) -> bool:
        return bool(self.base) and piece in (self.base, self.base.replace("/", "\\/"))


def public_base(public_url: str, proto: str, host: str) -> str:
    """The base the client sees: the configured `public_url`, else the request's own
    scheme and host (as the client sent them); "" when the host is not a plain host."""
    if public_url:
        return public_url.rstrip("/")
    if proto not in ("http", "https") or not _HOST_OK.fullmatch(host or ""):
        return ""
    return f"{proto}://{host}"


def link_map(upstream_url: str, aliases: Iterable[str], base: str) -> LinkMap | None:
    """The rewriter for links to `upstream_url` (and `aliases`), or None if it has no host.
    Built once per (CRM, base): every response of a client asks for the same map."""
    return _link_map(upstream_url, tuple(aliases), base)


@functools.lru_cache(maxsize=256)  # bases come from Host headers: bounded
def _link_map(upstream_url: str, aliases: tuple[str, ...], base: str) -> LinkMap | None:
    alternatives: list[str] = []
    for origin in (upstream_url, *aliases):
        alternatives.extend(_origin_patterns(origin))
    if not alternatives:
        return None
    unique = sorted(set(alternatives), key=len, reverse=True)
    body = "|".join(unique)
    pattern = re.compile(rf"(?:https?:)?(?:\\?/){{2}}(?:{body})(?![A-Za-z0-9.\-:])", re.IGNORECASE)
    return LinkMap(pattern, base)


def _origin_patterns(origin: str) -> list[str]:
    parts = urlsplit(origin if "//" in origin else f"http://{origin}")
    host = (parts.hostname or "").lower()
    if not host:
        return []
    try:
        port = parts.port
    except ValueError:
        return []
    hosts = list(_LOOPBACK) if host in ("127.0.0.1", "localhost", "::1") else [host]
    default = _DEFAULT_PORT.get(parts.scheme or "http")
    out = []
    for name in hosts:
        name = re.escape(name if name.startswith("[") or ":" not in name else f"[{name}]")
        if port is None or port == default:
            out.append(f"{name}(?::{default})?")
        else:
            out.append(f"{name}:{port}")
    return out
