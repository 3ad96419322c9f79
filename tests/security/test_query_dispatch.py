"""A legacy dispatcher (`/legacy/customer.do?method=list|detail|export`) behind the
gateway: each page enforced as the route its parameter selects, and a parameter the
CRM could read otherwise refused before the CRM sees it.

The upstream answers like a Struts `DispatchAction`: it reads the first `method`
parameter, in any case, as many Java and .NET stacks do. Without `query:` in the
catalog the three pages would be one route: the export's bulk controls would not
apply to `?method=export`, and the detail page's record would be outside the list
page's declared records. A real OPA decides for `u-cs` (customer_service, L2, no
grade A/B grant).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web

from tests.conftest import ROOT, OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import audit_events, headers, wait_event
from tests.security.hostile_upstream import HIDDEN, HIDDEN_MARKS, PROTECTED, VISIBLE
from tests.security.records_harness import Reply, fetch, opa_process, records_gateway, serve

pytestmark = pytest.mark.integration


def _upstream(seen: list[str]) -> web.Application:
    async def dispatcher(request: web.Request) -> web.Response:
        seen.append(request.query_string if request.method == "GET" else
                    f"{request.method} {request.query_string}")  # fmt: skip
        if request.method == "POST":  # method=update|remove&id=...: the CRM just does it
            return web.json_response({"code": 0, "updated": request.query.get("id")})
        method = next((v for k, v in request.query.items() if k.lower() == "method"), "")
        method = method.lower()
        rows = [*VISIBLE[:3], *HIDDEN[:3]]
        if method == "list":
            return web.json_response({"code": 0, "rows": rows, "total": len(rows)})
        if method == "detail":
            wanted = request.query.get("id", "")
            one = next((c for c in rows if c["id"] == wanted), None)
            if one is None:  # a legacy CRM's "no such record": HTTP 200, its own code
                return web.json_response({"code": 1001, "msg": "记录不存在"})
            return web.json_response({"code": 0, "data": one})
        if method == "export":
            out = io.StringIO()
            columns = ["id", "name", "grade", "tier", "mobile", "bank_card"]
            writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            return web.Response(text=out.getvalue(), content_type="text/csv")
        return web.json_response({"code": 0, "menu": ["list", "detail", "export"]})

    app = web.Application()
    app.router.add_get("/legacy/customer.do", dispatcher)
    app.router.add_post("/legacy/customer.do", dispatcher)
    return app


def _catalog(dest: Path) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "crm" / "demo.yaml").read_text("utf-8"))
    raw["response_types"] = [*raw.get("response_types", ["application/json"]), "text/csv"]
    raw["routes"] += [
        {"name": "do_list", "path": "/legacy/customer.do", "methods": ["GET"],
         "query": {"method": "list"}, "records": ["rows.item"]},
        {"name": "do_detail", "path": "/legacy/customer.do", "methods": ["GET"],
         "query": {"method": "detail"}, "records": ["data"],
         "absent": {"status": 200, "body": {"code": 1001, "msg": "记录不存在"}}},
        {"name": "do_export", "path": "/legacy/customer.do", "methods": ["GET"],
         "query": {"method": "export"}, "export": True, "response_types": ["text/csv"],
         "csv": {"columns": {"id": "customer_no", "name": "name", "mobile": "mobile",
                             "bank_card": "bank_card"}}},
        {"name": "do_home", "path": "/legacy/customer.do", "methods": ["GET"],
         "record": {"grade": None, "tier": None}},
        {"name": "do_update", "path": "/legacy/customer.do", "methods": ["POST"],
         "query": {"method": "update"}, "reads": "do_detail"},
        {"name": "do_remove", "path": "/legacy/customer.do", "methods": ["POST"],
         "query": {"method": "remove"}},
    ]  # fmt: skip
    dest.write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    return dest


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("dispatch") / "rego")


@pytest.fixture
async def crm_seen() -> list[str]:
    return []


@pytest.fixture
async def gw(tmp_path: Path, opa: OpaProcess, crm_seen: list[str]) -> AsyncIterator[Gateway]:
    runner, url = await serve(_upstream(crm_seen))
    catalog = _catalog(tmp_path / "catalog.yaml")
    g = await records_gateway(tmp_path, url, opa, **{"classification.catalog": str(catalog)})
    yield g
    await g.stop()
    await runner.cleanup()


def _comparable(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in ("date", "x-request-id")}


def _no_hidden_or_protected(text: str) -> None:
    leaked = [m for m in (*HIDDEN_MARKS, *PROTECTED) if m in text]
    assert not leaked, leaked


async def test_each_page_is_enforced_as_its_own_route(gw: Gateway) -> None:
    listed = await fetch(gw, "/legacy/customer.do?method=list")
    assert listed.status == 200, listed.raw[:300]
    rows = orjson.loads(listed.raw)["rows"]
    assert [r["id"] for r in rows] == [c["id"] for c in VISIBLE[:3]]  # record rules ran
    _no_hidden_or_protected(listed.text)
    event = await wait_event(gw, lambda c: c.get("records", {}).get("seen") == 6)
    assert event["records"]["dropped"] == 3, event

    detail = await fetch(gw, f"/legacy/customer.do?method=detail&id={VISIBLE[0]['id']}")
    assert detail.status == 200 and orjson.loads(detail.raw)["data"]["id"] == VISIBLE[0]["id"]
    _no_hidden_or_protected(detail.text)
    # A hidden customer's page reads exactly like one the CRM does not have: the CRM's
    # own "no such record" (catalog `absent:`), status, body and headers alike.
    hidden = await fetch(gw, f"/legacy/customer.do?id={HIDDEN[0]['id']}&method=detail")
    absent = await fetch(gw, "/legacy/customer.do?id=C999999&method=detail")
    assert hidden.status == absent.status == 200
    assert hidden.raw == absent.raw == '{"code":1001,"msg":"记录不存在"}'.encode()
    assert _comparable(hidden.headers) == _comparable(absent.headers)

    home = await fetch(gw, "/legacy/customer.do")
    assert home.status == 200 and "menu" in home.text


async def _event_of(gw: Gateway, reply: Reply) -> dict[str, Any]:
    rid = next(v for k, v in reply.headers.items() if k.lower() == "x-request-id")
    for _ in range(100):
        found = [e for e in audit_events(gw) if e["metadata"].get("correlation_uid") == rid]
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no audit event for {rid}")


async def test_the_export_page_is_audited_and_decided_as_an_export(gw: Gateway) -> None:
    reply = await fetch(gw, "/legacy/customer.do?method=export")
    assert reply.status == 200, reply.raw[:300]
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert len(rows) == 3  # the hidden customers' rows are dropped
    _no_hidden_or_protected(reply.text)
    event = await _event_of(gw, reply)
    assert event["api"]["operation"] == "export"
    assert event["http_request"]["url"]["path"] == "/legacy/customer.do?method=export"
    listed = await _event_of(gw, await fetch(gw, "/legacy/customer.do?method=list"))
    assert listed["api"]["operation"] != "export"


@pytest.mark.parametrize(
    "query",
    ["method=list&method=export", "method=export&method=list", "Method=export",
     "METHOD=detail&id=C000001", "method[]=export", "method%00=export", "method=EXPORT",
     "m%2565thod=export"],
)  # fmt: skip
async def test_a_parameter_the_crm_could_read_otherwise_never_reaches_it(
    gw: Gateway, crm_seen: list[str], query: str
) -> None:
    reply = await fetch(gw, f"/legacy/customer.do?{query}")
    assert reply.status == 400 and reply.error() == "ambiguous_dispatch", reply.raw[:300]
    assert crm_seen == [], crm_seen
    _no_hidden_or_protected(reply.text)


@pytest.mark.parametrize(
    ("query", "body"),
    [("method=list", "method=export"), ("", "method=export"), ("method=list", "Method=export")],
)
async def test_a_form_body_cannot_choose_the_page(
    gw: Gateway, crm_seen: list[str], query: str, body: str
) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/legacy/customer.do?{query}", data=body, headers={
            **headers("cs"), "Content-Type": "application/x-www-form-urlencoded",
            "X-Requested-With": "test"}) as r,
    ):  # fmt: skip
        raw = await r.read()
    assert r.status == 400 and b"ambiguous_dispatch" in raw, raw[:300]
    assert crm_seen == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", '{"method": "export"}'),
        ("application/json", '{"Method": "export", "note": "x"}'),
        ("application/json; charset=utf-8", '{"m%65thod": "export"}'),
        ("text/xml", "<req><method>export</method></req>"),
    ],
)
async def test_a_json_or_xml_body_cannot_choose_the_page_either(
    gw: Gateway, crm_seen: list[str], content_type: str, body: str
) -> None:
    """Laravel's input(), ASP.NET model binding and friends merge a JSON body's keys
    with the query: a dispatch parameter there is refused like a form field."""
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/legacy/customer.do?method=list", data=body.encode(), headers={
            **headers("cs"), "Content-Type": content_type,
            "X-Requested-With": "test"}) as r,
    ):  # fmt: skip
        raw = await r.read()
    assert r.status == 400 and b"ambiguous_dispatch" in raw, raw[:300]
    assert crm_seen == []


async def _post(
    gw: Gateway,
    query: str,
    body: bytes = b"note=called",
    content_type: str = "application/x-www-form-urlencoded",
) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/legacy/customer.do?{query}", data=body, headers={
            **headers("cs"), "Content-Type": content_type, "X-Requested-With": "test"}) as r,
    ):  # fmt: skip
        return r.status, await r.read()


@pytest.mark.parametrize(
    ("query", "body", "content_type"),
    [
        ("method=update&id={v}&id={h}", b"note=x", "application/x-www-form-urlencoded"),
        ("method=update&id={h}&id={v}", b"note=x", "application/x-www-form-urlencoded"),
        ("method=update&id={v}&ID={h}", b"note=x", "application/x-www-form-urlencoded"),
        ("method=update&id={v}&id%5B%5D={h}", b"note=x", "application/x-www-form-urlencoded"),
        ("method=update&id={v}", b"id={h}&note=x", "application/x-www-form-urlencoded"),
        ("method=update&id={v}", b'{"id": "{h}"}', "application/json"),
        ("method=update&id={v}", b"<r><Id>{h}</Id></r>", "text/xml"),
    ],
)
async def test_a_write_cannot_name_one_record_to_the_read_and_another_to_the_crm(
    gw: Gateway, crm_seen: list[str], query: str, body: bytes, content_type: str
) -> None:
    """The read checks the id the gateway sees; a repeated id (first or last wins,
    any case, `id[]`) or an id in a body the CRM merges with the query could make
    the CRM write another record. Refused, and the CRM never sees the write."""
    v, h = VISIBLE[0]["id"], HIDDEN[0]["id"]
    status, raw = await _post(
        gw, query.format(v=v, h=h), body.replace(b"{h}", h.encode()), content_type
    )
    assert status == 400 and orjson.loads(raw)["error"] == "ambiguous_dispatch", raw[:300]
    assert not any(q.startswith("POST") for q in crm_seen), crm_seen


async def test_a_write_on_a_dispatched_page_reads_its_record_first(
    gw: Gateway, crm_seen: list[str]
) -> None:
    """`?method=update&id=C1` is checked through the page the route `reads`
    (`?method=detail&id=C1`): a hidden customer's update never reaches the CRM."""
    visible, hidden = VISIBLE[0]["id"], HIDDEN[0]["id"]
    status, raw = await _post(gw, f"method=update&id={visible}")
    assert status == 200, raw[:300]
    assert crm_seen == [f"method=detail&id={visible}", f"POST method=update&id={visible}"]
    crm_seen.clear()
    status, raw = await _post(gw, f"method=update&id={hidden}")
    assert status == 403 and orjson.loads(raw)["error"] == "record_not_visible", raw[:300]
    assert crm_seen == [f"method=detail&id={hidden}"]  # read, never written
    crm_seen.clear()
    status, raw = await _post(gw, "method=update&id=C999999")  # no such record: refused
    assert status == 403 and orjson.loads(raw)["error"] == "record_not_visible", raw[:300]
    assert not any(q.startswith("POST") for q in crm_seen)


async def test_a_dispatched_write_naming_a_record_it_cannot_read_is_refused(
    gw: Gateway, crm_seen: list[str]
) -> None:
    """`do_remove` declares no page that reads its record: a query naming a record id
    (the catalog's id_pattern) cannot be checked against the record rules."""
    for target in (VISIBLE[0]["id"], HIDDEN[0]["id"]):
        status, raw = await _post(gw, f"method=remove&id={target}")
        assert status == 403 and orjson.loads(raw)["error"] == "record_not_visible", raw[:300]
    assert crm_seen == []


@pytest.mark.parametrize("cookie", ["method=export", "Method=export", "sid=1; method=export"])
async def test_a_cookie_cannot_choose_the_page(
    gw: Gateway, crm_seen: list[str], cookie: str
) -> None:
    """ASP.NET's Request["method"] falls back to cookies when the query has none."""
    for path in ("/legacy/customer.do", "/legacy/customer.do?method=list"):
        reply = await fetch(gw, path, Cookie=cookie)
        assert reply.status == 400 and reply.error() == "ambiguous_dispatch", reply.raw[:300]
    assert crm_seen == []
    assert (await fetch(gw, "/legacy/customer.do?method=list", Cookie="sid=1")).status == 200


async def test_an_undeclared_page_is_enforced_as_uncatalogued(gw: Gateway) -> None:
    reply = await fetch(gw, "/legacy/customer.do?method=exportAll")
    # the upstream answers its menu here; whatever an undeclared page holds is read
    # with the catalog-wide rules, and never as one of the declared pages
    assert reply.status in (200, 403), reply.raw[:300]
    _no_hidden_or_protected(reply.text)
