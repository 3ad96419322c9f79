"""Console sessions: a credential exchanged once for a short-lived server-side session.

Sign-in runs the gateway's own authenticators (an API key or a bearer token such as
an OIDC token typed into the form, or the credential the browser already presents:
client certificate, trusted SSO headers). The session document (Redis-shared
through `gateway.state.sessions`) holds the subject id, how it authenticated,
the credential id, its start and a CSRF token; the cookie holds only a random
id. On every request the session is re-read and the subject rebuilt from the
*current* directory entry and checked against the revocation list, so a revoked
or disabled subject (or credential) loses the session at once.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from gateway.core.model import Subject
from gateway.identity.authn.base import DirectoryHandle
from gateway.settings.stages import ConsoleSettings
from gateway.state.sessions import SessionStore


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    subject: str
    auth_method: str
    mfa: bool
    credential_id: str | None
    started: float  # epoch seconds
    csrf: str

    def document(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "auth_method": self.auth_method,
            "mfa": self.mfa,
            "credential_id": self.credential_id,
            "started": self.started,
            "csrf": self.csrf,
        }

    def csrf_ok(self, token: str) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, store: SessionStore, settings: ConsoleSettings) -> None:
        self._store = store
        self._s = settings

    async def start(self, subject: Subject) -> Session:
        credential = subject.attributes.get("credential_id")
        session = Session(
            id=secrets.token_urlsafe(32),
            subject=subject.id,
            auth_method=subject.auth_method,
            mfa=subject.mfa,
            credential_id=credential if isinstance(credential, str) else None,
            started=time.time(),
            csrf=secrets.token_urlsafe(32),
        )
        await self._store.put(session.id, session.document(), self._s.session_idle)
        return session

    async def resolve(self, session_id: str) -> Session | None:
        """The live session for a cookie value (idle TTL renewed), or None."""
        if not session_id or len(session_id) > 128:
            return None
        doc = await self._store.get(session_id)
        if doc is None:
            return None
        started = doc.get("started")
        if not isinstance(started, int | float) or time.time() - started >= self._s.session_max:
            await self._store.delete(session_id)
            return None
        await self._store.touch(session_id, self._s.session_idle)
        credential = doc.get("credential_id")
        return Session(
            id=session_id,
            subject=str(doc.get("subject")),
            auth_method=str(doc.get("auth_method")),
            mfa=doc.get("mfa") is True,
            credential_id=credential if isinstance(credential, str) else None,
            started=float(started),
            csrf=str(doc.get("csrf")),
        )

    async def end(self, session_id: str) -> None:
        await self._store.delete(session_id)

    async def close(self) -> None:
        await self._store.close()


def session_subject(session: Session, directory: DirectoryHandle) -> Subject | None:
    """The subject as the directory has it *now* (None when the entry is gone)."""
    entry = directory.current().get(session.subject)
    if entry is None:
        return None
    attrs = {"credential_id": session.credential_id} if session.credential_id else {}
    return entry.subject_for(session.auth_method, mfa=session.mfa, **attrs)
