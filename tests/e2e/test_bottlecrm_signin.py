"""Signing in to BottleCRM through the gateway, with the routes of
config/bottlecrm-gateway.yaml.

BottleCRM signs users in by a one-time code (magic link): request a code, verify
it, get a JWT pair. That happens before the caller holds any token, so the example
configuration lets exactly those paths pass without a gateway credential and
unparsed. The test signs the sales user in through the gateway (the code read from
BottleCRM's own log, where its console mail backend writes it), uses the JWT through
the gateway (masked as for any caller of that clearance), refreshes and logs out;
and checks that the relaxed paths hold only for their exact spelling.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from yarl import URL

from tests.e2e.conftest import BottleCRM
from tests.e2e.gateway_bottlecrm import leaks, secret_values, start_bottlecrm_gateway
from tests.integration.gateway_harness import Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "sales@huaxin-wealth.example"
CODE = re.compile(rb"sign-in code: (\d{6})")


def _example_routes() -> list[dict[str, Any]]:
    raw = yaml.safe_load((ROOT / "config" / "bottlecrm-gateway.yaml").read_text("utf-8"))
    return list(raw["routes"])


@pytest.fixture
async def gw(tmp_path: Path, bottlecrm: BottleCRM) -> AsyncIterator[Gateway]:
    g = await start_bottlecrm_gateway(tmp_path, bottlecrm, engine="static",
                                      routes=_example_routes())  # fmt: skip
    yield g
    await g.stop()


async def _post(s: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with s.post(url, json=body) as r:
        return r.status, await r.json(content_type=None)


async def _code(crm: BottleCRM, before: int) -> str:
    for _ in range(100):
        found = CODE.findall(crm.log_path.read_bytes()[before:])
        if found:
            code: bytes = found[-1]
            return code.decode()
        await asyncio.sleep(0.1)
    raise AssertionError("BottleCRM wrote no sign-in code to its log")


async def test_sign_in_through_the_gateway(gw: Gateway, bottlecrm: BottleCRM) -> None:
    secrets = secret_values(bottlecrm)
    async with aiohttp.ClientSession() as s:
        before = bottlecrm.log_path.stat().st_size
        status, body = await _post(
            s, gw.url + "/api/auth/magic-link/request/", {"email": EMAIL, "delivery": "code"}
        )
        assert status == 200, body
        code = await _code(bottlecrm, before)
        status, pair = await _post(
            s, gw.url + "/api/auth/magic-link/verify-code/", {"email": EMAIL, "code": code}
        )
        assert status == 200, pair
        access, refresh = pair["access_token"], pair["refresh_token"]

        # the JWT works through the gateway, and the caller sees what its clearance allows
        async with s.get(gw.url + "/api/contacts/?limit=100",
                         headers={"Authorization": f"Bearer {access}"}) as r:  # fmt: skip
            text = await r.text()
            assert r.status == 200, text[:300]
        assert '"results"' in text
        assert leaks(text, secrets) == []

        status, rotated = await _post(s, gw.url + "/api/auth/refresh-token/", {"refresh": refresh})
        assert status == 200 and rotated.get("access"), rotated
        status, out = await _post(s, gw.url + "/api/auth/logout/", {"refresh": rotated["refresh"]})
        assert status in (200, 204, 205), out


@pytest.mark.parametrize(
    "path",
    [
        "/api/auth/magic-link/request/../../../contacts/",
        "/api/auth/magic-link/request/%2e%2e/%2e%2e/%2e%2e/contacts/",
        "/api/auth/Magic-Link/request/",
        "/api/auth/magic-link/request",
        "/api/auth/magic-link/request/;x=1",
        "/api/auth/magic-link/request/x/../../../../contacts/",
    ],
)
async def test_relaxed_sign_in_paths_hold_only_for_their_exact_spelling(
    gw: Gateway, bottlecrm: BottleCRM, path: str
) -> None:
    """Without a credential, a variant of a public sign-in path is never a way in:
    refused by the gateway (no credential, bad path) before BottleCRM, or BottleCRM's
    own refusal, never customer data."""
    secrets = secret_values(bottlecrm)
    async with (
        aiohttp.ClientSession() as s,
        s.get(URL(gw.url + path, encoded=True), allow_redirects=False) as r,
    ):
        text = await r.text()
    assert r.status in (400, 401, 403, 404, 405), (r.status, text[:300])
    assert leaks(text, secrets) == []
