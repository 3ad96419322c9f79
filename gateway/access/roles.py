"""Console roles and the principal acting in the console.

Roles come from the directory entry of the authenticated subject (the API) or
of the named operator (the CLI), never from the request. The four console roles
are independent of data clearance: being a security admin adds no level, no
grade and no customer to what the person sees through the gateway (their data
access is the directory's clearance and the policy's roles table, unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.audit.governance import Actor
from gateway.core.model import Subject
from gateway.settings.access import AccessSettings

REQUESTER = "requester"
APPROVER = "approver"
SECURITY_ADMIN = "security_admin"
AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class Principal:
    """A directory subject acting in the console, with its console roles."""

    subject: Subject
    roles: frozenset[str]
    via: str = "api"
    os_user: str | None = None
    ip: str | None = None

    @property
    def id(self) -> str:
        return self.subject.id

    @property
    def department(self) -> str:
        return self.subject.department

    def has(self, role: str) -> bool:
        return role in self.roles

    def actor(self) -> Actor:
        return Actor(
            id=self.subject.id,
            department=self.subject.department,
            roles=tuple(sorted(self.roles)),
            via=self.via,
            os_user=self.os_user,
            ip=self.ip,
        )


def console_roles(subject: Subject, settings: AccessSettings) -> frozenset[str]:
    """requester for every active staff member; the others from directory roles."""
    have = set(subject.roles)
    roles = set()
    if not subject.disabled and not subject.partner:
        roles.add(REQUESTER)
    if have & set(settings.approver_roles) and not subject.partner:
        roles.add(APPROVER)
    if have & set(settings.security_admin_roles) and not subject.partner:
        roles.add(SECURITY_ADMIN)
    if have & set(settings.auditor_roles):
        roles.add(AUDITOR)
    return frozenset(roles)


def principal(
    subject: Subject,
    settings: AccessSettings,
    *,
    via: str = "api",
    os_user: str | None = None,
    ip: str | None = None,
) -> Principal:
    return Principal(subject, console_roles(subject, settings), via, os_user, ip)
