"""Helpers for identity unit tests: real aiohttp Request objects with a chosen TCP peer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

ROOT = Path(__file__).resolve().parents[3]
DEMO_DIRECTORY = ROOT / "config" / "directory.yaml"


class PeerTransport:
    """Just enough of an asyncio transport to answer get_extra_info for peer and cert."""

    def __init__(self, peer: str, cert: dict[str, Any] | None = None) -> None:
        self._info: dict[str, Any] = {"peername": (peer, 40000), "peercert": cert}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._info.get(name, default)

    def is_closing(self) -> bool:
        return False


RequestFactory = Callable[..., web.Request]


@pytest.fixture
def make_request() -> RequestFactory:
    def build(
        path: str = "/api/customers",
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        peer: str = "127.0.0.1",
        cert: dict[str, Any] | None = None,
    ) -> web.Request:
        return make_mocked_request(
            method, path, headers=CIMultiDict(headers or {}), transport=PeerTransport(peer, cert)
        )

    return build
