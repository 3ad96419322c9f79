"""Low-level grant lifecycle on a store: create, approve, list, revoke.

It trusts the ids and departments it is handed, so neither the CLI nor the
admin API calls it: they go through `gateway.access.requests.AccessService`,
which binds every action to an authenticated directory entry. This remains for
tests and migrations that seed grants directly.

A grant is created `pending` with the set of departments its chain requires
(chains.py). Each approval records who approved, for which department, and when;
when every required department has approved, the grant becomes `active` and the
policy starts seeing it (gateway.state.grants sends active, unexpired grants).
Break-glass grants need no approver: they are active at once, and the policy
still demands MFA and a justification header on each request.

Separation of duties: nobody approves a grant for themselves or one they
requested, and one person approves for one department only. Every change goes
through `GrantStore.update`, an atomic read-modify-write, so two approvers
racing cannot lose an approval.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.access.chains import BUSINESS, DEFAULT_CHAINS, NOT_GRANTABLE_LEVELS, ChainTable
from gateway.errors import ClientError, Forbidden, NotFound
from gateway.settings import Settings
from gateway.state.grants import Grant, GrantStore, is_active, open_grant_store

LEVELS = ("L0", "L1", "L2", "L3", "L4", "L5")


class GrantStateError(ClientError):
    """The grant is not in a state that allows this change (e.g. approving a revoked grant)."""

    status = 409
    code = "grant_state"


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_grant_level(grant_type: str, level: str | None) -> None:
    """Refuse a level that a grant of `grant_type` cannot carry (ClientError, or
    Forbidden for the levels no grant reaches)."""
    if grant_type == "level" and level is None:
        raise ClientError("a level grant needs a level")
    if level is not None:
        if level not in LEVELS:
            raise ClientError(f"unknown level {level!r}")
        if level in NOT_GRANTABLE_LEVELS:
            raise Forbidden(f"{level} cannot be granted through the gateway")


def listed(
    records: Iterable[Grant],
    state_of: Callable[[Mapping[str, Any], datetime], str],
    now: datetime,
    *,
    state: str | None = None,
    where: Mapping[str, str | None] | None = None,
    keep: Callable[[Grant], bool] = lambda _record: True,
) -> list[Grant]:
    """Records newest first, each with its displayed `state` at `now`: only those in
    `state` (when given), whose fields equal `where`'s values (None: any), and `keep`."""
    wanted = {k: v for k, v in (where or {}).items() if v is not None}
    out: list[Grant] = []
    for record in records:
        shown = state_of(record, now)
        if state is not None and shown != state:
            continue
        if any(record.get(k) != v for k, v in wanted.items()) or not keep(record):
            continue
        out.append({**record, "state": shown})
    out.sort(key=lambda r: str(r.get("created", "")), reverse=True)
    return out


def grant_status(grant: Mapping[str, Any], now: datetime) -> str:
    """pending | active | expired | revoked, as shown to people."""
    status = str(grant.get("status", ""))
    if status in ("active", "pending") and not is_active({**grant, "status": "active"}, now):
        return "expired"
    return status


class GrantService:
    def __init__(self, store: GrantStore, chains: ChainTable = DEFAULT_CHAINS) -> None:
        self.store = store
        self.chains = chains

    @classmethod
    async def open(cls, settings: Settings) -> GrantService:
        """The configured store (Redis or memory) with the chains of the policy's
        own data file (`<policy.rego_dir>/data.json`). Close with `close()`."""
        chains = ChainTable.load(settings.path(settings.policy.rego_dir) / "data.json")
        return cls(await open_grant_store(settings), chains)

    async def close(self) -> None:
        await self.store.close()

    async def create(
        self,
        *,
        subject_id: str,
        subject_department: str,
        grant_type: str,
        justification: str,
        requested_by: str,
        level: str | None = None,
        duration: timedelta | None = None,
        now: datetime | None = None,
    ) -> Grant:
        """A new pending grant (active at once when its chain needs no approver)."""
        now = now or datetime.now(UTC)
        if grant_type not in self.chains.types:
            known = ", ".join(sorted(self.chains.types))
            raise ClientError(f"unknown grant type {grant_type!r} (known: {known})")
        if not justification.strip():
            raise ClientError("a grant needs a justification")
        check_grant_level(grant_type, level)
        required = self.chains.required(grant_type, level)
        chain = self.chains.chain_name(required)
        longest = self.chains.max_duration(chain)
        duration = duration or longest
        if duration <= timedelta(0) or duration > longest:
            raise ClientError(f"chain {chain} grants last at most {longest}, asked {duration}")
        grant: Grant = {
            "id": "g-" + secrets.token_hex(6),
            "subject": subject_id,
            "department": subject_department,
            "type": grant_type,
            "level": level,
            "chain": chain,
            "required": sorted(required),
            "approvals": [],
            "approved_by": [],
            "justification": justification.strip(),
            "requested_by": requested_by,
            "created": _ts(now),
            "expires": _ts(now + duration),
            "status": "active" if not required else "pending",
        }
        if not required:
            grant["activated"] = _ts(now)
        stored = await self.store.update(grant["id"], lambda _: grant)
        assert stored is not None  # update with a non-None value returns it
        return stored

    async def approve(
        self,
        grant_id: str,
        *,
        approver_id: str,
        approver_department: str,
        now: datetime | None = None,
    ) -> Grant:
        """Record one department's approval; activate when the chain is complete."""
        when = now or datetime.now(UTC)

        def apply(current: Grant | None) -> Grant:
            if current is None:
                raise NotFound(f"no grant {grant_id}")
            if grant_status(current, when) != "pending":
                raise GrantStateError(
                    f"grant {grant_id} is {grant_status(current, when)}, not pending"
                )
            if approver_id in (current.get("subject"), current.get("requested_by")):
                raise Forbidden("nobody approves a grant for themselves or one they requested")
            approvals = list(current.get("approvals", []))
            if any(a.get("by") == approver_id for a in approvals):
                raise Forbidden(f"{approver_id} has already approved grant {grant_id}")
            required = set(current.get("required", []))
            role = approver_department
            if role not in required and BUSINESS in required:
                role = BUSINESS if approver_department == current.get("department") else role
            if role not in required:
                raise Forbidden(
                    f"department {approver_department!r} is not in chain {current.get('chain')}"
                )
            approved = set(current.get("approved_by", []))
            if role in approved:
                raise GrantStateError(f"{role} has already approved grant {grant_id}")
            approvals.append(
                {"by": approver_id, "department": approver_department, "at": _ts(when)}
            )
            approved.add(role)
            new = {**current, "approvals": approvals, "approved_by": sorted(approved)}
            if required <= approved:
                new["status"] = "active"
                new["activated"] = _ts(when)
            return new

        result = await self.store.update(grant_id, apply)
        assert result is not None
        return result

    async def revoke(
        self, grant_id: str, *, by: str, reason: str, now: datetime | None = None
    ) -> Grant:
        """Revoke a pending or active grant; the policy stops seeing it at once."""
        when = now or datetime.now(UTC)

        def apply(current: Grant | None) -> Grant:
            if current is None:
                raise NotFound(f"no grant {grant_id}")
            if current.get("status") == "revoked":
                raise GrantStateError(f"grant {grant_id} is already revoked")
            return {
                **current,
                "status": "revoked",
                "revoked_by": by,
                "revoked_at": _ts(when),
                "revoke_reason": reason,
            }

        result = await self.store.update(grant_id, apply)
        assert result is not None
        return result

    async def list(
        self,
        *,
        subject_id: str | None = None,
        status: str | None = None,
        now: datetime | None = None,
    ) -> list[Grant]:
        """Grants (newest first), each with its displayed `state`."""
        return listed(
            await self.store.all(),
            grant_status,
            now or datetime.now(UTC),
            state=status,
            where={"subject": subject_id},
        )
