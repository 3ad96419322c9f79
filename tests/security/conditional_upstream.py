"""A CRM that validates by content: ETags are hashes of the body it would send.

Django's ConditionalGetMiddleware, Rails' `fresh_when`, Express and most REST
frameworks do this: the ETag is a digest of the full, unmasked representation,
and `If-None-Match` / `If-Match` compare the client's guess with it. Behind a
masking gateway that turns every request into a yes/no oracle on the values the
caller sees masked: guess the masked field, hash the record as the CRM would
serialise it, send the hash, and a 304 (or a 412 against a write) says whether
the guess was right. `Last-Modified` with `If-Modified-Since` /
`If-Unmodified-Since` leaks when a record changed.

It serves one demo customer at `/api/customers/{id}` (the demo CRM's shape,
`{"customer": {...}}`) and records the conditional headers each request carried,
so tests check at the CRM what arrived.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.security.hostile_upstream import VISIBLE

CUSTOMER: dict[str, Any] = dict(VISIBLE[0])
LAST_MODIFIED = "Tue, 01 Dec 2026 08:00:00 GMT"
CONDITIONAL = ("If-None-Match", "If-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range")


def body_of(customer: dict[str, Any]) -> bytes:
    return json.dumps({"customer": customer}, ensure_ascii=False).encode()


def etag_of(customer: dict[str, Any]) -> str:
    return '"' + hashlib.sha1(body_of(customer)).hexdigest() + '"'  # noqa: S324 - as CRMs do


@dataclass
class ConditionalCrm:
    runner: web.AppRunner | None = None
    url: str = ""
    seen: list[dict[str, str]] = field(default_factory=list)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def create_conditional_crm(crm: ConditionalCrm) -> web.Application:
    async def customer(request: web.Request) -> web.Response:
        crm.seen.append({h: request.headers[h] for h in CONDITIONAL if h in request.headers})
        if request.match_info["id"] != CUSTOMER["id"]:
            return web.json_response({"detail": "Not found."}, status=404)
        tag = etag_of(CUSTOMER)
        validators = {"ETag": tag, "Last-Modified": LAST_MODIFIED}
        if request.method in ("GET", "HEAD"):
            if (
                request.headers.get("If-None-Match") == tag
                or request.headers.get("If-Modified-Since") == LAST_MODIFIED
            ):
                return web.Response(status=304, headers=validators)
        else:
            match = request.headers.get("If-Match")
            if match is not None and match != tag:
                return web.json_response({"detail": "Precondition failed"}, status=412)
            if request.headers.get("If-Unmodified-Since") not in (None, LAST_MODIFIED):
                return web.json_response({"detail": "Precondition failed"}, status=412)
        return web.Response(
            body=body_of(CUSTOMER), content_type="application/json", headers=validators
        )

    app = web.Application()
    app.router.add_route("*", "/api/customers/{id}", customer)
    return app


async def start_conditional_crm() -> ConditionalCrm:
    from tests.security.records_harness import serve

    crm = ConditionalCrm()
    crm.runner, crm.url = await serve(create_conditional_crm(crm))
    return crm
