"""Access requests, chains and separation of duties on the in-memory store
(the HTTP flows are in tests/integration/test_admin_access_api.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.access.chains import DEFAULT_CHAINS
from gateway.access.errors import (
    AlreadyApproved,
    NotAnApprover,
    OutOfOrder,
    OwnDepartment,
    RequestExpired,
    SelfApproval,
    WrongDepartment,
)
from gateway.access.grants import GrantStateError
from gateway.access.requests import AccessService, NewRequest, state_of
from gateway.access.roles import principal
from gateway.audit.governance import Change
from gateway.core.model import Subject
from gateway.errors import ClientError, Forbidden
from gateway.settings.access import AccessSettings, ChainSettings
from gateway.state.grants import MemoryGrantStore, in_scope

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
PEOPLE = {
    "alice": Subject("alice", roles=("relationship_manager",), department="wealth", clearance="L3"),
    "head": Subject("head", roles=("department_head",), department="wealth", clearance="L3"),
    "sec1": Subject("sec1", roles=("approver",), department="security", clearance="L1"),
    "sec2": Subject("sec2", roles=("approver",), department="security", clearance="L1"),
    "it1": Subject("it1", roles=("approver",), department="it", clearance="L1"),
    "admin": Subject("admin", roles=("security_admin",), department="security"),
    "audit": Subject("audit", roles=("auditor",), department="audit"),
}


def service(settings: AccessSettings | None = None) -> tuple[AccessService, list[Change]]:
    events: list[Change] = []
    svc = AccessService(
        MemoryGrantStore(),
        settings=settings or AccessSettings(),
        chains=DEFAULT_CHAINS,
        directory=PEOPLE.get,
        emit=events.append,
    )
    return svc, events


def who(name: str, settings: AccessSettings | None = None) -> Any:
    return principal(PEOPLE[name], settings or AccessSettings())


def grant(gtype: str = "grade_a", **kw: Any) -> NewRequest:
    return NewRequest(
        kind="grant",
        subject="alice",
        purpose="case 7",
        justification="complaint",
        grant_type=gtype,
        **kw,
    )


async def test_grade_a_is_ordered_security_then_it() -> None:
    svc, events = service()
    req = await svc.create(who("alice"), grant(), now=NOW)
    assert (req["chain"], req["steps"], req["status"]) == ("A", ["security", "it"], "pending")
    with pytest.raises(OutOfOrder):
        await svc.approve(req["id"], who("it1"), now=NOW)
    await svc.approve(req["id"], who("sec1"), now=NOW)
    done = await svc.approve(req["id"], who("it1"), now=NOW + timedelta(minutes=5))
    assert done["status"] == "active" and done["approved_by"] == ["it", "security"]
    # The duration starts at the last approval.
    assert done["expires"] == "2026-11-26T02:05:00Z"
    assert [e.action for e in events] == [
        "request_created",
        "request_approved",
        "request_approved",
        "grant_activated",
    ]
    assert events[1].actor.id == "sec1" and events[1].actor.department == "security"


@pytest.mark.parametrize(
    ("approver", "error"),
    [
        ("alice", SelfApproval),
        ("head", WrongDepartment),
        ("admin", NotAnApprover),
        ("audit", NotAnApprover),
    ],
)
async def test_refusals(approver: str, error: type[Exception]) -> None:
    svc, _ = service()
    req = await svc.create(who("alice"), grant("grade_b"), now=NOW)
    with pytest.raises(error):
        await svc.approve(req["id"], who(approver), now=NOW)
    assert (await svc.store.get(req["id"]) or {})["approvals"] == []


async def test_one_approval_per_person_and_per_step() -> None:
    chains = {
        **AccessSettings().chains,
        "B": ChainSettings(steps=("security",), approvals_per_step=2),
    }
    settings = AccessSettings(chains=chains)
    svc, _ = service(settings)
    req = await svc.create(who("alice"), grant("grade_b"), now=NOW)
    half = await svc.approve(req["id"], who("sec1", settings), now=NOW)
    assert half["status"] == "pending" and half["approved_by"] == []
    with pytest.raises(AlreadyApproved):
        await svc.approve(req["id"], who("sec1", settings), now=NOW)
    done = await svc.approve(req["id"], who("sec2", settings), now=NOW)
    assert done["status"] == "active"


async def test_own_department_rule() -> None:
    settings = AccessSettings(no_own_department_steps=("business",))
    svc, _ = service(settings)
    # A grade_c-like chain: the business step alone, with the rule on, cannot be filled.
    svc.chains = DEFAULT_CHAINS.__class__(
        types={
            **DEFAULT_CHAINS.types,
            "grade_c": DEFAULT_CHAINS.types["grade_b"].__class__(
                frozenset({"business"}), mfa=False
            ),
        },
    )
    req = await svc.create(who("alice", settings), grant("grade_c"), now=NOW)
    with pytest.raises(OwnDepartment):
        await svc.approve(req["id"], who("head", settings), now=NOW)


async def test_pending_request_expires() -> None:
    svc, events = service(AccessSettings(request_ttl=60))
    req = await svc.create(who("alice"), grant("grade_b"), now=NOW)
    later = NOW + timedelta(seconds=61)
    assert state_of(req, later) == "expired"
    with pytest.raises(RequestExpired):
        await svc.approve(req["id"], who("sec1"), now=later)
    assert (await svc.store.get(req["id"]) or {})["status"] == "expired"
    assert events[-1].action == "request_expired"
    with pytest.raises(GrantStateError):
        await svc.approve(req["id"], who("sec1"), now=later)


async def test_validation() -> None:
    svc, _ = service()
    with pytest.raises(ClientError):
        await svc.create(who("alice"), grant("grade_b", duration=timedelta(days=31)), now=NOW)
    with pytest.raises(Forbidden):
        await svc.create(who("alice"), grant("level", level="L5"), now=NOW)
    with pytest.raises(ClientError):
        await svc.create(who("alice"), grant("break_glass"), now=NOW)
    with pytest.raises(ClientError):
        await svc.create(who("alice"), grant("bulk_export", operations=("view",)), now=NOW)
    with pytest.raises(Forbidden):  # a requester asks for themselves only
        await svc.create(who("alice"), NewRequest("grant", "head", "p", "j", "grade_b"), now=NOW)
    export = await svc.create(who("alice"), grant("bulk_export"), now=NOW)
    assert export["single_use"] is True and export["scope"]["operations"] == ["export"]


async def test_new_entry_starts_at_default_clearance() -> None:
    svc, _ = service()
    new = NewRequest(
        "account",
        "u-new",
        "onboarding",
        "joins",
        entry={"department": "wealth", "roles": ["relationship_manager"], "clearance": "L4"},
    )
    with pytest.raises(ClientError):  # clearance is not a field a new entry may name
        await svc.create(who("head"), new, now=NOW)
    new = NewRequest(
        "account",
        "u-new",
        "onboarding",
        "joins",
        entry={"department": "wealth", "roles": ["relationship_manager"]},
    )
    req = await svc.create(who("head"), new, now=NOW)
    assert req["change"]["entry"]["clearance"] == "L1"
    assert req["steps"] == ["business", "security"]


def test_scope_filter() -> None:
    grants: list[dict[str, Any]] = [
        {"id": "a", "scope": {"operations": ["export"], "routes": []}},
        {"id": "b", "scope": {"operations": [], "routes": ["/api/customers/*"]}},
        {"id": "c"},
    ]
    assert [g["id"] for g in in_scope(grants, "view", "/api/customers/{id}")] == ["b", "c"]
    assert [g["id"] for g in in_scope(grants, "export", "/api/other")] == ["a", "c"]
