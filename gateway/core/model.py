"""The values that flow between stages: who is calling, and what the policy decided.

A `Decision` is the action table of DESIGN.md: one per request, known before the
body arrives, applied by table lookup per field. It is built from the policy's
JSON (`Decision.from_json`) and nothing else, so the OPA engine and the static
table of `config/gateway.yaml` produce the very same object.

Restrictiveness is a total order (`Action.rank`): wherever two rules meet, the
more restrictive wins, and a category the decision did not name gets the most
restrictive field action (`drop`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Self


class Verb(StrEnum):
    """What a field action does to a value."""

    ALLOW = "allow"  # shown in clear
    PSEUDONYMISE = "pseudonymise"  # keyed, stable HMAC token
    MASK = "mask"  # partial mask by convention (style: standard | strict)
    GENERALISE = "generalise"  # band, year, age band, district
    REDACT = "redact"  # fixed placeholder, type kept
    DROP = "drop"  # field removed
    BLOCK = "block"  # the whole response is refused


_RANK = {
    (Verb.ALLOW, None): 0,
    (Verb.PSEUDONYMISE, None): 1,
    (Verb.MASK, "standard"): 2,
    (Verb.GENERALISE, None): 3,
    (Verb.MASK, "strict"): 4,
    (Verb.REDACT, None): 5,
    (Verb.DROP, None): 6,
    (Verb.BLOCK, None): 7,
}

STYLES = ("standard", "strict")


class DecisionError(ValueError):
    """The policy answered something we cannot act on. Callers treat it as deny."""


@dataclass(frozen=True, slots=True)
class Action:
    verb: Verb
    style: str | None = None  # only for MASK

    @property
    def rank(self) -> int:
        return _RANK[(self.verb, self.style if self.verb is Verb.MASK else None)]

    def stricter(self, other: Action) -> Action:
        return self if self.rank >= other.rank else other

    @classmethod
    def from_json(cls, raw: Any) -> Action:
        if isinstance(raw, str):
            raw = {"action": raw}
        if not isinstance(raw, Mapping):
            raise DecisionError(f"action must be an object or string, got {type(raw).__name__}")
        try:
            verb = Verb(str(raw.get("action")))
        except ValueError as exc:
            raise DecisionError(f"unknown action {raw.get('action')!r}") from exc
        style = raw.get("style")
        if verb is Verb.MASK:
            style = style or "standard"
            if style not in STYLES:
                raise DecisionError(f"unknown mask style {style!r}")
        else:
            style = None
        return cls(verb, style)

    def to_json(self) -> dict[str, str]:
        out = {"action": self.verb.value}
        if self.style:
            out["style"] = self.style
        return out


ALLOW = Action(Verb.ALLOW)
DROP = Action(Verb.DROP)
BLOCK = Action(Verb.BLOCK)


class RecordVerb(StrEnum):
    SHOW = "show"
    DROP = "drop"  # the record is left out of the response
    BLOCK = "block"  # the whole response is refused


_RECORD_RANK = {RecordVerb.SHOW: 0, RecordVerb.DROP: 1, RecordVerb.BLOCK: 2}


@dataclass(frozen=True, slots=True)
class RecordRule:
    """Applies to every record matching all of `when`; most restrictive match wins.

    `when` keys: `grade` (list), `tier` (list), `missing_consent` (a consent
    name the record must carry as true), `not_assigned` (true: the record's
    owner/assignee is not the caller).
    """

    when: Mapping[str, Any]
    record: RecordVerb = RecordVerb.SHOW
    fields: Mapping[str, Action] = field(default_factory=dict)  # category -> action
    reason: str = ""

    @classmethod
    def from_json(cls, raw: Any) -> RecordRule:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("when", {}), Mapping):
            raise DecisionError("record rule must be an object with a 'when' object")
        try:
            verb = RecordVerb(str(raw.get("record", "show")))
        except ValueError as exc:
            raise DecisionError(f"unknown record action {raw.get('record')!r}") from exc
        fields_raw = raw.get("fields", {})
        if not isinstance(fields_raw, Mapping):
            raise DecisionError("record rule 'fields' must be an object")
        return cls(
            when=dict(raw.get("when", {})),
            record=verb,
            fields={str(k): Action.from_json(v) for k, v in fields_raw.items()},
            reason=str(raw.get("reason", "")),
        )

    def matches(self, record: RecordFacts, subject_id: str) -> bool:
        for key, want in self.when.items():
            if key == "grade":
                if record.grade not in want:
                    return False
            elif key == "tier":
                if record.tier not in want:
                    return False
            elif key == "missing_consent":
                if record.consents.get(str(want)) is True:
                    return False
            elif key == "not_assigned":
                assigned = subject_id in record.assignees
                if bool(want) == assigned:
                    return False
            else:
                # An unknown condition is not ignored: treat it as matching so
                # the (restrictive) rule applies. Fail closed.
                continue
        return True


@dataclass(frozen=True, slots=True)
class Lookup:
    """Categories the caller may filter or search by although they are above the
    clear level (a customer's own number, given on the phone), exact values only,
    at most `limit` such requests per `period` seconds per subject."""

    categories: frozenset[str] = frozenset()
    limit: int = 0
    period: float = 3600.0

    @classmethod
    def from_json(cls, raw: Any, name: str = "lookup") -> Self:
        if raw is None:
            return cls()
        where = f"obligations.{name}"
        if not isinstance(raw, Mapping):
            raise DecisionError(f"{where} must be an object")
        cats = raw.get("categories", [])
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise DecisionError(f"{where}.categories must be a list of strings")
        limit, period = raw.get("limit", 0), raw.get("period_seconds", 3600)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise DecisionError(f"{where}.limit must be a non-negative integer")
        if isinstance(period, bool) or not isinstance(period, int | float) or period <= 0:
            raise DecisionError(f"{where}.period_seconds must be a positive number")
        # Without a rate limit there is none of it: a limit of 0 allows none.
        return cls(frozenset(cats) if limit else frozenset(), limit, float(period))


@dataclass(frozen=True, slots=True)
class Reveal(Lookup):
    """Categories whose masked values the caller may reveal one at a time with a
    reason (`POST /_gateway/reveal`), at most `limit` reveals per `period` seconds
    per subject. Reveal handles are offered only for these."""


@dataclass(frozen=True, slots=True)
class Obligations:
    audit_level: str = "basic"  # basic | detailed | critical
    step_up: bool = False
    acr_values: str | None = None
    max_clear_records: Mapping[str, int] = field(default_factory=dict)  # level -> N
    bulk_action: str = "mask"  # mask | block, beyond max_clear_records
    cache_ttl: float = 30.0
    purpose_required: bool = False
    # the purposes the caller's roles may declare; None: the policy keeps no list
    purposes: frozenset[str] | None = None
    justification_required: bool = False
    lookup: Lookup = field(default_factory=Lookup)  # protected lookups (query_guard)
    reveal: Reveal = field(default_factory=Reveal)  # reveal with reason (查看明文)

    @classmethod
    def from_json(cls, raw: Any) -> Obligations:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise DecisionError("obligations must be an object")
        mcr = raw.get("max_clear_records") or {}
        if not isinstance(mcr, Mapping) or not all(
            isinstance(v, int) and v >= 0 for v in mcr.values()
        ):
            raise DecisionError("max_clear_records must map levels to non-negative integers")
        bulk = raw.get("bulk_action", "mask")
        if bulk not in ("mask", "block"):
            raise DecisionError(f"unknown bulk_action {bulk!r}")
        ttl = raw.get("cache_ttl", 30)
        if not isinstance(ttl, int | float) or ttl < 0:
            raise DecisionError("cache_ttl must be a non-negative number")
        purposes = raw.get("purposes")
        if purposes is not None and (
            not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes)
        ):
            raise DecisionError("purposes must be a list of strings or null")
        return cls(
            audit_level=str(raw.get("audit_level", "basic")),
            step_up=bool(raw.get("step_up", False)),
            acr_values=raw.get("acr_values"),
            max_clear_records={str(k): int(v) for k, v in mcr.items()},
            bulk_action=bulk,
            cache_ttl=float(ttl),
            purpose_required=bool(raw.get("purpose_required", False)),
            purposes=None if purposes is None else frozenset(purposes),
            justification_required=bool(raw.get("justification_required", False)),
            lookup=Lookup.from_json(raw.get("lookup")),
            reveal=Reveal.from_json(raw.get("reveal"), "reveal"),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The action table for one request."""

    allow: bool
    reason: str
    revision: str
    fields: Mapping[str, Action]  # category -> action (the default table)
    levels: Mapping[str, Action]  # level code -> action, for hits without a named category
    records: tuple[RecordRule, ...] = ()
    obligations: Obligations = field(default_factory=Obligations)
    write: Mapping[str, bool] = field(default_factory=dict)  # category -> may be written
    report_only: bool = False
    explain: Mapping[str, str] = field(default_factory=dict)  # category -> reason text
    # What the enforcer derives from this decision (action tables, record plans:
    # gateway.core.enforce), per (taxonomy, route). It lives and goes with the decision,
    # so the policy engine's decision cache, which owns the decisions, bounds it too.
    # Not an init field: a changed copy (`dataclasses.replace`) starts with its own.
    enforcement_cache: dict[tuple[int, int], Any] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def field_action(self, category: str, level: str) -> Action:
        """The default-table action for a category; unnamed categories fall back to
        the level's action, and unnamed levels to DROP (fail closed)."""
        act = self.fields.get(category)
        if act is not None:
            return act
        return self.levels.get(level, DROP)

    def may_write(self, category: str) -> bool:
        return self.write.get(category, False)

    @classmethod
    def from_json(cls, raw: Any) -> Decision:
        """Parse a policy result. Anything malformed raises DecisionError (= deny)."""
        if not isinstance(raw, Mapping):
            raise DecisionError("decision is undefined or not an object")
        allow = raw.get("allow")
        if not isinstance(allow, bool):
            raise DecisionError("decision.allow must be a boolean")
        for key in ("fields", "levels"):
            if not isinstance(raw.get(key, {}), Mapping):
                raise DecisionError(f"decision.{key} must be an object")
        records = raw.get("records", [])
        if not isinstance(records, list):
            raise DecisionError("decision.records must be a list")
        write = raw.get("write", {})
        if not isinstance(write, Mapping) or not all(isinstance(v, bool) for v in write.values()):
            raise DecisionError("decision.write must map categories to booleans")
        explain = raw.get("explain", {})
        return cls(
            allow=allow,
            reason=str(raw.get("reason", "")),
            revision=str(raw.get("revision", "")),
            fields={str(k): Action.from_json(v) for k, v in raw.get("fields", {}).items()},
            levels={str(k): Action.from_json(v) for k, v in raw.get("levels", {}).items()},
            records=tuple(RecordRule.from_json(r) for r in records),
            obligations=Obligations.from_json(raw.get("obligations")),
            write={str(k): v for k, v in write.items()},
            report_only=bool(raw.get("report_only", False)),
            explain={str(k): str(v) for k, v in explain.items()}
            if isinstance(explain, Mapping)
            else {},
        )

    @classmethod
    def deny(cls, reason: str, revision: str = "") -> Decision:
        return cls(allow=False, reason=reason, revision=revision, fields={}, levels={})


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """Record-level attributes read through the catalog (never field values)."""

    record_id: str | None = None
    grade: str | None = None  # A / B / C
    tier: str | None = None  # VIP / 重要 / 一般 / 潜在 / 流失
    consents: Mapping[str, bool] = field(default_factory=dict)
    assignees: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is calling. Built by the identity stage; never from client headers."""

    id: str
    display_name: str = ""
    roles: tuple[str, ...] = ()
    department: str = ""
    clearance: str = "L0"
    mfa: bool = False
    auth_method: str = "none"
    partner: bool = False
    partner_expires: datetime | None = None
    allowed_networks: tuple[str, ...] = ()
    disabled: bool = False
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def step_up_max_age(self) -> int | None:
        """Seconds a second factor stays fresh for this caller (set by the identity
        stage, `mfa_max_age`): the `max_age` its step-up challenge names (RFC 9470)."""
        value = self.attributes.get("mfa_max_age")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def to_policy(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "roles": sorted(self.roles),
            "department": self.department,
            "clearance": self.clearance,
            "mfa": self.mfa,
            "auth_method": self.auth_method,
            "partner": self.partner,
            "partner_expires": self.partner_expires.isoformat() if self.partner_expires else None,
            "disabled": self.disabled,
        }
