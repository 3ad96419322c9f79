"""The demo CRM's routes, exercised through a real aiohttp test server."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient

from gateway.demo.checksums import is_valid_resident_id
from gateway.demo.crm import create_demo_crm, csv_columns
from gateway.demo.data import generate_customers

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
SEEDED = generate_customers(7, 200)


@pytest.fixture
async def client(aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(create_demo_crm())


async def test_health(client: Client) -> None:
    resp = await client.get("/api/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_pagination(client: Client) -> None:
    first = await (await client.get("/api/customers?page=1&page_size=25")).json()
    second = await (await client.get("/api/customers?page=2&page_size=25")).json()
    assert first["count"] == 200
    assert (first["page"], first["page_size"]) == (1, 25)
    assert [c["id"] for c in first["results"]] == [f"C{i:06d}" for i in range(1, 26)]
    assert second["results"][0]["id"] == "C000026"
    last = await (await client.get("/api/customers?page=10&page_size=25")).json()
    assert last["results"] == []
    default = await (await client.get("/api/customers")).json()
    assert len(default["results"]) == 20


@pytest.mark.parametrize("query", ["page=0", "page_size=0", "page_size=201", "page=x"])
async def test_bad_pagination_is_400(client: Client, query: str) -> None:
    assert (await client.get(f"/api/customers?{query}")).status == 400


async def test_detail_and_404(client: Client) -> None:
    body = await (await client.get("/api/customers/C000042")).json()
    assert body["customer"] == SEEDED[41]
    assert body["meta"]["fetched_at"].endswith("+08:00")
    assert (await client.get("/api/customers/C999999")).status == 404


async def test_search_by_id_number_mobile_and_name(client: Client) -> None:
    target = SEEDED[17]
    for q in (target["id_number"], target["mobile"]):
        hits = (await (await client.get("/api/customers/search", params={"q": q})).json())[
            "results"
        ]
        assert target in hits
        assert all(q in (c["id_number"] + c["mobile"] + c["name"]) for c in hits)
    surname = target["name"][:1]
    hits = (await (await client.get("/api/customers/search", params={"q": surname})).json())[
        "results"
    ]
    assert {c["id"] for c in hits} == {c["id"] for c in SEEDED if surname in c["name"]}
    assert (await client.get("/api/customers/search")).status == 400


async def test_csv_export(client: Client) -> None:
    resp = await client.get("/api/customers/export.csv")
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == csv_columns()
    assert rows[0][:4] == ["id", "name", "gender", "id_number"]
    assert "holdings" not in rows[0]
    assert len(rows) == 201
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["id_number"] == SEEDED[0]["id_number"]
    assert record["consent_marketing"] in {"true", "false"}


async def test_ndjson_export(client: Client) -> None:
    resp = await client.get("/api/customers/export.ndjson")
    assert resp.content_type == "application/x-ndjson"
    lines = (await resp.text()).splitlines()
    assert [json.loads(line) for line in lines] == SEEDED


async def test_streamed_json_export(client: Client) -> None:
    resp = await client.get("/api/customers/export.json", params={"count": "1000"})
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in resp.headers
    rows = json.loads(await resp.read())
    assert len(rows) == 1000
    assert rows[0] == SEEDED[0]
    assert rows[999]["id"] == "C001000"
    assert {k: v for k, v in rows[999].items() if k != "id"} == {
        k: v for k, v in SEEDED[999 % 200].items() if k != "id"
    }
    empty = await client.get("/api/customers/export.json", params={"count": "0"})
    assert json.loads(await empty.read()) == []
    too_many = await client.get("/api/customers/export.json", params={"count": "1000001"})
    assert too_many.status == 400


async def test_gbk_page(client: Client) -> None:
    resp = await client.get("/api/legacy/customers.gbk")
    assert resp.headers["Content-Type"] == "application/json; charset=GBK"
    raw = await resp.read()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    body = json.loads(raw.decode("gbk"))
    assert body["results"] == SEEDED[:5]


async def test_gzip_detail(client: Client) -> None:
    # A raw session so the compressed bytes are seen as the CRM sent them.
    async with ClientSession(auto_decompress=False) as session:
        resp = await session.get(client.make_url("/api/customers/C000003"))
        plain = await resp.json()
        resp = await session.get(client.make_url("/api/customers/C000003/gzip"))
        assert resp.headers["Content-Encoding"] == "gzip"
        body = json.loads(gzip.decompress(await resp.read()))
    assert body["customer"] == plain["customer"]


async def test_create_update_patch(client: Client) -> None:
    new = {"name": "测试客户", "mobile": "13800138000", "annual_income": 120000}
    resp = await client.post("/api/customers", json=new)
    assert resp.status == 201
    created = await resp.json()
    assert created["ok"] is True
    assert created["id"] == "C000201"
    stored = (await (await client.get(f"/api/customers/{created['id']}")).json())["customer"]
    assert stored == {"id": "C000201", **new}

    resp = await client.patch("/api/customers/C000001", json={"mobile": "13900139000"})
    assert (resp.status, await resp.json()) == (200, {"ok": True, "id": "C000001"})
    patched = (await (await client.get("/api/customers/C000001")).json())["customer"]
    assert patched == {**SEEDED[0], "mobile": "13900139000"}

    resp = await client.put("/api/customers/C000002", json={"name": "替换"})
    assert resp.status == 200
    replaced = (await (await client.get("/api/customers/C000002")).json())["customer"]
    assert replaced == {"id": "C000002", "name": "替换"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/customers", b"{not json"),
        ("POST", "/api/customers", b"[1, 2]"),
        ("POST", "/api/customers", b'{"mobile": "13800138000"}'),
        ("POST", "/api/customers", b'{"name": "x", "shoe_size": 42}'),
        ("POST", "/api/customers", b'{"name": "x", "id": "C000001"}'),
        ("PATCH", "/api/customers/C000001", b'{"balance": "lots"}'),
        ("PATCH", "/api/customers/C000001", b'{"consent": {"marketing": "yes"}}'),
        ("PUT", "/api/customers/C000001", b'{"name": 5}'),
    ],
)
async def test_invalid_writes_are_400(client: Client, method: str, path: str, body: bytes) -> None:
    resp = await client.request(
        method, path, data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["ok"] is False


async def test_write_to_unknown_customer_is_404(client: Client) -> None:
    assert (await client.patch("/api/customers/C999999", json={"name": "x"})).status == 404


async def test_notes(client: Client) -> None:
    by_note = await (await client.get("/api/notes/N000005")).json()
    by_customer = await (await client.get("/api/notes/C000005")).json()
    assert by_note == by_customer
    assert by_note["customer_id"] == "C000005"
    assert SEEDED[4]["mobile"] in by_note["text"]
    assert (await client.get("/api/notes/N999999")).status == 404


async def test_every_seeded_id_number_is_valid(client: Client) -> None:
    rows = (await (await client.get("/api/customers?page_size=200")).json())["results"]
    assert all(is_valid_resident_id(c["id_number"]) for c in rows)
