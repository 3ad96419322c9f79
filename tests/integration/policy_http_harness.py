"""Helpers for the HTTP-level policy tests: the demo CRM, a directory of staff
in every role the policy names, and a gateway on a real OPA in front of both.

Each subject authenticates with an API key (`X-API-Key`); the gateway derives the
network zone from the socket peer (127.0.0.1: "internal" unless a test moves
loopback into another zone through `guard.network_zones`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from gateway.demo.crm import create_demo_crm
from tests.conftest import free_port
from tests.integration.audit_load import stream_events
from tests.integration.gateway_harness import Gateway, start_gateway, write_key_directory

# Every subject the tests call as; "key" is the API key, the rest is the directory entry.
STAFF: dict[str, dict[str, Any]] = {
    "rm": {"roles": ["relationship_manager"], "department": "wealth", "clearance": "L3",
           "mfa": True},
    "rm_nomfa": {"roles": ["relationship_manager"], "department": "wealth",
                 "clearance": "L3"},
    "rm4": {"roles": ["relationship_manager"], "department": "wealth", "clearance": "L4",
            "mfa": True},
    "risk": {"roles": ["risk_officer"], "department": "risk", "clearance": "L4", "mfa": True},
    "risk_nomfa": {"roles": ["risk_officer"], "department": "risk", "clearance": "L4"},
    "sales": {"roles": ["sales"], "department": "retail", "clearance": "L2"},
    "cs": {"roles": ["customer_service"], "department": "customer_service",
           "clearance": "L2"},
    "mkt": {"roles": ["marketing"], "department": "marketing", "clearance": "L2"},
    "retention": {"roles": ["retention"], "department": "retail", "clearance": "L2"},
    "admin": {"roles": ["data_admin"], "department": "it", "clearance": "L4", "mfa": True},
    # An agency selling for the retail department: grade C is visible to its department.
    "partner-01": {"roles": ["partner"], "department": "retail", "clearance": "L2",
                "partner": True, "partner_expires": "2099-01-01",
                "allowed_networks": ["127.0.0.0/8"]},
    "partner_old": {"roles": ["partner"], "department": "partner", "clearance": "L2",
                    "partner": True, "partner_expires": "2020-01-01",
                    "allowed_networks": ["127.0.0.0/8"]},
    "partner_far": {"roles": ["partner"], "department": "partner", "clearance": "L2",
                    "partner": True, "partner_expires": "2099-01-01",
                    "allowed_networks": ["10.9.9.0/24"]},
    "departed": {"roles": ["relationship_manager"], "department": "wealth",
                 "clearance": "L3", "disabled": True},
}  # fmt: skip


def key_of(name: str) -> str:
    return f"key-{name}-0123456789"


def write_staff_directory(path: Path) -> Path:
    return write_key_directory(
        path, [({"id": f"u-{n}", **e}, f"k-{n}", key_of(n)) for n, e in STAFF.items()]
    )


@dataclass
class DemoCrm:
    runner: web.AppRunner
    url: str
    records: list[dict[str, Any]]  # every customer the CRM serves, as it serves them

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_demo_crm(count: int = 60) -> DemoCrm:
    runner = web.AppRunner(create_demo_crm(seed=7, count=count))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as s, s.get(f"{url}/api/customers?page_size={count}") as r:
        records = orjson.loads(await r.read())["results"]
    return DemoCrm(runner, url, records)


async def start_policy_gateway(tmp_path: Path, crm: DemoCrm, **overrides: Any) -> Gateway:
    """A gateway whose directory is STAFF; give `policy.engine`/`policy.url` or `rego_dir`."""
    directory = write_staff_directory(tmp_path / "staff.yaml")
    values: dict[str, Any] = {"identity.directory": str(directory), "policy.timeout": 2.0}
    values.update(overrides)
    return await start_gateway(tmp_path, crm.url, **values)


def headers(name: str, **extra: str) -> dict[str, str]:
    out = {"X-API-Key": key_of(name)}
    out.update({k.replace("_", "-"): v for k, v in extra.items()})
    return out


def audit_events(gw: Gateway) -> list[dict[str, Any]]:
    """The gateway's audit events: the Redis stream when it has Redis, else the file."""
    if gw.settings.redis.url:
        return stream_events(gw.settings.redis.url, gw.settings.audit.stream)
    path = gw.settings.path(gw.settings.audit.file)
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def policy_copy(dest: Path, root: Path, **config: Any) -> Path:
    """rego/*.rego and data.json copied to dest, with data.crm.config keys replaced."""
    dest.mkdir(parents=True)
    for f in (root / "rego").iterdir():
        if f.is_file() and (f.suffix == ".rego" or f.name == "data.json"):
            dest.joinpath(f.name).write_bytes(f.read_bytes())
    data = orjson.loads((dest / "data.json").read_bytes())
    data["crm"]["config"].update(config)
    (dest / "data.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return dest


# Working hours every day, all day, no holidays: tests must not depend on the clock.
ALWAYS_OPEN = {str(d): {"start": 0, "end": 24} for d in range(1, 8)}


async def wait_event(
    gw: Gateway, match: Callable[[dict[str, Any]], bool], within: float = 5.0
) -> dict[str, Any]:
    """The last audit event's `unmapped.crm` part that matches (events are written
    asynchronously, so poll the file)."""
    started = time.monotonic()
    while True:
        for event in reversed(audit_events(gw)):
            crm = event.get("unmapped", {}).get("crm", {})
            if crm.get("decision") and match(crm):
                return dict(crm)
        if time.monotonic() - started > within:
            raise AssertionError(f"no matching audit event within {within}s")
        await asyncio.sleep(0.05)
