"""Who is asking, on every console request: network, session, Origin, CSRF token.

- network: `admin.allowed_networks`, as for the JSON API;
- session: the cookie's session, its subject rebuilt from the current directory
  and checked against the revocation list (revoked = session ended at once);
- state-changing requests (every POST): the `Origin` header must be the console's
  own origin, and the form must carry the session's CSRF token (synchronizer);
  the cookie is `SameSite=Strict` as a third layer;
- sign-in: throttled by the gateway's failed-authentication limit per address.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from gateway.access.roles import Principal, principal
from gateway.admin.console.errors import (
    ConsoleCsrfRefused,
    ConsoleOriginRefused,
    ConsoleSessionRequired,
)
from gateway.admin.console.sessions import Session, Sessions, session_subject
from gateway.identity.errors import RevocationListStale, SubjectRevoked
from gateway.stages import Stages


@dataclass(frozen=True, slots=True)
class Viewer:
    session: Session
    who: Principal


def own_origins(request: web.Request, stages: Stages) -> set[str]:
    origins = {f"{request.scheme}://{request.host}"}
    public = stages.settings.listen.public_url
    if public:
        parts = urlsplit(public)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


def check_origin(request: web.Request, stages: Stages) -> None:
    origin = request.headers.get("Origin", "")
    if origin not in own_origins(request, stages):
        raise ConsoleOriginRefused(
            f"console forms are accepted only from the console itself (Origin {origin or 'absent'})"
        )


def cookie_secure(request: web.Request, stages: Stages) -> bool:
    if stages.settings.admin.console.secure_cookie == "always" or request.secure:
        return True
    return stages.settings.listen.public_url.startswith("https://")


async def viewer(request: web.Request, stages: Stages, sessions: Sessions) -> Viewer:
    cookie = request.cookies.get(stages.settings.admin.console.cookie_name, "")
    session = await sessions.resolve(cookie) if cookie else None
    if session is None:
        raise ConsoleSessionRequired("sign in to the console")
    subject = session_subject(session, stages.identity.directory)
    if subject is None:
        await sessions.end(session.id)
        raise ConsoleSessionRequired(f"{session.subject} is no longer in the directory")
    try:
        stages.identity.check_active(subject)
    except (SubjectRevoked, RevocationListStale) as exc:
        await sessions.end(session.id)
        raise ConsoleSessionRequired(f"session ended: {exc}") from exc
    who = principal(subject, stages.settings.access, via="console", ip=request.remote)
    return Viewer(session, who)


def check_csrf(session: Session, token: str) -> None:
    if not session.csrf_ok(token):
        raise ConsoleCsrfRefused("the form lacks this session's CSRF token (reload the page)")
