"""A lenient legacy CRM, as old IIS / Tomcat / Java front ends behave, for the inbound battery.

It routes on the most forgiving reading of a request, the one a gateway must not
be fooled by:

- rewrite headers win over the request line (`X-Original-URL`, `X-Rewrite-URL`,
  `X-Forwarded-Path`, ... read CGI-style, so `X_Original_URL` counts too);
  `X-Forwarded-Prefix` / `X-Script-Name` are stripped from the front of the path;
- escapes are decoded leniently: overlong UTF-8 (`%c0%ae` is `.`), `%uXXXX`,
  stray continuation bytes dropped; then NFKC (fullwidth `／` is `/`),
  backslashes are slashes;
- per segment: path parameters (`;jsessionid=1`) stripped, trailing dots and
  spaces stripped, lower case; dot segments resolved, empty ones collapsed;
- identity headers are read CGI-style too (`X_Remote_User` is `X-Remote-User`).

Routes (on that reading): `/api/customers` (list), `/api/customers/search?q=`,
`/api/customers/{id}` (GET; PATCH/PUT answer with the updated record),
`/api/health`, `/static/{file}`, `/public/{file}`; TRACE anywhere reflects the
request like an old server. Records come from `gateway.demo.data`, so values are
realistic (valid resident ids, Luhn-valid cards). Every request is recorded as
received (method, raw target, raw header list) so tests assert at the CRM side.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from gateway.demo.data import generate_customers
from tests.conftest import free_port

REWRITE_HEADERS = (
    "x-original-url",
    "x-original-uri",
    "x-original-path",
    "x-rewrite-url",
    "x-rewrite-uri",
    "x-rewrite-path",
    "x-override-url",
    "x-http-destinationurl",
    "x-forwarded-path",
    "x-forwarded-uri",
    "x-forwarded-url",
    "x-envoy-original-path",
    "x-envoy-original-url",
    "request-uri",
    "x-request-uri",
    "x-proxy-url",
)
PREFIX_HEADERS = ("x-forwarded-prefix", "x-script-name", "script-name")
_ESCAPE = re.compile(r"%[uU]([0-9a-fA-F]{4})|%([0-9a-fA-F]{2})")


def cgi_name(name: str) -> str:
    """How CGI/WSGI reads a field name: HTTP_X_REMOTE_USER for X-Remote-User, X_Remote_User..."""
    return re.sub(r"[^a-z0-9]", "-", name.lower())


@dataclass
class Seen:
    method: str
    target: str  # the raw request target as received (path and query)
    headers: list[tuple[str, str]]
    resolved: str  # the path the lenient CRM routed on

    def header_names(self) -> set[str]:
        return {n for n, _ in self.headers}

    def cgi_names(self) -> set[str]:
        return {cgi_name(n) for n, _ in self.headers}


@dataclass
class LenientCrm:
    runner: web.AppRunner
    url: str
    records: list[dict[str, Any]]
    seen: list[Seen] = field(default_factory=list)

    def record(self, customer_id: str) -> dict[str, Any]:
        return next(r for r in self.records if r["id"] == customer_id)

    async def stop(self) -> None:
        await self.runner.cleanup()


def lenient_decode(raw: str) -> str:
    """Percent-decode like a forgiving front end: overlong forms accepted, %uXXXX too."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(raw):
        out += raw[pos : m.start()].encode("utf-8", "surrogatepass")
        if m.group(1):
            out += chr(int(m.group(1), 16)).encode("utf-8", "surrogatepass")
        else:
            out.append(int(m.group(2), 16))
        pos = m.end()
    out += raw[pos:].encode("utf-8", "surrogatepass")
    return _lenient_utf8(bytes(out))


def _lenient_utf8(data: bytes) -> str:
    chars: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            chars.append(chr(b))
            i += 1
            continue
        width = 2 if 0xC0 <= b < 0xE0 else 3 if 0xE0 <= b < 0xF0 else 4 if b >= 0xF0 else 0
        tail = data[i + 1 : i + width]
        if width == 0 or len(tail) != width - 1 or any(c & 0xC0 != 0x80 for c in tail):
            i += 1  # a stray continuation or broken lead byte: dropped
            continue
        code = b & (0xFF >> (width + 1))
        for c in tail:
            code = (code << 6) | (c & 0x3F)
        chars.append(chr(code) if code < 0x110000 else "")
        i += width
    return "".join(chars)


def resolve(path: str) -> str:
    """The path the lenient CRM routes on (see the module doc)."""
    text = unicodedata.normalize("NFKC", lenient_decode(path)).replace("\\", "/")
    out: list[str] = []
    for seg in text.split("/"):
        seg = seg.split(";", 1)[0].strip(" \t").lower()
        if seg not in ("..", "."):
            seg = seg.rstrip(". ")  # IIS: "customers." and "customers " are "customers"
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return "/" + "/".join(out)


def _effective_target(request: web.Request) -> str:
    by_cgi = {cgi_name(k.decode("latin-1")): v.decode("latin-1") for k, v in request.raw_headers}
    target = request.raw_path.split("?", 1)[0]
    for name in REWRITE_HEADERS:
        value = by_cgi.get(name)
        if value:
            target = value.split("?", 1)[0]
            if "://" in target:
                target = "/" + target.split("://", 1)[1].partition("/")[2]
            break
    for name in PREFIX_HEADERS:
        prefix = (by_cgi.get(name) or "").rstrip("/")
        if prefix and target.lower().startswith(prefix.lower() + "/"):
            target = target[len(prefix) :]
    return target


def create_lenient_crm(records: list[dict[str, Any]], seen: list[Seen]) -> web.Application:
    by_id = {r["id"].lower(): r for r in records}

    def doc(data: object, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")

    async def route(request: web.Request) -> web.StreamResponse:
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        path = resolve(_effective_target(request))
        seen.append(Seen(request.method, request.raw_path, raw_headers, path))
        if request.method == "TRACE":
            lines = [f"TRACE {request.raw_path} HTTP/1.1", *(f"{k}: {v}" for k, v in raw_headers)]
            return web.Response(body="\r\n".join(lines).encode(), content_type="message/http")
        parts = path.strip("/").split("/")
        if path == "/api/health":
            return doc({"status": "ok", "customers": len(records)})
        if parts[0] in ("static", "public") and len(parts) == 2:
            return web.Response(text=f"/* {parts[1]} */", content_type="text/javascript")
        if path == "/api/customers":
            return doc({"count": len(records), "results": records[:20]})
        if path == "/api/customers/search":
            q = dict(parse_qsl(request.query_string)).get("q", "")
            hits = [r for r in records if q and (q in r["mobile"] or q in r["name"])]
            return doc({"results": hits})
        if len(parts) == 3 and parts[:2] == ["api", "customers"] and parts[2] in by_id:
            record = by_id[parts[2]]
            if request.method in ("PATCH", "PUT", "POST"):
                body = await request.read()
                try:
                    update = orjson.loads(body) if body else {}
                except orjson.JSONDecodeError:
                    update = {}
                if isinstance(update, dict):
                    record.update({k: v for k, v in update.items() if k != "id"})
            return doc({"customer": record})
        return doc({"error": "not found", "path": path}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", route)
    return app


async def start_lenient_crm(count: int = 60, seed: int = 7) -> LenientCrm:
    records = generate_customers(seed, count)
    seen: list[Seen] = []
    runner = web.AppRunner(create_lenient_crm(records, seen), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return LenientCrm(runner, f"http://127.0.0.1:{port}", records, seen)


# --- the gateway in front of it -------------------------------------------------------

ROUTES = [
    {"path": "/api/health", "public": True, "sensitive": False},
    {"path": "/static/*", "sensitive": False},
    {"path": "/public/*", "public": True, "sensitive": False},
]
# Values above an L2 caller's clearance in every record (L4 cards and accounts, L5
# query password); an anonymous caller may see none of PERSONAL either.
PROTECTED = ("bank_card", "securities_account", "query_password")
PERSONAL = ("name", "id_number", "mobile", "email", "bank_card", "securities_account")


def clear_values(
    record: dict[str, Any], body: bytes, keys: tuple[str, ...] = PROTECTED
) -> list[str]:
    """The record's values for `keys` that appear in clear in `body` (JSON-escaped too)."""
    text = body.decode("utf-8", "replace")
    found = []
    for key in keys:
        value = str(record.get(key, ""))
        if value and (value in text or orjson.dumps(value).decode()[1:-1] in text):
            found.append(f"{key}={value}")
    return found


async def send_raw(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request over a plain socket, target and header names exactly as
    written (client libraries would normalise them); headers lower-cased in the result."""
    from tests.integration.gateway_harness import raw_request

    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in items]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body
    status, head, body = await raw_request(port, data)
    return status, dict(head), body


def plain(crm: LenientCrm, index: int = 0) -> dict[str, Any]:
    """A grade C, tier 一般 record: visible (masked by level) to low-clearance staff."""
    rows = [r for r in crm.records if r["grade"] == "C" and r["tier"] == "一般"]
    return rows[index]
