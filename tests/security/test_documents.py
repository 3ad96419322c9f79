"""Rendered documents (catalog `document: L3`): released whole or withheld whole.

A PDF cannot be masked. Without a declaration it is refused by type to everyone
(502 undeclared_response_type), which is also what an L4 caller got from
BottleCRM's invoice PDFs. A route that declares the level its document carries
releases the bytes unchanged to a caller who sees that level in clear, and whom no
record rule could hide the record from; everyone else gets 403 document_withheld,
never a byte of the document. The same route's JSON answers are masked as usual,
and a type the route does not declare stays refused. A real OPA decides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.conftest import ROOT, OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import wait_event
from tests.security.records_harness import fetch, opa_process, records_gateway, serve

pytestmark = pytest.mark.integration

PDF = (
    b"%PDF-1.7\n1 0 obj <</Type /Catalog>> endobj\n% \xe5\xbc\xa0\xe4\xb8\x89 13800138000\n%%EOF\n"
)
INVOICE = {"id": "INV-1", "client_name": "张三", "bank_card": "6222020200112233445"}


def _upstream() -> web.Application:
    async def pdf(request: web.Request) -> web.Response:
        kind = request.query.get("as", "pdf")
        if kind == "json":
            return web.json_response(INVOICE)
        if kind == "zip":
            return web.Response(body=b"PK\x03\x04zip", content_type="application/zip")
        if kind == "disguised":  # JSON labelled as a PDF: not a document
            return web.Response(body=b'{"bank_card": "6222020200112233445"}',
                                content_type="application/pdf")  # fmt: skip
        disposition = {"Content-Disposition": 'attachment; filename="INV-1.pdf"'}
        return web.Response(body=PDF, content_type="application/pdf", headers=disposition)

    app = web.Application()
    app.router.add_get("/api/invoices/{id}/pdf/", pdf)
    app.router.add_get("/api/invoices/{id}/plain-pdf/", pdf)
    return app


def _catalog(dest: Path, **document: Any) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "crm" / "demo.yaml").read_text("utf-8"))
    raw["routes"] += [
        {"name": "invoice_pdf", "path": "/api/invoices/{id}/pdf/", "methods": ["GET"],
         "response_types": ["application/pdf", "application/json"], "records": [""],
         "record": {"grade": None, "tier": None}, **document},
        {"name": "invoice_plain_pdf", "path": "/api/invoices/{id}/plain-pdf/",
         "methods": ["GET"], "response_types": ["application/pdf", "application/json"],
         "records": [""], "record": {"grade": None, "tier": None}},
    ]  # fmt: skip
    dest.write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    return dest


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("documents") / "rego")


@pytest.fixture
async def gw(tmp_path: Path, opa: OpaProcess) -> AsyncIterator[Gateway]:
    runner, url = await serve(_upstream())
    catalog = _catalog(tmp_path / "catalog.yaml", document="L3")
    g = await records_gateway(tmp_path, url, opa, **{"classification.catalog": str(catalog)})
    yield g
    await g.stop()
    await runner.cleanup()


async def test_a_caller_who_sees_the_level_gets_the_document_unchanged(gw: Gateway) -> None:
    reply = await fetch(gw, "/api/invoices/INV-1/pdf/", "risk", X_Purpose="risk_review")
    assert reply.status == 200, reply.raw[:300]
    assert reply.raw == PDF
    assert reply.headers["Content-Type"].startswith("application/pdf")
    # The audit event says a document of that level left in clear.
    crm = await wait_event(
        gw, lambda c: "document" in c.get("fields", {}).get("clear", {}).get("L3", {})
    )
    assert crm["status"] == 200 and crm["purpose"] == "risk_review", crm


@pytest.mark.parametrize(
    ("who", "purpose"),
    [("cs", "service"), ("sales", "sales"), ("mkt", "marketing"), ("partner-01", "service"),
     ("risk", None)],  # without a purpose the L4 risk officer sees L3 masked
)  # fmt: skip
async def test_everyone_else_is_refused_without_a_byte_of_it(
    gw: Gateway, who: str, purpose: str | None
) -> None:
    extra = {"X_Purpose": purpose} if purpose else {}
    reply = await fetch(gw, "/api/invoices/INV-1/pdf/", who, **extra)
    assert reply.status == 403 and reply.error() == "document_withheld", reply.raw[:300]
    assert b"%PDF" not in reply.raw and "13800138000" not in reply.text


async def test_the_same_route_masks_json_and_refuses_other_types(gw: Gateway) -> None:
    reply = await fetch(gw, "/api/invoices/INV-1/pdf/?as=json", "cs")
    assert reply.status == 200 and "6222020200112233445" not in reply.text, reply.text
    for who in ("risk", "cs"):
        zipped = await fetch(gw, "/api/invoices/INV-1/pdf/?as=zip", who)
        assert zipped.status == 502 and zipped.error() == "undeclared_response_type"


async def test_text_under_a_document_label_is_refused_even_to_a_cleared_caller(
    gw: Gateway,
) -> None:
    reply = await fetch(gw, "/api/invoices/INV-1/pdf/?as=disguised", "risk", X_Purpose="aml")
    assert reply.status == 502 and reply.error() == "response_rewrite_failed", reply.raw
    assert b"6222020200112233445" not in reply.raw


async def test_an_undeclared_document_is_refused_to_everyone(gw: Gateway) -> None:
    for who in ("risk", "cs"):
        reply = await fetch(gw, "/api/invoices/INV-1/plain-pdf/", who)
        assert reply.status == 502 and reply.error() == "response_rewrite_failed", reply.raw
        assert b"%PDF" not in reply.raw


def test_a_document_level_must_be_a_level(tmp_path: Path) -> None:
    from gateway.core.catalog import Catalog

    with pytest.raises(ValueError, match="document: must be the level"):
        Catalog.load(_catalog(tmp_path / "bad.yaml", document="secret"))
    unknown = Catalog.load(_catalog(tmp_path / "unknown.yaml", document="L9"))
    assert unknown.problems_with({"name"} | unknown.categories(), frozenset({"L1", "L3"})) == [
        "routes.invoice_pdf.document: unknown level 'L9'"
    ]
