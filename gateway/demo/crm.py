"""The bundled "legacy CRM": an aiohttp app serving synthetic customers.

It plays the unchangeable upstream in demos and integration tests, so it
behaves like one: it leaks every field (including an L5 query password), offers
JSON, NDJSON, CSV, GBK-encoded and gzip-compressed bodies, legacy SOAP-style
XML, JSONP and GBK CSV (`/api/legacy/*`, see gateway.demo.legacy), and can stream a
JSON array of up to a million records for streaming tests and benchmarks.
State lives in memory and resets on restart.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from aiohttp import web

from gateway.demo.data import (
    CUSTOMER_KEYS,
    Customer,
    customer_id,
    generate_customers,
    generate_note,
    household,
)
from gateway.demo.legacy import (
    HOUSEHOLD_COLUMNS,
    csv_export,
    household_row,
    jsonp_page,
    soap_page,
)
from gateway.demo.writes import WriteError, validate_customer_body

MAX_PAGE_SIZE = 200
MAX_EXPORT_COUNT = 1_000_000
_CST = timezone(timedelta(hours=8))
# Records per write() on the streamed export: large enough to amortise the call.
_EXPORT_BATCH = 256


class DemoStore:
    """The CRM's in-memory tables, keyed by id, in insertion order."""

    def __init__(self, seed: int, count: int) -> None:
        seeded = generate_customers(seed, count)
        self.customers: dict[str, Customer] = {c["id"]: c for c in seeded}
        self.notes: dict[str, dict[str, str]] = {}
        for index, customer in enumerate(seeded):
            note = generate_note(seed, index, customer)
            self.notes[note["id"]] = note
        self._next_index = count
        # Export template: each seeded record serialised once, without its id.
        self.export_tails: list[bytes] = [
            orjson.dumps({k: v for k, v in c.items() if k != "id"})[1:] for c in seeded
        ]

    def new_id(self) -> str:
        while customer_id(self._next_index) in self.customers:
            self._next_index += 1
        new = customer_id(self._next_index)
        self._next_index += 1
        return new


STORE_KEY = web.AppKey("demo_store", DemoStore)


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", charset="utf-8"
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"ok": False, "error": message}, status=status)


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be between {low} and {high}")
    return value


def _page(request: web.Request, default_size: int) -> dict[str, Any]:
    store = request.app[STORE_KEY]
    page = _int_param(request, "page", 1, 1, 10**9)
    size = _int_param(request, "page_size", default_size, 1, MAX_PAGE_SIZE)
    rows = list(store.customers.values())
    start = (page - 1) * size
    return {
        "count": len(rows),
        "page": page,
        "page_size": size,
        "results": rows[start : start + size],
    }


async def list_customers(request: web.Request) -> web.Response:
    return _json(_page(request, 20))


async def get_customer(request: web.Request) -> web.Response:
    customer = request.app[STORE_KEY].customers.get(request.match_info["id"])
    if customer is None:
        return _error(404, "customer not found")
    fetched = datetime.now(_CST).isoformat(timespec="seconds")
    return _json({"customer": customer, "meta": {"fetched_at": fetched}})


async def get_customer_gzip(request: web.Request) -> web.Response:
    customer = request.app[STORE_KEY].customers.get(request.match_info["id"])
    if customer is None:
        return _error(404, "customer not found")
    fetched = datetime.now(_CST).isoformat(timespec="seconds")
    body = gzip.compress(orjson.dumps({"customer": customer, "meta": {"fetched_at": fetched}}))
    return web.Response(
        body=body,
        content_type="application/json",
        charset="utf-8",
        headers={"Content-Encoding": "gzip"},
    )


async def search_customers(request: web.Request) -> web.Response:
    q = request.query.get("q", "").strip()
    if not q:
        return _error(400, "q is required")
    hits = [
        c
        for c in request.app[STORE_KEY].customers.values()
        if q in str(c.get("id_number", ""))
        or q in str(c.get("mobile", ""))
        or q in str(c.get("name", ""))
    ]
    return _json({"results": hits})


def csv_columns() -> list[str]:
    """CSV header: the flat customer keys; `consent` becomes two columns, no holdings."""
    columns: list[str] = []
    for key in CUSTOMER_KEYS:
        if key == "holdings":
            continue
        if key == "consent":
            columns += ["consent_marketing", "consent_sharing"]
        else:
            columns.append(key)
    return columns


def _csv_row(customer: Customer) -> list[str]:
    consent = customer.get("consent") or {}
    flat = dict(customer)
    flat["consent_marketing"] = consent.get("marketing", False)
    flat["consent_sharing"] = consent.get("sharing", False)
    row: list[str] = []
    for key in csv_columns():
        value = flat.get(key, "")
        row.append(str(value).lower() if isinstance(value, bool) else str(value))
    return row


async def export_csv(request: web.Request) -> web.Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(csv_columns())
    for customer in request.app[STORE_KEY].customers.values():
        writer.writerow(_csv_row(customer))
    return web.Response(
        body=out.getvalue().encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="customers.csv"'},
    )


async def export_ndjson(request: web.Request) -> web.Response:
    lines = [orjson.dumps(c) + b"\n" for c in request.app[STORE_KEY].customers.values()]
    return web.Response(body=b"".join(lines), content_type="application/x-ndjson", charset="utf-8")


async def export_json_stream(request: web.Request) -> web.StreamResponse:
    """A top-level JSON array of `count` records, generated and sent chunk by chunk.

    Records past the seeded ones reuse the seeded bodies under fresh ids, so a
    million rows cost no memory and little CPU on the CRM side.
    """
    store = request.app[STORE_KEY]
    count = _int_param(request, "count", len(store.export_tails), 0, MAX_EXPORT_COUNT)
    tails = store.export_tails
    if count and not tails:
        return _error(409, "no seeded records to export")
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"[")
    for start in range(0, count, _EXPORT_BATCH):
        parts = [
            b'{"id":"%s",' % customer_id(i).encode() + tails[i % len(tails)]
            for i in range(start, min(start + _EXPORT_BATCH, count))
        ]
        chunk = b",".join(parts)
        await response.write(chunk if start == 0 else b"," + chunk)
    await response.write(b"]")
    await response.write_eof()
    return response


async def legacy_gbk_page(request: web.Request) -> web.Response:
    """A small page encoded in GBK, as older Chinese systems still answer."""
    text = json.dumps(_page(request, 5), ensure_ascii=False)
    return web.Response(
        body=text.encode("gbk"), headers={"Content-Type": "application/json; charset=GBK"}
    )


async def legacy_soap_page(request: web.Request) -> web.Response:
    """The same page as SOAP-style XML in GBK; the charset only in the XML declaration."""
    body = soap_page(_page(request, 5)).encode("gbk")
    return web.Response(body=body, headers={"Content-Type": "text/xml"})


async def legacy_jsonp_page(request: web.Request) -> web.Response:
    """The same page as JSONP (`?callback=`), in GBK like the rest of the legacy API."""
    text = jsonp_page(_page(request, 5), request.query.get("callback"))
    if text is None:
        return _error(400, "callback must be a JavaScript identifier")
    return web.Response(
        body=text.encode("gbk"), headers={"Content-Type": "application/javascript; charset=GBK"}
    )


async def legacy_csv_export(request: web.Request) -> web.Response:
    """Every customer as a GBK CSV, as exported for spreadsheet users."""
    rows = [_csv_row(c) for c in request.app[STORE_KEY].customers.values()]
    return web.Response(
        body=csv_export(csv_columns(), rows).encode("gbk"),
        headers={"Content-Type": "text/csv; charset=GBK"},
    )


async def legacy_household_export(request: web.Request) -> web.Response:
    """Customers with their family contacts packed into one cell, GBK like the rest."""
    customers = request.app[STORE_KEY].customers.values()
    rows = [household_row(c, household(c)) for c in customers]
    return web.Response(
        body=csv_export(HOUSEHOLD_COLUMNS, rows).encode("gbk"),
        headers={"Content-Type": "text/csv; charset=GBK"},
    )


async def _read_body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise WriteError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise WriteError("body must be a JSON object")
    return body


async def create_customer(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    try:
        body = validate_customer_body(await _read_body(request), partial=False)
    except WriteError as exc:
        return _error(400, str(exc))
    new = store.new_id()
    store.customers[new] = {"id": new, **body}
    return _json({"ok": True, "id": new}, status=201)


async def update_customer(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    cid = request.match_info["id"]
    current = store.customers.get(cid)
    if current is None:
        return _error(404, "customer not found")
    partial = request.method == "PATCH"
    try:
        body = validate_customer_body(await _read_body(request), partial=partial)
    except WriteError as exc:
        return _error(400, str(exc))
    store.customers[cid] = {**current, **body, "id": cid} if partial else {"id": cid, **body}
    return _json({"ok": True, "id": cid})


async def get_note(request: web.Request) -> web.Response:
    """A note by its id (N000001) or by its customer's id (C000001)."""
    store = request.app[STORE_KEY]
    key = request.match_info["id"]
    if key.startswith("C"):
        key = "N" + key[1:]
    note = store.notes.get(key)
    if note is None:
        return _error(404, "note not found")
    return _json(note)


async def health(_request: web.Request) -> web.Response:
    return _json({"status": "ok"})


def create_demo_crm(seed: int = 7, count: int = 200) -> web.Application:
    """Build the demo CRM app with `count` customers generated from `seed`."""
    app = web.Application()
    app[STORE_KEY] = DemoStore(seed, count)
    r = app.router
    r.add_get("/api/health", health)
    r.add_get("/api/customers", list_customers)
    r.add_post("/api/customers", create_customer)
    # Fixed paths before /api/customers/{id}, which would otherwise capture them.
    r.add_get("/api/customers/search", search_customers)
    r.add_get("/api/customers/export.csv", export_csv)
    r.add_get("/api/customers/export.ndjson", export_ndjson)
    r.add_get("/api/customers/export.json", export_json_stream)
    r.add_get("/api/customers/{id}", get_customer)
    r.add_put("/api/customers/{id}", update_customer)
    r.add_patch("/api/customers/{id}", update_customer)
    r.add_get("/api/customers/{id}/gzip", get_customer_gzip)
    r.add_get("/api/notes/{id}", get_note)
    r.add_get("/api/legacy/customers.gbk", legacy_gbk_page)
    r.add_get("/api/legacy/customers.xml", legacy_soap_page)
    r.add_get("/api/legacy/customers.jsonp", legacy_jsonp_page)
    r.add_get("/api/legacy/customers.csv", legacy_csv_export)
    r.add_get("/api/legacy/households.csv", legacy_household_export)
    return app


def run_demo_crm(
    host: str = "127.0.0.1", port: int = 8081, seed: int = 7, count: int = 200
) -> None:
    """Serve the demo CRM until interrupted (used by `crm-gateway demo`)."""
    web.run_app(create_demo_crm(seed, count), host=host, port=port, print=None)
