"""Issue 17, item 9: `policy impact` on inputs a real gateway recorded.

Staff call the demo CRM through a gateway on a real (managed) OPA; the gateway's
decision-input log records what the policy was asked. A candidate policy that
lifts one mask (income in clear for customer service) and adds one block
(mobile blocks the response for sales) is then replayed against the running
policy on two further OPA processes, and the report must name exactly the
subjects, routes and categories affected, with request counts, and nothing else.
The log itself must hold no customer value.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
import pytest
import yaml

from gateway.policy.impact import policy_impact
from gateway.policy.input_log import FREE_TEXT, input_log_dir
from tests.conftest import ROOT
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import (
    ALWAYS_OPEN,
    DemoCrm,
    headers,
    policy_copy,
    start_demo_crm,
    start_policy_gateway,
)

pytestmark = pytest.mark.integration

BASE = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
OPEN_HOURS = {**BASE["time_place"], "hours": ALWAYS_OPEN, "holidays": []}
BY_ID = "/api/customers/{id}"

# The candidate: one mask lifted, one block added, nothing else.
FIELDS_RULE = (
    "fields := {category: _level_actions[i] | some category, i in _category_indexes} if allow"
)
CANDIDATE_FIELDS = """fields := object.union(
	{category: _level_actions[i] | some category, i in _category_indexes},
	_candidate_overrides,
) if allow"""
CANDIDATE_RULES = """
_candidate_overrides["income"] := {"action": "allow"} if "customer_service" in input.subject.roles

_candidate_overrides["mobile"] := {"action": "block"} if "sales" in input.subject.roles
"""


def candidate_policy(dest: Path) -> Path:
    rego = policy_copy(dest, ROOT, time_place=OPEN_HOURS, revision="candidate-1")
    levels = (rego / "levels.rego").read_text(encoding="utf-8")
    assert FIELDS_RULE in levels, "levels.rego changed shape: update the candidate"
    levels = levels.replace(FIELDS_RULE, CANDIDATE_FIELDS) + CANDIDATE_RULES
    (rego / "levels.rego").write_text(levels, encoding="utf-8")
    return rego


@pytest.fixture
async def crm() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=30)
    yield c
    await c.stop()


async def record_traffic(gw: Gateway, crm: DemoCrm) -> dict[str, int]:
    """Requests per (subject, route) that must all reach a policy decision."""
    # customers every caller here may see (a hidden one answers 404, like a missing one)
    plain = [r["id"] for r in crm.records if r["grade"] == "C" and r["tier"] == "一般"]
    one, two = plain[0], plain[1]
    calls: list[tuple[str, str, dict[str, str]]] = [
        ("cs", f"/api/customers/{one}", {}),
        ("cs", f"/api/customers/{two}", {}),
        # A purpose header carrying a customer's mobile: recorded as free text only
        # (and, being no purpose cs may declare, answered 403 after the decision).
        ("cs", f"/api/customers/{one}", {"X_Purpose": "callback 13812345678"}),
        ("cs", "/api/customers", {}),
        ("cs", "/api/customers?page=2", {}),
        ("sales", f"/api/customers/{one}", {}),
        ("sales", f"/api/customers/{two}", {}),
        # cs may look a customer up by name (the policy's lookup obligation); sales may
        # not search by a field masked on some records (VIP names), so sales reads by id
        ("cs", "/api/customers/search?q=" + crm.records[2]["name"], {}),
        ("rm", f"/api/customers/{one}", {"X_Purpose": "service"}),
        ("risk", "/api/customers", {}),
    ]
    async with aiohttp.ClientSession() as s:
        for name, path, extra in calls:
            async with s.get(gw.url + path, headers=headers(name, **extra)) as r:
                body = await r.read()
                if extra.get("X_Purpose", "service") != "service":
                    assert r.status == 403 and b"purpose_not_declarable" in body, body
                else:
                    assert r.status == 200, (name, path, r.status)
    return {"requests": len(calls)}


def expected_changes() -> list[dict[str, Any]]:
    return [
        {
            "kind": "newly_blocked",
            "category": "mobile",
            "level": "L2",
            "requests": 2,
            "subjects": {"u-sales": 2},
            "routes": {f"GET {BY_ID}": 2},
            "transitions": {"allow -> block": 2},
        },
        {
            "kind": "unmasked",
            "category": "income",
            "level": "L3",
            "requests": 6,
            "subjects": {"u-cs": 6},
            "routes": {f"GET {BY_ID}": 3, "GET /api/customers": 2, "GET /api/customers/search": 1},
            "transitions": {"mask:standard -> allow": 6},
        },
    ]


def strip_inputs(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k != "inputs"} for c in changes]


@pytest.mark.parametrize("store", ["file", "redis"])
async def test_candidate_lifting_one_mask_and_adding_one_block(
    tmp_path: Path, crm: DemoCrm, store: str, request: pytest.FixtureRequest
) -> None:
    running = policy_copy(tmp_path / "running", ROOT, time_place=OPEN_HOURS)
    overrides: dict[str, Any] = {"policy.engine": "managed", "policy.rego_dir": str(running)}
    if store == "redis":
        overrides["redis.url"] = request.getfixturevalue("redis_url")
    gw = await start_policy_gateway(tmp_path, crm, **overrides)
    try:
        traffic = await record_traffic(gw, crm)
    finally:
        await gw.stop()  # flushes the decision-input log
    settings = gw.settings

    report = await policy_impact(settings, candidate_policy(tmp_path / "cand"), timedelta(days=7))
    out = report.to_dict()

    assert out["requests"] == traffic["requests"]
    assert out["failed"] == 0 and out["skipped"] == 0 and out["other_taxonomy"] == 0
    assert out["candidate"]["revision"] == "candidate-1"
    assert out["running"]["revision"] == BASE["revision"]
    assert strip_inputs(out["changes"]) == expected_changes()
    assert out["changed_requests"] == 8
    assert out["subjects"] == {"u-cs": {"unmasked": 6}, "u-sales": {"newly_blocked": 2}}
    assert out["routes"] == {
        "GET /api/customers": {"unmasked": 2},
        "GET /api/customers/search": {"unmasked": 1},
        f"GET {BY_ID}": {"newly_blocked": 2, "unmasked": 3},
    }
    assert out["records"] == [] and out["obligations"] == []
    # The free-text purpose made a distinct input for cs (by id with and without it, the
    # list, the search); the reduced one merges nothing else.
    cs_income = next(c for c in report.changes.values() if c.category == "income")
    assert cs_income.inputs == 4

    text = report.text()
    assert "unmasked       income" in text and "newly_blocked  mobile" in text
    assert "u-rm" not in text and "u-risk" not in text

    # Value-free: no customer value and no raw purpose in what was stored.
    stored = _stored_bytes(settings, store)
    assert b"13812345678" not in stored
    assert FREE_TEXT.encode() in stored
    for record in crm.records[:3]:
        for value in (record["name"], record["mobile"], record["id_number"]):
            assert str(value).encode() not in stored, value

    # The same through the command line, as JSON.
    cli = await _run_cli(tmp_path, running, settings, tmp_path / "cand")
    assert strip_inputs(cli["changes"]) == expected_changes()


async def test_identical_candidate_reports_no_change(tmp_path: Path, crm: DemoCrm) -> None:
    running = policy_copy(tmp_path / "running", ROOT, time_place=OPEN_HOURS)
    gw = await start_policy_gateway(
        tmp_path, crm, **{"policy.engine": "managed", "policy.rego_dir": str(running)}
    )
    try:
        await record_traffic(gw, crm)
    finally:
        await gw.stop()
    same = policy_copy(tmp_path / "same", ROOT, time_place=OPEN_HOURS)
    report = await policy_impact(gw.settings, same, timedelta(hours=2))
    assert report.requests == 10 and report.changed_requests == 0
    assert report.changes == {} and "no decision changes" in report.text()


def _hash(client: Any, key: bytes) -> dict[bytes, bytes]:
    return cast("dict[bytes, bytes]", client.hgetall(key))


def _stored_bytes(settings: Any, store: str) -> bytes:
    if store == "file":
        files = sorted(input_log_dir(settings).glob("inputs-*.jsonl"))
        assert files, "the gateway wrote no decision-input log"
        return b"".join(f.read_bytes() for f in files)
    import redis as redis_sync

    client = redis_sync.Redis.from_url(settings.redis.url)
    try:
        keys = cast("list[bytes]", client.keys("crmgw:dinput*"))
        assert keys
        out = b""
        for k in keys:
            out += k + (
                orjson.dumps({a.decode(): b.decode() for a, b in _hash(client, k).items()})
                if client.type(k) == b"hash"
                else cast("bytes | None", client.get(k)) or b""
            )
        return out
    finally:
        client.close()


async def _run_cli(tmp_path: Path, running: Path, settings: Any, cand: Path) -> dict[str, Any]:
    config = tmp_path / "impact.yaml"
    doc: dict[str, Any] = {
        "policy": {"engine": "managed", "rego_dir": str(running)},
        "audit": {"file": str(settings.audit.file)},
    }
    if settings.redis.url:
        doc["redis"] = {"url": settings.redis.url}
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())",
        "policy", "impact", "--rego", str(cand),
        "--window", "1d", "--json", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = orjson.loads(out)
    return result
