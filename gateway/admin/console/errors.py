"""Refusals of the console pages (each a stable code, documented in docs/errors.md)."""

from __future__ import annotations

from gateway.errors import Forbidden, Unauthenticated


class ConsoleSessionRequired(Unauthenticated):
    """No console session, or one that ended (idle, too old, revoked subject, logout)."""

    code = "console_session_required"


class ConsoleCsrfRefused(Forbidden):
    """A console form was posted without this session's CSRF token."""

    code = "console_csrf_refused"


class ConsoleOriginRefused(Forbidden):
    """A console form was posted from another origin (or without an Origin header)."""

    code = "console_origin_refused"
