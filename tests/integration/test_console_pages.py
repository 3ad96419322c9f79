"""Issue 17, item 10: the console's pages over plain HTTP (the browser flow is in
test_console_browser.py). Real gateway, real OPA, real Redis (sessions shared
through it), the demo CRM.

Checked here: every page renders in both languages with the strict CSP and no
inline script or style; sign-in by API key exchange (and its refusals, throttled
like other failed sign-ins); CSRF token and Origin checks on every form;
sessions end at once when the subject is revoked; roles from the directory;
pages carry no customer values.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.admin.console.i18n import LANGUAGES, catalog
from gateway.admin.console.render import CSP
from tests.conftest import OpaProcess
from tests.integration.console_harness import (
    api,
    governance_events,
    key_of,
    pick,
    start_console,
    start_opa,
    until,
)
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import DemoCrm, start_demo_crm
from tests.integration.test_identity_oidc import AUDIENCE, ISSUER, RSA_OTHER, Jwks, rs256
from tests.integration.test_identity_oidc import claims as token_claims

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

UI = "/_gateway/admin/ui"
PAGES = ("requests", "approvals", "grants", "break-glass", "review", "users", "live", "policy")


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    server = start_opa(tmp_path_factory.mktemp("console-pages") / "rego")
    yield server
    server.stop()


@pytest.fixture
async def crm() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=60)
    yield c
    await c.stop()


@pytest.fixture
async def gw(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> AsyncIterator[Gateway]:
    g = await start_console(tmp_path, crm, opa, redis_url, **{"guard.auth_failure_limit": 5})
    yield g
    await g.stop()


class Page(HTMLParser):
    """What a test needs of a page: inline scripts/styles, forms and their CSRF fields."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.style_attrs = 0
        self.style_tags = 0
        self.event_handlers = 0
        self.forms: list[dict[str, Any]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in a
        if tag == "style":
            self.style_tags += 1
        if "style" in a:
            self.style_attrs += 1
        self.event_handlers += sum(1 for k in a if k.startswith("on"))
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": a.get("method"), "csrf": None})
        if tag == "input" and a.get("name") == "csrf" and self.forms:
            self.forms[-1]["csrf"] = a.get("value")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    return p


class Browserless:
    """A cookie-keeping HTTP client that posts forms like a browser (Origin set)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **params: str) -> tuple[int, str, Any]:
        async with self.session.get(self.gw.url + path, params=params, allow_redirects=False) as r:
            return r.status, await r.text(), r.headers

    async def post(
        self, path: str, data: dict[str, str], origin: str | None = "own"
    ) -> tuple[int, str, Any]:
        headers = {"Origin": self.gw.url} if origin == "own" else {}
        if origin not in (None, "own"):
            headers["Origin"] = origin
        async with self.session.post(
            self.gw.url + path, data=data, headers=headers, allow_redirects=False
        ) as r:
            return r.status, await r.text(), r.headers

    async def login(self, who: str) -> None:
        status, _, headers = await self.post(f"{UI}/login", {"credential": key_of(who)})
        assert status == 303, status
        assert headers["Location"] == f"{UI}/requests"

    async def csrf(self, page: str = "requests") -> str:
        status, html, _ = await self.get(f"{UI}/{page}")
        assert status == 200, html
        token = parse(html).forms[0]["csrf"]
        assert token
        return str(token)


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[Browserless]:
    c = Browserless(gw)
    yield c
    await c.close()


async def test_every_page_in_both_languages_with_strict_csp(
    gw: Gateway, client: Browserless
) -> None:
    await client.login("secadmin")  # security admin: sees every page
    for name in PAGES:
        for lang in LANGUAGES:
            status, html, headers = await client.get(f"{UI}/{name}", lang=lang)
            assert status == 200, (name, lang, html[:500])
            assert headers["Content-Security-Policy"] == CSP
            assert "script-src 'self'" in CSP and "'unsafe-inline'" not in CSP
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Cache-Control"] == "no-store"
            assert headers["Referrer-Policy"] == "same-origin"
            assert headers["X-Frame-Options"] == "DENY"
            page = parse(html)
            assert (page.inline_scripts, page.style_tags, page.style_attrs) == (0, 0, 0), name
            assert page.event_handlers == 0, name
            for form in page.forms:
                assert form["method"] == "post"
                assert form["csrf"], (name, form)  # every form carries the token
            marker = catalog(lang)[f"nav.{name}"]
            assert marker in html, (name, lang)
            assert f'lang="{"zh-CN" if lang == "zh" else "en"}"' in html
    # The language is remembered, and Accept-Language decides without one.
    status, html, _ = await client.get(f"{UI}/policy")
    assert catalog("en")["policy.title"] in html
    fresh = Browserless(gw)
    try:
        await fresh.login("secadmin")
        fresh.session.headers.update({"Accept-Language": "en-GB,en;q=0.9"})
        async with fresh.session.get(gw.url + f"{UI}/grants") as r:
            assert catalog("en")["grants.title"] in await r.text()
        fresh.session.headers.update({"Accept-Language": "zh-CN,zh;q=0.9"})
        async with fresh.session.get(gw.url + f"{UI}/grants") as r:
            assert catalog("zh")["grants.title"] in await r.text()
    finally:
        await fresh.close()


async def test_static_files_served_with_the_same_headers(client: Browserless) -> None:
    for name, ctype in (("console.css", "text/css"), ("console.js", "text/javascript")):
        status, body, headers = await client.get(f"{UI}/static/{name}")
        assert status == 200 and headers["Content-Type"].startswith(ctype)
        assert headers["Content-Security-Policy"] == CSP and body
    status, _, _ = await client.get(f"{UI}/static/..%2Fpages.py")
    assert status == 404


async def test_sign_in_refusals_and_throttle(gw: Gateway, client: Browserless) -> None:
    status, _, headers = await client.get(f"{UI}/grants")
    assert status == 303 and headers["Location"].startswith(f"{UI}/login?next=")
    # a typed key that is not the gateway's, one not in the directory, a cross-site post
    status, html, _ = await client.post(f"{UI}/login", {"credential": "nobody-at-all"})
    assert status == 401 and 'data-error="unauthenticated"' in html
    status, html, _ = await client.post(
        f"{UI}/login", {"credential": key_of("rm")}, origin="https://evil.example"
    )
    assert status == 403 and 'data-error="console_origin_refused"' in html
    status, html, _ = await client.post(f"{UI}/login", {"credential": key_of("rm")}, origin=None)
    assert status == 403 and 'data-error="console_origin_refused"' in html
    for _ in range(4):
        await client.post(f"{UI}/login", {"credential": "wrong-key"})
    # Throttled like every failed sign-in: now even the right key is refused from here.
    status, html, _ = await client.post(f"{UI}/login", {"credential": key_of("rm")})
    assert status == 429 and 'data-error="rate_limited"' in html


async def test_csrf_token_and_origin_required_on_every_form(
    gw: Gateway, client: Browserless, crm: DemoCrm
) -> None:
    await client.login("rm")
    token = await client.csrf()
    form = {
        "grant_type": "grade_a",
        "operations": "view",
        "duration": "2",
        "unit": "hours",
        "purpose": "complaint 2026-118",
        "justification": "customer complaint review",
    }
    status, html, _ = await client.post(f"{UI}/requests", form)
    assert status == 403 and 'data-error="console_csrf_refused"' in html
    assert f'href="{UI}/requests?lang=en"' in html  # the page's links, not the action's
    status, html, _ = await client.post(f"{UI}/requests", {**form, "csrf": "forged"})
    assert status == 403 and 'data-error="console_csrf_refused"' in html
    status, html, _ = await client.post(
        f"{UI}/requests", {**form, "csrf": token}, origin="https://evil.example"
    )
    assert status == 403 and 'data-error="console_origin_refused"' in html
    _, listed = await api(gw, "secadmin", "GET", "/requests")
    assert listed["requests"] == []  # none of the refused posts created anything
    # Another person's token is not this session's.
    other = Browserless(gw)
    try:
        await other.login("sales")
        foreign = await other.csrf()
    finally:
        await other.close()
    status, _, _ = await client.post(f"{UI}/requests", {**form, "csrf": foreign})
    assert status == 403
    status, _, headers = await client.post(f"{UI}/requests", {**form, "csrf": token})
    assert status == 303 and "done=done.requested" in headers["Location"]
    _, listed = await api(gw, "secadmin", "GET", "/requests")
    [req] = listed["requests"]
    assert (req["subject"], req["requested_by"], req["type"]) == ("u-rm", "u-rm", "grade_a")
    assert req["duration_s"] == 7200 and req["requested_via"] == "console"


async def test_session_dies_at_once_when_the_subject_is_revoked(
    gw: Gateway, client: Browserless
) -> None:
    await client.login("sales")
    status, _, _ = await client.get(f"{UI}/requests")
    assert status == 200
    status, _ = await api(
        gw, "secadmin", "POST", "/revocations", {"subject": "u-sales", "reason": "left"}
    )
    assert status == 201
    status, _, headers = await client.get(f"{UI}/requests")
    assert status == 303 and headers["Location"].startswith(f"{UI}/login")
    # ... and stays dead after the subject is restored: the session was ended, not paused.
    status, _ = await api(gw, "secadmin", "DELETE", "/revocations/u-sales")
    assert status == 200
    status, _, _ = await client.get(f"{UI}/requests")
    assert status == 303


async def test_session_in_redis_is_shared_and_logout_ends_it(
    gw: Gateway, client: Browserless, tmp_path: Path, crm: DemoCrm, opa: OpaProcess
) -> None:
    await client.login("auditor")
    token = await client.csrf("live")
    (tmp_path / "second").mkdir()
    second = await start_console(tmp_path / "second", crm, opa, gw.settings.redis.url)
    try:
        cookie = {c.key: c.value for c in client.session.cookie_jar}
        async with (
            aiohttp.ClientSession(cookies=cookie) as s,
            s.get(second.url + f"{UI}/live", allow_redirects=False) as r,
        ):
            assert r.status == 200  # the same session on another gateway process
        status, _, headers = await client.post(f"{UI}/logout", {"csrf": token})
        assert status == 303
        async with (
            aiohttp.ClientSession(cookies=cookie) as s,
            s.get(second.url + f"{UI}/live", allow_redirects=False) as r,
        ):
            assert r.status == 303
    finally:
        await second.stop()
    cookie_header = headers.getall("Set-Cookie")
    assert any("crmgw_console=" in c for c in cookie_header)


async def test_session_cookie_flags_and_idle_timeout(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    gw = await start_console(tmp_path, crm, opa, redis_url, **{"admin.console.session_idle": 1})
    c = Browserless(gw)
    try:
        status, _, headers = await c.post(f"{UI}/login", {"credential": key_of("rm")})
        assert status == 303
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert f"Path={UI}" in cookie
        assert "Secure" not in cookie  # plain http on loopback; https public_url sets it
        for _ in range(3):  # used every half second: alive past its 1 s idle timeout
            status, _, _ = await c.get(f"{UI}/requests")
            assert status == 200
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.5)  # unused for longer than the idle timeout: gone
        status, _, headers = await c.get(f"{UI}/requests")
        assert status == 303 and headers["Location"].startswith(f"{UI}/login")
    finally:
        await c.close()
        await gw.stop()


async def test_roles_from_the_directory_decide_what_a_page_allows(
    gw: Gateway, client: Browserless
) -> None:
    await client.login("rm")  # a requester: no queue, no live view, no users page
    for name in ("approvals", "live", "users", "policy", "review"):
        status, html, _ = await client.get(f"{UI}/{name}")
        assert status == 403 and 'data-error="console_role_required"' in html, name
    status, html, _ = await client.get(f"{UI}/requests")
    assert 'data-nav="live"' not in html and 'data-nav="requests"' in html
    # An approver of IT cannot take security's step in the page either.
    it1 = Browserless(gw)
    try:
        await client.post(
            f"{UI}/requests",
            {
                "csrf": await client.csrf(),
                "grant_type": "grade_a",
                "operations": "view",
                "duration": "1",
                "unit": "hours",
                "purpose": "p",
                "justification": "j",
            },
        )
        _, listed = await api(gw, "secadmin", "GET", "/requests")
        rid = listed["requests"][0]["id"]
        await it1.login("it1")
        status, html, _ = await it1.get(f"{UI}/approvals")
        assert f'data-request="{rid}" data-mine="no"' in html
        status, html, _ = await it1.post(
            f"{UI}/requests/{rid}/approve", {"csrf": await it1.csrf("approvals")}
        )
        assert status == 409 and 'data-error="out_of_order"' in html
    finally:
        await it1.close()


async def test_pages_hold_no_customer_values(
    gw: Gateway, client: Browserless, crm: DemoCrm
) -> None:
    a = pick(crm, grade="A", tier="一般")
    # Traffic through the gateway, some of it showing the grade A customer in clear.
    async with aiohttp.ClientSession() as s:
        for who in ("rm", "sales", "secadmin"):
            hdrs = {"X-API-Key": key_of(who), "X-Purpose": "advisory"}
            async with s.get(f"{gw.url}/api/customers/{a['id']}", headers=hdrs) as r:
                await r.read()
            async with s.get(f"{gw.url}/api/customers?page_size=20", headers=hdrs) as r:
                await r.read()
    await client.login("auditor")  # L1: may see no customer value at all
    values = [str(a[k]) for k in ("name", "mobile", "id_number", "email") if a.get(k)]
    assert values

    async def live_has_rows() -> bool:
        _, html, _ = await client.get(f"{UI}/live")
        return 'data-table="decisions"' in html

    await until(live_has_rows, within=5, what="decisions listed")
    for name in ("live", "review", "grants", "users", "policy", "requests"):
        status, html, _ = await client.get(f"{UI}/{name}")
        assert status == 200, name
        for v in values:
            assert v not in html, (name, v)
        assert str(a["id"]) not in html, name  # not even the record id


async def test_sign_in_with_an_oidc_token(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    endpoint = Jwks()
    app = web.Application()
    app.router.add_get("/jwks", endpoint.handle)
    idp = TestServer(app, host="127.0.0.1")
    await idp.start_server()
    gw = await start_console(
        tmp_path, crm, opa, redis_url,
        **{
            "identity.authenticators": ["api_key", "oidc"],
            "identity.oidc.issuer": ISSUER,
            "identity.oidc.audience": [AUDIENCE],
            "identity.oidc.jwks_url": str(idp.make_url("/jwks")),
        },
    )  # fmt: skip
    c = Browserless(gw)
    try:
        forged = rs256(token_claims(sub="u-rm"), key=RSA_OTHER)
        status, html, _ = await c.post(f"{UI}/login", {"credential": forged})
        assert status == 401 and 'data-error="unauthenticated"' in html
        token = rs256(token_claims(sub="u-rm", amr=["pwd", "otp"]))
        status, _, headers = await c.post(f"{UI}/login", {"credential": token})
        assert status == 303, headers
        status, html, _ = await c.get(f"{UI}/requests")
        assert status == 200 and 'data-me="u-rm"' in html  # the directory entry of `sub`
        await until(lambda: _has_sign_in(gw, "oidc"), what="sign-in event")
    finally:
        await c.close()
        await gw.stop()
        await idp.close()


async def _has_sign_in(gw: Gateway, method: str) -> bool:
    return any(
        e["action"] == "console_signed_in" and e["reason"] == f"by {method}"
        for e in governance_events(gw)
    )


async def test_console_forms_take_url_encoded_fields_only(client: Browserless) -> None:
    await client.login("rm")
    token = await client.csrf()
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    form.add_field("purpose", b"x", filename="evil.bin")
    async with client.session.post(
        client.gw.url + f"{UI}/requests", data=form, headers={"Origin": client.gw.url},
        allow_redirects=False,
    ) as r:  # fmt: skip
        assert r.status == 415 and 'data-error="unsupported_media_type"' in await r.text()


async def test_revoke_restore_lockdown_and_grant_revoke_through_the_pages(
    gw: Gateway, client: Browserless, crm: DemoCrm
) -> None:
    await client.login("secadmin")
    token = await client.csrf("users")
    status, _, headers = await client.post(
        f"{UI}/users/revoke", {"csrf": token, "subject": "u-sales", "reason": "left the bank"}
    )
    assert status == 303 and "done.subject_revoked" in headers["Location"]
    _, html, _ = await client.get(f"{UI}/users")
    assert 'data-revoked="u-sales"' in html
    sales = await api(gw, "sales", "GET", "/me")
    assert sales[0] == 403 and sales[1]["error"] == "subject_revoked"
    status, _, _ = await client.post(f"{UI}/users/u-sales/restore", {"csrf": token})
    assert status == 303
    assert (await api(gw, "sales", "GET", "/me"))[0] == 200

    status, _, headers = await client.post(f"{UI}/lockdown", {"csrf": token, "reason": "drill"})
    assert status == 303 and "done.lockdown_on" in headers["Location"]
    _, html, _ = await client.get(f"{UI}/policy")
    assert 'data-lockdown="on"' in html and 'data-action="lockdown-off"' in html
    status, _, _ = await client.post(f"{UI}/lockdown/lift", {"csrf": token, "reason": "over"})
    assert status == 303
    assert (await api(gw, "auditor", "GET", "/lockdown"))[1]["active"] is False

    # A grade B grant approved through the API, revoked on the grants page.
    status, req = await api(gw, "sales", "POST", "/requests", {
        "purpose": "p", "justification": "j", "scope": {"grant_type": "grade_b"}})  # fmt: skip
    assert status == 201
    assert (await api(gw, "sec1", "POST", f"/requests/{req['id']}/approve", {}))[0] == 200
    _, html, _ = await client.get(f"{UI}/grants")
    assert f'data-grant="{req["id"]}"' in html
    status, _, _ = await client.post(
        f"{UI}/grants/{req['id']}/revoke", {"csrf": token, "reason": "not needed"}
    )
    assert status == 303
    _, out = await api(gw, "auditor", "GET", f"/requests/{req['id']}")
    assert out["status"] == "revoked" and out["revoked_by"] == "u-secadmin"

    # The auditor reads the same pages and may change nothing.
    auditor = Browserless(gw)
    try:
        await auditor.login("auditor")
        _, html, _ = await auditor.get(f"{UI}/users")
        assert 'data-form="revoke-subject"' not in html
        status, html, _ = await auditor.post(
            f"{UI}/users/revoke",
            {"csrf": await auditor.csrf("users"), "subject": "u-rm", "reason": "x"},
        )
        assert status == 403 and 'data-error="console_role_required"' in html
        status, html, _ = await auditor.post(
            f"{UI}/lockdown", {"csrf": await auditor.csrf("policy"), "reason": "x"}
        )
        assert status == 403 and 'data-error="console_role_required"' in html
    finally:
        await auditor.close()
    wanted = {(a, "console") for a in ("subject_revoked", "subject_restored", "lockdown_on",
                                       "lockdown_off", "grant_revoked")}  # fmt: skip

    async def recorded() -> bool:
        return wanted <= {(e["action"], e["via"]) for e in governance_events(gw)}

    await until(recorded, what="the console's governance events in the audit trail")
