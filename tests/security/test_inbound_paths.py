"""Issue 11, item 2: ambiguous paths, tried against a CRM that reads them leniently.

Every spelling below is one the lenient CRM (`lenient_upstream.py`: overlong
UTF-8, `%uXXXX`, NFKC, backslashes, path parameters, trailing dots and spaces,
any case) routes to a customer record. Through the gateway each one is either
refused (400 `bad_path`, and the CRM sees nothing) or routed to the sensitive
catalog template and masked; never served raw through `/static/*`, `/public/*`
or `/api/health`. A property test drives the same oracle over generated spellings.
"""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from yarl import URL

from gateway.core.catalog import Catalog
from gateway.core.paths import PathRejected, normalize_path
from gateway.routes import RouteTable
from gateway.settings import REPO_ROOT, RouteSettings
from tests.integration.gateway_harness import Gateway
from tests.security.inbound_gateway import (
    StartGateway,
    api_key,
    audited_route,
    crm,
    event_for,
    gw,
    make_gateway,
    opa,
)
from tests.security.lenient_upstream import (
    PERSONAL,
    ROUTES,
    LenientCrm,
    clear_values,
    plain,
    resolve,
    send_raw,
)

__all__ = ["crm", "gw", "make_gateway", "opa"]  # fixtures used by name below

OVERLONG = [
    "/static/%c0%ae%c0%ae/api/customers/{id}",
    "/static/%C0%AE%C0%AE/api/customers/{id}",
    "/public/%c0%ae%c0%ae/api/customers/{id}",
    "/static/.%c0%ae/api/customers/{id}",
    "/static/%c0%ae./api/customers/{id}",
    "/static/..%c0%afapi/customers/{id}",
    "/static/%c0%ae%c0%ae%c0%afapi%c0%afcustomers%c0%af{id}",
    "/static/%e0%80%ae%e0%80%ae/api/customers/{id}",
    "/static/%f0%80%80%ae%f0%80%80%ae/api/customers/{id}",
    "/static/%c1%9c..%c1%9capi/customers/{id}",
    "/static/.%80./api/customers/{id}",
    "/static/.%bf./api/customers/{id}",
    "/static/%u002e%u002e/api/customers/{id}",
    "/public/%U002E%U002E/api/customers/{id}",
]
REFUSED_ONLY = [  # not valid UTF-8 either; the lenient CRM need not route them anywhere
    "/static/..%ed%a0%80/api/customers/{id}",
    "/static/%c0/api/customers/{id}",
    "/static/%e0%80/api/customers/{id}",
    "/static/%f8%88%80%80%ae/api/customers/{id}",
    "/static/%f4%90%80%80/api/customers/{id}",
    "/static/%fe%ff/api/customers/{id}",
]
MATRIX = [
    "/api/customers;jsessionid=1/{id}",
    "/api/customers/{id};jsessionid=1",
    "/api;x=1/customers/{id}",
    "/api/customers%3Bjsessionid=1/{id}",
    "/api/customers%3bjsessionid=1/{id}",
    "/API/Customers;JSESSIONID=1/{id}",
    "/static;x=1/..;/api/customers/{id}",
    "/static/;x/../api/customers/{id}",
    "/;x/api/customers/{id}",
]
TRAILING = [
    "/api/customers./{id}",
    "/api/customers%2e/{id}",
    "/api/customers%2E/{id}",
    "/api/customers%20/{id}",
    "/api/customers.%20/{id}",
    "/api/customers../{id}",
    "/api/customers/{id}.",
    "/api/customers/{id}%20",
    "/api%20/customers/{id}",
    "/static/..%20/api/customers/{id}",
    "/static/..%2e/api/customers/{id}",
    "/static/x./../../api/customers/{id}",
    "/api/customers%09/{id}",
]
BACKSLASH = [
    "/static/..%5capi/customers/{id}",
    "/static/..%5Capi%5ccustomers%5c{id}",
    "/static/%5c..%5c..%5capi/customers/{id}",
    "/static/..%255capi/customers/{id}",
    "/static/..\\api/customers/{id}",
]
LOOKALIKE = [
    "/static/%ef%bc%8e%ef%bc%8e/api/customers/{id}",  # fullwidth full stops
    "/static/..%ef%bc%8fapi%ef%bc%8fcustomers%ef%bc%8f{id}",  # fullwidth solidus
    "/static/%e2%80%a4%e2%80%a4/api/customers/{id}",  # one dot leaders
    "/static/%ef%b9%92%ef%b9%92/api/customers/{id}",  # small full stops
    "/static/..%ef%bc%bcapi/customers/{id}",  # fullwidth reverse solidus
    "/%ef%bd%81%ef%bd%90%ef%bd%89/customers/{id}",  # fullwidth "api"
    "/api/customers%c2%a0/{id}",  # no-break space
    "/api/customers%e3%80%80/{id}",  # ideographic space
    "/api/cust%e2%80%8bomers/{id}",  # zero-width space
    "/static/%c2%ad../api/customers/{id}",  # soft hyphen
]
DOUBLE = [
    "/static/%252e%252e/api/customers/{id}",
    "/static/%25c0%25ae%25c0%25ae/api/customers/{id}",
    "/static/%2525252e/api/customers/{id}",
]
REFUSED = OVERLONG + REFUSED_ONLY + MATRIX + TRAILING + BACKSLASH + LOOKALIKE + DOUBLE
SERVED_BY_LENIENT_CRM = OVERLONG + MATRIX[:6] + TRAILING[:10] + BACKSLASH[:3] + LOOKALIKE[:8]

CASE_VARIANTS = [
    "/API/Customers/{id}",
    "/api/CUSTOMERS/{id}",
    "/Api/customers/{lower}",
    "/aPi/cUsToMeRs/{id}",
    "/static/../API/Customers/{id}",
    "/static/%2e%2e/Api/CUSTOMERS/{id}",
    "/public/x/../../API/customers/{id}",
]
RESOLVED_DOTS = [
    "/static/../api/customers/{id}",
    "/static/%2e%2e/api/customers/{id}",
    "/static/x/.%2e/../api/customers/{id}",
    "/public/..//api/./customers/{id}",
    "//api//customers//{id}",
]
PUBLIC_CASE_VARIANTS = ["/API/HEALTH", "/Api/Health", "/api/Health", "/PUBLIC/app.js", "/Public/x"]


def _spell(template: str, rec: dict[str, str]) -> str:
    return template.format(id=rec["id"], lower=rec["id"].lower())


async def _no_request_reached(crm: LenientCrm, before: int) -> None:
    assert crm.seen[before:] == [], [s.target for s in crm.seen[before:]]


async def test_the_lenient_crm_routes_each_spelling_to_the_record(crm: LenientCrm) -> None:
    """Baseline: straight to the CRM, every attack spelling serves the record in clear
    (so the gateway cases below can fail)."""
    rec = plain(crm)
    for template in SERVED_BY_LENIENT_CRM + CASE_VARIANTS:
        target = _spell(template, rec)
        assert resolve(target) == f"/api/customers/{rec['id'].lower()}", target
    async with aiohttp.ClientSession() as s:
        url = URL(crm.url + _spell(OVERLONG[0], rec), encoded=True)
        async with s.get(url) as r:
            body = await r.read()
    assert clear_values(rec, body, PERSONAL) != []


@pytest.mark.parametrize("template", REFUSED)
@pytest.mark.parametrize("who", ["sales", None])
async def test_ambiguous_spellings_are_refused_before_the_crm(
    gw: Gateway, crm: LenientCrm, template: str, who: str | None
) -> None:
    rec = plain(crm)
    before = len(crm.seen)
    status, headers, body = await send_raw(
        gw.port, "GET", _spell(template, rec), api_key(who) if who else {}
    )
    assert status == 400, body
    assert orjson.loads(body)["error"] in ("bad_path", "bad_request")
    assert headers.get("server") == "crm-gateway"
    assert clear_values(rec, body, PERSONAL) == []
    await _no_request_reached(crm, before)


@pytest.mark.parametrize("template", CASE_VARIANTS + RESOLVED_DOTS)
async def test_case_and_dot_variants_hit_the_sensitive_template_and_are_masked(
    gw: Gateway, crm: LenientCrm, template: str
) -> None:
    rec = plain(crm)
    status, headers, body = await send_raw(gw.port, "GET", _spell(template, rec), api_key("sales"))
    assert status == 200, body
    assert orjson.loads(body)["customer"]["id"] == rec["id"]  # the record, as the CRM served it
    assert clear_values(rec, body) == []  # L4/L5 values masked or dropped
    event = await event_for(gw, headers["x-request-id"])
    assert audited_route(event) == "/api/customers/{id}"  # the catalog route, record rules


@pytest.mark.parametrize("template", CASE_VARIANTS + RESOLVED_DOTS)
async def test_variants_of_a_sensitive_path_need_a_caller(
    gw: Gateway, crm: LenientCrm, template: str
) -> None:
    rec = plain(crm)
    before = len(crm.seen)
    status, _, body = await send_raw(gw.port, "GET", _spell(template, rec))
    assert status == 401, body
    assert clear_values(rec, body, PERSONAL) == []
    await _no_request_reached(crm, before)


@pytest.mark.parametrize("target", PUBLIC_CASE_VARIANTS)
async def test_public_rules_match_only_the_canonical_spelling(
    gw: Gateway, crm: LenientCrm, target: str
) -> None:
    before = len(crm.seen)
    status, _, _ = await send_raw(gw.port, "GET", target)
    assert status == 401  # not the public rule: a caller is needed
    await _no_request_reached(crm, before)
    status, _, body = await send_raw(gw.port, "GET", target.lower())
    assert status == 200, body  # the canonical spelling stays public


async def test_a_relaxed_rule_in_another_case_does_not_cover_a_sensitive_route(
    make_gateway: StartGateway, crm: LenientCrm
) -> None:
    """A rule `/Api/*` (not sensitive) matches `/Api/customers/X` as written, but the
    CRM serves the customer record there: the catalog route wins, the body is masked."""
    gw = await make_gateway(routes=[{"path": "/Api/*", "sensitive": False}, *ROUTES])
    rec = plain(crm)
    status, _, body = await send_raw(
        gw.port, "GET", f"/Api/customers/{rec['id']}", api_key("sales")
    )
    assert status == 200, body
    assert clear_values(rec, body) == []


@pytest.mark.parametrize("template", MATRIX[:6])
async def test_stripped_matrix_parameters_still_match_the_sensitive_template(
    make_gateway: StartGateway, crm: LenientCrm, template: str
) -> None:
    gw = await make_gateway(**{"guard.matrix_params": "strip"})
    rec = plain(crm)
    target = _spell(template, rec)
    before = len(crm.seen)
    status, headers, body = await send_raw(gw.port, "GET", target, api_key("sales"))
    assert status == 200, body
    assert clear_values(rec, body) == []
    assert [s.target for s in crm.seen[before:]] == [normalize_path(target)]  # forwarded as sent
    event = await event_for(gw, headers["x-request-id"])
    assert audited_route(event) == "/api/customers/{id}"
    status, _, _ = await send_raw(gw.port, "GET", target)
    assert status == 401


@pytest.mark.parametrize(
    "target", ["/api/health;jsessionid=1", "/api/health%3Bx", "/public;x/app.js"]
)
async def test_matrix_parameters_never_widen_a_public_rule(
    make_gateway: StartGateway, crm: LenientCrm, target: str
) -> None:
    gw = await make_gateway(**{"guard.matrix_params": "strip"})
    before = len(crm.seen)
    status, _, _ = await send_raw(gw.port, "GET", target)
    assert status == 401
    await _no_request_reached(crm, before)


async def test_case_insensitive_setting_forwards_the_lower_case_path(
    make_gateway: StartGateway, crm: LenientCrm
) -> None:
    gw = await make_gateway(**{"guard.case_insensitive_paths": True})
    rec = plain(crm)
    before = len(crm.seen)
    status, _, body = await send_raw(
        gw.port, "GET", f"/API/Customers/{rec['id']}", api_key("sales")
    )
    assert status == 200, body
    assert clear_values(rec, body) == []
    assert [s.target for s in crm.seen[before:]] == [f"/api/customers/{rec['id'].lower()}"]


# --- the same oracle over generated spellings -----------------------------------------

_CATALOG = Catalog.load(REPO_ROOT / "config" / "crm" / "demo.yaml")
_TABLES = {
    mode: RouteTable([RouteSettings(**r) for r in ROUTES], catalog=_CATALOG, matrix_params=mode)
    for mode in ("reject", "strip")
}
_DOTS = ["..", "%2e%2e", ".%2E", "%c0%ae%c0%ae", "%e0%80%ae.", "..;x", "..%20", "...",
         "%ef%bc%8e%ef%bc%8e", "%u002e%u002e", ".%80.", "%2e%2e%20"]  # fmt: skip
_SLASHES = ["/", "//", "%2f", "%5c", "\\", "%c0%af", "%ef%bc%8f", "/./"]
_DECOR = ["", "", "", ";jsessionid=1", "%3Bx", ".", "%20", "%2e", "%c2%a0", "%09", "%e2%80%8b"]


@st.composite
def _word(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    chars = [c.upper() if f else c for c, f in zip(word, flips, strict=True)]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(chars) - 1))
        chars[at] = f"%{ord(chars[at]):02x}"
    return "".join(chars) + draw(st.sampled_from(_DECOR))


@st.composite
def _spellings(draw: st.DrawFn) -> str:
    pre = draw(st.sampled_from(["", "/static", "/public/a", "/static/a/b", "/api/health"]))
    climb = "".join(
        draw(st.sampled_from(_SLASHES)) + draw(st.sampled_from(_DOTS))
        for _ in range(draw(st.integers(0, 3)))
    )
    parts = [draw(_word("api")), draw(_word("customers")), draw(_word("c000011"))]
    body = "".join(draw(st.sampled_from(_SLASHES)) + p for p in parts)
    return pre + climb + body + draw(st.sampled_from(["", "/", ".", "%20"]))


@given(_spellings(), st.sampled_from(["reject", "strip"]))
@example("/api/customers/c000011/", "reject")  # a trailing slash the CRM ignores
def test_every_spelling_the_crm_routes_to_a_record_is_refused_or_sensitive(
    raw: str, mode: str
) -> None:
    try:
        path = normalize_path(raw)
        rule, route = _TABLES[mode].resolve("GET", path)
    except PathRejected:
        return
    lenient = resolve(path)  # what the CRM makes of the path the gateway forwards
    if lenient == "/api/customers/c000011":
        assert rule.sensitive and not rule.public, (raw, path)
        assert route is not None and route.template == "/api/customers/{id}", (raw, path)
    if rule.public or not rule.sensitive:  # a relaxed rule: the CRM must read it the same way
        assert lenient == "/api/health" or lenient.startswith(("/static/", "/public/")), raw


@given(st.text(max_size=30), st.sampled_from(["reject", "strip"]))
def test_relaxed_rules_hold_only_where_the_crm_agrees(raw: str, mode: str) -> None:
    target = "/" + raw
    try:
        path = normalize_path(target)
        rule, _ = _TABLES[mode].resolve("GET", path)
    except PathRejected:
        return
    if rule.public or not rule.sensitive:
        lenient = resolve(path)
        assert lenient == "/api/health" or lenient.startswith(("/static/", "/public/")), path
