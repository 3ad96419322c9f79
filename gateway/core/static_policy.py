"""The interim static action table: least privilege by level, without OPA.

Used when `policy.engine = static` and as the documented fallback. It builds the
policy's JSON answer and parses it with `Decision.from_json`, so the enforcer
receives exactly the object the OPA policy would produce.

The table (reference/cn-standards.md §2.1 and §4):

- a field at or below the caller's clearance: clear;
- one level above: mask, standard profile;
- two or more levels above: mask, strict profile;
- the top level (L5, credentials) or any level marked `never_clear`: dropped,
  for everyone;
- partners: never the standard profile, whatever is above their clearance is
  masked strict; a partner whose access has expired is denied;
- disabled subjects: denied;
- writes: permitted only for categories whose level is at or below the
  clearance (and never for the top level).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.core.model import Decision, Subject
from gateway.core.taxonomy import Taxonomy

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _action(field_rank: int, clearance_rank: int, *, partner: bool) -> dict[str, str]:
    if field_rank <= clearance_rank:
        return {"action": "allow"}
    if field_rank == clearance_rank + 1 and not partner:
        return {"action": "mask", "style": "standard"}
    return {"action": "mask", "style": "strict"}


def static_decision(
    taxonomy: Taxonomy,
    subject: Subject,
    *,
    method: str,
    revision: str = "static",
    now: datetime | None = None,
) -> Decision:
    """The static action table for one caller and request method."""
    if subject.disabled:
        return Decision.deny("subject is disabled", revision)
    expires = subject.partner_expires if subject.partner else None
    if expires is not None and expires <= (now or datetime.now(UTC)):
        return Decision.deny("partner access has expired", revision)
    try:
        clearance = taxonomy.level_rank(subject.clearance)
    except KeyError:
        return Decision.deny(f"unknown clearance {subject.clearance!r}", revision)
    top = taxonomy.levels[-1]
    closed = {lv.code for lv in taxonomy.levels if lv.never_clear or lv.code == top.code}
    levels: dict[str, Any] = {}
    for lv in taxonomy.levels:
        if lv.code in closed:
            levels[lv.code] = {"action": "drop"}
        else:
            levels[lv.code] = _action(lv.rank, clearance, partner=subject.partner)
    fields: dict[str, Any] = {}
    explain: dict[str, str] = {}
    write: dict[str, bool] = {}
    writing = method.upper() in WRITE_METHODS
    for name, cat in taxonomy.categories.items():
        fields[name] = levels[cat.level]
        rank = taxonomy.level_rank(cat.level)
        if cat.level in closed:
            explain[name] = f"{cat.level} is never released"
        elif rank <= clearance:
            explain[name] = f"clearance {subject.clearance} covers {cat.level}"
        else:
            explain[name] = f"{cat.level} is above clearance {subject.clearance}"
        if writing:
            write[name] = cat.level not in closed and rank <= clearance
    raw = {
        "allow": True,
        "reason": f"static table for clearance {subject.clearance}"
        + (" (partner)" if subject.partner else ""),
        "revision": revision,
        "fields": fields,
        "levels": levels,
        "records": [],
        "obligations": {"audit_level": "detailed" if subject.partner else "basic"},
        "write": write,
        "explain": explain,
    }
    return Decision.from_json(raw)


def synthetic_subject(clearance: str, *, partner: bool = False) -> Subject:
    """A stand-in caller with a given clearance (for `crm-gateway explain --level`)."""
    return Subject(id="explain", display_name="explain", clearance=clearance, partner=partner)
