"""A hostile upstream for the outbound-surface battery: HTML renderings, headers, links.

It serves the demo CRM's customers (gateway.demo.data, realistic values with valid
check digits) the ways a real CRM leaks them around a JSON masker:

- `/api/customers`, `/api/customers/{id}`: Django REST Framework style content
  negotiation: `?format=api`/`?format=json`, or `Accept` (text/html first ->
  the browsable HTML page with the record HTML-escaped in a <pre>, as DRF renders it);
- `/api/stubborn/customers`: the browsable HTML page whatever was asked;
- `/api/rendered/customers`: an HTML page whose identifiers are spelled with
  character references (`&#54;`, `&#x36;`, `&commat;`, double-escaped `&amp;#54;`);
- `/api/script/customers`: JavaScript with the record in `\\uXXXX` escapes;
- `/api/escaped/customers`: JSON whose notes quote identifiers as literal `\\u0036`
  escapes, character references and percent-encoding;
- `/api/headers/{id}`: identifiers in every response header (`?status=204|404|302`);
- `/api/invoices/`: a DRF page with absolute `next`/`previous` links to the upstream,
  bearer-token URLs (`/portal/invoice/<token>`, `?token=`, `&sig=`, `X-Amz-Signature`);
- `/api/moved`: a redirect whose `Location`, `Content-Location`, `Link` and `Refresh`
  name the upstream.

Every request is recorded (path, query, Accept) so tests can assert what the CRM
was asked. `start_raw_upstream` is a socket server for what aiohttp cannot send
(obs-folded header lines).
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import yaml
from aiohttp import web

from gateway.demo.data import generate_customers
from tests.conftest import free_port
from tests.integration.gateway_harness import Gateway, start_gateway

ROOT = Path(__file__).resolve().parents[2]

SEED = 7
CUSTOMERS: list[dict[str, Any]] = generate_customers(SEED, 6)
# Values an L1 caller must never see in clear (name, identity, contact, wealth, card).
PROTECTED_KEYS = (
    "name",
    "id_number",
    "mobile",
    "landline",
    "email",
    "address",
    "bank_card",
    "securities_account",
    "annual_income",
    "total_assets",
    "balance",
    "query_password",
)
# Values the free-text scan finds by their shape (checksums, segments): what a route
# that declares HTML as its type still masks.
DETECTABLE_KEYS = ("id_number", "mobile", "bank_card", "email")
TOKENS = {
    "portal": secrets.token_urlsafe(32),
    "query": secrets.token_urlsafe(24),
    "sig": secrets.token_hex(20),
    "amz": secrets.token_hex(32),
}


def protected_values(keys: tuple[str, ...] = PROTECTED_KEYS) -> dict[str, str]:
    """`C000001.mobile` -> its value, for every customer served."""
    out = {}
    for c in CUSTOMERS:
        for key in keys:
            out[f"{c['id']}.{key}"] = str(c[key])
    return out


@dataclass
class Seen:
    path: str
    query: str
    accept: str
    headers: dict[str, str]


@dataclass
class SurfaceUpstream:
    runner: web.AppRunner
    url: str
    port: int
    seen: list[Seen] = field(default_factory=list)

    async def stop(self) -> None:
        await self.runner.cleanup()


def _find(customer_id: str) -> dict[str, Any]:
    for c in CUSTOMERS:
        if c["id"] == customer_id:
            return c
    raise web.HTTPNotFound(
        text=json.dumps({"detail": "Not found."}), content_type="application/json"
    )


_URL = re.compile(r"https?://[^\s&<]+")


def drf_page(request: web.Request, doc: Any, title: str) -> str:
    """The browsable API page: the JSON HTML-escaped in a <pre>, links made clickable."""
    text = html.escape(json.dumps(doc, ensure_ascii=False, indent=4), quote=True)
    text = _URL.sub(lambda m: f'<a href="{m.group()}" rel="nofollow">{m.group()}</a>', text)
    return (
        "<!DOCTYPE html>\n<html><head><title>"
        f"{html.escape(title)} – Django REST framework</title></head><body>\n"
        '<div class="response-info"><pre class="prettyprint">'
        '<span class="meta nocode"><b>HTTP 200 OK</b>\n<b>Allow:</b> '
        '<span class="lit">GET, HEAD, OPTIONS</span>\n<b>Content-Type:</b> '
        '<span class="lit">application/json</span>\n<b>Vary:</b> '
        '<span class="lit">Accept</span>\n\n</span>'
        f"{text}</pre></div>\n</body></html>\n"
    )


def wants_html(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None:
        return fmt == "api"
    accept = request.headers.get("Accept", "*/*")
    first = accept.split(",")[0].split(";")[0].strip().lower()
    return first in ("text/html", "application/xhtml+xml")


def _ref(ch: str, i: int) -> str:
    if ch == "@":
        return "&commat;"
    if i % 3 == 2:
        return f"&amp;#{ord(ch)};"  # double-escaped: a second decoding shows the digit
    return f"&#{ord(ch)};" if i % 2 else f"&#x{ord(ch):x};"


def spelled(value: str) -> str:
    return "".join(_ref(ch, i) if ch.isdigit() or ch == "@" else ch for i, ch in enumerate(value))


def pct(value: str) -> str:
    return "".join(f"%{ord(ch):02X}" for ch in value)


def js_escaped(value: str) -> str:
    return "".join(f"\\u{ord(ch):04x}" for ch in value)


def _list_doc(request: web.Request) -> dict[str, Any]:
    base = f"http://{request.host}"
    return {
        "count": len(CUSTOMERS),
        "next": f"{base}/api/customers?page=2",
        "previous": None,
        "results": CUSTOMERS,
    }


def create_surface_upstream(seen: list[Seen]) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        seen.append(
            Seen(
                request.path,
                request.query_string,
                request.headers.get("Accept", ""),
                dict(request.headers),
            )
        )
        result: web.StreamResponse = await handler(request)
        return result

    async def customers(request: web.Request) -> web.Response:
        doc = _list_doc(request)
        if wants_html(request):
            return web.Response(
                text=drf_page(request, doc, "Customer List"), content_type="text/html"
            )
        return web.json_response(doc, dumps=lambda d: json.dumps(d, ensure_ascii=False))

    async def customer(request: web.Request) -> web.Response:
        doc = {"customer": _find(request.match_info["id"])}
        if wants_html(request):
            return web.Response(
                text=drf_page(request, doc, "Customer Detail"), content_type="text/html"
            )
        return web.json_response(doc, dumps=lambda d: json.dumps(d, ensure_ascii=False))

    async def stubborn(request: web.Request) -> web.Response:
        return web.Response(
            text=drf_page(request, _list_doc(request), "Customer List"), content_type="text/html"
        )

    async def rendered(request: web.Request) -> web.Response:
        rows = "".join(
            f"<tr><td>{c['id']}</td><td>身份证 {spelled(c['id_number'])}</td>"
            f"<td>手机 {spelled(c['mobile'])}</td><td>卡号 {spelled(c['bank_card'])}</td>"
            f"<td>{spelled(c['email'])}</td></tr>\n"
            for c in CUSTOMERS
        )
        page = f"<!DOCTYPE html><html><body><table>\n{rows}</table></body></html>\n"
        return web.Response(text=page, content_type="text/html")

    async def script(request: web.Request) -> web.Response:
        lines = [
            "var customers = [];",
            *(
                f'customers.push({{id: "{c["id"]}", idNo: "{js_escaped(c["id_number"])}", '
                f'mobile: "{js_escaped(c["mobile"])}", card: "{js_escaped(c["bank_card"])}"}});'
                for c in CUSTOMERS
            ),
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="application/javascript")

    async def escaped(request: web.Request) -> web.Response:
        results = [
            {
                "id": c["id"],
                "memo": f"身份证 {js_escaped(c['id_number'])}",
                "remark_html": f"卡号 {spelled(c['bank_card'])}",
                "link": "/lookup?mobile=" + pct(c["mobile"]),
            }
            for c in CUSTOMERS
        ]
        return web.json_response({"results": results})

    async def header_leak(request: web.Request) -> web.Response:
        c = _find(request.match_info["id"])
        status = int(request.query.get("status", "200"))
        body = None if status == 204 else json.dumps({"ok": status < 400, "id": c["id"]})
        resp = web.Response(
            status=status, text=body, content_type="application/json" if body else None
        )
        pct_id = pct(c["id_number"])
        resp.headers.add(
            "Set-Cookie", f"last_viewed={c['id_number']}; Path=/api/customers/{c['mobile']}"
        )
        resp.headers.add("Set-Cookie", f"contact={quote(c['email'])}; HttpOnly")
        resp.headers["Location"] = f"/api/customers/search?mobile={c['mobile']}&id={pct_id}"
        resp.headers["Refresh"] = f"5; url=/api/customers/search?card={c['bank_card']}"
        resp.headers["Link"] = f'</api/customers/search?email={c["email"]}>; rel="related"'
        resp.headers["X-Customer-Mobile"] = c["mobile"]
        resp.headers["X-Customer-Card"] = spelled(c["bank_card"])
        resp.headers["Warning"] = f'199 crm "contact {c["mobile"]} card {c["bank_card"]}"'
        resp.headers[f"X-Id-{c['id_number']}"] = "1"
        word = base64.b64encode(f"客户{c['name']} 身份证{c['id_number']}".encode()).decode()
        resp.headers["X-Customer-Note"] = f"=?UTF-8?B?{word}?="
        resp.headers["Via"] = f"1.1 crm-{c['mobile']}"
        resp.headers["ETag"] = f'"{c["id_number"]}"'
        resp.headers["Cache-Control"] = f"private, x-owner={c['mobile']}"
        filename = f"{c['name']}_{c['id_number']}.csv"
        resp.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
        return resp

    async def front_directives(request: web.Request) -> web.Response:
        """Directives a front nginx/Apache/LiteSpeed would obey: serve this file instead."""
        c = _find(request.match_info["id"])
        resp = web.json_response({"ok": True})
        resp.headers["X-Accel-Redirect"] = f"/protected/exports/{c['id']}.csv"
        resp.headers["X-Accel-Buffering"] = "no"
        resp.headers["X_Accel_Expires"] = "0"
        resp.headers["X-Sendfile"] = f"/var/crm/exports/{c['id']}.csv"
        resp.headers["X-Lighttpd-Send-File"] = f"/var/crm/exports/{c['id']}.csv"
        resp.headers["X-LiteSpeed-Location"] = f"/internal/{c['id']}"
        resp.headers["X-Reproxy-URL"] = f"http://10.0.0.5/customers/{c['id']}"
        return resp

    async def header_utf8(request: web.Request) -> web.StreamResponse:
        """A raw UTF-8 file name, as many servers send it (not RFC 8187)."""
        c = _find(request.match_info["id"])
        filename = f"{c['name']}_{c['id_number']}.csv"
        resp = web.StreamResponse(status=200)
        resp.content_type = "text/csv"
        resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        await resp.prepare(request)
        await resp.write(b"id\r\n" + c["id"].encode() + b"\r\n")
        await resp.write_eof()
        return resp

    async def invoices(request: web.Request) -> web.Response:
        base = request.query.get("origin", f"http://{request.host}")  # an alias it uses
        offset = int(request.query.get("offset", "0"))
        results = []
        for i, c in enumerate(CUSTOMERS[offset : offset + 3]):
            results.append(
                {
                    "id": f"INV-{offset + i + 1:04d}",
                    "client_name": c["name"],
                    "client_email": c["email"],
                    "public_url": f"/portal/invoice/{TOKENS['portal']}",
                    "share_link": f"{base}/portal/invoice/{TOKENS['portal']}",
                    "download": f"{base}/api/invoices/{i}/pdf/?token={TOKENS['query']}",
                    "signed": f"https://files.example.com/inv.pdf?expires=1&sig={TOKENS['sig']}",
                    "s3": "https://bucket.s3.example.com/inv.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                    f"&X-Amz-Signature={TOKENS['amz']}",
                    "notes": f"详情见 {base}/api/customers/{c['id']}/ ，"
                    f"附件 {base}/portal/invoice/{TOKENS['portal']}",
                    "escaped_link": f"{base}/api/customers/{c['id']}/".replace("/", "\\/"),
                }
            )
        nxt = (
            f"{base}/api/invoices/?limit=3&offset={offset + 3}"
            if offset + 3 < len(CUSTOMERS)
            else None
        )
        prev = f"{base}/api/invoices/?limit=3&offset={max(0, offset - 3)}" if offset else None
        doc = {"count": len(CUSTOMERS), "next": nxt, "previous": prev, "results": results}
        resp = web.json_response(doc, dumps=lambda d: json.dumps(d, ensure_ascii=False))
        resp.headers["Link"] = f'<{nxt or base + "/api/invoices/"}>; rel="next"'
        return resp

    async def moved(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        resp = web.Response(status=302, text="", content_type="application/json")
        resp.headers["Location"] = f"{base}/api/customers/C000001"
        resp.headers["Content-Location"] = f"//{request.host}/api/customers/C000001"
        resp.headers["Link"] = f'<{base}/api/customers>; rel="collection"'
        resp.headers["Refresh"] = f"0; url={base}/api/customers"
        return resp

    app = web.Application(middlewares=[record])
    r = app.router
    r.add_get("/api/customers", customers)
    r.add_get("/api/customers/{id}", customer)
    r.add_get("/api/stubborn/customers", stubborn)
    r.add_get("/api/rendered/customers", rendered)
    r.add_get("/api/script/customers", script)
    r.add_get("/api/escaped/customers", escaped)
    r.add_get("/api/headers/{id}", header_leak)
    r.add_get("/api/headers/{id}/utf8", header_utf8)
    r.add_get("/api/front/{id}", front_directives)
    r.add_get("/api/invoices/", invoices)
    r.add_get("/api/moved", moved)
    return app


async def start_surface_upstream() -> SurfaceUpstream:
    seen: list[Seen] = []
    runner = web.AppRunner(create_surface_upstream(seen))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return SurfaceUpstream(runner, f"http://127.0.0.1:{port}", port, seen)


@dataclass
class RawUpstream:
    server: asyncio.Server
    url: str
    requests: list[bytes] = field(default_factory=list)

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start_raw_upstream(response: bytes) -> RawUpstream:
    """Answers every request with exactly `response` (for header framing aiohttp won't write)."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(response)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", free_port())
    port = server.sockets[0].getsockname()[1]
    return RawUpstream(server, f"http://127.0.0.1:{port}", seen)


# Routes of the hostile upstream in a copy of the demo catalog (its field rules).
SURFACE_ROUTES: list[dict[str, Any]] = [
    {"name": "s_customer_list", "path": "/api/customers", "methods": ["GET"],
     "records": ["results.item"]},
    {"name": "s_customer_detail", "path": "/api/customers/{id}", "methods": ["GET"],
     "records": ["customer"]},
    {"name": "s_rendered", "path": "/api/rendered/customers", "methods": ["GET"],
     "response_types": ["text/html"]},
    {"name": "s_script", "path": "/api/script/customers", "methods": ["GET"],
     "response_types": ["application/javascript"]},
    {"name": "s_escaped", "path": "/api/escaped/customers", "methods": ["GET"],
     "records": ["results.item"]},
    {"name": "s_headers_csv", "path": "/api/headers/{id}/utf8", "methods": ["GET"],
     "response_types": ["text/csv"]},
    {"name": "s_headers", "path": "/api/headers/{id}", "methods": ["GET", "HEAD"]},
    {"name": "s_invoices", "path": "/api/invoices/", "methods": ["GET"],
     "records": ["results.item"],
     "fields": [{"key": "client_name", "category": "name"},
                {"key": "client_email", "category": "email"}]},
]  # fmt: skip


def surface_catalog(path: Path) -> Path:
    doc = yaml.safe_load((ROOT / "config" / "crm" / "demo.yaml").read_text(encoding="utf-8"))
    doc["name"] = "surface"
    doc["routes"] = SURFACE_ROUTES
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


async def start_surface_gateway(tmp_path: Path, upstream_url: str, **overrides: Any) -> Gateway:
    """A gateway (static engine, harness directory) in front of `upstream_url`."""
    values: dict[str, Any] = {"classification.catalog": str(surface_catalog(tmp_path / "c.yaml"))}
    values.update(overrides)
    return await start_gateway(tmp_path, upstream_url, **values)


# The harness directory's L1 caller (a partner agency on loopback).
LOW = {"Authorization": "Bearer test-partner-key"}


def in_clear(text: str, values: dict[str, str]) -> list[str]:
    """Which protected values appear in `text` (numbers only as whole numbers)."""
    found = []
    for label, value in values.items():
        if value.replace(".", "").isdigit() and len(value) < 11:
            if re.search(rf"(?<![\d.]){re.escape(value)}(?![\d])", text):
                found.append(label)
        elif value in text:
            found.append(label)
    return found


def decoded_views(text: str) -> list[str]:
    """`text` as a client could read it: as sent, with character references undone
    (twice), with JSON/JS escapes undone, and percent-decoded."""
    once = html.unescape(text)
    views = [text, once, html.unescape(once), unquote(text)]
    views.append(re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text))
    return views
