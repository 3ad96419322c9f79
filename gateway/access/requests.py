"""Access requests and their approval chains: the one path to more access.

A request asks for (a) a grant of a policy type (`grade_a`, `grade_b`,
`level`, `bulk_export`, `oncall`, ... from rego/data.json) with a scope
(operations, route set, level) and a duration, (b) a standing clearance
change, (c) a standing data-role change, or (d) a new directory entry
(账号审核). It carries who requests it, for whom, the purpose and a justification.

Each request gets a chain (settings `access.chains`; a grant type's departments
are the policy's own, so the gateway never activates a grant the policy would
ignore): ordered steps, each a department (`business` = the subject's own) and
a number of distinct approvers. Approvers are authenticated principals whose
department and roles come from the directory. Separation of duties:

- nobody approves a request they made or one for themselves (self_approval);
- an approver fills a step of their own department only (wrong_department),
  in order when the chain is ordered (out_of_order);
- steps listed in `access.no_own_department_steps` refuse approvers from the
  subject's department (own_department);
- one person gives one approval per request (already_approved).

States: pending -> active (grant) | approved (clearance, account) | rejected |
withdrawn | expired (pending past `access.request_ttl`); an active grant later
becomes revoked, consumed (single-use export) or expired (past `expires`).
A grant's duration starts when its last approval lands. Every transition is a
governance event in the audit chain (gateway.audit.governance).

A request and its grant are one record in the shared grants store: the policy
only ever sees records whose status is `active` and that have not expired.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.access.chains import BUSINESS, ChainTable
from gateway.access.errors import (
    AlreadyApproved,
    ConsoleRoleRequired,
    NotAnApprover,
    OutOfOrder,
    OwnDepartment,
    RequestExpired,
    SelfApproval,
    WrongDepartment,
)
from gateway.access.grants import LEVELS, GrantStateError, check_grant_level, listed
from gateway.access.roles import APPROVER, AUDITOR, REQUESTER, SECURITY_ADMIN, Principal
from gateway.audit.governance import SYSTEM, Change
from gateway.errors import ClientError, Forbidden, NotFound
from gateway.settings.access import AccessSettings, ChainSettings
from gateway.state.grants import Grant, GrantStore, parse_instant

OPERATIONS = ("view", "modify", "delete", "export", "reveal")
KINDS = ("grant", "clearance", "roles", "account")
Emit = Callable[[Change], None]
# Applies an approved standing change to the directory; True when applied live.
ApplyChange = Callable[[Grant], Awaitable[bool]]


def ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def state_of(record: Mapping[str, Any], now: datetime) -> str:
    """The state people see: a pending request or active grant past its deadline is expired."""
    status = str(record.get("status", ""))
    if status in ("pending", "active"):
        until = parse_instant(record.get("expires"))
        if until is None or now >= until:
            return "expired"
    return status


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    steps: tuple[str, ...]
    ordered: bool
    per_step: int


@dataclass(frozen=True, slots=True)
class NewRequest:
    """What a requester asks for (validated by `AccessService.create`)."""

    kind: str
    subject: str
    purpose: str
    justification: str
    grant_type: str | None = None
    level: str | None = None
    operations: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    duration: timedelta | None = None
    clearance: str | None = None  # kind clearance: the new standing level
    roles: tuple[str, ...] | None = None  # kind roles: the new data roles
    entry: Mapping[str, Any] | None = None  # kind account: the new directory entry
    single_use: bool = False


class AccessService:
    def __init__(
        self,
        store: GrantStore,
        *,
        settings: AccessSettings,
        chains: ChainTable,
        directory: Callable[[str], Any],
        emit: Emit,
        apply_change: ApplyChange | None = None,
    ) -> None:
        """`directory(id)` returns the directory Subject for an id, or None."""
        self.store = store
        self.settings = settings
        self.chains = chains
        self._directory = directory
        self._emit = emit
        self._apply = apply_change

    # -- chains ---------------------------------------------------------------

    def _named(self, name: str, steps: frozenset[str] | None = None) -> Chain:
        cfg: ChainSettings | None = self.settings.chains.get(name)
        if cfg is not None and (steps is None or frozenset(cfg.steps) == steps):
            return Chain(name, cfg.steps, cfg.ordered, cfg.approvals_per_step)
        assert steps is not None
        return Chain(name, tuple(sorted(steps)), False, 1)

    def chain_for_grant(self, grant_type: str, level: str | None) -> Chain:
        required = self.chains.required(grant_type, level)
        for name, cfg in self.settings.chains.items():
            if frozenset(cfg.steps) == required:
                return self._named(name, required)
        return self._named(self.chains.chain_name(required), required)

    def chain_for_clearance(self, level: str) -> Chain:
        name = self.settings.clearance_chains.get(level)
        if name is None:
            raise Forbidden(f"clearance {level} is not grantable through the console")
        return self._named(name)

    def chain_for_account(self) -> Chain:
        cfg = self.settings.account_chain
        return Chain("account", cfg.steps, cfg.ordered, cfg.approvals_per_step)

    # -- create -----------------------------------------------------------------

    async def create(self, who: Principal, new: NewRequest, now: datetime | None = None) -> Grant:
        now = now or datetime.now(UTC)
        if not who.has(REQUESTER):
            raise ConsoleRoleRequired("only active staff in the directory may request access")
        if new.kind not in KINDS:
            raise ClientError(f"kind must be one of {', '.join(KINDS)}")
        purpose, why = new.purpose.strip(), new.justification.strip()
        if not purpose or not why:
            raise ClientError("a request needs a purpose and a justification")
        for_other = new.subject != who.id
        if for_other and not (who.has(APPROVER) or who.has(SECURITY_ADMIN)):
            raise ConsoleRoleRequired("only approvers and security admins request for others")
        record: Grant = {
            "id": "r-" + secrets.token_hex(8),
            "kind": new.kind,
            "subject": new.subject,
            "purpose": purpose[:256],
            "justification": why[:1024],
            "requested_by": who.id,
            "requested_via": who.via,
            "created": ts(now),
            "approvals": [],
            "approved_by": [],
            "status": "pending",
            "expires": ts(now + timedelta(seconds=self.settings.request_ttl)),
        }
        if new.kind == "account":
            chain = self._account(record, new)
        else:
            target = self._directory(new.subject)
            if target is None:
                raise NotFound(f"{new.subject} is not in the directory")
            record["department"] = target.department
            if new.kind == "clearance":
                chain = self._clearance(record, new, target.clearance)
            elif new.kind == "roles":
                chain = self._roles(record, new, tuple(target.roles))
            else:
                chain = self._grant(record, new)
        record.update(
            chain=chain.name,
            steps=list(chain.steps),
            ordered=chain.ordered,
            approvals_per_step=chain.per_step,
            required=sorted(chain.steps),
        )
        stored = await self.store.update(record["id"], lambda _: record)
        assert stored is not None
        self._emit(
            Change(
                "request_created",
                who.actor(),
                subject=new.subject,
                request_id=record["id"],
                reason=why,
                details={
                    "kind": new.kind,
                    "type": record.get("type"),
                    "level": record.get("level"),
                    "chain": chain.name,
                    "steps": list(chain.steps),
                    "purpose": purpose,
                    "operations": list(record.get("scope", {}).get("operations", [])),
                    "routes": list(record.get("scope", {}).get("routes", [])),
                    "duration_s": record.get("duration_s"),
                    "single_use": bool(record.get("single_use", False)),
                },
            )
        )
        return stored

    def _grant(self, record: Grant, new: NewRequest) -> Chain:
        gtype = new.grant_type or ""
        if gtype == "break_glass":
            raise ClientError("break-glass is opened with POST /admin/break-glass, not requested")
        if gtype not in self.chains.types:
            known = ", ".join(sorted(t for t in self.chains.types if t != "break_glass"))
            raise ClientError(f"unknown grant type {gtype!r} (known: {known})")
        level = new.level
        check_grant_level(gtype, level)
        ops = tuple(dict.fromkeys(new.operations))
        if any(op not in OPERATIONS for op in ops):
            raise ClientError(f"operations must be among {', '.join(OPERATIONS)}")
        single_use = new.single_use or gtype == "bulk_export"
        if single_use and ops and ops != ("export",):
            raise ClientError("a single-use grant is for exports only")
        if single_use:
            ops = ("export",)
        routes = tuple(r for r in new.routes if r)
        if any(not r.startswith("/") for r in routes):
            raise ClientError("routes are path globs starting with '/'")
        chain = self.chain_for_grant(gtype, level)
        longest = ChainTable.max_duration(self.chains.chain_name(frozenset(chain.steps)))
        duration = new.duration or longest
        if duration <= timedelta(0) or duration > longest:
            raise ClientError(f"chain {chain.name} grants last at most {longest}")
        record.update(
            type=gtype,
            level=level,
            scope={"operations": list(ops), "routes": list(routes)},
            single_use=single_use,
            duration_s=int(duration.total_seconds()),
            justification=record["justification"],
        )
        return chain

    def _clearance(self, record: Grant, new: NewRequest, current: str) -> Chain:
        level = new.clearance or ""
        if level not in LEVELS:
            raise ClientError("a clearance change names the new level (L0..L4)")
        if level == current:
            raise ClientError(f"{new.subject} already has clearance {level}")
        record.update(type="clearance", change={"clearance": {"from": current, "to": level}})
        return self.chain_for_clearance(level)  # the level it lands on decides the chain

    def _console_roles(self) -> set[str]:
        s = self.settings
        return set(s.security_admin_roles) | set(s.approver_roles) | set(s.auditor_roles)

    def _roles(self, record: Grant, new: NewRequest, current: tuple[str, ...]) -> Chain:
        wanted = sorted(dict.fromkeys(new.roles or ()))
        if not wanted or wanted == sorted(current):
            raise ClientError("a role change names the new set of data roles")
        if self._console_roles() & (set(wanted) ^ set(current)):
            raise Forbidden("console roles change through the directory owners, not a request")
        record.update(type="roles", change={"roles": {"from": sorted(current), "to": wanted}})
        return self._named(self.settings.role_change_chain)

    def _account(self, record: Grant, new: NewRequest) -> Chain:
        entry = dict(new.entry or {})
        if self._directory(new.subject) is not None:
            raise ClientError(f"{new.subject} is already in the directory")
        department = str(entry.get("department") or "").strip()
        if not department:
            raise ClientError("a new entry names its department")
        roles = [str(r) for r in entry.get("roles") or []]
        if self._console_roles() & set(roles):
            raise Forbidden("console roles are not given with a new entry (request them apart)")
        allowed = {"display_name", "email", "roles", "department", "aliases"}
        extra = set(entry) - allowed
        if extra:
            raise ClientError(f"a new entry may name only {', '.join(sorted(allowed))}")
        record.update(
            type="account",
            department=department,
            change={
                "entry": {
                    "id": new.subject,
                    **{k: entry[k] for k in sorted(allowed) if k in entry},
                    "roles": roles,
                    "clearance": self.settings.default_clearance,
                }
            },
        )
        return self.chain_for_account()

    # -- decisions on a request -----------------------------------------------

    async def approve(
        self, request_id: str, who: Principal, comment: str = "", now: datetime | None = None
    ) -> Grant:
        when = now or datetime.now(UTC)
        step_done: list[str] = []

        def apply(current: Grant | None) -> Grant:
            record = self._pending(current, request_id, when)
            if who.id in (record.get("requested_by"), record.get("subject")):
                raise SelfApproval("nobody approves a request they made or one for themselves")
            if not who.has(APPROVER):
                raise NotAnApprover(f"{who.id} holds no approver role in the directory")
            approvals = list(record.get("approvals", []))
            if any(a.get("by") == who.id for a in approvals):
                raise AlreadyApproved(f"{who.id} has already approved {request_id}")
            step = self._step_for(record, who)
            if step in self.settings.no_own_department_steps and who.department == record.get(
                "department"
            ):
                raise OwnDepartment(
                    f"step {step} cannot be approved from the subject's own department"
                )
            approvals.append(
                {
                    "by": who.id,
                    "department": who.department,
                    "step": step,
                    "at": ts(when),
                    "via": who.via,
                    "os_user": who.os_user,
                    "comment": comment[:256],
                }
            )
            done = set(record.get("approved_by", []))
            per_step = int(record.get("approvals_per_step", 1))
            if sum(1 for a in approvals if a.get("step") == step) >= per_step:
                done.add(step)
            new = {**record, "approvals": approvals, "approved_by": sorted(done)}
            step_done.append(step)
            if set(record.get("steps", [])) <= done:
                new.update(self._complete(new, when))
            return new

        result = await self._update(request_id, apply, when)
        self._emit(
            Change(
                "request_approved",
                who.actor(),
                subject=str(result.get("subject")),
                request_id=request_id,
                reason=comment or None,
                details={"step": step_done[0], "chain": str(result.get("chain"))},
            )
        )
        if result.get("status") in ("active", "approved"):
            result = await self._finish(result, who)
        return result

    def _complete(self, record: Grant, when: datetime) -> dict[str, Any]:
        if record.get("kind") == "grant":
            seconds = int(record.get("duration_s") or 0)
            return {
                "status": "active",
                "activated": ts(when),
                "expires": ts(when + timedelta(seconds=seconds)),
            }
        return {"status": "approved", "decided": ts(when), "expires": None}

    async def _finish(self, record: Grant, who: Principal) -> Grant:
        rid = str(record["id"])
        subject = str(record.get("subject"))
        if record.get("kind") == "grant":
            self._emit(
                Change(
                    "grant_activated",
                    who.actor(),
                    subject=subject,
                    request_id=rid,
                    grant_id=rid,
                    details={
                        "type": record.get("type"),
                        "level": record.get("level"),
                        "expires": record.get("expires"),
                        "approved_by": [str(a.get("by")) for a in record.get("approvals", [])],
                    },
                )
            )
            return record
        applied = bool(await self._apply(record)) if self._apply is not None else False
        updated = await self.store.update(rid, lambda cur: {**(cur or record), "applied": applied})
        assert updated is not None
        record = updated
        action = {"account": "account_created", "roles": "roles_applied"}.get(
            str(record.get("kind")), "clearance_applied"
        )
        self._emit(
            Change(
                action if applied else "standing_change_approved",
                who.actor(),
                subject=subject,
                request_id=rid,
                details={"applied_live": applied, "kind": str(record.get("kind"))},
            )
        )
        return record

    def _step_for(self, record: Grant, who: Principal) -> str:
        steps = [str(s) for s in record.get("steps", [])]
        done = set(record.get("approved_by", []))
        open_steps = [s for s in steps if s not in done]
        mine = [s for s in open_steps if self._department_of(s, record) == who.department]
        if not mine:
            raise WrongDepartment(
                f"department {who.department!r} approves no open step of chain "
                f"{record.get('chain')} (open: {', '.join(open_steps)})"
            )
        if record.get("ordered") and mine[0] != open_steps[0]:
            raise OutOfOrder(f"chain {record.get('chain')} waits for step {open_steps[0]} first")
        return mine[0]

    @staticmethod
    def _department_of(step: str, record: Mapping[str, Any]) -> str:
        return str(record.get("department", "")) if step == BUSINESS else step

    def _pending(self, current: Grant | None, request_id: str, when: datetime) -> Grant:
        if current is None:
            raise NotFound(f"no request {request_id}")
        state = state_of(current, when)
        if state == "expired" and current.get("status") == "pending":
            raise RequestExpired(f"request {request_id} expired before it was approved")
        if state != "pending":
            raise GrantStateError(f"request {request_id} is {state}, not pending")
        return current

    async def _update(
        self, request_id: str, mutate: Callable[[Grant | None], Grant], when: datetime
    ) -> Grant:
        try:
            result = await self.store.update(request_id, mutate)
        except RequestExpired:
            await self._expire(request_id, when)
            raise
        assert result is not None
        return result

    async def _expire(self, request_id: str, when: datetime) -> None:
        """Persist the expiry of a pending request (once) and record it."""
        marked: list[bool] = []

        def apply(current: Grant | None) -> Grant | None:
            if current is None or current.get("status") != "pending":
                return current
            marked.append(True)
            return {**current, "status": "expired", "decided": ts(when)}

        await self.store.update(request_id, apply)
        if marked:
            record = await self.store.get(request_id) or {}
            self._emit(
                Change(
                    "request_expired",
                    SYSTEM,
                    subject=str(record.get("subject")),
                    request_id=request_id,
                )
            )

    async def reject(
        self, request_id: str, who: Principal, reason: str, now: datetime | None = None
    ) -> Grant:
        when = now or datetime.now(UTC)
        if not reason.strip():
            raise ClientError("a rejection needs a reason")

        def apply(current: Grant | None) -> Grant:
            record = self._pending(current, request_id, when)
            if who.id in (record.get("requested_by"), record.get("subject")):
                raise SelfApproval("withdraw your own request instead of rejecting it")
            if not (who.has(APPROVER) or who.has(SECURITY_ADMIN)):
                raise NotAnApprover(f"{who.id} may not reject requests")
            if not who.has(SECURITY_ADMIN):
                self._step_for(record, who)  # an approver rejects at their own open step
            return {
                **record,
                "status": "rejected",
                "decided": ts(when),
                "rejected_by": who.id,
                "reject_reason": reason.strip()[:512],
            }

        result = await self._update(request_id, apply, when)
        self._emit(
            Change(
                "request_rejected",
                who.actor(),
                subject=str(result.get("subject")),
                request_id=request_id,
                reason=reason,
            )
        )
        return result

    async def withdraw(
        self, request_id: str, who: Principal, reason: str = "", now: datetime | None = None
    ) -> Grant:
        when = now or datetime.now(UTC)

        def apply(current: Grant | None) -> Grant:
            record = self._pending(current, request_id, when)
            if who.id != record.get("requested_by"):
                raise Forbidden("only the requester withdraws a request")
            return {**record, "status": "withdrawn", "decided": ts(when)}

        result = await self._update(request_id, apply, when)
        self._emit(
            Change(
                "request_withdrawn",
                who.actor(),
                subject=str(result.get("subject")),
                request_id=request_id,
                reason=reason or None,
            )
        )
        return result

    async def revoke(
        self,
        grant_id: str,
        who: Principal,
        reason: str,
        now: datetime | None = None,
        *,
        as_reviewer: bool = False,
    ) -> Grant:
        """A security admin ends an active grant (or the subject gives theirs up; or
        the break-glass reviewer, `as_reviewer`, when the review finds it unjustified)."""
        when = now or datetime.now(UTC)
        if not reason.strip():
            raise ClientError("a revocation needs a reason")

        def apply(current: Grant | None) -> Grant:
            if current is None:
                raise NotFound(f"no grant {grant_id}")
            if not (as_reviewer or who.has(SECURITY_ADMIN) or who.id == current.get("subject")):
                raise ConsoleRoleRequired("only a security admin revokes someone else's grant")
            if current.get("status") != "active":
                raise GrantStateError(f"grant {grant_id} is {state_of(current, when)}")
            return {
                **current,
                "status": "revoked",
                "revoked_by": who.id,
                "revoked_at": ts(when),
                "revoke_reason": reason.strip()[:512],
            }

        result = await self._update(grant_id, apply, when)
        self._emit(
            Change(
                "grant_revoked",
                who.actor(),
                subject=str(result.get("subject")),
                request_id=grant_id,
                grant_id=grant_id,
                reason=reason,
            )
        )
        return result

    # -- reading ----------------------------------------------------------------

    def can_see(self, who: Principal, record: Mapping[str, Any]) -> bool:
        if who.has(SECURITY_ADMIN) or who.has(AUDITOR):
            return True
        if who.id in (record.get("subject"), record.get("requested_by")):
            return True
        if who.has(APPROVER):
            steps = [str(s) for s in record.get("steps", [])]
            return any(self._department_of(s, record) == who.department for s in steps)
        return False

    async def get(self, request_id: str, who: Principal, now: datetime | None = None) -> Grant:
        record = await self.store.get(request_id)
        if record is None or not self.can_see(who, record):
            raise NotFound(f"no request {request_id}")
        return {**record, "state": state_of(record, now or datetime.now(UTC))}

    async def list(
        self,
        who: Principal,
        *,
        state: str | None = None,
        subject: str | None = None,
        kind: str | None = None,
        now: datetime | None = None,
    ) -> list[Grant]:
        def keep(record: Grant) -> bool:
            # records from the low-level GrantService (tests, migrations) have no steps
            requested = "steps" in record or record.get("type") == "break_glass"
            return requested and self.can_see(who, record)

        return listed(
            await self.store.all(),
            state_of,
            now or datetime.now(UTC),
            state=state,
            where={"subject": subject, "kind": kind},
            keep=keep,
        )
