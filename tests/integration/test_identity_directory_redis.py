"""The directory shared through Redis: publish once, every replica follows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.errors import ConfigError
from gateway.identity.errors import SubjectRevoked
from gateway.identity.publish import publish_directory
from gateway.identity.service import Identity
from gateway.settings import Settings
from gateway.state.directory import DirectoryStore
from gateway.state.revocation import RevocationList

pytestmark = pytest.mark.integration

DEMO_DIRECTORY = Path(__file__).resolve().parents[2] / "config" / "directory.yaml"


class _Loopback:
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


def _request(key: str) -> web.Request:
    return make_mocked_request(
        "GET", "/api/customers", headers=CIMultiDict({"X-Api-Key": key}), transport=_Loopback()
    )


def _settings(redis_url: str) -> Settings:
    return Settings.model_validate(
        {"redis": {"url": redis_url}, "identity": {"directory_source": "redis"}}
    )


async def test_replicas_follow_the_published_directory(redis_url: str, tmp_path: Path) -> None:
    settings = _settings(redis_url)
    with pytest.raises(ConfigError, match="no directory is published"):
        await Identity.open(settings, await RevocationList.open(None))

    assert await publish_directory(settings, DEMO_DIRECTORY) == 1
    replicas = [await Identity.open(settings, await RevocationList.open(None)) for _ in range(2)]
    try:
        for identity in replicas:
            assert (await identity.authenticate(_request("demo-sales-key"))).id == "u-sales-01"

        data = yaml.safe_load(DEMO_DIRECTORY.read_text())
        for entry in data["subjects"]:
            if entry["id"] == "u-sales-01":
                entry["disabled"] = True
        edited = tmp_path / "directory.yaml"
        edited.write_text(yaml.safe_dump(data, allow_unicode=True))
        assert await publish_directory(settings, edited) == 2

        deadline = asyncio.get_running_loop().time() + 1.0
        for identity in replicas:
            while True:
                try:
                    await identity.authenticate(_request("demo-sales-key"))
                except SubjectRevoked:
                    break
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
        # Partner dates survive the JSON round trip as "through the end of that day".
        partner = replicas[0].directory.current().get("u-partner-01")
        assert partner is not None
        assert partner.subject.partner_expires is not None
        assert partner.subject.partner_expires.isoformat() == "2027-07-01T00:00:00+08:00"

        # A broken document pushed behind the CLI's back is not applied.
        rogue = await DirectoryStore.open(redis_url)
        await rogue.publish({"subjects": [{"id": "u-x", "clearance": "L9"}]})
        await rogue.close()
        await asyncio.sleep(0.2)
        for identity in replicas:
            assert identity.directory.current().get("u-admin") is not None
    finally:
        for identity in replicas:
            await identity.close()


async def test_publish_refuses_an_invalid_file(redis_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("subjects: [{id: u-1, clearance: L9}]\n")
    with pytest.raises(ConfigError):
        await publish_directory(_settings(redis_url), bad)
    with pytest.raises(ConfigError, match=r"redis\.url"):
        await publish_directory(Settings(), DEMO_DIRECTORY)
