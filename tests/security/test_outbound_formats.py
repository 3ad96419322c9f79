"""Issue 12, class 2: one record model in every format.

The hostile upstream serves the same customers as GBK, UTF-16 and BOM'd JSON,
JSONP, JSON labelled text/plain or text/html, NDJSON, CSV (BOM, GBK), TSV, a CSV
without the grade column, SOAP in GBK / UTF-16 / nested one level deeper than the
catalog declares, attribute-only XML, SSE and forms. In each, the records the
rules drop for `u-cs` vanish (and bulk caps and consent rules apply as in JSON);
where the rules cannot be checked the response is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.security.hostile_upstream import (
    CASES,
    HIDDEN_MARKS,
    PROTECTED,
    VISIBLE,
    Case,
    create_hostile_upstream,
)
from tests.security.records_harness import (
    check_reply,
    fetch,
    hostile_gateway,
    opa_process,
    records_gateway,
    serve,
)

pytestmark = pytest.mark.integration
VISIBLE_IDS = [c["id"] for c in VISIBLE]


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("rego") / "open")


@pytest.fixture
async def gw(tmp_path: Path, opa: OpaProcess) -> AsyncIterator[Gateway]:
    runner, url = await serve(create_hostile_upstream())
    g = await hostile_gateway(tmp_path, url, opa)
    yield g
    await g.stop()
    await runner.cleanup()


@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "formats"], ids=lambda c: c.name)
async def test_every_format_drops_the_same_records(gw: Gateway, case: Case) -> None:
    reply = await fetch(gw, f"/hostile/{case.name}")
    check_reply(reply, case.expect, HIDDEN_MARKS, PROTECTED, VISIBLE_IDS)


NOT_JSON = [
    c for c in CASES if c.kind == "formats" and not c.make()[1].startswith("application/json")
]


@pytest.mark.parametrize("case", NOT_JSON, ids=lambda c: c.name)
async def test_the_demo_catalog_refuses_every_type_it_does_not_declare(
    tmp_path: Path, opa: OpaProcess, case: Case
) -> None:
    """The demo catalog declares JSON catalog-wide: the same bodies in any other type are
    refused before a record rule runs (502, naming the type), never passed."""
    runner, url = await serve(create_hostile_upstream())
    g = await records_gateway(tmp_path, url, opa)
    try:
        reply = await fetch(g, f"/hostile/{case.name}")
    finally:
        await g.stop()
        await runner.cleanup()
    check_reply(reply, "undeclared", HIDDEN_MARKS, PROTECTED, VISIBLE_IDS)
