"""A CRM for the write battery that accepts writes in every body type and tells all.

Unlike the demo CRM (JSON only), it accepts any method on a customer with any
body, records exactly what arrived (method, headers, bytes; aiohttp's server
has already undone a gzip Content-Encoding, as most CRMs' frameworks do) per record, applies
JSON bodies to the stored record (so a PATCH that changes the tier shows in the
answer), and answers every write with the full record, as many CRMs do. The
tests read `received` and `records` directly: what reached the CRM is checked
at the CRM, never through the gateway.

Special records: `C500` answers reads with 500, `C501` with an HTML page (the
gateway cannot read their facts and must refuse writes to them).
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

# Real values: the tests look for these (and for any placeholder) in what arrived.
BASE: dict[str, Any] = {
    "name": "欧阳娜娜",
    "gender": "女",
    "id_number": "11010519491231002X",
    "mobile": "13912345678",
    "landline": "010-62345678",
    "email": "nana.ouyang@example.com",
    "address": "浙江省杭州市西湖区文三路90号",
    "employer": "华信科技有限公司",
    "birth_date": "1990-05-17",
    "annual_income": 350000,
    "total_assets": 1200000,
    "balance": 88000.5,
    "bank_card": "6222600260001072444",
    "securities_account": "A123456789",
    "query_password": "864200",
    "notes": "客户偏好电话联系",
    "consent": {"marketing": True, "sharing": True},
    "department": "retail",
}


def _record(cid: str, **facts: Any) -> dict[str, Any]:
    out = {"id": cid, **copy.deepcopy(BASE)}
    out.update({"grade": "C", "tier": "一般", "owner": "u-partner-01"})
    out.update(facts)
    return out


def seed() -> dict[str, dict[str, Any]]:
    rows = [
        _record("C100"),  # visible to cs, sales, and (assigned) to partner-01
        _record("C101", owner="u-other"),  # a partner's unassigned customer
        _record("C102", grade="A"),
        _record("C103", grade="B"),
        _record("C104", tier="流失"),
        _record("C105", tier="潜在"),
        _record("C106"),  # a second visible record (strip mode, responses)
        _record("C500"),
        _record("C501"),
    ]
    return {r["id"]: r for r in rows}


@dataclass
class Received:
    method: str
    content_type: list[str]
    headers: dict[str, str]
    body: bytes


@dataclass
class WriteCrm:
    records: dict[str, dict[str, Any]]
    received: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))
    url: str = ""
    runner: web.AppRunner | None = None

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def all_bytes(self) -> bytes:
        return b"\n".join(r.body for rs in self.received.values() for r in rs)

    def count(self, cid: str) -> int:
        return len(self.received.get(cid, []))

    def last(self, cid: str) -> Received:
        return self.received[cid][-1]

    def named(self, cid: str) -> bool:
        """Whether any body that reached the CRM names `cid` (a bulk or upsert body)."""
        return any(cid.encode() in r.body for rs in self.received.values() for r in rs)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


def create_write_crm(crm: WriteCrm) -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)

    async def read(request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        if cid == "C500":
            return web.Response(status=500, text="internal error")
        if cid == "C501":
            return web.Response(text="<html><body>customer</body></html>", content_type="text/html")
        record = crm.records.get(cid)
        if record is None:
            return _json({"error": "not found"}, 404)
        return _json({"customer": record})

    async def write(request: web.Request) -> web.Response:
        cid = request.match_info.get("id", "(new)")
        body = await request.read()
        crm.received[cid].append(
            Received(
                request.method,
                request.headers.getall("Content-Type", []),
                dict(request.headers),
                body,
            )
        )
        if request.method == "DELETE":
            crm.records.pop(cid, None)
            return _json({"ok": True, "deleted": cid})
        if cid == "(new)":  # a create: the CRM fills in its defaults and answers with them all
            new = f"C{600 + len(crm.received[cid])}"
            record = crm.records.setdefault(new, _record(new))
        else:
            record = crm.records.setdefault(cid, {"id": cid})
        try:
            patch = json.loads(body) if body else {}
        except ValueError:
            patch = {}
        if isinstance(patch, dict):
            record.update({k: v for k, v in patch.items() if k != "id"})
        return _json({"customer": record})

    app.router.add_get("/api/customers/{id}", read)
    app.router.add_route("*", "/api/customers/{id}", write)
    app.router.add_route("*", "/api/customers", write)  # create, and bulk PUT/PATCH/DELETE
    return app


async def start_write_crm() -> WriteCrm:
    crm = WriteCrm(seed())
    crm.runner = web.AppRunner(create_write_crm(crm))
    await crm.runner.setup()
    port = free_port()
    await web.TCPSite(crm.runner, "127.0.0.1", port).start()
    crm.url = f"http://127.0.0.1:{port}"
    return crm


def write_catalog(path: Path) -> Path:
    """The demo catalog, plus POST and DELETE on a customer (this CRM takes both), and
    a create route that says it answers with the record (`{"customer": {...}}`): an
    answer with customer data outside declared records is refused (uncatalogued_route)."""
    raw = yaml.safe_load((ROOT / "config" / "crm" / "demo.yaml").read_text(encoding="utf-8"))
    for declared in raw["routes"]:
        if declared["name"] == "customer_create":
            declared["records"] = ["customer"]
    route = {"name": "customer_other_writes", "path": "/api/customers/{id}"}
    raw["routes"].append({**route, "methods": ["POST", "DELETE"]})
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path
