"""The security team's console under test: a directory of requesters, approvers per
department, a security admin and an auditor; a real OPA on the repository's policy
(copied with all-day working hours and a C-chain grant type); the demo CRM; Redis.

Everyone authenticates with an API key (`X-API-Key`); the admin API is called with
the CSRF header. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gateway.stages import STAGES
from tests.conftest import ROOT, OpaProcess
from tests.integration.gateway_harness import Gateway, start_gateway, write_key_directory
from tests.integration.policy_http_harness import ALWAYS_OPEN, DemoCrm, audit_events, policy_copy

CSRF = {"X-Requested-With": "console-test"}

# name -> directory entry (id is u-<name>, API key key_of(name))
PEOPLE: dict[str, dict[str, Any]] = {
    # requesters
    "rm": {
        "roles": ["relationship_manager"],
        "department": "wealth",
        "clearance": "L3",
        "mfa": True,
    },
    "sales": {"roles": ["sales"], "department": "retail", "clearance": "L2"},
    "junior-rm": {
        "roles": ["relationship_manager"],
        "department": "wealth",
        "clearance": "L2",
        "mfa": True,
    },
    "rm-nomfa": {"roles": ["relationship_manager"], "department": "wealth", "clearance": "L3"},
    "itstaff": {"roles": ["data_admin"], "department": "it", "clearance": "L2", "mfa": True},
    "secstaff": {
        "roles": ["relationship_manager"],
        "department": "security",
        "clearance": "L3",
        "mfa": True,
    },
    # approvers: the directory puts each in a department
    "wealth-head": {
        "roles": ["relationship_manager", "department_head"],
        "department": "wealth",
        "clearance": "L3",
        "mfa": True,
    },
    "sec1": {"roles": ["approver"], "department": "security", "clearance": "L1"},
    "sec2": {"roles": ["approver"], "department": "security", "clearance": "L1"},
    "it1": {"roles": ["approver"], "department": "it", "clearance": "L1"},
    # console roles without data clearance
    "secadmin": {
        "roles": ["security_admin"],
        "department": "security",
        "clearance": "L1",
        "mfa": True,
    },
    "auditor": {"roles": ["auditor"], "department": "audit", "clearance": "L1"},
    "partner": {
        "roles": ["partner"],
        "department": "retail",
        "clearance": "L2",
        "partner": True,
        "partner_expires": "2099-01-01",
    },
}

BASE = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
# The security team's data for these tests: all-day hours, and a C-chain grant type
# (business department approval) that opens grade C records to other departments.
POLICY_CONFIG: dict[str, Any] = {
    "time_place": {**BASE["time_place"], "hours": ALWAYS_OPEN, "holidays": []},
    "approvals": {**BASE["approvals"], "grade_c": {"approvers": ["business"], "mfa": False}},
    "grades": {**BASE["grades"], "C": {**BASE["grades"]["C"], "grant_types": ["grade_c"]}},
}


def key_of(name: str) -> str:
    return f"console-key-{name}-0123456789"


def write_people(path: Path) -> Path:
    return write_key_directory(
        path, [({"id": f"u-{n}", **e}, f"k-{n}", key_of(n)) for n, e in PEOPLE.items()]
    )


def start_opa(dest: Path) -> OpaProcess:
    opa = OpaProcess([policy_copy(dest, ROOT, **POLICY_CONFIG)])
    opa.start()
    return opa


def console_overrides(
    tmp_path: Path, opa: OpaProcess, redis_url: str, **extra: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "identity.directory": str(write_people(tmp_path / "people.yaml")),
        "policy.engine": "external",
        "policy.url": opa.url,
        "policy.timeout": 2.0,
        "policy.rego_dir": str(opa.bundle_dirs[0]),
        "policy.output_schema": str(ROOT / "rego" / "schema" / "output.json"),
        "redis.url": redis_url,
    }
    values.update(extra)
    return values


async def start_console(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str, **extra: Any
) -> Gateway:
    return await start_gateway(
        tmp_path, crm.url, **console_overrides(tmp_path, opa, redis_url, **extra)
    )


def governance(gw: Gateway) -> Any:
    return gw.runner.app[STAGES].governance


async def api(
    gw: Gateway | str, who: str | None, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, Any]:
    """Call the admin API as `who` (None: no credential); (status, parsed JSON)."""
    base = gw if isinstance(gw, str) else gw.url
    sent = {**CSRF, **headers}
    if who is not None:
        sent["X-API-Key"] = key_of(who)
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, f"{base}/_gateway/admin{path}", json=body, headers=sent) as r,
    ):
        raw = await r.read()
        return r.status, orjson.loads(raw) if raw else None


async def fetch(gw: Gateway | str, path: str, who: str, **extra: str) -> tuple[int, str]:
    base = gw if isinstance(gw, str) else gw.url
    sent = {"X-API-Key": key_of(who), **{k.replace("_", "-"): v for k, v in extra.items()}}
    async with aiohttp.ClientSession() as s, s.get(base + path, headers=sent) as r:
        return r.status, await r.text()


async def customer(
    gw: Gateway | str, rec: dict[str, Any], who: str, **extra: str
) -> dict[str, Any]:
    status, body = await fetch(gw, f"/api/customers/{rec['id']}", who, **extra)
    assert status == 200, body
    out: dict[str, Any] = orjson.loads(body)["customer"]
    return out


async def until(check: Callable[[], Any], within: float = 5.0, what: str = "") -> float:
    """Seconds until `await check()` is truthy (polled every 20 ms)."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.02)


def pick(crm: DemoCrm, **want: Any) -> dict[str, Any]:
    for r in crm.records:
        if all(r[k] == v for k, v in want.items()):
            return r
    raise AssertionError(f"no demo record with {want}")


def governance_events(gw: Gateway) -> list[dict[str, Any]]:
    return [
        e["unmapped"]["governance"]
        for e in audit_events(gw)
        if "governance" in (e.get("unmapped") or {}) and e.get("class_uid") == 3005
    ]


def alerts(gw: Gateway) -> list[dict[str, Any]]:
    return [e for e in audit_events(gw) if e.get("class_uid") == 2004 and e.get("is_alert")]
