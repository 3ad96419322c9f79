"""Rendering: the Jinja2 environment (autoescaped, strict) and the pages' security headers."""

from __future__ import annotations

import functools
from typing import Any

import jinja2
from aiohttp import web

# No inline script or style anywhere: everything the pages need is served from 'self'.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# `same-origin`, not `no-referrer`: under no-referrer browsers send `Origin: null` with
# form posts, and the Origin check could no longer tell our own pages from a sandbox.
# Either way no URL of the console leaves for another origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.admin.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def secure(resp: web.StreamResponse) -> web.StreamResponse:
    for name, value in SECURITY_HEADERS.items():
        resp.headers[name] = value
    return resp


def html(template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    body = environment().get_template(template).render(**context)
    resp = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    secure(resp)
    return resp


def redirect(location: str) -> web.Response:
    resp = web.Response(status=303, headers={"Location": location})
    secure(resp)
    return resp
