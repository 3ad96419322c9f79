"""Facts written in prose, and cells guarded for spreadsheets, on an uncatalogued route.

A visible customer's notes carry the amounts and risk grades that leaked through a
low-clearance crawl of BottleCRM (`年收入约60万元`, `可投资资产约3400万元`,
`意向投资300万元`, `C2 稳健型`): all L3, above customer service's clear level, so
none may reach it in clear. A CSV export prefixes cells with Excel's formula guard
(`'+8613...`, `'6222...`); a guarded bank card under a key nobody catalogued is the
card it guards and is masked as one, and product copy next to it is left alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.conftest import OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.security.hostile_upstream import VISIBLE
from tests.security.records_harness import fetch, opa_process, records_gateway, serve

pytestmark = pytest.mark.integration

CUSTOMER = VISIBLE[0]
LEAKED = ["60万元", "3400万元", "300万元", "C2 稳健型"]
NOTES = "客户年收入约60万元，可投资资产约3400万元，意向投资300万元，风险测评C2 稳健型。"
PRODUCT = "安盈30天风险等级R2，起投金额5万元，售价199元的保温杯一个。"
GUARDED_CARD = "'" + CUSTOMER["bank_card"]


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("rego") / "open")


@pytest.fixture
async def gw(tmp_path: Path, opa: OpaProcess) -> AsyncIterator[Gateway]:
    async def page(request: web.Request) -> web.Response:
        row = dict(CUSTOMER, notes=NOTES, x_remark=PRODUCT, x_card=GUARDED_CARD)
        return web.json_response({"results": [row]})

    app = web.Application()
    app.router.add_get("/prose/notes", page)
    runner, url = await serve(app)
    g = await records_gateway(tmp_path, url, opa)
    yield g
    await g.stop()
    await runner.cleanup()


async def test_prose_amounts_and_risk_grades_never_reach_customer_service(gw: Gateway) -> None:
    reply = await fetch(gw, "/prose/notes")
    assert reply.status == 200, reply.raw[:300]
    text = reply.raw.decode()
    row = orjson.loads(reply.raw)["results"][0]
    assert [v for v in LEAKED if v in text] == []
    assert row["notes"].startswith("客户年收入约")  # the prose around the facts stays


async def test_a_formula_guarded_card_is_masked_and_product_copy_is_kept(gw: Gateway) -> None:
    reply = await fetch(gw, "/prose/notes")
    assert reply.status == 200, reply.raw[:300]
    row = orjson.loads(reply.raw)["results"][0]
    assert CUSTOMER["bank_card"] not in reply.raw.decode()
    assert CUSTOMER["bank_card"][-4:] not in row["x_card"][:-4]
    assert row["x_remark"] == PRODUCT
