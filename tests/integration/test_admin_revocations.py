"""The admin revocation API: security admins revoke departed staff at once, audited."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from tests.integration.gateway_harness import start_gateway


async def _upstream(aiohttp_server: AiohttpServer) -> TestServer:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/plain/ok", ok)
    return await aiohttp_server(app)


async def test_revoke_list_restore_through_admin_api(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    upstream = await _upstream(aiohttp_server)
    gw = await start_gateway(tmp_path, str(upstream.make_url("")).rstrip("/"))
    csrf = {"X-Requested-With": "test"}  # state-changing admin calls carry it
    admin = {"Authorization": "Bearer test-admin-key", **csrf}
    sales = {"Authorization": "Bearer test-sales-key", **csrf}
    api = gw.url + "/_gateway/admin/revocations"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(gw.url + "/plain/ok", headers=sales) as r:
                assert r.status == 200
            async with s.post(api, headers=sales, json={"subject": "u-admin", "reason": "x"}) as r:
                assert r.status == 403  # not a security admin
            async with s.post(api, headers=admin, json={"subject": "u-sales-01"}) as r:
                assert r.status == 400  # a reason is required
            async with s.post(
                api, headers=admin, json={"subject": "u-sales-01", "reason": "离职 2026-11-27"}
            ) as r:
                assert r.status == 201
            async with s.get(gw.url + "/plain/ok", headers=sales) as r:
                assert r.status == 403
                assert (await r.json())["error"] == "subject_revoked"
            async with s.get(api, headers=admin) as r:
                listed = (await r.json())["revoked"]
                assert [e["subject"] for e in listed] == ["u-sales-01"]
                assert listed[0]["by"] == "u-admin"
            async with s.delete(api + "/u-sales-01", headers=admin) as r:
                assert r.status == 200
            async with s.get(gw.url + "/plain/ok", headers=sales) as r:
                assert r.status == 200
            async with s.delete(api + "/u-sales-01", headers=admin) as r:
                assert r.status == 404
    finally:
        await gw.stop()
    await asyncio.sleep(0)
    events = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    actions = [e["unmapped"]["governance"] for e in events if "governance" in e["unmapped"]]
    assert [(a["action"], a["actor"], a["subject"]) for a in actions] == [
        ("subject_revoked", "u-admin", "u-sales-01"),
        ("subject_restored", "u-admin", "u-sales-01"),
    ]


async def test_state_changes_need_the_csrf_header(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    upstream = await _upstream(aiohttp_server)
    gw = await start_gateway(tmp_path, str(upstream.make_url("")).rstrip("/"))
    api = gw.url + "/_gateway/admin/revocations"
    key = {"Authorization": "Bearer test-admin-key"}
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(api, headers=key, json={"subject": "u-sales-01", "reason": "x"}) as r:
                assert r.status == 403
                assert (await r.json())["error"] == "csrf_header_required"
            form = {**key, "X-Requested-With": "x"}
            async with s.post(
                api, headers=form, data={"subject": "u-sales-01", "reason": "x"}
            ) as r:
                assert r.status == 415  # a form post is not JSON
            async with s.get(api, headers=key) as r:
                assert r.status == 200 and (await r.json())["revoked"] == []
    finally:
        await gw.stop()


async def test_admin_api_refused_from_other_networks(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    upstream = await _upstream(aiohttp_server)
    gw = await start_gateway(
        tmp_path,
        str(upstream.make_url("")).rstrip("/"),
        **{"admin.allowed_networks": ["10.0.0.0/8"]},
    )
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(
                gw.url + "/_gateway/admin/revocations",
                headers={"Authorization": "Bearer test-admin-key"},
            ) as r:
                assert r.status == 403
    finally:
        await gw.stop()
