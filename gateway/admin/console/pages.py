"""The console's pages: each a view (the template's data) and its form actions.

Views and actions call the services the JSON admin API calls (`Governance`,
`AccessService`, the review module, the revocation list) with the viewer's
directory principal; refusals come back as the services' own typed errors.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from gateway.access.chains import NOT_GRANTABLE_LEVELS
from gateway.access.console import Governance
from gateway.access.errors import ConsoleRoleRequired
from gateway.access.grants import LEVELS
from gateway.access.requests import OPERATIONS, state_of
from gateway.access.review import REVIEWER_ROLES
from gateway.access.review_commands import (
    ReviewSources,
    collect,
    evidence_dir,
    sign,
    subject_facts,
)
from gateway.access.roles import APPROVER, AUDITOR, SECURITY_ADMIN, Principal, console_roles
from gateway.admin.api import _new_request
from gateway.admin.console.live import recent_events
from gateway.admin.console.sessions import Session
from gateway.audit.governance import Change
from gateway.errors import ClientError, GatewayError, NotFound
from gateway.stages import Stages

Form = MultiDictProxy[str]
UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
EVIDENCE_NAME = re.compile(r"rv-\d{8}-[0-9a-f]{8}\.(json|csv)")


@dataclass(frozen=True, slots=True)
class Ctx:
    request: web.Request
    stages: Stages
    who: Principal
    session: Session

    @property
    def gov(self) -> Governance:
        if self.stages.governance is None:
            raise GatewayError("governance is not configured on this gateway")
        return self.stages.governance


View = Callable[[Ctx], Awaitable[dict[str, Any]]]
# An action returns the notice shown after it: a message key, and extra query parameters.
Notice = tuple[str, dict[str, str]]
Action = Callable[[Ctx, Form], Awaitable[Notice]]


def _need(ok: bool, why: str) -> None:
    if not ok:
        raise ConsoleRoleRequired(why)


def _admin(who: Principal, stages: Stages) -> bool:
    return bool(set(who.subject.roles) & set(stages.settings.admin.roles))


def _reviewer(who: Principal) -> bool:
    return bool(REVIEWER_ROLES & set(who.subject.roles)) and not who.subject.disabled


def _text(form: Form, name: str, limit: int = 2048) -> str:
    value = form.get(name, "")
    if len(value) > limit:
        raise ClientError(f"{name} is longer than {limit} characters")
    return value.strip()


def _row(record: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """What a table row shows of a request or grant (ids, people, scope, times)."""
    scope = record.get("scope") or {}
    done = set(record.get("approved_by") or [])
    steps = [
        {"name": s, "done": s in done, "department": _dept(str(s), record)}
        for s in record.get("steps") or []
    ]
    return {
        "id": str(record.get("id")),
        "kind": str(record.get("kind") or "grant"),
        "type": str(record.get("type") or ""),
        "level": record.get("level") or "",
        "subject": str(record.get("subject") or ""),
        "department": str(record.get("department") or ""),
        "requested_by": str(record.get("requested_by") or ""),
        "purpose": str(record.get("purpose") or ""),
        "justification": str(record.get("justification") or ""),
        "operations": ", ".join(scope.get("operations") or []) or "*",
        "routes": ", ".join(scope.get("routes") or []) or "*",
        "state": state_of(record, now),
        "steps": steps,
        "approvals": [
            {"by": str(a.get("by")), "step": str(a.get("step")), "at": str(a.get("at"))}
            for a in record.get("approvals") or []
        ],
        "created": str(record.get("created") or ""),
        "expires": str(record.get("expires") or ""),
        "duration_s": record.get("duration_s"),
        "single_use": bool(record.get("single_use")),
    }


def _dept(step: str, record: Mapping[str, Any]) -> str:
    return str(record.get("department") or "") if step == "business" else step


# -- my requests -----------------------------------------------------------------------


async def requests_view(c: Ctx) -> dict[str, Any]:
    now = datetime.now(UTC)
    mine = [
        _row(r, now)
        for r in await c.gov.requests.list(c.who)
        if c.who.id in (r.get("subject"), r.get("requested_by")) and r.get("type") != "break_glass"
    ]
    types = sorted(t for t in c.gov.requests.chains.types if t != "break_glass")
    return {
        "requests": mine,
        "grant_types": types,
        "levels": [lv for lv in LEVELS if lv not in NOT_GRANTABLE_LEVELS],
        "operations": OPERATIONS,
        "units": list(UNITS),
        "for_others": c.who.has(APPROVER) or c.who.has(SECURITY_ADMIN),
    }


async def create_request(c: Ctx, form: Form) -> Notice:
    amount = _text(form, "duration", 16)
    unit = UNITS.get(form.get("unit", ""), 0)
    if not amount.isdigit() or int(amount) <= 0 or not unit:
        raise ClientError("the duration is a positive whole number of minutes, hours or days")
    routes = [r.strip() for r in _text(form, "routes").replace(",", " ").split() if r.strip()]
    data: dict[str, Any] = {
        "kind": "grant",
        "purpose": _text(form, "purpose", 256),
        "justification": _text(form, "justification", 1024),
        "scope": {
            "grant_type": _text(form, "grant_type", 64),
            "level": _text(form, "level", 4) or None,
            "operations": form.getall("operations", []),
            "routes": routes,
        },
        "duration_seconds": int(amount) * unit,
    }
    subject = _text(form, "subject", 128)
    if subject:
        data["subject"] = subject
    await c.gov.requests.create(c.who, _new_request(data, c.who))
    return "done.requested", {}


async def withdraw(c: Ctx, form: Form) -> Notice:
    await c.gov.requests.withdraw(c.request.match_info["id"], c.who, _text(form, "reason", 512))
    return "done.withdrawn", {}


# -- approval queue ----------------------------------------------------------------------


async def approvals_view(c: Ctx) -> dict[str, Any]:
    _need(
        c.who.has(APPROVER) or c.who.has(SECURITY_ADMIN) or c.who.has(AUDITOR),
        "the approval queue is for approvers, security admins and auditors",
    )
    now = datetime.now(UTC)
    rows = []
    for record in await c.gov.requests.list(c.who, state="pending"):
        row = _row(record, now)
        open_steps = [s for s in row["steps"] if not s["done"]]
        first = open_steps[0]["department"] if open_steps else None
        mine = [s for s in open_steps if s["department"] == c.who.department]
        row["my_step"] = (
            c.who.has(APPROVER)
            and c.who.id not in (row["subject"], row["requested_by"])
            and bool(mine)
            and (not record.get("ordered") or first == c.who.department)
        )
        row["waiting_for"] = first or ""
        rows.append(row)
    return {"pending": rows, "can_reject_any": c.who.has(SECURITY_ADMIN)}


async def approve(c: Ctx, form: Form) -> Notice:
    await c.gov.requests.approve(c.request.match_info["id"], c.who, _text(form, "comment", 256))
    return "done.approved", {}


async def reject(c: Ctx, form: Form) -> Notice:
    await c.gov.requests.reject(c.request.match_info["id"], c.who, _text(form, "reason", 512))
    return "done.rejected", {}


# -- grants --------------------------------------------------------------------------------


async def grants_view(c: Ctx) -> dict[str, Any]:
    now = datetime.now(UTC)
    everything = await c.gov.requests.list(c.who, kind="grant")
    active = [_row(r, now) for r in everything if r["state"] == "active"]
    ended = [_row(r, now) for r in everything if r["state"] in ("expired", "revoked", "consumed")][
        :20
    ]
    for row in active:
        row["can_revoke"] = c.who.has(SECURITY_ADMIN) or row["subject"] == c.who.id
    return {"active": active, "ended": ended}


async def revoke_grant(c: Ctx, form: Form) -> Notice:
    await c.gov.requests.revoke(c.request.match_info["id"], c.who, _text(form, "reason", 512))
    return "done.revoked", {}


# -- break-glass and its review tasks ----------------------------------------------------


async def break_glass_view(c: Ctx) -> dict[str, Any]:
    now = datetime.now(UTC)
    mine = [
        _row(r, now)
        for r in await c.gov.requests.list(c.who, subject=c.who.id, kind="grant")
        if r.get("type") == "break_glass"
    ]
    try:
        reviews = await c.gov.list_reviews(c.who)
    except ConsoleRoleRequired:
        reviews = None
    cfg = c.stages.settings.access.break_glass
    return {
        "mine": mine,
        "reviews": reviews,
        "can_close": c.gov._reviewer(c.who),
        "can_open": not (c.who.subject.partner or c.who.subject.disabled),
        "bg_level": cfg.level,
        "bg_minutes": int(cfg.duration // 60),
        "bg_min_justification": cfg.min_justification,
        "review_department": cfg.review_department,
    }


async def open_break_glass(c: Ctx, form: Form) -> Notice:
    await c.gov.break_glass(c.who, _text(form, "justification", 1024))
    return "done.break_glass", {}


async def close_review(c: Ctx, form: Form) -> Notice:
    rid = c.request.match_info["id"]
    await c.gov.close_review(rid, c.who, _text(form, "outcome", 16), _text(form, "notes", 1024))
    return "done.review_closed", {}


# -- periodic review -----------------------------------------------------------------------


def _review_reader(c: Ctx) -> None:
    _need(
        _reviewer(c.who) or c.who.has(AUDITOR) or c.who.has(SECURITY_ADMIN),
        "the periodic review is for reviewers (security_admin, compliance) and auditors",
    )


async def _sources(c: Ctx) -> ReviewSources:
    gov = c.gov
    now = datetime.now(UTC)

    async def revoke_grant(grant_id: str, note: str) -> None:
        await gov.requests.revoke(grant_id, c.who, note, as_reviewer=True)

    async def revoke_subject(subject_id: str, note: str) -> None:
        await c.stages.revocations.revoke(subject_id, reason=note, by=c.who.id)
        gov.record(Change("subject_revoked", c.who.actor(), subject=subject_id, reason=note))

    return ReviewSources(
        subjects=subject_facts(c.stages.identity.directory.current()),
        grants=[{**g, "state": state_of(g, now)} for g in await gov.grants.all()],
        revoke_grant=revoke_grant,
        revoke_subject=revoke_subject,
        emit_durable=c.stages.audit.emit_durable,
    )


def _signed(c: Ctx) -> list[dict[str, Any]]:
    folder = evidence_dir(c.stages.settings)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("rv-*.json"), reverse=True)[:20]:
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        out.append(
            {
                "id": path.stem,
                "reviewer": doc.get("reviewer", ""),
                "signed_at": doc.get("signed_at", ""),
                "summary": doc.get("summary", {}),
                "sha256": doc.get("sha256", ""),
                "audit_event_uid": doc.get("audit_event_uid", ""),
            }
        )
    return out


async def review_view(c: Ctx) -> dict[str, Any]:
    _review_reader(c)
    settings = c.stages.settings
    review, _ = await collect(
        settings,
        period=settings.admin.console.review_period,
        default_clearance=settings.access.default_clearance,
        sources=await _sources(c),
    )
    lines = [{**ln.to_dict(), "own": ln.subject == c.who.id} for ln in review.lines]
    return {
        "lines": lines,
        "period": settings.admin.console.review_period,
        "events_read": review.events_read,
        "can_sign": _reviewer(c.who),
        "signed": _signed(c),
        "just_signed": c.request.query.get("signed", ""),
    }


async def sign_review(c: Ctx, form: Form) -> Notice:
    _need(_reviewer(c.who), "signing the review needs a reviewer role (security_admin, compliance)")
    decisions = []
    for key in form:
        if key.startswith("d:") and form[key] in ("confirm", "revoke"):
            line = key[2:]
            decisions.append(
                {"line": line, "decision": form[key], "note": _text(form, f"n:{line}", 256)}
            )
    settings = c.stages.settings
    review, _, _ = await sign(
        settings,
        reviewer=c.who.id,
        decisions_raw=orjson.dumps(decisions),
        decisions_name="console.json",
        period=settings.admin.console.review_period,
        default_clearance=settings.access.default_clearance,
        sources=await _sources(c),
    )
    return "done.review_signed", {"signed": review.review_id}


def evidence_file(c: Ctx, name: str) -> Path:
    _review_reader(c)
    if not EVIDENCE_NAME.fullmatch(name):
        raise NotFound(f"no review export {name}")
    path = evidence_dir(c.stages.settings) / name
    if not path.is_file():
        raise NotFound(f"no review export {name}")
    return path


# -- users and revocations -------------------------------------------------------------------


async def users_view(c: Ctx) -> dict[str, Any]:
    _need(
        _admin(c.who, c.stages) or c.who.has(SECURITY_ADMIN) or c.who.has(AUDITOR),
        "users and revocations are for security admins and auditors",
    )
    directory = c.stages.identity.directory.current()
    revoked = {r.subject_id: r for r in await c.stages.revocations.list()}
    users = []
    for sid in directory.subject_ids():
        entry = directory.get(sid)
        if entry is None:
            continue
        s = entry.subject
        users.append(
            {
                "id": s.id,
                "display_name": s.display_name,
                "department": s.department,
                "roles": ", ".join(s.roles),
                "clearance": s.clearance,
                "console_roles": ", ".join(sorted(console_roles(s, c.stages.settings.access))),
                "disabled": s.disabled,
                "partner": s.partner,
                "revoked": sid in revoked,
            }
        )
    return {
        "users": users,
        "revoked": [
            {"subject": r.subject_id, "reason": r.reason, "by": r.by, "at": r.at}
            for r in revoked.values()
        ],
        "can_change": _admin(c.who, c.stages),
    }


async def revoke_subject(c: Ctx, form: Form) -> Notice:
    _need(_admin(c.who, c.stages), "revocation needs a security administrator role")
    target, reason = _text(form, "subject", 128), _text(form, "reason", 512)
    if not target or not reason:
        raise ClientError("both a subject and a reason are required")
    await c.stages.revocations.revoke(target, reason=reason, by=c.who.id)
    c.gov.record(Change("subject_revoked", c.who.actor(), subject=target, reason=reason))
    return "done.subject_revoked", {}


async def restore_subject(c: Ctx, form: Form) -> Notice:
    _need(_admin(c.who, c.stages), "restoring needs a security administrator role")
    target = c.request.match_info["id"]
    if not await c.stages.revocations.restore(target, by=c.who.id):
        raise NotFound(f"{target} is not revoked")
    c.gov.record(Change("subject_restored", c.who.actor(), subject=target, reason="restored"))
    return "done.subject_restored", {}


# -- live view ---------------------------------------------------------------------------------


async def live_view(c: Ctx) -> dict[str, Any]:
    _need(
        c.who.has(SECURITY_ADMIN) or c.who.has(AUDITOR),
        "the live view is for security admins and auditors",
    )
    rows, source = await recent_events(
        c.stages.settings, c.stages.settings.admin.console.live_events
    )
    return {
        "events": [r for r in rows if r["kind"] == "access"],
        "governance": [r for r in rows if r["kind"] == "governance"],
        "alerts": [r for r in rows if r["kind"] == "alert"],
        "source": source,
    }


# -- policy and lockdown -------------------------------------------------------------------------


async def policy_view(c: Ctx) -> dict[str, Any]:
    _need(
        c.who.has(SECURITY_ADMIN) or c.who.has(AUDITOR),
        "policy status is for security admins and auditors",
    )
    policy = c.stages.policy
    settings = c.stages.settings
    stats = policy.stats()
    lockdown = c.gov.lockdown.current
    return {
        "engine": settings.policy.engine,
        "revision": policy.revision or "",
        "healthy": policy.healthy,
        "ready": await policy.ready(),
        "report_only": settings.policy.report_only,
        "stats": sorted((k, v) for k, v in stats.items() if k != "revision"),
        "lockdown": lockdown,
        "lockdown_profile": settings.access.lockdown,
        "can_switch": c.who.has(SECURITY_ADMIN),
    }


async def lockdown_on(c: Ctx, form: Form) -> Notice:
    await c.gov.switch_lockdown(c.who, True, _text(form, "reason", 512))
    return "done.lockdown_on", {}


async def lockdown_off(c: Ctx, form: Form) -> Notice:
    await c.gov.switch_lockdown(c.who, False, _text(form, "reason", 512))
    return "done.lockdown_off", {}
