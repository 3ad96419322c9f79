"""Issue 17, item 6: the periodic access review (权限周期性复核) on real Redis and OPA.

Staff call the demo CRM through a gateway (managed OPA, Redis for grants, the
revocation list and the audit stream). The review built from the directory,
the grants store and the audit stream must list every subject above the default
clearance and every active grant with their real last use, flag the unused ones,
refuse a sign-off by someone not entitled to sign (or incomplete, or
self-confirming), and, when signed, revoke what the reviewer revoked on the live
gateway, put one event in the audit chain (which still verifies) and export JSON
and CSV evidence whose digest the audit event repeats.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.access.grants import GrantService
from gateway.access.review import OPEN
from gateway.access.review_commands import audit_events, collect, sign
from gateway.audit.verify import verify_stream
from gateway.errors import ClientError, Forbidden
from gateway.identity.revocation import list_revoked
from tests.conftest import ROOT
from tests.integration.gateway_harness import Gateway, write_key_directory
from tests.integration.policy_http_harness import (
    ALWAYS_OPEN,
    STAFF,
    DemoCrm,
    key_of,
    policy_copy,
    start_demo_crm,
    start_policy_gateway,
)

pytestmark = pytest.mark.integration

BASE = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
OPEN_HOURS = {**BASE["time_place"], "hours": ALWAYS_OPEN, "holidays": []}

EXTRA: dict[str, dict[str, Any]] = {
    "sec": {"roles": ["security_admin"], "department": "security", "clearance": "L4",
            "mfa": True},
    "risk3": {"roles": ["risk_officer"], "department": "risk", "clearance": "L3", "mfa": True},
    "intern": {"roles": ["customer_service"], "department": "customer_service",
               "clearance": "L1"},
}  # fmt: skip
PEOPLE: dict[str, dict[str, Any]] = {**STAFF, **EXTRA}
ABOVE_DEFAULT = sorted(f"u-{n}" for n, e in PEOPLE.items() if e["clearance"] != "L1")


@pytest.fixture
async def crm() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=40)
    yield c
    await c.stop()


@pytest.fixture
async def gw(tmp_path: Path, crm: DemoCrm, redis_url: str) -> AsyncIterator[Gateway]:
    directory = write_key_directory(
        tmp_path / "people.yaml",
        [({"id": f"u-{n}", **e}, f"k-{n}", key_of(n)) for n, e in PEOPLE.items()],
    )
    running = policy_copy(tmp_path / "rego", ROOT, time_place=OPEN_HOURS)
    g = await start_policy_gateway(
        tmp_path,
        crm,
        **{
            "policy.engine": "managed",
            "policy.rego_dir": str(running),
            "redis.url": redis_url,
            "identity.directory": str(directory),
        },
    )
    yield g
    await g.stop()


def grade_c(crm: DemoCrm) -> str:
    return str(next(r["id"] for r in crm.records if r["grade"] == "C" and r["tier"] == "一般"))


async def get(gw: Gateway, who: str, path: str, purpose: str | None = None) -> int:
    hdrs = {"X-API-Key": key_of(who)}
    if purpose:
        hdrs["X-Purpose"] = purpose
    async with aiohttp.ClientSession() as s, s.get(gw.url + path, headers=hdrs) as r:
        await r.read()
        return r.status


async def grants(gw: Gateway) -> tuple[str, str]:
    """An L4 level grant for risk3 (used below) and a grade B grant for cs (never used)."""
    svc = await GrantService.open(gw.settings)
    try:
        level = await svc.create(
            subject_id="u-risk3", subject_department="risk", grant_type="level",
            justification="AML case 7", requested_by="u-risk3", level="L4",
        )  # fmt: skip
        await svc.approve(level["id"], approver_id="u-sec", approver_department="security")
        await svc.approve(level["id"], approver_id="u-admin", approver_department="it")
        grade_b = await svc.create(
            subject_id="u-cs", subject_department="customer_service", grant_type="grade_b",
            justification="complaint backlog", requested_by="u-cs",
        )  # fmt: skip
        await svc.approve(grade_b["id"], approver_id="u-sec", approver_department="security")
        for g in await svc.list():
            assert g["state"] == "active", g
        return str(level["id"]), str(grade_b["id"])
    finally:
        await svc.close()


async def wait_events(gw: Gateway, n: int) -> None:
    import asyncio

    for _ in range(100):
        events = await audit_events(gw.settings)
        if sum(1 for e in events if (e.get("unmapped") or {}).get("crm")) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("audit events did not arrive")


async def test_review_report_sign_and_export(gw: Gateway, crm: DemoCrm, tmp_path: Path) -> None:
    level_grant, grade_b_grant = await grants(gw)
    cid = grade_c(crm)
    assert await get(gw, "cs", f"/api/customers/{cid}") == 200
    assert await get(gw, "rm", f"/api/customers/{cid}", "service") == 200
    assert await get(gw, "risk3", f"/api/customers/{cid}", "risk_review") == 200
    await wait_events(gw, 3)

    review, _ = await collect(gw.settings, period="90d", default_clearance="L1")
    lines = {ln.line: ln for ln in review.lines}
    expected = {f"clearance:{s}" for s in ABOVE_DEFAULT}
    expected |= {f"grant:{level_grant}", f"grant:{grade_b_grant}"}
    assert set(lines) == expected
    assert "clearance:u-intern" not in lines  # at the default clearance: nothing to review

    used = {k: (v.uses_in_period, v.highest_level_used) for k, v in lines.items() if not v.unused}
    assert used == {
        "clearance:u-cs": (1, "L2"),
        "clearance:u-rm": (1, "L3"),
        "clearance:u-risk3": (1, "L3"),  # its L4 in clear came from the grant
        f"grant:{level_grant}": (1, "L4"),
    }
    assert lines["clearance:u-rm4"].unused and lines["clearance:u-rm4"].last_use is None
    assert lines[f"grant:{grade_b_grant}"].unused
    assert lines[f"grant:{level_grant}"].approved_by == ("it", "security")
    assert lines["clearance:u-cs"].last_use is not None
    report_csv = list(csv.DictReader(io.StringIO(review.to_csv())))
    assert len(report_csv) == len(expected)
    assert {r["line"] for r in report_csv if r["unused"] == "yes"} == set(expected) - set(used)

    decisions = [{"line": k, "decision": "confirm"} for k in sorted(expected)]
    for d in decisions:
        if d["line"] in (f"grant:{grade_b_grant}", "clearance:u-rm4"):
            d["decision"], d["note"] = "revoke", "unused in 90 days"
    mine = [d for d in decisions if d["line"] != "clearance:u-sec"]

    async def attempt(reviewer: str, rows: list[dict[str, str]]) -> Any:
        return await sign(
            gw.settings, reviewer=reviewer, decisions_raw=orjson.dumps(rows),
            decisions_name="d.json", out_dir=tmp_path / "evidence",
        )  # fmt: skip

    # Refusals: a made-up reviewer, one without a reviewer role, an incomplete review,
    # a reviewer confirming their own access. None of them changes anything.
    with pytest.raises(Forbidden, match="not in the directory"):
        await attempt("nobody-at-all", mine)
    with pytest.raises(Forbidden, match="reviewer roles"):
        await attempt("u-admin", decisions)
    with pytest.raises(ClientError, match="missing: clearance:u-sales"):
        await attempt("u-sec", [d for d in mine if d["line"] != "clearance:u-sales"])
    with pytest.raises(Forbidden, match="their own access: clearance:u-sec"):
        await attempt("u-sec", decisions)
    with pytest.raises(ClientError, match="not in the review"):
        await attempt("u-sec", [*mine, {"line": "grant:g-made-up", "decision": "confirm"}])
    assert await list_revoked(gw.settings) == []
    assert await get(gw, "rm4", f"/api/customers/{cid}") == 200

    signed, json_path, csv_path = await attempt("u-sec", mine)
    out = {ln.line: ln for ln in signed.lines}
    assert out["clearance:u-sec"].decision is None and out["clearance:u-sec"].outcome == OPEN
    assert out[f"grant:{grade_b_grant}"].outcome == "revoked"
    assert out["clearance:u-rm4"].outcome == "revoked"
    assert out["clearance:u-cs"].outcome == "kept"
    assert signed.summary()["revoked"] == 2 and signed.summary()["open"] == 1

    # The revocations took effect through the existing services, on the live gateway.
    assert [r.subject_id for r in await list_revoked(gw.settings)] == ["u-rm4"]
    assert await get(gw, "rm4", f"/api/customers/{cid}") in (401, 403)
    svc = await GrantService.open(gw.settings)
    try:
        revoked = await svc.store.get(grade_b_grant)
        kept = await svc.store.get(level_grant)
    finally:
        await svc.close()
    assert revoked is not None and revoked["status"] == "revoked"
    assert revoked["revoked_by"] == "u-sec" and signed.review_id in revoked["revoke_reason"]
    assert kept is not None and kept["status"] == "active"

    # Evidence: JSON whose canonical digest the audit event repeats, and CSV.
    doc = orjson.loads(json_path.read_bytes())
    assert doc["reviewer"] == "u-sec" and doc["audit_event_uid"] == signed.audit_event_uid
    body = {k: v for k, v in doc.items() if k not in ("sha256", "audit_event_uid")}
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert digest == doc["sha256"] == signed.digest
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert {r["line"]: r["decision"] for r in rows}[f"grant:{grade_b_grant}"] == "revoke"
    assert len(rows) == len(expected)

    await gw.stop()  # the gateway's chain closes with a seal
    events = await audit_events(gw.settings)
    governance = [e for e in events if (e.get("unmapped") or {}).get("governance")]
    assert len(governance) == 1
    g = governance[0]
    assert g["metadata"]["uid"] == signed.audit_event_uid
    assert g["actor"]["user"]["uid"] == "u-sec"
    assert g["unmapped"]["governance"]["evidence_sha256"] == digest
    assert {ln["line"]: ln["outcome"] for ln in g["unmapped"]["governance"]["lines"]} == {
        k: v.outcome for k, v in out.items()
    }
    report = await verify_stream(gw.settings, require_closed=True)
    assert report.ok, report.summary()
    assert len(report.chains) == 2  # the gateway's and the review command's
