"""Grant lifecycle and approval chains, on the in-memory store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.access.chains import BUSINESS, DEFAULT_CHAINS, ChainTable, TypeRule
from gateway.access.grants import GrantService, GrantStateError
from gateway.errors import ClientError, Forbidden, NotFound
from gateway.settings import Settings
from gateway.state.grants import MemoryGrantStore

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


@pytest.fixture
def svc() -> GrantService:
    return GrantService(MemoryGrantStore())


async def create(svc: GrantService, grant_type: str = "grade_a", **kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "subject_id": "alice", "subject_department": "wealth", "grant_type": grant_type,
        "justification": "ticket 42", "requested_by": "bob", "now": NOW,
    }  # fmt: skip
    args.update(kw)
    return await svc.create(**args)  # type: ignore[arg-type]


async def active(svc: GrantService, subject: str = "alice") -> list[str]:
    _, grants = await svc.store.active_for(subject, NOW + timedelta(minutes=1))
    return [str(g["id"]) for g in grants]


async def test_chain_a_needs_security_and_it(svc: GrantService) -> None:
    g = await create(svc)
    assert g["chain"] == "A"
    assert g["status"] == "pending"
    gid = str(g["id"])
    g = await svc.approve(gid, approver_id="sec1", approver_department="security", now=NOW)
    assert g["status"] == "pending"
    assert await active(svc) == []
    g = await svc.approve(gid, approver_id="it1", approver_department="it", now=NOW)
    assert g["status"] == "active"
    assert g["approved_by"] == ["it", "security"]
    assert await active(svc) == [gid]


async def test_chain_b_needs_security_only(svc: GrantService) -> None:
    g = await create(svc, "grade_b")
    assert g["chain"] == "B"
    g = await svc.approve(str(g["id"]), approver_id="s", approver_department="security", now=NOW)
    assert g["status"] == "active"


async def test_level_l4_grant_escalates_to_chain_a(svc: GrantService) -> None:
    assert (await create(svc, "level", level="L3"))["chain"] == "B"
    assert (await create(svc, "level", level="L4"))["chain"] == "A"


async def test_chain_c_is_the_grantees_own_department() -> None:
    table = ChainTable(types={"department": TypeRule(frozenset({BUSINESS}), mfa=False)})
    svc = GrantService(MemoryGrantStore(), table)
    g = await create(svc, "department")
    assert g["chain"] == "C"
    with pytest.raises(Forbidden):
        await svc.approve(str(g["id"]), approver_id="x", approver_department="sales", now=NOW)
    g = await svc.approve(str(g["id"]), approver_id="h", approver_department="wealth", now=NOW)
    assert g["status"] == "active"
    assert g["approved_by"] == [BUSINESS]


async def test_wrong_department_self_and_double_approval_refused(svc: GrantService) -> None:
    gid = str((await create(svc))["id"])
    with pytest.raises(Forbidden):
        await svc.approve(gid, approver_id="m", approver_department="marketing", now=NOW)
    with pytest.raises(Forbidden):
        await svc.approve(gid, approver_id="alice", approver_department="security", now=NOW)
    with pytest.raises(Forbidden):
        await svc.approve(gid, approver_id="bob", approver_department="security", now=NOW)
    await svc.approve(gid, approver_id="s1", approver_department="security", now=NOW)
    with pytest.raises(GrantStateError):
        await svc.approve(gid, approver_id="s2", approver_department="security", now=NOW)
    with pytest.raises(Forbidden):  # one person, one department
        await svc.approve(gid, approver_id="s1", approver_department="it", now=NOW)
    assert await active(svc) == []


async def test_break_glass_is_active_at_once_but_short(svc: GrantService) -> None:
    g = await create(svc, "break_glass")
    assert g["status"] == "active"
    assert g["chain"] == "none"
    with pytest.raises(ClientError):
        await create(svc, "break_glass", duration=timedelta(hours=5))


async def test_revoke_removes_from_active(svc: GrantService) -> None:
    g = await create(svc, "break_glass")
    gid = str(g["id"])
    assert await active(svc) == [gid]
    g = await svc.revoke(gid, by="sec", reason="done", now=NOW)
    assert g["status"] == "revoked"
    assert await active(svc) == []
    with pytest.raises(GrantStateError):
        await svc.revoke(gid, by="sec", reason="again", now=NOW)
    with pytest.raises(GrantStateError):
        await svc.approve(gid, approver_id="s", approver_department="security", now=NOW)


async def test_expired_grants_are_not_active_nor_approvable(svc: GrantService) -> None:
    g = await create(svc, "grade_b", duration=timedelta(hours=1))
    later = NOW + timedelta(hours=2)
    with pytest.raises(GrantStateError):
        await svc.approve(str(g["id"]), approver_id="s", approver_department="security", now=later)
    listed = await svc.list(now=later)
    assert [x["state"] for x in listed] == ["expired"]


async def test_input_validation(svc: GrantService) -> None:
    with pytest.raises(ClientError):
        await create(svc, "no_such_type")
    with pytest.raises(ClientError):
        await create(svc, justification="  ")
    with pytest.raises(ClientError):
        await create(svc, "level")
    with pytest.raises(Forbidden):
        await create(svc, "level", level="L5")
    with pytest.raises(ClientError):
        await create(svc, duration=timedelta(days=2))  # chain A: at most a day
    with pytest.raises(NotFound):
        await svc.approve("g-missing", approver_id="s", approver_department="security")


async def test_list_filters(svc: GrantService) -> None:
    await create(svc, "break_glass")
    await create(svc, "grade_b", subject_id="carol")
    assert {g["subject"] for g in await svc.list(now=NOW)} == {"alice", "carol"}
    assert [g["subject"] for g in await svc.list(subject_id="carol", now=NOW)] == ["carol"]
    assert [g["type"] for g in await svc.list(status="active", now=NOW)] == ["break_glass"]


def test_chains_read_from_the_policy_data_agree_with_defaults() -> None:
    data = json.loads((ROOT / "rego" / "data.json").read_text())
    table = ChainTable.from_policy_data(data)
    for grant_type in table.types:
        for level in (None, "L3", "L4"):
            assert table.required(grant_type, level) == DEFAULT_CHAINS.required(grant_type, level)
    assert ChainTable.load(ROOT / "no-such.json") is DEFAULT_CHAINS


async def test_open_from_settings_uses_the_policy_data_chains() -> None:
    svc = await GrantService.open(Settings())
    try:
        data = json.loads((ROOT / "rego" / "data.json").read_text())
        assert svc.chains == ChainTable.from_policy_data(data)
        g = await create(svc, "level", level="L4")
        assert g["chain"] == "A"
    finally:
        await svc.close()
