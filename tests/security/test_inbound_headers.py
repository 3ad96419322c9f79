"""Issue 11, items 1 and 3: rewrite headers and header twins, checked at the CRM.

The lenient CRM serves the path a rewrite header names (`X-Original-URL: /api/
customers/X` on `/api/health`) and reads header names CGI-style (`X_Remote_User`
is `X-Remote-User`). Through the gateway no rewrite header and no twin of a
header the gateway strips or sets reaches it, in any spelling; allow-listed
rewrite headers pass only as configured, and then the gateway routes on the
rewritten path too.
"""

from __future__ import annotations

import pytest

from gateway.core import headers as h
from gateway.errors import ConfigError
from gateway.settings import load_settings
from tests.integration.gateway_harness import Gateway
from tests.security.inbound_gateway import (
    StartGateway,
    api_key,
    crm,
    gw,
    make_gateway,
    opa,
)
from tests.security.lenient_upstream import (
    PERSONAL,
    PREFIX_HEADERS,
    REWRITE_HEADERS,
    LenientCrm,
    Seen,
    cgi_name,
    clear_values,
    plain,
    send_raw,
)

__all__ = ["crm", "gw", "make_gateway", "opa"]

REWRITE_NAMES = [
    "X-Original-URL",
    "X-Original-URI",
    "X-Original-Path",
    "X-Rewrite-URL",
    "X-Rewrite-URI",
    "X-Rewrite-Path",
    "X-Override-URL",
    "X-HTTP-DestinationURL",
    "X-Forwarded-Path",
    "X-Forwarded-Uri",
    "X-Forwarded-Url",
    "X-Envoy-Original-Path",
    "X-Envoy-Original-URL",
    "Request-URI",
    "X-Request-URI",
    "X-Proxy-URL",
]


def _spellings(name: str) -> list[str]:
    return [
        name,
        name.lower(),
        name.upper(),
        name.replace("-", "_"),
        name.lower().replace("-", "_"),
    ]


REWRITE_SPELLINGS = [s for n in REWRITE_NAMES for s in _spellings(n)]
REWRITE_VALUES = [
    "/api/customers/{id}",
    "http://crm.internal/api/customers/{id}",
    "/api/customers/{id}?x=1",
]
# Identity, forwarding, method-override and hop-by-hop fields the gateway strips or sets.
TWINS = [
    "X_Remote_User",
    "x_remote_user",
    "X_REMOTE_USER",
    "x-remote_user",
    "X.Remote.User",
    "X-Remote~User",
    "X_Gateway_Clearance",
    "x_gateway_clearance",
    "X_Gateway_Subject",
    "X_Forwarded_User",
    "X_Auth_Request_User",
    "X_Api_Key",
    "X_Forwarded_For",
    "X_Real_IP",
    "X_Forwarded_Host",
    "X_Forwarded_Proto",
    "X_HTTP_Method_Override",
    "X_Method_Override",
    "Proxy_Connection",
    "Keep_Alive",
    "X_Client_IP",
    "True_Client_IP",
]
STRIPPED = (
    {
        "x-gateway-clearance",
        "x-gateway-subject",
        "x-forwarded-user",
        "x-auth-request-user",
        "x-api-key",
        "x-http-method-override",
        "x-method-override",
        "x-client-ip",
        "true-client-ip",
        "proxy-connection",
        "keep-alive",
    }
    | set(REWRITE_HEADERS)
    | set(PREFIX_HEADERS)
)


def _last(crm: LenientCrm, before: int) -> Seen:
    seen = crm.seen[before:]
    assert len(seen) == 1, [s.target for s in seen]
    return seen[0]


def _no_rewrite_header(seen: Seen) -> None:
    leaked = seen.cgi_names() & (set(REWRITE_HEADERS) | set(PREFIX_HEADERS) | {"destination"})
    assert not leaked, seen.headers


@pytest.mark.parametrize("name", REWRITE_SPELLINGS)
async def test_rewrite_headers_never_reach_the_crm_anonymous(
    gw: Gateway, crm: LenientCrm, name: str
) -> None:
    rec = plain(crm)
    before = len(crm.seen)
    status, _, body = await send_raw(
        gw.port, "GET", "/api/health", {name: f"/api/customers/{rec['id']}"}
    )
    assert status == 200, body
    assert clear_values(rec, body, PERSONAL) == []
    seen = _last(crm, before)
    _no_rewrite_header(seen)
    assert seen.resolved == "/api/health"


@pytest.mark.parametrize("value", REWRITE_VALUES)
@pytest.mark.parametrize("name", REWRITE_NAMES)
async def test_rewrite_headers_never_reach_the_crm_through_static(
    gw: Gateway, crm: LenientCrm, name: str, value: str
) -> None:
    rec = plain(crm)
    before = len(crm.seen)
    status, _, body = await send_raw(
        gw.port,
        "GET",
        "/static/app.js",
        {**api_key("sales"), name: value.format(id=rec["id"])},
    )
    assert status == 200, body
    assert clear_values(rec, body, PERSONAL) == []
    seen = _last(crm, before)
    _no_rewrite_header(seen)
    assert seen.resolved == "/static/app.js"


@pytest.mark.parametrize("name", ["X-Forwarded-Prefix", "x_forwarded_prefix", "X-Script-Name"])
async def test_prefix_headers_never_reach_the_crm(gw: Gateway, crm: LenientCrm, name: str) -> None:
    """`/static/api/customers/X` with a prefix of `/static`: the CRM would strip it."""
    rec = plain(crm)
    before = len(crm.seen)
    status, _, body = await send_raw(
        gw.port, "GET", f"/static/api/customers/{rec['id']}", {**api_key("sales"), name: "/static"}
    )
    assert clear_values(rec, body, PERSONAL) == []
    seen = _last(crm, before)
    _no_rewrite_header(seen)
    assert seen.resolved != f"/api/customers/{rec['id'].lower()}"
    assert status == 404


@pytest.mark.parametrize("name", ["Destination", "destination", "DESTINATION"])
async def test_webdav_destination_never_reaches_the_crm(
    gw: Gateway, crm: LenientCrm, name: str
) -> None:
    before = len(crm.seen)
    await send_raw(gw.port, "GET", "/static/app.js", {**api_key("sales"), name: "/api/customers/x"})
    _no_rewrite_header(_last(crm, before))


async def test_the_lenient_crm_honours_what_the_gateway_strips(crm: LenientCrm) -> None:
    """Baseline: sent straight to the CRM, a rewrite header serves the record."""
    rec = plain(crm)
    port = int(crm.url.rsplit(":", 1)[1])
    for name in ("X-Original-URL", "X_Rewrite_URL", "x-forwarded-path"):
        _, _, body = await send_raw(
            port, "GET", "/api/health", {name: f"/api/customers/{rec['id']}"}
        )
        assert clear_values(rec, body, PERSONAL) != [], name


# --- allow-listed rewrite headers ------------------------------------------------------


async def test_an_allowed_rewrite_header_is_routed_like_the_path_it_names(
    make_gateway: StartGateway, crm: LenientCrm
) -> None:
    gw = await make_gateway(**{"forwarded.rewrite_headers_allow": ["X-Original-URL"]})
    rec = plain(crm)
    target = f"/api/customers/{rec['id']}"
    before = len(crm.seen)
    status, _, body = await send_raw(gw.port, "GET", "/api/health", {"X-Original-URL": target})
    assert status == 401, body  # the public rule does not cover what the CRM would serve
    assert crm.seen[before:] == []
    status, _, body = await send_raw(
        gw.port, "GET", "/static/app.js", {**api_key("sales"), "X-Original-URL": target}
    )
    assert status == 200, body
    assert clear_values(rec, body) == []  # masked with the customer route's rules
    seen = _last(crm, before)
    assert seen.resolved == target.lower()
    assert ("X-Original-URL", target) in seen.headers
    # its twin is not the allowed header
    before = len(crm.seen)
    await send_raw(gw.port, "GET", "/static/app.js", {**api_key("sales"), "X_Original_URL": target})
    _no_rewrite_header(_last(crm, before))


async def test_an_allowed_rewrite_header_with_a_hostile_path_is_refused(
    make_gateway: StartGateway, crm: LenientCrm
) -> None:
    gw = await make_gateway(**{"forwarded.rewrite_headers_allow": ["x-rewrite-url"]})
    before = len(crm.seen)
    status, _, body = await send_raw(
        gw.port,
        "GET",
        "/static/app.js",
        {**api_key("sales"), "X-Rewrite-URL": "/static/%c0%ae%c0%ae/api/customers/C000011"},
    )
    assert status == 400, body
    assert crm.seen[before:] == []


@pytest.mark.parametrize("trusted", [False, True])
async def test_forwarded_path_headers_pass_only_from_a_trusted_proxy(
    make_gateway: StartGateway, crm: LenientCrm, trusted: bool
) -> None:
    gw = await make_gateway(
        **{
            "forwarded.rewrite_headers_allow": ["x-forwarded-prefix"],
            "forwarded.trusted_proxies": ["127.0.0.0/8"] if trusted else [],
        }
    )
    rec = plain(crm)
    before = len(crm.seen)
    status, _, body = await send_raw(
        gw.port,
        "GET",
        f"/static/api/customers/{rec['id']}",
        {**api_key("sales"), "X-Forwarded-Prefix": "/static"},
    )
    assert clear_values(rec, body) == []
    seen = _last(crm, before)
    if trusted:  # passed, and routed as the CRM will read it: the customer route, masked
        assert status == 200, body
        assert seen.resolved == f"/api/customers/{rec['id'].lower()}"
    else:
        _no_rewrite_header(seen)
        assert status == 404


def test_the_rewrite_allow_list_is_validated_at_start_up() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            None,
            environ={"CRM_GATEWAY__FORWARDED__REWRITE_HEADERS_ALLOW": "[x-original-url, x-foo]"},
        )
    assert any("forwarded.rewrite_headers_allow" in p for p in info.value.problems)


# --- header twins ----------------------------------------------------------------------


@pytest.mark.parametrize("name", TWINS)
async def test_twins_of_stripped_or_set_headers_never_reach_the_crm(
    gw: Gateway, crm: LenientCrm, name: str
) -> None:
    rec = plain(crm)
    before = len(crm.seen)
    status, _, body = await send_raw(
        gw.port, "GET", f"/api/customers/{rec['id']}", {**api_key("sales"), name: "u-admin"}
    )
    assert status == 200, body
    seen = _last(crm, before)
    assert name not in seen.header_names()
    # what the CRM reads as X-Remote-User is the gateway's one value, no other
    users = [v for n, v in seen.headers if cgi_name(n) == "x-remote-user"]
    assert users == ["u-sales"], seen.headers
    assert not [n for n in seen.header_names() if "_" in n or "." in n or "~" in n]
    assert not (seen.cgi_names() & STRIPPED), sorted(seen.cgi_names() & STRIPPED)
    assert ("X-Forwarded-For", "127.0.0.1") in seen.headers  # the gateway's own, once
    assert [n for n, _ in seen.headers if cgi_name(n) == "x-forwarded-for"] == ["X-Forwarded-For"]


@pytest.mark.parametrize("name", ["X_Remote_User", "X_Gateway_Clearance", "X_Custom_Token"])
async def test_twins_on_public_routes_are_stripped_too(
    gw: Gateway, crm: LenientCrm, name: str
) -> None:
    before = len(crm.seen)
    status, _, _ = await send_raw(gw.port, "GET", "/api/health", {name: "u-admin"})
    assert status == 200
    assert not [n for n in _last(crm, before).header_names() if "_" in n]


async def test_underscore_names_pass_only_when_allowed_and_never_as_twins(
    make_gateway: StartGateway, crm: LenientCrm
) -> None:
    gw = await make_gateway(
        **{"guard.underscore_headers_allow": ["X_Legacy_Token", "X_Remote_User", "X_Api_Key"]}
    )
    rec = plain(crm)
    before = len(crm.seen)
    await send_raw(
        gw.port,
        "GET",
        f"/api/customers/{rec['id']}",
        {
            **api_key("sales"),
            "X_Legacy_Token": "t1",
            "X_Remote_User": "u-admin",
            "X_Api_Key": "k",
            "X_Other": "o",
        },
    )
    seen = _last(crm, before)
    assert ("X_Legacy_Token", "t1") in seen.headers
    assert "X_Remote_User" not in seen.header_names()  # a twin of a stripped header
    assert "X_Api_Key" not in seen.header_names()
    assert "X_Other" not in seen.header_names()


async def test_underscore_names_pass_when_configured_but_twins_still_do_not(
    make_gateway: StartGateway, crm: LenientCrm
) -> None:
    gw = await make_gateway(**{"guard.underscore_headers": "pass"})
    rec = plain(crm)
    before = len(crm.seen)
    await send_raw(
        gw.port,
        "GET",
        f"/api/customers/{rec['id']}",
        {
            **api_key("sales"),
            "X_Other": "o",
            "X_Remote_User": "u-admin",
            "X_Original_URL": "/api/customers/C000001",
        },
    )
    seen = _last(crm, before)
    assert ("X_Other", "o") in seen.headers
    assert [v for n, v in seen.headers if cgi_name(n) == "x-remote-user"] == ["u-sales"]
    _no_rewrite_header(seen)


@pytest.mark.parametrize(
    ("name", "canon"),
    [("X_Remote_User", "x-remote-user"), ("X.Remote.User", "x-remote-user"),
     ("x-REMOTE_user", "x-remote-user"), ("Content_Length", "content-length")],
)  # fmt: skip
def test_canonical_names_are_the_cgi_reading(name: str, canon: str) -> None:
    assert h.canonical_name(name) == canon
    assert h.without([(name, "1"), ("Accept", "x")], [canon]) == [("Accept", "x")]
