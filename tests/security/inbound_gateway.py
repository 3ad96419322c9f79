"""Fixtures shared by the inbound battery: a real OPA (module scope), the lenient
CRM of `lenient_upstream.py` and a gateway in front of it with the staff directory
of `tests/integration/policy_http_harness.py`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import ROOT, OpaProcess
from tests.integration.gateway_harness import Gateway, start_gateway
from tests.integration.policy_http_harness import (
    ALWAYS_OPEN,
    audit_events,
    key_of,
    policy_copy,
    write_staff_directory,
)
from tests.security.lenient_upstream import ROUTES, LenientCrm, start_lenient_crm

BASE = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
OPEN_HOURS = {**BASE["time_place"], "hours": ALWAYS_OPEN, "holidays": []}
StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    proc = OpaProcess([policy_copy(tmp_path_factory.mktemp("rego") / "open", ROOT,
                                   time_place=OPEN_HOURS)])  # fmt: skip
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
async def crm() -> AsyncIterator[LenientCrm]:
    c = await start_lenient_crm()
    yield c
    await c.stop()


@pytest.fixture
async def make_gateway(
    tmp_path: Path, crm: LenientCrm, opa: OpaProcess
) -> AsyncIterator[StartGateway]:
    started: list[Gateway] = []

    async def start(**overrides: Any) -> Gateway:
        values: dict[str, Any] = {
            "identity.directory": str(write_staff_directory(tmp_path / "staff.yaml")),
            "policy.engine": "external",
            "policy.url": opa.url,
            "policy.timeout": 2.0,
            "routes": ROUTES,
            "identity.upstream_identity_headers": {"X-Remote-User": "{id}"},
        }
        values.update(overrides)
        home = tmp_path / f"gw{len(started)}"
        home.mkdir()
        gw = await start_gateway(home, crm.url, **values)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        await gw.stop()


@pytest.fixture
async def gw(make_gateway: StartGateway) -> Gateway:
    return await make_gateway()


def api_key(who: str) -> dict[str, str]:
    return {"X-API-Key": key_of(who)}


async def event_for(gw: Gateway, request_id: str, within: float = 5.0) -> dict[str, Any]:
    """The last final audit event of one request (events are written asynchronously)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        for event in reversed(audit_events(gw)):
            meta = event.get("metadata", {})
            if meta.get("correlation_uid") == request_id and _final(event):
                return dict(event)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no audit event for request {request_id} within {within}s")
        await asyncio.sleep(0.05)


def _final(event: dict[str, Any]) -> bool:
    phase: str = event.get("unmapped", {}).get("crm", {}).get("phase", "final")
    return phase == "final"


def audited_route(event: dict[str, Any]) -> str:
    return str(event["http_request"]["url"]["path"])


def audited_reason(event: dict[str, Any]) -> str:
    return str(event["unmapped"]["crm"]["decision"].get("reason", ""))
