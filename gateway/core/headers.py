"""HTTP header hygiene for an intermediary (RFC 9110 §7.6, RFC 9112 §9.6, RFC 7239).

Pure functions over lists of (name, value) pairs so duplicates (Set-Cookie,
Cache-Control, Via) survive in order. `upstream.py` and `handler.py` call these;
nothing here knows about aiohttp.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Headers = list[tuple[str, str]]

# Hop-by-hop fields (RFC 9110 §7.6.1) plus legacy ones proxies still see.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Client-supplied forwarding fields: believed only from trusted proxies.
FORWARDING = frozenset(
    {"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip"}
)

# Validators and digests that no longer describe a rewritten body.
REWRITE_INVALIDATED = frozenset(
    {
        "content-length",
        "content-encoding",
        "etag",
        "content-md5",
        "digest",
        "content-digest",
        "repr-digest",
        "accept-ranges",
        "content-range",
        "last-modified",
    }
)

# Request fields that would make the CRM serve partial or conditional bodies,
# which the masker must never see as raw slices.
RANGE_REQUEST = frozenset({"range", "if-range"})

# Tunnelling a method past route rules (X-HTTP-Method-Override and friends).
METHOD_OVERRIDE = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})


def connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Field names listed in Connection: hop-by-hop for this message only."""
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def strip_hop_by_hop(headers: Iterable[tuple[str, str]]) -> Headers:
    items = list(headers)
    drop = HOP_BY_HOP | connection_tokens(items)
    return [(n, v) for n, v in items if n.lower() not in drop]


def without(headers: Iterable[tuple[str, str]], names: Iterable[str]) -> Headers:
    drop = {n.lower() for n in names}
    return [(n, v) for n, v in headers if n.lower() not in drop]


def first(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    for n, v in headers:
        if n.lower() == lname:
            return v
    return None


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """Who sent the request, as far as we can believe."""

    ip: str  # the client as the gateway believes it (peer, or from trusted proxies)
    proto: str
    host: str
    chain: tuple[str, ...]  # X-Forwarded-For chain to emit (believed hops + peer)


def _in_networks(
    ip: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)


def parse_networks(
    cidrs: Iterable[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def resolve_client(
    headers: Sequence[tuple[str, str]],
    *,
    peer_ip: str,
    scheme: str,
    host: str,
    trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> ClientAddress:
    """Believe X-Forwarded-* only while each hop, right to left, is a trusted proxy."""
    if not trusted or not _in_networks(peer_ip, trusted):
        return ClientAddress(peer_ip, scheme, host, (peer_ip,))
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == "x-forwarded-for":
            hops.extend(h.strip() for h in value.split(",") if h.strip())
    chain = [*hops, peer_ip]
    client = peer_ip
    # Walk from the nearest hop outwards; stop at the first untrusted address.
    for hop in reversed(chain):
        client = hop
        if not _in_networks(hop, trusted):
            break
    proto = (first(headers, "x-forwarded-proto") or scheme).split(",")[0].strip().lower()
    fwd_host = (first(headers, "x-forwarded-host") or host).split(",")[0].strip()
    if proto not in ("http", "https"):
        proto = scheme
    return ClientAddress(client, proto, fwd_host, tuple(chain))


def forwarding_headers(
    client: ClientAddress, *, via: str, emit_x_forwarded: bool, emit_forwarded: bool
) -> Headers:
    out: Headers = []
    if emit_x_forwarded:
        out.append(("X-Forwarded-For", ", ".join(client.chain)))
        out.append(("X-Forwarded-Proto", client.proto))
        if client.host:
            out.append(("X-Forwarded-Host", client.host))
    if emit_forwarded:
        parts = []
        for hop in client.chain:
            parts.append(f'for="[{hop}]"' if ":" in hop else f"for={hop}")
        last = f"{parts[-1]};proto={client.proto}"
        if client.host:
            last += f';host="{client.host}"'
        parts[-1] = last
        out.append(("Forwarded", ", ".join(parts)))
    out.append(("Via", via))
    return out


def append_via(headers: Headers, via: str) -> Headers:
    """Add our Via entry after any the upstream response already carries."""
    return [*headers, ("Via", via)]


_DECODABLE = ("gzip", "deflate", "br", "identity")


def decodable_accept_encoding(value: str | None) -> str:
    """Restrict Accept-Encoding to codings the masker can decode."""
    if not value:
        return "identity"
    keep = []
    for part in value.split(","):
        token = part.split(";")[0].strip().lower()
        if token in _DECODABLE and token not in keep:
            keep.append(token)
    return ", ".join(keep) if keep else "identity"
