"""Routes of the console under `{prefix}/admin/ui/`: sign-in, the pages, their forms, static files.

GET pages render with the viewer's session (or redirect to sign-in); every POST
passes the Origin check and the CSRF token first, runs its action and redirects
(303) to its page with a notice, or renders the page again with the refusal
(its stable code and message) and the refusal's status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any, cast
from urllib.parse import urlencode

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from gateway.access.errors import NotInDirectory
from gateway.access.roles import APPROVER, AUDITOR, SECURITY_ADMIN
from gateway.admin.api import check_network
from gateway.admin.console import pages
from gateway.admin.console.errors import ConsoleSessionRequired
from gateway.admin.console.guard import Viewer, check_csrf, check_origin, cookie_secure, viewer
from gateway.admin.console.i18n import LANG_COOKIE, LANGUAGES, Translator, choose
from gateway.admin.console.render import html, redirect, secure
from gateway.admin.console.sessions import Sessions
from gateway.audit.governance import Actor, Change, build_governance_event
from gateway.errors import GatewayError, NotFound, Unauthenticated, UnsupportedMediaType
from gateway.stages import STAGES, Stages
from gateway.state.sessions import open_session_store

SESSIONS = web.AppKey("console_sessions", Sessions)
STATIC = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
MAX_CREDENTIAL = 8192

# name, template, view, who sees the link (None: everyone signed in)
PAGES: list[tuple[str, str, pages.View, tuple[str, ...] | None]] = [
    ("requests", "requests.html", pages.requests_view, None),
    ("approvals", "approvals.html", pages.approvals_view, (APPROVER, SECURITY_ADMIN, AUDITOR)),
    ("grants", "grants.html", pages.grants_view, None),
    ("break-glass", "break_glass.html", pages.break_glass_view, None),
    ("review", "review.html", pages.review_view, (SECURITY_ADMIN, AUDITOR, "reviewer")),
    ("users", "users.html", pages.users_view, (SECURITY_ADMIN, AUDITOR)),
    ("live", "live.html", pages.live_view, (SECURITY_ADMIN, AUDITOR)),
    ("policy", "policy.html", pages.policy_view, (SECURITY_ADMIN, AUDITOR)),
]
_BY_NAME = {name: (template, view) for name, template, view, _ in PAGES}

# path (under ui/), the page it returns to, the action
ACTIONS: list[tuple[str, str, pages.Action]] = [
    ("requests", "requests", pages.create_request),
    ("requests/{id}/withdraw", "requests", pages.withdraw),
    ("requests/{id}/approve", "approvals", pages.approve),
    ("requests/{id}/reject", "approvals", pages.reject),
    ("grants/{id}/revoke", "grants", pages.revoke_grant),
    ("break-glass", "break-glass", pages.open_break_glass),
    ("reviews/{id}/close", "break-glass", pages.close_review),
    ("review/sign", "review", pages.sign_review),
    ("users/revoke", "users", pages.revoke_subject),
    ("users/{id}/restore", "users", pages.restore_subject),
    ("lockdown", "policy", pages.lockdown_on),
    ("lockdown/lift", "policy", pages.lockdown_off),
]


def base_url(stages: Stages) -> str:
    return f"{stages.settings.admin.prefix}/admin/ui"


def _record(stages: Stages, action: str, actor: Actor, reason: str | None = None) -> None:
    try:
        stages.audit.emit(build_governance_event(Change(action, actor, reason=reason)))
    except Exception:  # never raises into the page (the emitter logs its own faults)
        return


def _common(request: web.Request, stages: Stages, t: Translator) -> dict[str, Any]:
    base = base_url(stages)
    here = request.path
    return {
        "t": t,
        "lang": t.lang,
        "languages": LANGUAGES,
        "base": base,
        "here": here,
        "static": f"{base}/static",
        "error": None,
        "done": "",
    }


def _nav(viewer_: Viewer, base: str, current: str) -> list[dict[str, Any]]:
    who = viewer_.who
    reviewer = pages._reviewer(who)
    out = []
    for name, _, _, roles in PAGES:
        if roles is not None and not (
            any(who.has(r) for r in roles if r != "reviewer") or ("reviewer" in roles and reviewer)
        ):
            continue
        out.append({"name": name, "url": f"{base}/{name}", "active": name == current})
    return out


def _viewer_context(v: Viewer, stages: Stages, current: str) -> dict[str, Any]:
    s = v.who.subject
    return {
        "nav": _nav(v, base_url(stages), current),
        "page": current,
        "me": {
            "id": s.id,
            "display_name": s.display_name,
            "department": s.department,
            "clearance": s.clearance,
            "console_roles": sorted(v.who.roles),
        },
        "csrf": v.session.csrf,
    }


def _remember_language(
    request: web.Request, resp: web.StreamResponse, lang: str, keep: bool
) -> None:
    if keep:
        resp.set_cookie(LANG_COOKIE, lang, httponly=True, samesite="Strict",
                        path=request.app[STAGES].settings.admin.prefix + "/admin/ui")  # fmt: skip


def _error(exc: GatewayError, t: Translator) -> dict[str, str]:
    key = f"error.{exc.code}"
    return {
        "code": exc.code,
        "title": t(key) if t.has(key) else t("error.generic"),
        "message": str(exc),
    }


async def _render_page(
    request: web.Request,
    name: str,
    v: Viewer,
    t: Translator,
    *,
    error: GatewayError | None = None,
) -> web.Response:
    stages = request.app[STAGES]
    template, view = _BY_NAME[name]
    context = {**_common(request, stages, t), **_viewer_context(v, stages, name)}
    context["here"] = f"{base_url(stages)}/{name}"  # also after a refused form post
    ctx = pages.Ctx(request, stages, v.who, v.session)
    status = error.status if error is not None else 200
    try:
        data = await view(ctx)
    except GatewayError as exc:
        context["error"] = _error(exc, t)
        return html("error.html", context, exc.status)
    context.update(data)
    if error is not None:
        context["error"] = _error(error, t)
    done = request.query.get("done", "")
    context["done"] = done if done.startswith("done.") and t.has(done) else ""
    return html(template, context, status)


def _login_redirect(stages: Stages, request: web.Request) -> web.Response:
    return redirect(f"{base_url(stages)}/login?" + urlencode({"next": request.path}))


async def _signed_in(
    request: web.Request, stages: Stages, t: Translator
) -> Viewer | web.StreamResponse:
    """The viewer of this request, or the answer when there is none: the sign-in page
    (no live session) or the error page (network, revoked, not in the directory)."""
    try:
        check_network(request, stages)
        return await viewer(request, stages, request.app[SESSIONS])
    except ConsoleSessionRequired:
        return _login_redirect(stages, request)
    except GatewayError as exc:
        return html("error.html", {**_common(request, stages, t), "nav": [],
                                   "error": _error(exc, t)}, exc.status)  # fmt: skip


def page_handler(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        stages = request.app[STAGES]
        lang, keep = choose(request, stages.settings.admin.console.default_language)
        t = Translator(lang)
        v = await _signed_in(request, stages, t)
        if isinstance(v, web.StreamResponse):
            return v
        resp = await _render_page(request, name, v, t)
        _remember_language(request, resp, lang, keep)
        return resp

    return handle


def action_handler(
    page: str, action: pages.Action
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        stages = request.app[STAGES]
        lang, _ = choose(request, stages.settings.admin.console.default_language)
        t = Translator(lang)
        v = await _signed_in(request, stages, t)
        if isinstance(v, web.StreamResponse):
            return v
        try:
            check_origin(request, stages)
            form = await _form(request)
            check_csrf(v.session, form.get("csrf", ""))
            ctx = pages.Ctx(request, stages, v.who, v.session)
            key, extra = await action(ctx, form)
        except GatewayError as exc:
            if exc.code in ("console_csrf_refused", "console_origin_refused"):
                _record(stages, "console_refused", v.who.actor(), f"{exc.code}: {exc}")
            return await _render_page(request, page, v, t, error=exc)
        query = urlencode({"done": key, **extra})
        return redirect(f"{base_url(stages)}/{page}?{query}")

    return handle


async def _form(request: web.Request) -> MultiDictProxy[str]:
    """The posted form: URL-encoded fields only (no multipart, no files)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("console forms are application/x-www-form-urlencoded")
    posted = await request.post()
    fields = MultiDict((k, v) for k, v in posted.items() if isinstance(v, str))
    return MultiDictProxy(fields)


# -- sign-in and sign-out ----------------------------------------------------------------


async def login_page(request: web.Request) -> web.StreamResponse:
    stages = request.app[STAGES]
    lang, keep = choose(request, stages.settings.admin.console.default_language)
    t = Translator(lang)
    try:
        check_network(request, stages)
    except GatewayError as exc:
        return html("error.html", {**_common(request, stages, t), "nav": [],
                                   "error": _error(exc, t)}, exc.status)  # fmt: skip
    context = {**_common(request, stages, t), "nav": [], "next": _next(request, stages)}
    resp = html("login.html", context)
    _remember_language(request, resp, lang, keep)
    return resp


def _next(request: web.Request, stages: Stages) -> str:
    """Where to go after sign-in: a console page only (never an open redirect)."""
    wanted = request.query.get("next", "")
    return wanted if _is_page(wanted, stages) else f"{base_url(stages)}/requests"


async def login(request: web.Request) -> web.StreamResponse:
    stages = request.app[STAGES]
    lang, _ = choose(request, stages.settings.admin.console.default_language)
    t = Translator(lang)
    context = {**_common(request, stages, t), "nav": [], "next": _next(request, stages)}
    try:
        check_network(request, stages)
        check_origin(request, stages)
        await stages.guard.check_auth_allowed(request)  # guessing is throttled per address
        form = await _form(request)
        credential = form.get("credential", "").strip()
        if len(credential) > MAX_CREDENTIAL:
            raise Unauthenticated("the credential is too long")
        try:
            subject = await stages.identity.authenticate(_with_credential(request, credential))
        except Unauthenticated:
            await stages.guard.record_auth_failure(request)
            raise
        if stages.identity.directory.current().get(subject.id) is None:
            raise NotInDirectory(f"{subject.id} is not in the gateway directory")
        session = await request.app[SESSIONS].start(subject)
    except GatewayError as exc:
        _record(stages, "console_sign_in_refused", Actor(id="anonymous", via="console",
                ip=request.remote), f"{exc.code}: {exc}")  # fmt: skip
        context["error"] = _error(exc, t)
        return html("login.html", context, exc.status)
    actor = Actor(id=subject.id, department=subject.department, via="console", ip=request.remote)
    _record(stages, "console_signed_in", actor, f"by {subject.auth_method}")
    wanted = form.get("next", "")
    resp = redirect(wanted if _is_page(wanted, stages) else f"{base_url(stages)}/requests")
    console = stages.settings.admin.console
    resp.set_cookie(
        console.cookie_name,
        session.id,
        httponly=True,
        samesite="Strict",
        secure=cookie_secure(request, stages),
        path=base_url(stages),
        max_age=int(console.session_max),
    )
    return resp


def _is_page(url: str, stages: Stages) -> bool:
    base = base_url(stages)
    return url.startswith(base + "/") and url.removeprefix(base + "/") in {n for n, *_ in PAGES}


class _Presented:
    """The sign-in request with the typed credential as its Authorization header (the
    body is already read, so aiohttp's `clone()` is not available); every other
    attribute, the peer and TLS details included, is the real request's."""

    def __init__(self, request: web.Request, headers: CIMultiDictProxy[str]) -> None:
        self._request = request
        self.headers = headers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def _with_credential(request: web.Request, credential: str) -> web.Request:
    """The sign-in request as the authenticators see it: a typed credential (API key,
    OIDC or CRM token) as a bearer token; none typed: what the browser presents
    (client certificate, trusted SSO headers). The console's own cookies are
    removed either way: an authenticator that forwards headers to the CRM
    (introspection) must never carry a console session id there."""
    stages = request.app[STAGES]
    headers = CIMultiDict(request.headers)
    ours = {stages.settings.admin.console.cookie_name, LANG_COOKIE}
    kept = [
        part.strip()
        for value in headers.popall("Cookie", [])
        for part in value.split(";")
        if part.strip() and part.split("=", 1)[0].strip() not in ours
    ]
    if kept:
        headers["Cookie"] = "; ".join(kept)
    if credential:
        for name in ("Authorization", stages.settings.identity.api_key_header):
            headers.popall(name, None)
        headers["Authorization"] = f"Bearer {credential}"
    return cast(web.Request, _Presented(request, CIMultiDictProxy(headers)))


async def logout(request: web.Request) -> web.StreamResponse:
    stages = request.app[STAGES]
    sessions = request.app[SESSIONS]
    resp = redirect(f"{base_url(stages)}/login")
    try:
        check_network(request, stages)
        v = await viewer(request, stages, sessions)
        check_origin(request, stages)
        form = await _form(request)
        check_csrf(v.session, form.get("csrf", ""))
    except GatewayError:
        return resp  # nothing to end, or not this session's form: the session stays
    await sessions.end(v.session.id)
    _record(stages, "console_signed_out", v.who.actor())
    resp.del_cookie(stages.settings.admin.console.cookie_name, path=base_url(stages))
    return resp


async def home(request: web.Request) -> web.StreamResponse:
    return redirect(f"{base_url(request.app[STAGES])}/requests")


# -- exports and static files ----------------------------------------------------------------


async def review_export(request: web.Request) -> web.StreamResponse:
    stages = request.app[STAGES]
    t = Translator(choose(request, stages.settings.admin.console.default_language)[0])
    try:
        check_network(request, stages)
        v = await viewer(request, stages, request.app[SESSIONS])
        ctx = pages.Ctx(request, stages, v.who, v.session)
        path = pages.evidence_file(ctx, request.match_info["name"])
    except ConsoleSessionRequired:
        return _login_redirect(stages, request)
    except GatewayError as exc:
        return html("error.html", {**_common(request, stages, t), "nav": [],
                                   "error": _error(exc, t)}, exc.status)  # fmt: skip
    ctype = "application/json" if path.suffix == ".json" else "text/csv"
    resp = web.Response(body=path.read_bytes(), content_type=ctype, charset="utf-8")
    resp.headers["Content-Disposition"] = f'attachment; filename="{path.name}"'
    secure(resp)
    return resp


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC:
        err = NotFound("no such console file")
        return web.json_response(err.to_body(), status=err.status)
    body = resources.files("gateway.admin.console").joinpath(f"static/{name}").read_bytes()
    resp = web.Response(body=body, content_type=STATIC[name], charset="utf-8")
    secure(resp)
    resp.headers["Cache-Control"] = "private, max-age=300"
    return resp


async def _sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    stages = app[STAGES]
    sessions = Sessions(
        open_session_store(stages.settings.redis.url or None), stages.settings.admin.console
    )
    app[SESSIONS] = sessions
    yield
    await sessions.close()


def add_console_routes(app: web.Application, prefix: str) -> None:
    """Register the pages (call before the admin prefix's catch-all)."""
    base = f"{prefix}/admin/ui"
    app.cleanup_ctx.append(_sessions_ctx)
    r = app.router
    r.add_get(base, home)
    r.add_get(base + "/", home)
    r.add_get(base + "/login", login_page)
    r.add_post(base + "/login", login)
    r.add_post(base + "/logout", logout)
    r.add_get(base + "/static/{name}", static)
    r.add_get(base + "/review/export/{name}", review_export)
    for name, *_ in PAGES:
        r.add_get(f"{base}/{name}", page_handler(name))
    for path, page, action in ACTIONS:
        r.add_post(f"{base}/{path}", action_handler(page, action))
