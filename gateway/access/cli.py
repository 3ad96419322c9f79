"""`crm-gateway grants ...`: the operator's path to the same access service.

The CLI is an operator tool run on a host that can reach the gateways' Redis.
It cannot prove who typed a command the way the admin API proves who called
it, so it binds every action to what it *can* check:

- `--by` must name a subject of the gateway's directory (file or Redis), and
  that entry's department and roles are used, never a typed `--department`
  (one that disagrees with the directory is refused);
- the OS user running the command is recorded with every action and in every
  governance event (`via: cli`, `os_user`);
- approvals and rejections through the CLI are refused unless the config says
  `access.cli_approvals: true` (default false): approvers approve through the
  admin API with their own credentials, and a deployment that wants CLI
  approvals opts in knowingly.

Every change is a governance event written by this process's own audit chain
(same sinks and Redis stream as the gateways), so `audit verify` covers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gateway.access.console import Governance
from gateway.access.errors import NotInDirectory, WrongDepartment
from gateway.access.requests import NewRequest
from gateway.access.roles import Principal, principal
from gateway.access.setup import open_governance
from gateway.audit.emitter import AuditEmitter
from gateway.audit.governance import os_user
from gateway.core.taxonomy import Taxonomy
from gateway.errors import Forbidden
from gateway.identity.service import Identity
from gateway.settings import Settings
from gateway.state.grants import open_grant_store
from gateway.state.revocation import RevocationList
from gateway.upstream import Upstream


@dataclass
class Opened:
    governance: Governance
    identity: Identity
    audit: AuditEmitter
    closers: list[Any]

    def operator(self, subject_id: str, department: str | None = None) -> Principal:
        entry = self.identity.directory.current().get(subject_id)
        if entry is None:
            raise NotInDirectory(f"{subject_id!r} is not in the gateway directory")
        if department and department != entry.subject.department:
            raise WrongDepartment(
                f"the directory puts {subject_id} in {entry.subject.department!r}, "
                f"not {department!r}"
            )
        return principal(
            entry.subject, self.governance.settings.access, via="cli", os_user=os_user()
        )

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()


async def open_for_cli(settings: Settings) -> Opened:
    closers: list[Any] = []
    try:
        audit = await AuditEmitter.open(settings)
        closers.append(audit.close)
        grants = await open_grant_store(settings)
        closers.append(grants.close)
        revocations = await RevocationList.open(None)
        crm = Upstream.open(settings.upstream)  # asked only by CRM introspection
        closers.append(crm.close)
        identity = await Identity.open(settings, revocations, crm=crm.fetch)
        closers.append(identity.close)
        taxonomy = Taxonomy.load(settings.path(settings.classification.taxonomy))
        governance = await open_governance(
            settings, grants, taxonomy, identity, audit, watch_reviews=False
        )
        closers.append(governance.close)
    except BaseException:
        for close in reversed(closers):
            await close()
        raise
    return Opened(governance, identity, audit, closers)


async def run_grants_command(settings: Settings, args: Any) -> Sequence[dict[str, Any]]:
    """One `grants` subcommand; the records it touched."""
    opened = await open_for_cli(settings)
    try:
        svc = opened.governance.requests
        cmd = args.grants_cmd
        if cmd == "list":
            who = opened.operator(args.by) if args.by else None
            records = await svc.store.all()
            if who is not None:
                return await svc.list(who, state=args.status, subject=args.subject)
            from datetime import UTC, datetime

            from gateway.access.requests import state_of

            now = datetime.now(UTC)
            out = [
                {**r, "state": state_of(r, now)}
                for r in records
                if (args.subject is None or r.get("subject") == args.subject)
                and (args.status is None or state_of(r, now) == args.status)
            ]
            out.sort(key=lambda r: str(r.get("created", "")), reverse=True)
            return out
        who = opened.operator(args.by, getattr(args, "department", None))
        if cmd == "request":
            hours = timedelta(hours=args.hours) if args.hours else None
            new = NewRequest(
                kind="grant",
                subject=args.subject,
                purpose=args.purpose or args.justification,
                justification=args.justification,
                grant_type=args.type,
                level=args.level,
                operations=tuple(args.operation or ()),
                routes=tuple(args.route or ()),
                duration=hours,
                single_use=args.single_use,
            )
            return [await svc.create(who, new)]
        if cmd in ("approve", "reject") and not settings.access.cli_approvals:
            raise Forbidden(
                "approvals go through the admin API (set access.cli_approvals: true to "
                "allow them from this CLI)"
            )
        if cmd == "approve":
            return [await svc.approve(args.id, who, args.comment or "")]
        if cmd == "reject":
            return [await svc.reject(args.id, who, args.reason)]
        return [await svc.revoke(args.id, who, args.reason)]
    finally:
        await opened.close()


_COLUMNS = (
    ("ID", lambda r: r.get("id")),
    ("STATE", lambda r: r.get("state") or r.get("status")),
    ("TYPE", lambda r: r.get("type") or r.get("kind")),
    ("LEVEL", lambda r: r.get("level")),
    ("SUBJECT", lambda r: r.get("subject")),
    ("REQUESTED BY", lambda r: r.get("requested_by")),
    ("APPROVED BY", lambda r: ",".join(r.get("approved_by") or ())),
    ("EXPIRES", lambda r: r.get("expires")),
)


def grants_table(records: Sequence[dict[str, Any]]) -> str:
    """The records as an aligned table, one row each (`--json` prints them whole)."""
    if not records:
        return "no requests or grants"
    rows = [[name for name, _ in _COLUMNS]]
    rows += [["-" if (v := cell(r)) in (None, "") else str(v) for _, cell in _COLUMNS]
             for r in records]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
