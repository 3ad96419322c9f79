"""`Governance`: what the request path and the admin API share about access.

One object per gateway process, opened by `app.py`:

- `settle(...)`, the handler's one call after the policy decision: consumes the
  single-use export grants the decision relied on (atomically in the shared
  store: of two concurrent exports on two replicas exactly one wins, the other
  is decided again without the grant) and applies the lockdown profile;
- the access requests service (`requests.py`), break-glass and its review
  tasks, the lockdown switch, each change audited as a governance event;
- a background task that alerts (once across replicas) on overdue reviews.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.access.chains import ChainTable
from gateway.access.errors import ConsoleRoleRequired, GrantConsumed, SelfApproval
from gateway.access.grants import GrantStateError
from gateway.access.lockdown import overlay
from gateway.access.requests import AccessService, ApplyChange, state_of, ts
from gateway.access.roles import APPROVER, AUDITOR, SECURITY_ADMIN, Principal
from gateway.audit.governance import SYSTEM, Change, build_governance_alert, build_governance_event
from gateway.core.model import Subject
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ClientError, Forbidden, NotFound
from gateway.policy.engine import DecisionOutcome, PolicyRequest
from gateway.settings import Settings
from gateway.state.grants import Grant, GrantStore, in_scope, open_review_store
from gateway.state.keys import review_overdue_alerted
from gateway.state.lockdown import LockdownState
from gateway.state.once import mark_once

log = logging.getLogger(__name__)

OVERDUE_MARK_TTL = 90 * 24 * 3600.0  # seconds
EmitEvent = Callable[[dict[str, Any]], None]
EmitDurable = Callable[[dict[str, Any]], Awaitable[None]]
Decide = Callable[[Subject, PolicyRequest], Awaitable[DecisionOutcome]]
Lookup = Callable[[str], Subject | None]


class Governance:
    def __init__(
        self,
        settings: Settings,
        *,
        grants: GrantStore,
        reviews: GrantStore,
        lockdown: LockdownState,
        taxonomy: Taxonomy,
        directory: Lookup,
        emit: EmitEvent,
        emit_durable: EmitDurable,
        apply_change: ApplyChange | None = None,
    ) -> None:
        self.settings = settings
        self.grants = grants
        self.reviews = reviews
        self.lockdown = lockdown
        self._taxonomy = taxonomy
        self._emit_event = emit
        self._emit_durable = emit_durable
        self._alerted: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        chains = ChainTable.load(settings.path(settings.policy.rego_dir) / "data.json")
        self.requests = AccessService(
            grants,
            settings=settings.access,
            chains=chains,
            directory=directory,
            emit=self.record,
            apply_change=apply_change,
        )

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        grants: GrantStore,
        taxonomy: Taxonomy,
        directory: Lookup,
        emit: EmitEvent,
        emit_durable: EmitDurable,
        apply_change: ApplyChange | None = None,
        watch_reviews: bool = True,
    ) -> Governance:
        reviews = await open_review_store(settings)
        try:
            lockdown = await LockdownState.open(
                settings.redis.url or None, poll_interval=settings.access.lockdown.poll_interval
            )
        except BaseException:
            await reviews.close()
            raise
        self = cls(
            settings,
            grants=grants,
            reviews=reviews,
            lockdown=lockdown,
            taxonomy=taxonomy,
            directory=directory,
            emit=emit,
            emit_durable=emit_durable,
            apply_change=apply_change,
        )
        if watch_reviews:
            self._task = asyncio.create_task(self._watch_overdue(), name="reviews-overdue")
        return self

    async def close(self) -> None:
        # The flag as well as cancel(): redis-py can turn a cancellation that races
        # a read into a RedisError, which the loop would otherwise log and retry.
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.lockdown.close()
        await self.reviews.close()

    def record(self, change: Change) -> None:
        """One governance event into the audit chain (never raises into the caller)."""
        try:
            self._emit_event(build_governance_event(change))
        except Exception:
            log.exception("governance event %s not recorded", change.action)

    # -- the request path ----------------------------------------------------

    async def settle(
        self,
        subject: Subject,
        request: PolicyRequest,
        outcome: DecisionOutcome,
        request_id: str,
        decide: Decide,
    ) -> DecisionOutcome:
        """Consume the single-use grants an allowed export relied on; apply lockdown."""
        for _ in range(3):
            if request.operation != "export" or not _proceeds(outcome, request):
                break  # a refused export uses nothing up
            if await self._consume_single_use(subject, request, request_id):
                break
            await self.grants.refresh()  # another replica won: decide without the grant
            outcome = await decide(subject, request)
        else:
            raise GrantConsumed("the single-use export grant was used by another export")
        profile = self.lockdown.current
        if profile is not None:
            decision = overlay(outcome.decision, profile, self._taxonomy, request.operation)
            outcome = dataclasses.replace(
                outcome, decision=decision, report_only=False, locked_down=True
            )
        return outcome

    async def _consume_single_use(
        self, subject: Subject, request: PolicyRequest, request_id: str
    ) -> bool:
        """True when every single-use grant in this decision's input is now ours."""
        _, active = await self.grants.active_for(subject.id, request.now)
        single = [
            g
            for g in in_scope(active, request.operation, request.route_template)
            if g.get("single_use")
        ]
        for grant in single:
            gid = str(grant["id"])
            when = request.now

            def apply(current: Grant | None, gid: str = gid, when: datetime = when) -> Grant:
                if current is None or state_of(current, when) != "active":
                    raise GrantConsumed(f"grant {gid} is no longer active")
                return {
                    **current,
                    "status": "consumed",
                    "consumed_at": ts(when),
                    "consumed_by_request": request_id,
                }

            try:
                await self.grants.update(gid, apply)
            except GrantConsumed:
                return False
            self.record(
                Change(
                    "grant_consumed",
                    SYSTEM,
                    subject=subject.id,
                    request_id=request_id,
                    grant_id=gid,
                    details={"route": request.route_template, "operation": request.operation},
                )
            )
        return True

    # -- break-glass and its review ---------------------------------------------

    async def break_glass(
        self, who: Principal, justification: str, now: datetime | None = None
    ) -> tuple[Grant, Grant]:
        """An immediate, fixed-length grant for the caller; a critical alert; a review task."""
        cfg = self.settings.access.break_glass
        when = now or datetime.now(UTC)
        why = justification.strip()
        if who.subject.partner or who.subject.disabled:
            raise Forbidden("break-glass is for active staff only")
        if len(why) < cfg.min_justification:
            raise ClientError(
                f"break-glass needs a justification of at least {cfg.min_justification} characters"
            )
        gid = "bg-" + secrets.token_hex(8)
        grant: Grant = {
            "id": gid,
            "kind": "grant",
            "type": "break_glass",
            "subject": who.id,
            "department": who.department,
            "level": cfg.level,
            "scope": {"operations": ["view"], "routes": []},
            "justification": why[:1024],
            "purpose": "break-glass",
            "requested_by": who.id,
            "requested_via": who.via,
            "chain": "none",
            "steps": [],
            "required": [],
            "approvals": [],
            "approved_by": [],
            "created": ts(when),
            "activated": ts(when),
            "expires": ts(when + timedelta(seconds=cfg.duration)),
            "duration_s": int(cfg.duration),
            "status": "active",
        }
        review: Grant = {
            "id": "rv-" + secrets.token_hex(8),
            "grant_id": gid,
            "subject": who.id,
            "department": cfg.review_department,
            "justification": why[:1024],
            "opened": ts(when),
            "due": ts(when + timedelta(seconds=cfg.review_within)),
            "status": "open",
        }
        await self.grants.update(gid, lambda _: grant)
        await self.reviews.update(review["id"], lambda _: review)
        self.record(
            Change(
                "break_glass_opened",
                who.actor(),
                subject=who.id,
                request_id=gid,
                grant_id=gid,
                reason=why,
                details={"level": cfg.level, "expires": grant["expires"], "review": review["id"]},
            )
        )
        await self._emit_durable(
            build_governance_alert(
                "break_glass",
                subject=who.id,
                message=f"break-glass by {who.id} to {cfg.level} until {grant['expires']}",
                uid=f"break_glass:{gid}",
                actor=who.actor(),
            )
        )
        return grant, review

    async def list_reviews(
        self, who: Principal, state: str | None = None, now: datetime | None = None
    ) -> list[Grant]:
        when = now or datetime.now(UTC)
        if not (who.has(SECURITY_ADMIN) or who.has(AUDITOR) or self._reviewer(who)):
            raise ConsoleRoleRequired("review tasks are for the security department and auditors")
        out = []
        for r in await self.reviews.all():
            shown = {**r, "overdue": r.get("status") == "open" and _past(r.get("due"), when)}
            if state is None or r.get("status") == state:
                out.append(shown)
        out.sort(key=lambda r: str(r.get("opened", "")), reverse=True)
        return out

    def _reviewer(self, who: Principal) -> bool:
        cfg = self.settings.access.break_glass
        return who.department == cfg.review_department and (
            who.has(APPROVER) or who.has(SECURITY_ADMIN)
        )

    async def close_review(
        self, review_id: str, who: Principal, outcome: str, notes: str, now: datetime | None = None
    ) -> Grant:
        """The security department closes a break-glass review; `unjustified` revokes."""
        when = now or datetime.now(UTC)
        if outcome not in ("justified", "unjustified"):
            raise ClientError("outcome is justified or unjustified")
        if not notes.strip():
            raise ClientError("closing a review needs notes")
        if not self._reviewer(who):
            raise ConsoleRoleRequired(
                f"only the {self.settings.access.break_glass.review_department} department "
                "closes break-glass reviews"
            )

        def apply(current: Grant | None) -> Grant:
            if current is None:
                raise NotFound(f"no review {review_id}")
            if current.get("status") != "open":
                raise GrantStateError(f"review {review_id} is already closed")
            if who.id == current.get("subject"):
                raise SelfApproval("nobody reviews their own break-glass")
            return {
                **current,
                "status": "closed",
                "outcome": outcome,
                "closed_by": who.id,
                "closed_at": ts(when),
                "notes": notes.strip()[:1024],
                "late": _past(current.get("due"), when),
            }

        review = await self.reviews.update(review_id, apply)
        assert review is not None
        self.record(
            Change(
                "break_glass_reviewed",
                who.actor(),
                subject=str(review.get("subject")),
                request_id=review_id,
                grant_id=str(review.get("grant_id")),
                reason=notes,
                details={"outcome": outcome, "late": bool(review.get("late"))},
            )
        )
        grant = await self.grants.get(str(review.get("grant_id")))
        if outcome == "unjustified" and grant is not None and grant.get("status") == "active":
            await self.requests.revoke(
                str(grant["id"]),
                who,
                f"break-glass review {review_id}: unjustified",
                as_reviewer=True,
            )
        return review

    async def check_overdue(self, now: datetime | None = None) -> list[str]:
        """Alert once (across replicas) for each open review past its due time."""
        when = now or datetime.now(UTC)
        alerted = []
        for r in await self.reviews.all():
            if r.get("status") != "open" or not _past(r.get("due"), when):
                continue
            rid = str(r["id"])
            # The marker outlives any open task: an overdue review alerts once, not
            # again each time a short-lived marker expires.
            ttl = max(self.settings.access.break_glass.review_within * 4, OVERDUE_MARK_TTL)
            if not await mark_once(
                self.settings.redis.url or None, review_overdue_alerted(rid), ttl, self._alerted
            ):
                continue
            alerted.append(rid)
            await self._emit_durable(
                build_governance_alert(
                    "review_overdue",
                    subject=str(r.get("subject")),
                    message=f"break-glass review {rid} of {r.get('subject')} is overdue "
                    f"(due {r.get('due')})",
                    uid=f"review_overdue:{rid}",
                )
            )
        return alerted

    async def _watch_overdue(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.settings.access.review_check_interval)
            try:
                await self.check_overdue()
            except Exception:
                if not self._closing:
                    log.exception("overdue review check failed")

    # -- lockdown -----------------------------------------------------------------

    async def switch_lockdown(self, who: Principal, on: bool, reason: str) -> dict[str, Any]:
        if not who.has(SECURITY_ADMIN):
            raise ConsoleRoleRequired("only a security admin switches lockdown")
        if not reason.strip():
            raise ClientError("switching lockdown needs a reason")
        if on:
            profile = self.settings.access.lockdown
            document = {
                "profile": "default",
                "max_clear_level": profile.max_clear_level,
                "block_exports": profile.block_exports,
                "block_writes": profile.block_writes,
                "by": who.id,
                "at": ts(datetime.now(UTC)),
                "reason": reason.strip()[:512],
            }
            version = await self.lockdown.switch_on(document)
        else:
            document = {}
            version = await self.lockdown.switch_off()
        action = "lockdown_on" if on else "lockdown_off"
        self.record(Change(action, who.actor(), reason=reason, details={"version": version}))
        await self._emit_durable(
            build_governance_alert(
                "lockdown",
                subject=None,
                message=f"lockdown switched {'on' if on else 'off'} by {who.id}: {reason}",
                uid=f"lockdown:{version}",
                actor=who.actor(),
            )
        )
        return {"active": on, "version": version, **document}


def _proceeds(outcome: DecisionOutcome, request: PolicyRequest) -> bool:
    """Will the handler let this request through (the checks of its obligations)?"""
    decision = outcome.decision
    if decision.report_only:
        return True
    if not decision.allow or decision.obligations.step_up:
        return False
    return not (decision.obligations.justification_required and not request.justification)


def _past(stamp: Any, now: datetime) -> bool:
    if not isinstance(stamp, str):
        return False
    try:
        return datetime.fromisoformat(stamp) <= now
    except ValueError:
        return False
