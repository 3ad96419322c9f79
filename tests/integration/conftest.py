"""Fixtures shared by the integration modules that put a gateway in front of a test CRM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.gateway_harness import Gateway, start_gateway


@pytest.fixture
async def gw(upstream: Any, tmp_path: Any) -> AsyncIterator[Gateway]:
    """The gateway in front of the module's `upstream` fixture (an aiohttp test server).

    A module that needs another gateway (a real OPA, the demo CRM) defines its own `gw`.
    """
    gateway = await start_gateway(tmp_path, str(upstream.make_url("")).rstrip("/"))
    yield gateway
    await gateway.stop()
