from __future__ import annotations

from gateway.core import headers as h


def test_hop_by_hop_and_connection_named_fields_are_removed() -> None:
    got = h.strip_hop_by_hop(
        [
            ("Connection", "close, X-Private"),
            ("X-Private", "1"),
            ("Keep-Alive", "5"),
            ("TE", "trailers"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Upgrade", "h2c"),
        ]
    )
    assert got == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def test_client_forwarding_headers_ignored_from_untrusted_peer() -> None:
    c = h.resolve_client(
        [("X-Forwarded-For", "6.6.6.6")], peer_ip="10.0.0.5", scheme="http", host="gw", trusted=()
    )
    assert c.ip == "10.0.0.5" and c.chain == ("10.0.0.5",)


def test_trusted_proxy_chain_walks_to_first_untrusted_hop() -> None:
    trusted = h.parse_networks(["10.0.0.0/8"])
    c = h.resolve_client(
        [("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.1.1.1"), ("X-Forwarded-Proto", "https")],
        peer_ip="10.0.0.2",
        scheme="http",
        host="gw",
        trusted=trusted,
    )
    assert c.ip == "203.0.113.9"
    assert c.proto == "https"
    assert c.chain == ("6.6.6.6", "203.0.113.9", "10.1.1.1", "10.0.0.2")


def test_forwarding_headers_emitted() -> None:
    c = h.ClientAddress("::1", "http", "gw:8080", ("::1",))
    out = dict(h.forwarding_headers(c, via="1.1 gw", emit_x_forwarded=True, emit_forwarded=True))
    assert out["X-Forwarded-For"] == "::1"
    assert out["Forwarded"] == 'for="[::1]";proto=http;host="gw:8080"'
    assert out["Via"] == "1.1 gw"


def test_accept_encoding_limited_to_decodable_codings() -> None:
    assert h.decodable_accept_encoding("gzip, zstd;q=1, br") == "gzip, br"
    assert h.decodable_accept_encoding("zstd") == "identity"
    assert h.decodable_accept_encoding(None) == "identity"
