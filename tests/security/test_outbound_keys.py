"""Issue 12, class 4 (keys): identifiers in object keys, XML names and CSV headers.

`{"13812345678": {...}}`, `{"110105...": ...}`, `<n6217...>` and a CSV column
named by a card number are data: scanned like values. Outside every record, a
key naming a customer cannot be checked against the record rules (refused);
inside a record it is masked by that record's table; a record dropped under a key
that names it goes with its key.
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
from tests.security.records_harness import check_reply, fetch, hostile_gateway, opa_process, serve

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


@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "keys"], ids=lambda c: c.name)
async def test_identifiers_in_keys_are_data(gw: Gateway, case: Case) -> None:
    reply = await fetch(gw, f"/hostile/{case.name}")
    check_reply(reply, case.expect, HIDDEN_MARKS, PROTECTED, VISIBLE_IDS)
