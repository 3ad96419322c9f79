"""The static action table: the OPA policy's level rules, without OPA.

Used when `policy.engine = static` and as the documented fallback. It builds the
policy's JSON answer and parses it with `Decision.from_json`, so the enforcer
receives exactly the object the OPA policy would produce. The rules are those of
rego/levels.rego and rego/limits.rego (reference/cn-standards.md §2.1 and §4), and
tests/contract/test_static_policy_contract.py holds the table to the golden cases
the OPA policy is held to:

- a category counts at its level; an SPI category at least at `spi_min_level`
  (default: the level below the top), so balances and card numbers take the
  stricter action;
- a level at or below the caller's clear limit: clear; one above: mask, standard
  profile (strict for partners, who never get the lighter mask); further above:
  mask, strict; the top level (L5, credentials) or a level marked `never_clear`:
  dropped, for everyone;
- the clear limit is the clearance, capped below the top; given the policy's
  configuration (`StaticRules`, the `crm.config` of rego/data.json) it is also
  capped by the roles' scope for the operation, a missing purpose, working hours
  and network zone, and lowered below `mfa_required_from` without MFA;
- revoked or disabled subjects, unknown clearances, disallowed networks,
  partners without a current expiry and (with rules) operations no role permits:
  denied, every category and level blocked, with the policy's reasons;
- the purposes a caller may declare: the union of its roles' `purposes` lists (the
  gateway refuses any other declared purpose);
- writes: a category whose (SPI-raised) level is within the write limit, the
  clearance capped by the roles' `modify` scope (with rules) and below the top.

Not modelled (the OPA policy's alone): grants (grade, level, on-call,
break-glass), record rules and obligations beyond the audit level and the
declarable purposes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.core.model import Decision, Subject
from gateway.core.taxonomy import Taxonomy

__all__ = ["RequestFacts", "StaticRules", "static_decision", "synthetic_subject"]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class StaticRules:
    """The policy configuration the table applies (rego/data.json `crm.config`)."""

    roles: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # op -> level
    purposes: Mapping[str, tuple[str, ...]] | None = None  # role -> declarable purposes
    purpose_required_from: str | None = None
    time_from_level: str | None = None
    zones: tuple[str, ...] = ()
    hours: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # ISO weekday
    holidays: frozenset[str] = frozenset()
    mfa_required_from: str | None = None
    spi_min_level: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StaticRules:
        tp = config.get("time_place", {})
        return cls(
            roles={r: dict(ops) for r, ops in config.get("roles", {}).items()},
            purposes=(
                {r: tuple(p) for r, p in config["purposes"].items()}
                if isinstance(config.get("purposes"), Mapping)
                else None
            ),
            purpose_required_from=config.get("purpose_required_from"),
            time_from_level=tp.get("from_level"),
            zones=tuple(tp.get("zones", ())),
            hours={int(d): (h["start"], h["end"]) for d, h in tp.get("hours", {}).items()},
            holidays=frozenset(tp.get("holidays", ())),
            mfa_required_from=config.get("mfa_required_from"),
            spi_min_level=config.get("spi_min_level"),
        )


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the rules read from the request; `at` is in the policy's time zone."""

    operation: str = "view"  # view | modify | delete | export | reveal
    purpose: str | None = None
    network_zone: str = "internal"
    network_allowed: bool = True  # the subject's allowed networks admit the client
    revoked: bool = False  # on the revocation list
    at: datetime | None = None

    @classmethod
    def for_method(cls, method: str) -> RequestFacts:
        m = method.upper()
        return cls(
            operation="delete" if m == "DELETE" else "modify" if m in WRITE_METHODS else "view"
        )


@dataclass(frozen=True, slots=True)
class _Cap:
    limit: int
    why: str


class _Table:
    """The level ranks and thresholds of one taxonomy, as limits.rego reads them."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.codes = [lv.code for lv in taxonomy.levels]
        self.top = len(self.codes) - 1
        self.closed = {i for i, lv in enumerate(taxonomy.levels) if lv.never_clear or i == self.top}

    def rank(self, code: str | None) -> int | None:
        return self.codes.index(code) if code in self.codes else None

    def threshold(self, code: str | None) -> int:
        """A threshold naming an unknown level applies from the lowest (fail closed)."""
        rank = self.rank(code)
        return 0 if rank is None else rank

    def name(self, i: int) -> str:
        return self.codes[i] if i >= 0 else "none"


def _base_caps(t: _Table, clearance: int) -> list[_Cap]:
    return [
        _Cap(clearance, f"clearance {t.name(clearance)}"),
        _Cap(t.top - 1, "top level is never released"),
    ]


def _caps(
    t: _Table, subject: Subject, clearance: int, req: RequestFacts, rules: StaticRules
) -> list[_Cap] | str:
    """Every cap on the clear limit, or the deny reason when no role permits the operation."""
    caps = _base_caps(t, clearance)
    scope = "view" if req.operation == "reveal" else req.operation
    granted = [
        r
        for role in subject.roles
        if (r := t.rank(rules.roles.get(role, {}).get(scope))) is not None
    ]
    if not granted:
        return f"operation_not_permitted: no role permits {req.operation}"
    caps.append(_Cap(max(granted), f"roles permit {req.operation} up to {t.name(max(granted))}"))
    purposes = rules.purposes or {}
    if not any(req.purpose in purposes.get(role, ()) for role in subject.roles):
        caps.append(
            _Cap(
                t.threshold(rules.purpose_required_from) - 1,
                "no declared purpose allowed for the caller's roles",
            )
        )
    at = req.at
    hours = rules.hours.get(at.isoweekday()) if at is not None else None
    working = (
        at is not None
        and hours is not None
        and at.date().isoformat() not in rules.holidays
        and hours[0] <= at.hour < hours[1]
    )
    if not working:
        caps.append(_Cap(t.threshold(rules.time_from_level) - 1, "outside working hours"))
    if req.network_zone not in rules.zones:
        caps.append(
            _Cap(t.threshold(rules.time_from_level) - 1, f"network zone {req.network_zone}")
        )
    return caps


def static_decision(
    taxonomy: Taxonomy,
    subject: Subject,
    *,
    method: str,
    revision: str = "static",
    now: datetime | None = None,
    request: RequestFacts | None = None,
    rules: StaticRules | None = None,
) -> Decision:
    """The action table for one caller and request (`method` gives the operation
    when no `request` is given)."""
    req = request or RequestFacts.for_method(method)
    t = _Table(taxonomy)
    clearance = t.rank(subject.clearance)
    denied = sorted(
        reason
        for reason, holds in (
            ("subject_revoked", req.revoked),
            ("subject_disabled", subject.disabled),
            (f"clearance_unknown: {subject.clearance}", clearance is None),
            ("network_not_allowed", not req.network_allowed),
            (
                "partner_access_expired",
                subject.partner
                and (
                    subject.partner_expires is None
                    or subject.partner_expires <= (now or datetime.now(UTC))
                ),
            ),
        )
        if holds
    )
    if clearance is None or denied:
        return _deny(t, "; ".join(denied), revision)
    if rules is None:
        caps = _base_caps(t, clearance)
        write_limit = min(clearance, t.top - 1)
    else:
        found = _caps(t, subject, clearance, req, rules)
        if isinstance(found, str):
            return _deny(t, found, revision)
        caps = found
        modify = [
            min(clearance, t.top - 1, r)
            for role in subject.roles
            if (r := t.rank(rules.roles.get(role, {}).get("modify"))) is not None
        ]
        write_limit = max(modify, default=-1)
    binding = min(caps, key=lambda c: (c.limit, c.why))
    limit, why = binding.limit, binding.why
    mfa_from = t.threshold(rules.mfa_required_from) if rules else None
    if mfa_from is not None and not subject.mfa and limit >= mfa_from:
        limit, why = mfa_from - 1, f"step-up MFA required from {t.name(mfa_from)}"
    spi_floor = t.rank(rules.spi_min_level) if rules else None
    spi_floor = t.top - 1 if spi_floor is None else spi_floor

    def action(i: int) -> dict[str, str]:
        if i in t.closed:
            return {"action": "drop"}
        if i <= limit:
            return {"action": "allow"}
        if i == limit + 1 and not subject.partner:
            return {"action": "mask", "style": "standard"}
        return {"action": "mask", "style": "strict"}

    def explain(i: int) -> str:
        if i in t.closed:
            return f"drop: {t.name(i)} is never released"
        verdict = "allow" if i <= limit else f"mask {action(i)['style']}"
        relation = "within" if i <= limit else "above"
        return f"{verdict}: {t.name(i)} {relation} clear limit {t.name(limit)} ({why})"

    levels = {code: action(i) for i, code in enumerate(t.codes)}
    fields: dict[str, Any] = {}
    explains: dict[str, str] = {}
    write: dict[str, bool] = {}
    for name, cat in taxonomy.categories.items():
        i = t.rank(cat.level)
        i = t.top if i is None else i
        if cat.spi:
            i = max(i, spi_floor)
        fields[name] = action(i)
        explains[name] = explain(i)
        write[name] = i <= write_limit and i not in t.closed
    raw = {
        "allow": True,
        "reason": f"static table for clearance {subject.clearance}"
        + (" (partner)" if subject.partner else ""),
        "revision": revision,
        "fields": fields,
        "levels": levels,
        "records": [],
        "obligations": {
            "audit_level": "detailed" if subject.partner else "basic",
            "purposes": _declarable(subject, rules),
        },
        "write": write,
        "explain": explains,
    }
    return Decision.from_json(raw)


def _declarable(subject: Subject, rules: StaticRules | None) -> list[str] | None:
    """The purposes the caller's roles may declare (rego/obligations.rego)."""
    if rules is None or rules.purposes is None:
        return None
    return sorted({p for role in subject.roles for p in rules.purposes.get(role, ())})


def _deny(t: _Table, reason: str, revision: str) -> Decision:
    """A refusal shaped as the policy's: every category and level blocked."""
    blocked = {"action": "block"}
    return Decision.from_json(
        {
            "allow": False,
            "reason": reason,
            "revision": revision,
            "fields": dict.fromkeys(t.taxonomy.categories, blocked),
            "levels": dict.fromkeys(t.codes, blocked),
            "records": [],
            "obligations": {"audit_level": "detailed"},
            "write": {},
            "explain": dict.fromkeys(t.taxonomy.categories, reason),
        }
    )


def synthetic_subject(clearance: str, *, partner: bool = False) -> Subject:
    """A stand-in caller with a given clearance (for `crm-gateway explain --level`)."""
    return Subject(id="explain", display_name="explain", clearance=clearance, partner=partner)
