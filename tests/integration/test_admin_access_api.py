"""Issue 17, items 1-4, 7, 8 through the admin API: real gateway, real OPA, real Redis,
the demo CRM. Every flow asserts what the caller then sees through the gateway
(concrete demo values in clear or not) and what the audit chain holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.audit.verify import verify_stream
from gateway.identity.publish import publish_directory
from gateway.settings import load_settings
from gateway.stages import STAGES
from tests.conftest import OpaProcess
from tests.integration.console_harness import (
    alerts,
    api,
    customer,
    fetch,
    governance_events,
    pick,
    start_console,
    start_opa,
    until,
    write_people,
)
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import DemoCrm, start_demo_crm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    server = start_opa(tmp_path_factory.mktemp("console") / "rego")
    yield server
    server.stop()


@pytest.fixture
async def crm() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=120)
    yield c
    await c.stop()


@pytest.fixture
async def gw(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> AsyncIterator[Gateway]:
    g = await start_console(tmp_path, crm, opa, redis_url)
    yield g
    await g.stop()


async def request_grant(gw: Gateway, who: str, grant_type: str, **extra: Any) -> dict[str, Any]:
    body = {
        "purpose": "complaint 2026-118",
        "justification": "customer complaint review",
        "scope": {"grant_type": grant_type, **extra.pop("scope", {})},
        **extra,
    }
    status, out = await api(gw, who, "POST", "/requests", body)
    assert status == 201, out
    assert out["status"] == "pending"
    return dict(out)


async def visible(gw: Gateway, rec: dict[str, Any], who: str, **extra: str) -> bool:
    status, body = await fetch(gw, f"/api/customers/{rec['id']}", who, **extra)
    return status == 200 and rec["name"] in body


# --- grade A: security then IT, in order ---------------------------------------------


async def test_grade_a_flow_with_every_refusal(gw: Gateway, crm: DemoCrm) -> None:
    a = pick(crm, grade="A", tier="一般")
    assert not await visible(gw, a, "rm", X_Purpose="advisory")
    req = await request_grant(gw, "rm", "grade_a", duration_hours=2)
    rid = req["id"]
    assert req["chain"] == "A" and req["steps"] == ["security", "it"] and req["ordered"] is True

    status, out = await api(gw, "rm", "POST", f"/requests/{rid}/approve", {})
    assert (status, out["error"]) == (403, "self_approval")
    status, out = await api(gw, "wealth-head", "POST", f"/requests/{rid}/approve", {})
    assert (status, out["error"]) == (403, "wrong_department")  # a manager of wealth "as security"
    status, out = await api(gw, "secadmin", "POST", f"/requests/{rid}/approve", {})
    assert (status, out["error"]) == (403, "not_an_approver")  # admin is not an approver
    status, out = await api(gw, "it1", "POST", f"/requests/{rid}/approve", {})
    assert (status, out["error"]) == (409, "out_of_order")  # IT waits for security
    status, out = await api(gw, "auditor", "POST", f"/requests/{rid}/approve", {})
    assert (status, out["error"]) == (403, "not_an_approver")  # auditors change nothing
    status, out = await api(gw, None, "POST", f"/requests/{rid}/approve", {})
    assert status == 401
    status, out = await api(gw, "sec1", "POST", f"/requests/{rid}/approve", {"comment": "ok"})
    assert status == 200 and out["status"] == "pending" and out["approved_by"] == ["security"]
    status, out = await api(gw, "sec2", "POST", f"/requests/{rid}/approve", {})
    assert (status, out["error"]) == (403, "wrong_department")  # security's step is done
    await asyncio.sleep(0.3)
    assert not await visible(gw, a, "rm", X_Purpose="advisory")  # half a chain shows nothing

    status, out = await api(gw, "it1", "POST", f"/requests/{rid}/approve", {})
    assert status == 200 and out["status"] == "active", out
    assert [(x["by"], x["step"]) for x in out["approvals"]] == [
        ("u-sec1", "security"),
        ("u-it1", "it"),
    ]
    await until(lambda: visible(gw, a, "rm", X_Purpose="advisory"), what="grade A visible")
    shown = await customer(gw, a, "rm", X_Purpose="advisory")
    assert shown["name"] == a["name"] and shown["mobile"] == a["mobile"]

    # Revoked: masked again at once, and the grant is listed as revoked.
    status, out = await api(gw, "sales", "POST", f"/grants/{rid}/revoke", {"reason": "x"})
    assert (status, out["error"]) == (403, "console_role_required")
    status, out = await api(
        gw, "secadmin", "POST", f"/grants/{rid}/revoke", {"reason": "case closed"}
    )
    assert status == 200 and out["status"] == "revoked"
    assert not await visible(gw, a, "rm", X_Purpose="advisory")
    status, listed = await api(gw, "auditor", "GET", "/grants?state=revoked")
    assert status == 200 and [g["id"] for g in listed["grants"]] == [rid]

    await until(lambda: _async(len(governance_events(gw)) >= 5), what="events flushed")
    actions = [(e["action"], e["actor"]) for e in governance_events(gw) if e["request_id"] == rid]
    assert actions == [
        ("request_created", "u-rm"),
        ("request_approved", "u-sec1"),
        ("request_approved", "u-it1"),
        ("grant_activated", "u-it1"),
        ("grant_revoked", "u-secadmin"),
    ]


async def _async(value: Any) -> Any:
    return value


# --- grade B: the security department -------------------------------------------------


async def test_grade_b_flow(gw: Gateway, crm: DemoCrm) -> None:
    b = pick(crm, grade="B", tier="一般")
    assert not await visible(gw, b, "sales")
    req = await request_grant(gw, "sales", "grade_b")
    assert req["chain"] == "B" and req["steps"] == ["security"]
    status, out = await api(gw, "it1", "POST", f"/requests/{req['id']}/approve", {})
    assert (status, out["error"]) == (403, "wrong_department")
    status, out = await api(gw, "sec2", "POST", f"/requests/{req['id']}/approve", {})
    assert status == 200 and out["status"] == "active"
    await until(lambda: visible(gw, b, "sales"), what="grade B visible")
    # Scope: the grant covers view only; an export never carries it to the policy.
    assert out["scope"]["operations"] == []


# --- grade C: the subject's own (business) department ----------------------------------


async def test_grade_c_flow_business_department(gw: Gateway, crm: DemoCrm) -> None:
    c = pick(crm, grade="C", tier="一般")
    assert not await visible(gw, c, "itstaff")  # grade C belongs to the business departments
    req = await request_grant(gw, "itstaff", "grade_c")
    assert req["chain"] == "C" and req["steps"] == ["business"]
    status, out = await api(gw, "wealth-head", "POST", f"/requests/{req['id']}/approve", {})
    assert (status, out["error"]) == (403, "wrong_department")  # not itstaff's department
    status, out = await api(gw, "it1", "POST", f"/requests/{req['id']}/approve", {})
    assert status == 200 and out["status"] == "active" and out["approved_by"] == ["business"]
    await until(lambda: visible(gw, c, "itstaff"), what="grade C visible")


# --- break-glass -----------------------------------------------------------------------


async def test_break_glass_flow_alert_review_and_revocation(gw: Gateway, crm: DemoCrm) -> None:
    rec = pick(crm, grade="C", tier="一般")
    before = await customer(gw, rec, "rm", X_Purpose="advisory", X_Justification="INC-7 fraud")
    assert before["bank_card"] != rec["bank_card"]  # L4 above the RM's L3

    status, out = await api(gw, "rm", "POST", "/break-glass", {"justification": "fraud"})
    assert (status, out["error"]) == (400, "bad_request")  # too short to be a reason
    status, out = await api(
        gw, "partner", "POST", "/break-glass", {"justification": "INC-7 card fraud in progress"}
    )
    assert status == 403
    status, out = await api(
        gw, "rm", "POST", "/break-glass", {"justification": "INC-7 card fraud in progress"}
    )
    assert status == 201, out
    grant, review = out["grant"], out["review"]
    assert grant["status"] == "active" and grant["type"] == "break_glass"
    assert review["status"] == "open" and review["grant_id"] == grant["id"]

    shown = await customer(gw, rec, "rm", X_Purpose="advisory", X_Justification="INC-7 fraud")
    assert shown["bank_card"] == rec["bank_card"]  # immediate
    status, body = await fetch(gw, f"/api/customers/{rec['id']}", "rm", X_Purpose="advisory")
    assert status == 403 and rec["bank_card"] not in body  # every request names its reason

    # The critical alert is in the chain (written durably before the API answered).
    found = [a for a in alerts(gw) if a["finding_info"]["types"] == ["break_glass"]]
    assert len(found) == 1 and found[0]["severity_id"] == 5

    # Open tasks are visible to the security department; others may not close them.
    status, listed = await api(gw, "sec1", "GET", "/reviews?state=open")
    assert status == 200 and [r["id"] for r in listed["reviews"]] == [review["id"]]
    assert listed["reviews"][0]["overdue"] is False
    status, out = await api(gw, "sales", "GET", "/reviews")
    assert status == 403
    status, out = await api(
        gw,
        "it1",
        "POST",
        f"/reviews/{review['id']}/close",
        {"outcome": "justified", "notes": "seen"},
    )
    assert (status, out["error"]) == (403, "console_role_required")
    status, out = await api(
        gw,
        "sec1",
        "POST",
        f"/reviews/{review['id']}/close",
        {"outcome": "unjustified", "notes": "no incident INC-7 on file"},
    )
    assert status == 200 and out["status"] == "closed" and out["closed_by"] == "u-sec1"
    again = await customer(gw, rec, "rm", X_Purpose="advisory", X_Justification="INC-7 fraud")
    assert again["bank_card"] != rec["bank_card"]  # unjustified: revoked at once
    status, out = await api(
        gw, "sec2", "POST", f"/reviews/{review['id']}/close", {"outcome": "justified", "notes": "x"}
    )
    assert (status, out["error"]) == (409, "grant_state")

    await until(lambda: _async(len(governance_events(gw)) >= 3), what="events flushed")
    actions = [e["action"] for e in governance_events(gw)]
    assert actions[:3] == ["break_glass_opened", "break_glass_reviewed", "grant_revoked"]


async def test_overdue_review_alerts_once(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    gw = await start_console(
        tmp_path,
        crm,
        opa,
        redis_url,
        **{"access.break_glass.review_within": 0.5, "access.review_check_interval": 0.1},
    )
    try:
        status, _ = await api(
            gw, "rm", "POST", "/break-glass", {"justification": "INC-8 account takeover"}
        )
        assert status == 201

        def overdue() -> list[dict[str, Any]]:
            return [a for a in alerts(gw) if a["finding_info"]["types"] == ["review_overdue"]]

        await until(lambda: _async(bool(overdue())), what="overdue alert")
        status, listed = await api(gw, "secadmin", "GET", "/reviews?state=open")
        assert listed["reviews"][0]["overdue"] is True
        await asyncio.sleep(2.5)  # many more checks (and past any short marker): still one alert
        assert len(overdue()) == 1
    finally:
        await gw.stop()


# --- expiry ------------------------------------------------------------------------------


async def test_expired_request_cannot_be_approved(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    gw = await start_console(tmp_path, crm, opa, redis_url, **{"access.request_ttl": 0.5})
    try:
        req = await request_grant(gw, "sales", "grade_b")
        await asyncio.sleep(0.7)
        status, out = await api(gw, "sec1", "POST", f"/requests/{req['id']}/approve", {})
        assert (status, out["error"]) == (409, "request_expired")
        status, out = await api(gw, "sales", "GET", f"/requests/{req['id']}")
        assert out["state"] == "expired" and out["status"] == "expired"
        status, out = await api(gw, "sec1", "POST", f"/requests/{req['id']}/approve", {})
        assert (status, out["error"]) == (409, "grant_state")
    finally:
        await gw.stop()


async def test_grant_not_honoured_after_expiry(gw: Gateway, crm: DemoCrm) -> None:
    b = pick(crm, grade="B", tier="一般")
    req = await request_grant(gw, "sales", "grade_b", duration_seconds=2)
    _, out = await api(gw, "sec1", "POST", f"/requests/{req['id']}/approve", {})
    assert out["status"] == "active"
    await until(lambda: visible(gw, b, "sales"), what="visible while current")
    await until(lambda: _async_not(visible(gw, b, "sales")), within=6, what="hidden after expiry")
    _, out = await api(gw, "sales", "GET", f"/requests/{req['id']}")
    assert out["state"] == "expired"


async def _async_not(value: Any) -> bool:
    return not await value


# --- separation of duties, roles from the directory -----------------------------------


async def test_own_department_steps_refused_when_configured(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    gw = await start_console(
        tmp_path, crm, opa, redis_url, **{"access.no_own_department_steps": ["security"]}
    )
    try:
        req = await request_grant(gw, "secstaff", "grade_b")
        status, out = await api(gw, "sec1", "POST", f"/requests/{req['id']}/approve", {})
        assert (status, out["error"]) == (403, "own_department")
        status, out = await api(gw, "sec1", "GET", f"/requests/{req['id']}")
        assert out["approvals"] == []
    finally:
        await gw.stop()


async def test_roles_come_from_the_directory_not_the_request(gw: Gateway, crm: DemoCrm) -> None:
    status, me = await api(
        gw, "sales", "GET", "/me", X_Roles="security_admin", X_Department="security"
    )
    assert status == 200 and me["console_roles"] == ["requester"] and me["department"] == "retail"
    status, out = await api(
        gw, "sales", "POST", "/lockdown", {"reason": "x"}, X_Roles="security_admin"
    )
    assert (status, out["error"]) == (403, "console_role_required")
    # Requesting for someone else needs an approver or security admin role.
    status, out = await api(
        gw,
        "sales",
        "POST",
        "/requests",
        {
            "subject": "u-rm",
            "purpose": "p",
            "justification": "j",
            "scope": {"grant_type": "grade_b"},
        },
    )
    assert (status, out["error"]) == (403, "console_role_required")
    # Unknown credentials are refused before anything else.
    status, out = await api(gw, None, "GET", "/requests", **{"X-API-Key": "nobody-at-all"})
    assert status == 401


async def test_security_admin_gains_no_data_clearance(gw: Gateway, crm: DemoCrm) -> None:
    rec = pick(crm, grade="C", tier="一般")
    status, me = await api(gw, "secadmin", "GET", "/me")
    assert "security_admin" in me["console_roles"] and me["clearance"] == "L1"
    status, body = await fetch(gw, f"/api/customers/{rec['id']}", "secadmin")
    assert rec["mobile"] not in body and rec["bank_card"] not in body
    # No endpoint creates an active grant for oneself but break-glass (alerted, reviewed).
    req = await request_grant(gw, "secadmin", "grade_b")
    status, out = await api(gw, "secadmin", "POST", f"/requests/{req['id']}/approve", {})
    assert (status, out["error"]) == (403, "self_approval")


async def test_auditor_reads_everything_and_changes_nothing(gw: Gateway, crm: DemoCrm) -> None:
    req = await request_grant(gw, "sales", "grade_b")
    status, listed = await api(gw, "auditor", "GET", "/requests")
    assert status == 200 and [r["id"] for r in listed["requests"]] == [req["id"]]
    for path, body in (
        (f"/requests/{req['id']}/reject", {"reason": "no"}),
        (f"/grants/{req['id']}/revoke", {"reason": "no"}),
        ("/lockdown", {"reason": "no"}),
    ):
        status, out = await api(gw, "auditor", "POST", path, body)
        assert status == 403, (path, out)
    status, listed = await api(gw, "it1", "GET", "/requests")
    assert listed["requests"] == []  # an approver sees only requests of their departments


async def test_withdraw_and_reject(gw: Gateway, crm: DemoCrm) -> None:
    one = await request_grant(gw, "sales", "grade_b")
    status, out = await api(gw, "sec1", "POST", f"/requests/{one['id']}/withdraw", {})
    assert status == 403  # only the requester withdraws
    status, out = await api(gw, "sales", "POST", f"/requests/{one['id']}/withdraw", {})
    assert status == 200 and out["status"] == "withdrawn"
    two = await request_grant(gw, "sales", "grade_b")
    status, out = await api(gw, "sec1", "POST", f"/requests/{two['id']}/reject", {})
    assert status == 400  # a reason is required
    status, out = await api(
        gw, "sec1", "POST", f"/requests/{two['id']}/reject", {"reason": "no ticket"}
    )
    assert status == 200 and out["status"] == "rejected" and out["rejected_by"] == "u-sec1"
    status, out = await api(gw, "sec2", "POST", f"/requests/{two['id']}/approve", {})
    assert (status, out["error"]) == (409, "grant_state")


async def test_unenforceable_scope_and_l5_are_refused(gw: Gateway) -> None:
    status, _ = await api(
        gw,
        "rm",
        "POST",
        "/requests",
        {
            "purpose": "p",
            "justification": "j",
            "scope": {"grant_type": "grade_a", "customers": ["C000001"]},
        },
    )
    assert status == 400  # a customer-id scope would be silently wider: refused
    status, _out = await api(
        gw,
        "rm",
        "POST",
        "/requests",
        {"purpose": "p", "justification": "j", "scope": {"grant_type": "level", "level": "L5"}},
    )
    assert status == 403
    status, _ = await api(
        gw,
        "rm",
        "POST",
        "/requests",
        {"purpose": "p", "justification": "j", "scope": {"grant_type": "break_glass"}},
    )
    assert status == 400


async def test_route_scope_limits_where_a_grant_applies(gw: Gateway, crm: DemoCrm) -> None:
    b = pick(crm, grade="B", tier="一般")
    req = await request_grant(gw, "sales", "grade_b", scope={"routes": ["/api/other/*"]})
    _, out = await api(gw, "sec1", "POST", f"/requests/{req['id']}/approve", {})
    assert out["status"] == "active"
    await asyncio.sleep(0.3)
    assert not await visible(gw, b, "sales")  # the grant is for other routes only


async def test_a_refused_export_uses_no_single_use_grant(gw: Gateway, crm: DemoCrm) -> None:
    req = await request_grant(gw, "rm-nomfa", "bulk_export")
    assert req["single_use"] is True and req["scope"]["operations"] == ["export"]
    _, out = await api(gw, "sec1", "POST", f"/requests/{req['id']}/approve", {})
    assert out["status"] == "active"
    status, body = await fetch(gw, "/api/customers/export.csv", "rm-nomfa")
    assert status == 401 and crm.records[0]["mobile"] not in body  # step-up first
    _, out = await api(gw, "rm-nomfa", "GET", f"/requests/{req['id']}")
    assert out["status"] == "active"  # still there for the export after MFA


# --- standing changes and new entries ---------------------------------------------------


async def test_clearance_change_and_new_entry_go_through_chains(gw: Gateway) -> None:
    status, out = await api(
        gw,
        "wealth-head",
        "POST",
        "/requests",
        {
            "kind": "clearance",
            "subject": "u-rm",
            "clearance": "L4",
            "purpose": "promotion",
            "justification": "promoted to senior RM",
        },
    )
    assert (
        status == 201
        and out["chain"] == "A"
        and out["change"]["clearance"] == {"from": "L3", "to": "L4"}
    )
    status, out = await api(gw, "sec1", "POST", f"/requests/{out['id']}/approve", {})
    status, out = await api(gw, "it1", "POST", f"/requests/{out['id']}/approve", {})
    assert status == 200 and out["status"] == "approved"
    assert out["applied"] is False  # a file directory: the security team applies it

    status, out = await api(
        gw,
        "wealth-head",
        "POST",
        "/requests",
        {
            "kind": "account",
            "subject": "u-new-rm",
            "purpose": "onboarding",
            "justification": "joins wealth",
            "entry": {
                "department": "wealth",
                "roles": ["relationship_manager"],
                "display_name": "New RM",
            },
        },
    )
    assert status == 201, out
    assert out["change"]["entry"]["clearance"] == "L1"  # the default, whatever is asked
    assert out["steps"] == ["business", "security"]
    status, _ = await api(
        gw,
        "wealth-head",
        "POST",
        "/requests",
        {
            "kind": "account",
            "subject": "u-new-2",
            "purpose": "x",
            "justification": "y",
            "entry": {"department": "wealth", "roles": ["security_admin"]},
        },
    )
    assert status == 403  # console roles are never handed out with a new entry
    status, out = await api(gw, "wealth-head", "POST", f"/requests/{out['id']}/approve", {})
    assert (status, out["error"]) == (403, "self_approval")  # the head requested it


async def test_standing_changes_apply_live_with_the_redis_directory(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    people = write_people(tmp_path / "shared-people.yaml")
    base = load_settings(None, environ={}).with_overrides(**{"redis.url": redis_url})
    await publish_directory(base, people)
    gw = await start_console(
        tmp_path, crm, opa, redis_url, **{"identity.directory_source": "redis"}
    )
    rec = pick(crm, grade="C", tier="一般")
    try:
        before = await customer(gw, rec, "junior-rm", X_Purpose="advisory")
        assert before["annual_income"] != rec["annual_income"]  # L3 above clearance L2
        # Promotion: L2 -> L3 is chain B, requested by the department head.
        status, out = await api(
            gw,
            "wealth-head",
            "POST",
            "/requests",
            {
                "kind": "clearance",
                "subject": "u-junior-rm",
                "clearance": "L3",
                "purpose": "promotion",
                "justification": "promoted to RM",
            },
        )
        assert status == 201 and out["chain"] == "B", out
        status, out = await api(gw, "sec1", "POST", f"/requests/{out['id']}/approve", {})
        assert out["status"] == "approved" and out["applied"] is True

        async def promoted() -> bool:
            shown = await customer(gw, rec, "junior-rm", X_Purpose="advisory")
            return bool(shown["annual_income"] == rec["annual_income"])

        await until(promoted, what="new clearance applied on the gateway")

        # A new entry (账号审核): business department, then security; starts at L1.
        status, out = await api(
            gw,
            "secadmin",
            "POST",
            "/requests",
            {
                "kind": "account",
                "subject": "u-new-rm",
                "purpose": "onboarding",
                "justification": "joins wealth",
                "entry": {
                    "department": "wealth",
                    "roles": ["relationship_manager"],
                    "display_name": "New RM",
                },
            },
        )
        assert status == 201, out
        status, out = await api(gw, "sec1", "POST", f"/requests/{out['id']}/approve", {})
        assert (status, out["error"]) == (409, "out_of_order")
        rid = (
            out["error"]
            and (await api(gw, "secadmin", "GET", "/requests?kind=account"))[1]["requests"][0]["id"]
        )
        await api(gw, "wealth-head", "POST", f"/requests/{rid}/approve", {})
        status, out = await api(gw, "sec1", "POST", f"/requests/{rid}/approve", {})
        assert out["status"] == "approved" and out["applied"] is True

        def lookup(subject_id: str) -> Any:
            entry = gw.runner.app[STAGES].identity.directory.current().get(subject_id)
            return entry.subject if entry is not None else None

        await until(lambda: _async(lookup("u-new-rm") is not None), what="entry published")
        assert lookup("u-new-rm").clearance == "L1"
        assert lookup("u-new-rm").roles == ("relationship_manager",)

        # A role change: chain B; console roles never change this way.
        status, out = await api(
            gw,
            "secadmin",
            "POST",
            "/requests",
            {
                "kind": "roles",
                "subject": "u-sales",
                "roles": ["sales", "approver"],
                "purpose": "p",
                "justification": "j",
            },
        )
        assert status == 403
        status, out = await api(
            gw,
            "secadmin",
            "POST",
            "/requests",
            {
                "kind": "roles",
                "subject": "u-sales",
                "roles": ["sales", "retention"],
                "purpose": "transfer",
                "justification": "joins retention desk",
            },
        )
        assert status == 201 and out["chain"] == "B"
        status, out = await api(gw, "sec2", "POST", f"/requests/{out['id']}/approve", {})
        assert out["applied"] is True
        await until(
            lambda: _async(set(lookup("u-sales").roles) == {"sales", "retention"}),
            what="roles published",
        )
    finally:
        await gw.stop()
    actions = [e["action"] for e in governance_events(gw)]
    assert {"clearance_applied", "account_created", "roles_applied"} <= set(actions)


# --- lockdown ------------------------------------------------------------------------------


async def test_lockdown_masks_everything_above_l1_and_blocks_exports(
    gw: Gateway, crm: DemoCrm
) -> None:
    rec = pick(crm, grade="C", tier="一般")
    assert (await customer(gw, rec, "rm", X_Purpose="advisory"))["mobile"] == rec["mobile"]
    status, _ = await fetch(gw, "/api/customers/export.csv?page_size=5", "rm")
    assert status in (200, 403)
    status, out = await api(gw, "sec1", "POST", "/lockdown", {"reason": "breach"})
    assert (status, out["error"]) == (403, "console_role_required")
    status, out = await api(gw, "secadmin", "POST", "/lockdown", {"reason": "suspected breach"})
    assert status == 200 and out["active"] is True and out["max_clear_level"] == "L1"
    # The same question a second ago was cached; lockdown applies on top of the cache.
    locked = await customer(gw, rec, "rm", X_Purpose="advisory")
    assert locked["mobile"] != rec["mobile"] and locked["annual_income"] != rec["annual_income"]
    status, body = await fetch(gw, "/api/customers/export.csv", "rm")
    assert status == 403 and rec["mobile"] not in body
    status, state = await api(gw, "auditor", "GET", "/lockdown")
    assert state["active"] is True and state["by"] == "u-secadmin"
    status, out = await api(gw, "secadmin", "POST", "/lockdown/lift", {"reason": "contained"})
    assert status == 200 and out["active"] is False
    assert (await customer(gw, rec, "rm", X_Purpose="advisory"))["mobile"] == rec["mobile"]
    await until(lambda: _async(len(alerts(gw)) >= 2), what="alerts flushed")
    kinds = [a["finding_info"]["types"][0] for a in alerts(gw)]
    assert kinds == ["lockdown", "lockdown"]
    actions = [e["action"] for e in governance_events(gw)]
    assert actions == ["lockdown_on", "lockdown_off"]


async def test_lockdown_is_enforced_on_report_only_routes(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    """A route in roll-out (report-only) passes what the policy would mask; a lockdown
    is an emergency profile and is enforced there too."""
    routes = [{"path": "/api/customers/*", "report_only": True}]
    g = await start_console(tmp_path, crm, opa, redis_url, routes=routes)
    try:
        rec = pick(crm, grade="C", tier="一般")
        shown = await customer(g, rec, "sales")
        assert shown["bank_card"] == rec["bank_card"]  # report-only: logged, not masked
        status, out = await api(g, "secadmin", "POST", "/lockdown", {"reason": "breach"})
        assert status == 200 and out["active"] is True
        locked = await customer(g, rec, "sales")
        assert locked["bank_card"] != rec["bank_card"] and locked["mobile"] != rec["mobile"]
    finally:
        await g.stop()


# --- OpenAPI and the audit chain -------------------------------------------------------------


async def test_openapi_document_served(gw: Gateway) -> None:
    status, doc = await api(gw, None, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    assert "/_gateway/admin/requests/{id}/approve" in doc["paths"]


async def test_audit_verify_passes_with_governance_events(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    gw = await start_console(tmp_path, crm, opa, redis_url)
    try:
        req = await request_grant(gw, "sales", "grade_b")
        await api(gw, "sec1", "POST", f"/requests/{req['id']}/approve", {})
        await api(gw, "sales", "POST", "/break-glass", {"justification": "INC-9 payment fraud"})
        await api(gw, "secadmin", "POST", "/lockdown", {"reason": "drill"})
        await api(gw, "secadmin", "POST", "/lockdown/lift", {"reason": "drill over"})
        await api(gw, "secadmin", "POST", f"/grants/{req['id']}/revoke", {"reason": "done"})
        b = pick(crm, grade="B", tier="一般")
        await fetch(gw, f"/api/customers/{b['id']}", "sales")
    finally:
        await gw.stop()
    report = await verify_stream(gw.settings, require_closed=True)
    assert report.exit_code == 0, report.summary()
    actions = [e["action"] for e in governance_events(gw)]
    for expected in (
        "request_created",
        "request_approved",
        "grant_activated",
        "break_glass_opened",
        "lockdown_on",
        "lockdown_off",
        "grant_revoked",
    ):
        assert expected in actions, actions
    raw = orjson.dumps(governance_events(gw)).decode()
    assert "u-sec1" in raw and "u-secadmin" in raw
