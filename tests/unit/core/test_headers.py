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


# --- issue 11: twins, rewrite headers, odd names ----------------------------------------

import pytest  # noqa: E402


@pytest.mark.parametrize(
    "twin", ["X_Remote_User", "x_remote_user", "X-Remote_User", "X.Remote.User", "X~REMOTE~user"]
)
def test_without_drops_every_spelling(twin: str) -> None:
    assert h.without([(twin, "admin"), ("Accept", "*/*")], ["X-Remote-User"]) == [("Accept", "*/*")]


def test_hop_by_hop_twins_are_removed() -> None:
    got = h.strip_hop_by_hop([("Keep_Alive", "5"), ("Transfer_Encoding", "chunked"), ("A", "1")])
    assert got == [("A", "1")]


REWRITES = ["X-Original-URL", "x-rewrite-url", "X_Original_URL", "Destination",
            "X-Forwarded-Prefix", "x.forwarded.path", "Request-URI"]  # fmt: skip


@pytest.mark.parametrize("name", REWRITES)
def test_rewrite_headers_are_dropped_by_default(name: str) -> None:
    assert h.inbound_filter([(name, "/api/customers/1"), ("Accept", "a")]) == [("Accept", "a")]


def test_allowed_rewrite_headers_pass_only_as_spelled_and_forwarded_ones_only_from_proxies() -> (
    None
):
    allow = frozenset({"x-original-url", "x-forwarded-prefix"})
    items = [("X-Original-URL", "/a"), ("X_Original_URL", "/b"), ("X-Forwarded-Prefix", "/p")]
    assert h.inbound_filter(items, rewrite_allow=allow) == [("X-Original-URL", "/a")]
    assert h.inbound_filter(items, rewrite_allow=allow, from_trusted_proxy=True) == [
        ("X-Original-URL", "/a"),
        ("X-Forwarded-Prefix", "/p"),
    ]


def test_odd_names_are_dropped_unless_allowed_or_passing() -> None:
    items = [("X_Legacy", "1"), ("X.Dot", "2"), ("X-Plain", "3")]
    assert h.inbound_filter(items) == [("X-Plain", "3")]
    assert h.inbound_filter(items, odd_names_allow=frozenset({"x_legacy"})) == [
        ("X_Legacy", "1"),
        ("X-Plain", "3"),
    ]
    assert h.inbound_filter(items, odd_names="pass") == items


def test_rewrite_targets_read_urls_and_prefixes() -> None:
    allow = frozenset({"x-original-url", "x-forwarded-prefix"})
    got = h.rewrite_targets(
        [("X-Original-URL", "http://crm/api/x?y=1"), ("X-Forwarded-Prefix", "/static/")],
        "/static/api/c",
        allow,
        True,
    )
    assert got == ["/api/x", "/static/static/api/c", "/api/c"]
    assert h.rewrite_targets([("X-Original-URL", "/a")], "/p", frozenset(), True) == []
