"""XML carries data outside elements and attributes: processing instructions, namespaces.

A SOAP or XML export put through the gateway had its element text, attributes,
comments and names scanned, but a processing instruction (`<?audit card
6217...?>`, `<?xml-stylesheet href="/x?card=..."?>`), a namespace URI
(`xmlns:c="urn:crm:customer:6217..."`) or a namespace prefix built from an
identifier went out as the CRM wrote it. Each is scanned now; a prefix is masked
alike where it is declared and where it is used, so the document stays
well-formed. Against a CRM whose catalog declares XML, as customer service (L2):
no bank card (L4) of a visible customer leaves in clear (masked inside a record,
the response refused when it sits outside every record).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest
import yaml
from aiohttp import web

from tests.conftest import ROOT, OpaProcess
from tests.integration.gateway_harness import Gateway, start_gateway
from tests.integration.policy_http_harness import write_staff_directory
from tests.security.hostile_upstream import VISIBLE
from tests.security.records_harness import fetch, opa_process, serve

pytestmark = pytest.mark.integration

C = VISIBLE[0]
CARD = C["bank_card"]
ROW = f'<row id="{C["id"]}" grade="{C["grade"]}" tier="{C["tier"]}"><name>{C["name"]}</name></row>'
DOCS = {
    "pi in the record": f'<export><row id="{C["id"]}" grade="{C["grade"]}" tier="{C["tier"]}">'
    f"<?audit card {CARD}?><name>{C['name']}</name></row></export>",
    "namespace on the record": f'<export><row xmlns:k="urn:card:{CARD}" id="{C["id"]}" '
    f'grade="{C["grade"]}" tier="{C["tier"]}"><name>{C["name"]}</name></row></export>',
    "pi in body": f"<export><?audit card {CARD}?>{ROW}</export>",
    "pi before root": f'<?xml-stylesheet href="/render?card={CARD}"?><export>{ROW}</export>',
    "namespace uri": f'<export xmlns:c="urn:crm:customer:{CARD}"><c:x>1</c:x>{ROW}</export>',
    "default namespace": f'<export xmlns="urn:card:{CARD}">{ROW}</export>',
    "namespace prefix": f'<export xmlns:k{CARD}="urn:x"><k{CARD}:x>1</k{CARD}:x>{ROW}</export>',
}


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("rego") / "open")


@pytest.fixture
async def gw(tmp_path: Path, opa: OpaProcess) -> AsyncIterator[Gateway]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=DOCS[request.match_info["case"]], content_type="application/xml")

    app = web.Application()
    app.router.add_get("/xml/{case}", page)
    runner, url = await serve(app)
    doc = yaml.safe_load((ROOT / "config" / "crm" / "demo.yaml").read_text(encoding="utf-8"))
    doc["response_types"] = ["application/json", "application/xml"]
    catalog = tmp_path / "xml-catalog.yaml"
    catalog.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    g = await start_gateway(
        tmp_path,
        url,
        **{
            "identity.directory": str(write_staff_directory(tmp_path / "staff.yaml")),
            "policy.engine": "external",
            "policy.url": opa.url,
            "classification.catalog": str(catalog),
        },
    )
    yield g
    await g.stop()
    await runner.cleanup()


@pytest.mark.parametrize("case", list(DOCS))
async def test_no_identifier_leaves_outside_elements(gw: Gateway, case: str) -> None:
    reply = await fetch(gw, f"/xml/{case}")
    assert CARD not in reply.text, (case, reply.text)
    if reply.status == 403:  # a card outside every record: the response is refused
        assert reply.error() in ("blocked_by_policy", "uncatalogued_route"), reply.text
        return
    assert reply.status == 200, reply.raw[:300]
    assert C["id"] in reply.text  # the visible record is there
    SafeET.fromstring(reply.raw)  # and the document is still well-formed
