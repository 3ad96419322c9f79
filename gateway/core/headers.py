"""HTTP header hygiene for an intermediary (RFC 9110 §7.6, RFC 9112 §9.6, RFC 7239).

Pure functions over lists of (name, value) pairs so duplicates (Set-Cookie,
Cache-Control, Via) survive in order. `upstream.py` and `handler.py` call these;
nothing here knows about aiohttp.

Names are compared in their CGI form (`canonical_name`: lower case, every
character other than a letter or digit read as `-`), because WSGI/CGI CRMs
read `X_Remote_User`, `X.Remote.User` and `X-Remote-User` as one variable
(`HTTP_X_REMOTE_USER`): stripping a header strips all its twins. Client headers
whose names are not plain letters, digits and hyphens are dropped by default
(nginx's `underscores_in_headers off`), and rewrite headers (`X-Original-URL`
and friends, which let IIS/Symfony/Zend serve a different path than the one
the gateway routed) never reach the CRM unless allow-listed.
"""

from __future__ import annotations

import functools
import ipaddress
import re
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

# Client-supplied forwarding fields: believed only from trusted proxies (the gateway
# emits its own), plus the client-address and scheme spellings CRMs and frameworks
# read for IP allow-lists, audit and absolute links.
FORWARDING = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
        "x-forwarded-port",
        "x-forwarded-scheme",
        "x-forwarded-ssl",
        "x-forwarded-server",
        "x-url-scheme",
        "front-end-https",
        "x-client-ip",
        "true-client-ip",
        "x-cluster-client-ip",
        "x-originating-ip",
        "x-remote-ip",
        "x-remote-addr",
        "client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-host",
        "x-original-host",
        "x-http-host-override",
    }
)

# Headers that make a CRM (IIS URL Rewrite, Symfony, Zend, Spring, Werkzeug,
# Envoy-fronted apps, WebDAV) serve another path than the request line names.
REWRITE = frozenset(
    {
        "x-original-url",
        "x-original-uri",
        "x-original-path",
        "x-rewrite-url",
        "x-rewrite-uri",
        "x-rewrite-path",
        "x-override-url",
        "x-http-destinationurl",
        "x-forwarded-path",
        "x-forwarded-prefix",
        "x-forwarded-uri",
        "x-forwarded-url",
        "x-envoy-original-path",
        "x-envoy-original-url",
        "x-script-name",
        "script-name",
        "request-uri",
        "x-request-uri",
        "x-proxy-url",
        "destination",
    }
)
# Of those, the ones a trusted reverse proxy in front of the gateway may set.
REWRITE_FROM_PROXY = frozenset(n for n in REWRITE if n.startswith("x-forwarded-"))
# A path-prefix header: the CRM reads prefix + path (or strips the prefix).
REWRITE_PREFIX = frozenset({"x-forwarded-prefix", "x-script-name", "script-name"})

_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9-]+")

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
# Preconditions: against a CRM whose validators digest the unmasked record, a guessed
# ETag or date answers "is this the value?" (304 or 412). A caller never receives a
# validator on a sensitive route (rewritten bodies drop them), so any it sends is a guess.
CONDITIONAL = frozenset({"if-none-match", "if-match", "if-modified-since", "if-unmodified-since"})

# Tunnelling a method past route rules (X-HTTP-Method-Override and friends).
METHOD_OVERRIDE = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})


@functools.lru_cache(maxsize=4096)  # field names repeat on every request; bounded
def canonical_name(name: str) -> str:
    """The CGI reading of a field name: `X_Remote.User` -> `x-remote-user`."""
    return _NOT_ALNUM.sub("-", name.lower())


def is_plain_name(name: str) -> bool:
    """Letters, digits and hyphens only (every registered field name is)."""
    return _PLAIN_NAME.fullmatch(name) is not None


def connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Field names listed in Connection: hop-by-hop for this message only."""
    tokens: set[str] = set()
    for name, value in headers:
        if canonical_name(name) == "connection":
            tokens.update(canonical_name(t.strip()) for t in value.split(",") if t.strip())
    return tokens


def strip_hop_by_hop(headers: Iterable[tuple[str, str]]) -> Headers:
    items = list(headers)
    drop = HOP_BY_HOP | connection_tokens(items)
    return [(n, v) for n, v in items if canonical_name(n) not in drop]


# Response fields that tell a front web server to serve something else in the
# response's place (nginx X-Accel-*, Apache/lighttpd X-Sendfile, LiteSpeed, perlbal):
# an nginx in front of the gateway would answer with a file or an internal location
# the gateway never saw. Never relayed, on any route.
FRONT_SERVER_DIRECTIVES = frozenset(
    {
        "x-sendfile",
        "x-sendfile-temporary",
        "x-lighttpd-send-file",
        "x-lighttpd-sendfile",
        "x-litespeed-location",
        "x-reproxy-url",
        "x-reproxy-cache-for",
    }
)


def is_front_server_directive(name: str) -> bool:
    key = canonical_name(name)
    return key in FRONT_SERVER_DIRECTIVES or key.startswith("x-accel-")


def response_hygiene(headers: Iterable[tuple[str, str]]) -> Headers:
    """The CRM's response fields minus hop-by-hop ones and front-server directives."""
    return [(n, v) for n, v in strip_hop_by_hop(headers) if not is_front_server_directive(n)]


def without(headers: Iterable[tuple[str, str]], names: Iterable[str]) -> Headers:
    """`headers` minus every field named in `names`, in any spelling (`X_Remote_User`)."""
    drop = {canonical_name(n) for n in names}
    return [(n, v) for n, v in headers if canonical_name(n) not in drop]


def inbound_filter(
    headers: Iterable[tuple[str, str]],
    *,
    rewrite_allow: frozenset[str] = frozenset(),
    from_trusted_proxy: bool = False,
    odd_names: str = "drop",
    odd_names_allow: frozenset[str] = frozenset(),
) -> Headers:
    """Client headers minus rewrite headers and odd-named ones (see the module doc).

    `rewrite_allow` (lower-case names) lets a rewrite header through, spelled
    exactly with hyphens; the `X-Forwarded-*` ones only from a trusted proxy.
    `odd_names="drop"` drops names with anything but letters, digits and `-`
    unless listed (lower case) in `odd_names_allow`; twins of stripped headers are
    removed by `without` before this runs, whatever the allow-list says.
    """
    return [
        (n, v)
        for n, v in headers
        if rewrite_allowed(n, rewrite_allow, from_trusted_proxy)
        and (odd_names != "drop" or is_plain_name(n) or n.lower() in odd_names_allow)
    ]


def rewrite_allowed(name: str, allow: frozenset[str], from_trusted_proxy: bool) -> bool:
    """False for a rewrite header (any spelling) the configuration does not let through."""
    canon = canonical_name(name)
    if canon not in REWRITE:
        return True
    if name.lower() != canon or canon not in allow:
        return False
    return from_trusted_proxy or canon not in REWRITE_FROM_PROXY


def rewrite_targets(
    headers: Iterable[tuple[str, str]], path: str, allow: frozenset[str], from_trusted_proxy: bool
) -> list[str]:
    """The paths forwarded rewrite headers point the CRM at (absolute URLs reduced to
    their path; a prefix header read both as prefix + path and as path minus prefix)."""
    out: list[str] = []
    for name, value in headers:
        canon = canonical_name(name)
        if canon not in REWRITE or not rewrite_allowed(name, allow, from_trusted_proxy):
            continue
        target = value.strip()
        if "://" in target:
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        target = target.split("?", 1)[0].split("#", 1)[0]
        if canon in REWRITE_PREFIX:
            prefix = "/" + target.strip("/")
            out.append(prefix.rstrip("/") + path)
            if path.startswith(prefix.rstrip("/") + "/"):
                out.append(path[len(prefix.rstrip("/")) :])
            continue
        out.append(target if target.startswith("/") else "/" + target)
    return out


def is_trusted(
    peer_ip: str, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    return bool(trusted) and _in_networks(peer_ip, trusted)


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
    addr = parse_address(ip)
    return addr is not None and any(addr in net for net in networks)


def parse_networks(
    cidrs: Iterable[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)
def parse_address(host: str) -> IP | None:
    """An address literal (zone id dropped, IPv4-mapped IPv6 unwrapped), or None.
    Cached: the same few peers call again and again, and parsing is not free."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def forwarded_for(headers: Sequence[tuple[str, str]]) -> list[str]:
    """Every X-Forwarded-For hop, nearest last, as sent (empty entries left out)."""
    return [
        hop.strip()
        for name, value in headers
        if name.lower() == "x-forwarded-for"
        for hop in value.split(",")
        if hop.strip()
    ]


def client_ip(
    headers: Sequence[tuple[str, str]], *, peer_ip: str, trusted: Sequence[Network]
) -> IP | None:
    """The one rule for who the client is: what the audit trail records, and what
    network zones, network rules and rate limits are keyed on.

    The TCP peer, unless it is a trusted proxy; then X-Forwarded-For is walked from
    the nearest hop outwards and the first hop that is not a trusted proxy is the
    client (every hop trusted: the farthest one). A hop that is not an address
    literal makes the whole chain unbelievable: the peer is the client. None when
    the peer itself is not an address (a Unix socket).
    """
    peer = parse_address(peer_ip) if peer_ip else None
    if peer is None or not _trusted(peer, trusted):
        return peer
    client = peer
    for hop in reversed(forwarded_for(headers)):
        addr = parse_address(hop)
        if addr is None:
            return peer  # a garbled chain: believe only what we saw
        client = addr
        if not _trusted(addr, trusted):
            break
    return client


def _trusted(addr: IP, trusted: Sequence[Network]) -> bool:
    return any(addr in net for net in trusted)


def resolve_client(
    headers: Sequence[tuple[str, str]],
    *,
    peer_ip: str,
    scheme: str,
    host: str,
    trusted: Sequence[Network],
) -> ClientAddress:
    """The client (`client_ip`), and X-Forwarded-Proto/-Host only from a trusted proxy."""
    addr = client_ip(headers, peer_ip=peer_ip, trusted=trusted)
    ip = str(addr) if addr is not None else peer_ip
    if not trusted or not _in_networks(peer_ip, trusted):
        return ClientAddress(ip, scheme, host, (peer_ip,))
    chain = (*forwarded_for(headers), peer_ip)
    proto = (first(headers, "x-forwarded-proto") or scheme).split(",")[0].strip().lower()
    fwd_host = (first(headers, "x-forwarded-host") or host).split(",")[0].strip()
    if proto not in ("http", "https"):
        proto = scheme
    return ClientAddress(ip, proto, fwd_host, chain)


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
