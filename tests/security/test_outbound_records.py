"""Issue 12, class 1: record rules do not depend on route coverage.

A hostile upstream (hostile_upstream.py) serves the demo CRM's customers on paths
the catalog does not list, in envelopes it does not declare, under keys it does
not name, split, nested, as id lists and as notes. `u-cs` (customer_service, L2,
no grade A/B grant, neither 潜在 nor 流失 role) must never receive a hidden
customer's id, name or ID number, nor a visible customer's L4 value in clear;
what the record rules cannot be checked on is refused (403 uncatalogued_route,
audited, the reason naming the route).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import wait_event
from tests.security.hostile_upstream import (
    CASES,
    HIDDEN,
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


@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "records"], ids=lambda c: c.name)
async def test_hidden_records_never_reach_a_low_clearance_caller(gw: Gateway, case: Case) -> None:
    reply = await fetch(gw, f"/hostile/{case.name}")
    check_reply(reply, case.expect, HIDDEN_MARKS, PROTECTED, VISIBLE_IDS)


async def test_the_difference_is_the_record_rules(gw: Gateway) -> None:
    """Not vacuous: a retention officer (the 流失 tier's role, with its purpose) gets the
    grade C 流失 customers of the same uncatalogued body that u-cs does not."""
    churned = [c["id"] for c in HIDDEN if c["grade"] == "C" and c["tier"] == "流失"]
    assert churned, "the seed has grade C churned customers"
    retention = await fetch(gw, "/hostile/envelope", "retention", X_Purpose="retention")
    assert retention.status == 200
    assert all(i in retention.text for i in churned)
    low = (await fetch(gw, "/hostile/envelope")).text
    assert not any(i in low for i in churned)


async def test_refusal_names_the_route_and_is_audited(gw: Gateway) -> None:
    reply = await fetch(gw, "/hostile/split_record")
    assert reply.status == 403
    assert reply.error() == "uncatalogued_route"
    assert "/hostile/split_record" in reply.text
    event = await wait_event(gw, lambda crm: "uncatalogued_route" in str(crm))
    assert "/hostile/split_record" in str(event)  # the reason names the route there too


async def test_totals_do_not_count_dropped_records(gw: Gateway) -> None:
    reply = await fetch(gw, "/hostile/envelope")
    assert reply.status == 200
    assert '"total"' not in reply.text  # named in the catalog's `totals`: removed


async def test_every_staff_role_with_grade_rules_is_refused_alike(gw: Gateway) -> None:
    """Every role's decision has grade rules (A/B need grants): an id-only body is refused
    for a risk officer (L4) too, not only for the low-clearance caller."""
    reply = await fetch(gw, "/hostile/id_only_records", "risk", X_Purpose="risk_review")
    assert reply.status == 403
    assert reply.error() == "uncatalogued_route"
