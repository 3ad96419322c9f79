"""`/_gateway/metrics` labels and reach (issue 12, metrics), against the demo CRM.

Route labels are catalog templates or `unmatched`: a raw path would put customer
ids and bearer tokens into every scrape and grow one series per path. Metrics
are served only to `admin.allowed_networks`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.gateway_harness import Gateway, start_gateway
from tests.integration.policy_http_harness import DemoCrm, start_demo_crm

LOW = {"Authorization": "Bearer test-partner-key"}


@pytest.fixture
async def crm() -> AsyncIterator[DemoCrm]:
    server = await start_demo_crm(count=20)
    yield server
    await server.stop()


@pytest.fixture
async def gw(tmp_path: Path, crm: DemoCrm) -> AsyncIterator[Gateway]:
    gateway = await start_gateway(tmp_path, crm.url)
    yield gateway
    await gateway.stop()


async def scrape(gw: Gateway) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/_gateway/metrics") as r:
        return r.status, await r.text()


def route_labels(text: str) -> set[str]:
    return set(re.findall(r'crmgw_requests_total\{[^}]*route="([^"]*)"', text))


async def test_raw_paths_with_ids_and_tokens_never_become_labels(gw: Gateway, crm: DemoCrm) -> None:
    token = secrets.token_urlsafe(32)
    record = crm.records[0]
    paths = [
        f"/api/customers/{record['id']}",  # catalogued: its template
        f"/api/customers/{record['id']}/gzip",  # served by the CRM, not catalogued
        f"/api/public/invoice/{token}/",  # a bearer token in the path
        f"/api/customers/search?mobile={record['mobile']}",
        f"/api/lookup/{record['id_number']}",
        *(f"/api/x/{secrets.token_hex(8)}" for _ in range(30)),
    ]
    async with aiohttp.ClientSession() as s:
        for path in paths:
            async with s.get(gw.url + path, headers=LOW) as r:
                await r.read()
    status, text = await scrape(gw)
    assert status == 200
    assert token not in text
    assert record["id"] not in text and record["id_number"] not in text
    assert record["mobile"] not in text
    labels = route_labels(text)
    catalog = {"/api/customers/{id}", "/api/customers/search", "unmatched"}
    assert labels <= catalog  # 35 distinct paths, at most three series
    assert "/api/customers/{id}" in labels and "unmatched" in labels


async def test_metrics_only_from_admin_networks(tmp_path: Path, crm: DemoCrm) -> None:
    gateway = await start_gateway(tmp_path, crm.url, **{"admin.allowed_networks": ["10.0.0.0/8"]})
    try:
        status, text = await scrape(gateway)
        assert status == 403
        assert "crmgw_" not in text
        async with (
            aiohttp.ClientSession() as s,
            s.get(gateway.url + "/_gateway/health") as r,
        ):
            assert r.status == 200  # liveness stays open
    finally:
        await gateway.stop()


async def test_metrics_served_to_loopback_by_default(gw: Gateway) -> None:
    status, text = await scrape(gw)
    assert status == 200
    assert "crmgw_requests_total" in text or "crmgw_request_seconds" in text
