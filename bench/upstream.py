"""The benchmark's fixture CRM: canned bytes, so the upstream is never the bottleneck.

    .venv/bin/python bench/upstream.py --port 9001 [--records 1000]

Pages of 1, 20, 100 and 1,000 realistic customers (from the demo CRM's own
generator, so the gateway's detectors see real identifiers) are serialised once
at start-up and served as bytes. Paths are the demo CRM's, so the demo field
catalog applies unchanged:

- GET /api/customers?page_size=N     {"count", "page", "page_size", "results": [...]}
- GET /api/customers/export.csv      the same records as CSV (flat keys, no holdings)
- GET /api/customers/export.json?bytes=N
                                     a top-level JSON array of at least N bytes,
                                     generated record by record while streaming
- GET /api/health                    {"status": "ok"}

Runs on uvloop in its own process; prints "ready <port>" when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.demo.data import CUSTOMER_KEYS, generate_customers

PAGE_SIZES = (1, 20, 100, 1000)
# Bytes per write() on the streamed export: big enough to amortise the call.
EXPORT_CHUNK = 256 * 1024
MAX_EXPORT_BYTES = 64 << 30


def page_body(records: list[dict[str, Any]], size: int) -> bytes:
    return orjson.dumps(
        {"count": len(records), "page": 1, "page_size": size, "results": records[:size]}
    )


def csv_body(records: list[dict[str, Any]]) -> bytes:
    columns = [k for k in CUSTOMER_KEYS if k not in ("holdings", "consent")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*columns, "consent_marketing", "consent_sharing"])
    for r in records:
        consent = r.get("consent") or {}
        writer.writerow(
            [str(r.get(c, "")) for c in columns]
            + [
                str(bool(consent.get("marketing"))).lower(),
                str(bool(consent.get("sharing"))).lower(),
            ]
        )
    return out.getvalue().encode("utf-8")


class Canned:
    """Everything the fixture serves, built once."""

    def __init__(self, count: int, seed: int = 7) -> None:
        records = generate_customers(seed, count)
        self.count = count
        self.pages = {n: page_body(records, n) for n in PAGE_SIZES if n <= count}
        self.csv = csv_body(records)
        # Export: each record serialised without its id, so ids stay unique on the fly.
        self.tails = [orjson.dumps({k: v for k, v in r.items() if k != "id"})[1:] for r in records]


CANNED = web.AppKey("canned", Canned)
JSON = {"Content-Type": "application/json; charset=utf-8"}


async def customers(request: web.Request) -> web.Response:
    canned = request.app[CANNED]
    try:
        size = int(request.query.get("page_size", "20"))
    except ValueError:
        size = -1
    body = canned.pages.get(size)
    if body is None:
        return web.Response(status=400, text=f"page_size must be one of {sorted(canned.pages)}")
    return web.Response(body=body, headers=JSON)


async def export_csv(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[CANNED].csv, headers={"Content-Type": "text/csv; charset=utf-8"}
    )


async def export_json(request: web.Request) -> web.StreamResponse:
    """A JSON array of at least `bytes` bytes, produced chunk by chunk (never held whole)."""
    canned = request.app[CANNED]
    try:
        target = min(int(request.query.get("bytes", "1048576")), MAX_EXPORT_BYTES)
    except ValueError:
        return web.Response(status=400, text="bytes must be an integer")
    response = web.StreamResponse(headers=JSON)
    response.enable_chunked_encoding()
    await response.prepare(request)
    tails, n = canned.tails, len(canned.tails)
    sent, i = 1, 0
    await response.write(b"[")
    while sent < target:
        parts: list[bytes] = []
        size = 0
        while size < EXPORT_CHUNK and sent + size < target:
            rec = b'{"id":"C%07d",' % (i + 1) + tails[i % n]
            part = rec if i == 0 else b"," + rec
            parts.append(part)
            size += len(part)
            i += 1
        chunk = b"".join(parts)
        sent += len(chunk)
        await response.write(chunk)
    await response.write(b"]")
    await response.write_eof()
    return response


async def health(_request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', headers=JSON)


def create_app(count: int) -> web.Application:
    app = web.Application()
    app[CANNED] = Canned(count)
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/customers", customers)
    app.router.add_get("/api/customers/export.csv", export_csv)
    app.router.add_get("/api/customers/export.json", export_json)
    return app


async def serve(port: int, count: int) -> None:
    runner = web.AppRunner(create_app(count), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print(f"ready {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=9001)
    p.add_argument("--records", type=int, default=1000)
    args = p.parse_args()
    import uvloop

    uvloop.run(serve(args.port, args.records))


if __name__ == "__main__":
    main()
