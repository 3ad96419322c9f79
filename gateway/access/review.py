"""Periodic access review (权限周期性复核): who holds more than the default, and is it used?

A review lists one line per permission above the default:

- `clearance:<subject>`: a directory subject whose standing clearance is above
  the default clearance (a new entry starts at the default);
- `grant:<id>`: every active grant (standing or time-limited).

Each line carries its last use and its uses in the period, from the audit
trail (canonical access events, never values): a clearance counts as used by
an event of the subject that showed a field above the default level in clear;
a grant by an event of its subject while it was active that needed it (level,
break-glass and on-call grants: a clear field above the subject's standing
clearance, up to the grant's level; grade grants: records of that grade
returned; bulk-export grants: an export). A clearance counts only up to itself
(levels above it in clear were a grant's doing). A line with no use in the
period is flagged `unused`, the reviewer's first candidates for revocation.

A reviewer then decides every line, confirm or revoke (`sign`). The review is
refused when a line is left undecided or unknown, when the reviewer is not an
enabled directory subject with a reviewer role (security_admin, compliance), or
when the reviewer would confirm their own access (their own lines may only be
revoked or left open for another reviewer). The signed review (a JSON document,
CSV beside it) carries the sha256 of its canonical form, which the audit event
repeats, so an exported file can be matched to the tamper-evident chain.

This module is the logic a CLI command or a web page calls; the I/O (directory,
grants, audit trail, revocations, the audit event) is in `review_commands.py`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from gateway.errors import ClientError, Forbidden

LEVELS = ("L0", "L1", "L2", "L3", "L4", "L5")
RANK = {lv: i for i, lv in enumerate(LEVELS)}
REVIEWER_ROLES = frozenset({"security_admin", "compliance"})
DECISIONS = ("confirm", "revoke")
OPEN = "for another reviewer"  # the reviewer's own line, left undecided
_LEVEL_GRANTS = frozenset({"level", "break_glass", "oncall"})
_GRADE_GRANTS = {"grade_a": ("A",), "grade_b": ("A", "B")}
CSV_COLUMNS = (
    "line", "kind", "subject", "department", "roles", "permission", "level", "granted",
    "expires", "approved_by", "last_use", "uses_in_period", "highest_level_used", "unused",
    "decision", "note", "outcome",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SubjectFacts:
    """What the review needs of a directory entry."""

    id: str
    department: str
    roles: tuple[str, ...]
    clearance: str
    disabled: bool = False


@dataclass(slots=True)
class Usage:
    """Uses of one line found in the audit events of the period."""

    count: int = 0
    last: int = 0  # epoch ms
    highest: str | None = None

    def add(self, time_ms: int, level: str | None) -> None:
        self.count += 1
        self.last = max(self.last, time_ms)
        if level is not None and (self.highest is None or RANK[level] > RANK[self.highest]):
            self.highest = level


@dataclass(frozen=True, slots=True)
class ReviewLine:
    line: str
    kind: str  # clearance | grant
    subject: str
    department: str
    roles: tuple[str, ...]
    permission: str
    level: str | None
    granted: str | None
    expires: str | None
    approved_by: tuple[str, ...]
    last_use: str | None
    uses_in_period: int
    highest_level_used: str | None
    unused: bool
    decision: str | None = None
    note: str = ""
    outcome: str = ""  # after sign-off: kept | revoked | failed: ...

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["roles"] = list(self.roles)
        out["approved_by"] = list(self.approved_by)
        return out


@dataclass(slots=True)
class Review:
    period_start: datetime
    period_end: datetime
    default_clearance: str
    lines: list[ReviewLine]
    events_read: int = 0
    review_id: str = ""
    reviewer: str = ""
    signed_at: str = ""
    digest: str = ""  # sha256 of the canonical signed document (without `digest`)
    audit_event_uid: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        doc = {
            "review_id": self.review_id,
            "reviewer": self.reviewer,
            "signed_at": self.signed_at,
            "period": {"start": _iso(self.period_start), "end": _iso(self.period_end)},
            "default_clearance": self.default_clearance,
            "events_read": self.events_read,
            "lines": [ln.to_dict() for ln in self.lines],
            "summary": self.summary(),
        }
        if self.digest:
            doc["sha256"] = self.digest
        if self.audit_event_uid:
            doc["audit_event_uid"] = self.audit_event_uid
        return doc

    def summary(self) -> dict[str, int]:
        return {
            "lines": len(self.lines),
            "clearance_lines": sum(1 for ln in self.lines if ln.kind == "clearance"),
            "grant_lines": sum(1 for ln in self.lines if ln.kind == "grant"),
            "unused": sum(1 for ln in self.lines if ln.unused),
            "confirmed": sum(1 for ln in self.lines if ln.decision == "confirm"),
            "revoked": sum(1 for ln in self.lines if ln.decision == "revoke"),
            "open": sum(1 for ln in self.lines if ln.decision is None),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for ln in self.lines:
            d = ln.to_dict()
            d["roles"] = ";".join(ln.roles)
            d["approved_by"] = ";".join(ln.approved_by)
            d["unused"] = "yes" if ln.unused else "no"
            writer.writerow(["" if d[c] is None else d[c] for c in CSV_COLUMNS])
        return buf.getvalue()

    def text(self) -> str:
        out = [
            f"periodic review {_iso(self.period_start)} .. {_iso(self.period_end)}  "
            f"(default clearance {self.default_clearance}, {self.events_read} audit events read)",
            "",
            f"{'line':<28} {'permission':<34} {'last use':<20} {'uses':>5}  flag",
        ]
        for ln in self.lines:
            flag = "UNUSED" if ln.unused else ""
            out.append(
                f"{ln.line:<28} {ln.permission:<34} {(ln.last_use or '-')[:19]:<20} "
                f"{ln.uses_in_period:>5}  {flag}"
            )
        s = self.summary()
        out += ["", f"{s['lines']} line(s), {s['unused']} unused in the period"]
        return "\n".join(out)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ms_iso(ms: int) -> str | None:
    return _iso(datetime.fromtimestamp(ms / 1000, UTC)) if ms else None


def _parse(ts: Any) -> datetime | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else None


def parse_period(text: str) -> timedelta:
    """`90d`, `12w`, `24h`."""
    t = text.strip().lower()
    units = {"d": "days", "w": "weeks", "h": "hours"}
    if len(t) < 2 or t[-1] not in units or not t[:-1].isdigit() or int(t[:-1]) <= 0:
        raise ClientError(f"--period: expected e.g. 90d, 12w or 24h, got {text!r}")
    return timedelta(**{units[t[-1]]: int(t[:-1])})


# -- audit events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessUse:
    """The parts of one canonical access event the review reads."""

    subject: str
    time_ms: int
    allowed: bool
    operation: str
    clear_levels: frozenset[str]
    grades: frozenset[str]  # grades of the records seen (when some were returned)
    request: str = ""  # the request id: a durable release event and its final share it
    release: bool = False  # written before the data left (audit.durable_from)


def access_use(event: Mapping[str, Any]) -> AccessUse | None:
    """An access event's usage facts; None for seals, governance events, follow-up chunks."""
    crm = (event.get("unmapped") or {}).get("crm")
    if not isinstance(crm, dict) or "fields" not in crm:
        return None
    uid = ((event.get("actor") or {}).get("user") or {}).get("uid")
    t = event.get("time")
    if not isinstance(uid, str) or not isinstance(t, int):
        return None
    decision = crm.get("decision") or {}
    fields = crm.get("fields") or {}
    clear = fields.get("clear") if isinstance(fields, dict) else None
    clear_levels = frozenset(
        lv
        for lv, cats in (clear or {}).items()
        if lv in RANK and isinstance(cats, dict) and any(cats.values())
    )
    grades = crm.get("grades") or {}
    records = crm.get("records") or {}
    returned = _int(records.get("seen")) > _int(records.get("dropped"))
    return AccessUse(
        subject=uid,
        time_ms=t,
        allowed=decision.get("outcome") in ("allow", "allow_masked"),
        operation=str((event.get("api") or {}).get("operation") or ""),
        clear_levels=clear_levels,
        grades=frozenset(g for g, n in grades.items() if _int(n) > 0) if returned else frozenset(),
        request=str((event.get("metadata") or {}).get("correlation_uid") or ""),
        release=crm.get("phase") == "release",
    )


class OncePerRequest:
    """Drops the final event of a request whose release event was already counted.

    A response audited durably before release (`audit.durable_from`) leaves two events:
    `phase: release` and, once the body is sent, `phase: final`. Either may be the only
    one in the trail (a crash after release; no durable audit), so each request counts
    once, whichever arrives. The two are written milliseconds apart by the same writer:
    remembering the last `window` release ids bounds the memory on long trails."""

    def __init__(self, window: int = 100_000) -> None:
        self._released: OrderedDict[str, None] = OrderedDict()
        self._window = window

    def first(self, use: AccessUse) -> bool:
        if not use.request:
            return True
        if use.release:
            self._released[use.request] = None
            if len(self._released) > self._window:
                self._released.popitem(last=False)
            return True
        if use.request in self._released:  # the final of a release already counted
            del self._released[use.request]
            return False
        return True


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _top(levels: Iterable[str]) -> str | None:
    ranked = sorted(levels, key=RANK.__getitem__)
    return ranked[-1] if ranked else None


def _grant_window(grant: Mapping[str, Any], now: datetime) -> tuple[datetime, datetime] | None:
    start = _parse(grant.get("activated")) or _parse(grant.get("created"))
    end = min(d for d in (_parse(grant.get("expires")), _parse(grant.get("revoked_at")), now) if d)
    return (start, end) if start is not None else None


def _grant_use(grant: Mapping[str, Any], standing: str, use: AccessUse) -> tuple[bool, str | None]:
    """(did this event use the grant, the level it showed above the standing clearance)."""
    if not use.allowed:
        return False, None
    gtype = str(grant.get("type", ""))
    above = [lv for lv in use.clear_levels if RANK[lv] > RANK.get(standing, 0)]
    if gtype in _LEVEL_GRANTS:
        cap = RANK.get(str(grant.get("level") or ""), len(LEVELS) - 2)
        hit = [lv for lv in above if RANK[lv] <= cap]
        return bool(hit), _top(hit)
    if gtype in _GRADE_GRANTS:
        return bool(use.grades & set(_GRADE_GRANTS[gtype])), _top(use.clear_levels)
    if gtype == "bulk_export":
        return "export" in use.operation, _top(use.clear_levels)
    return True, _top(use.clear_levels)


def build_review(
    subjects: Iterable[SubjectFacts],
    grants: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    *,
    period: timedelta,
    default_clearance: str = "L1",
    now: datetime | None = None,
) -> Review:
    """The review's lines with their usage over [now - period, now]."""
    if default_clearance not in RANK:
        raise ClientError(f"unknown default clearance {default_clearance!r}")
    end = now or datetime.now(UTC)
    start = end - period
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    default = RANK[default_clearance]
    by_id = {s.id: s for s in subjects}
    above = sorted(
        (s for s in by_id.values() if RANK.get(s.clearance, 0) > default), key=lambda s: s.id
    )
    active = sorted(
        (g for g in grants if g.get("state", g.get("status")) == "active"),
        key=lambda g: (str(g.get("subject")), str(g.get("id"))),
    )
    clear_use = {s.id: Usage() for s in above}
    grant_use = {str(g["id"]): Usage() for g in active}
    windows = {str(g["id"]): _grant_window(g, end) for g in active}
    wanted = {s.id for s in above} | {str(g.get("subject")) for g in active}
    read = 0
    once = OncePerRequest()
    for raw in events:
        use = access_use(raw)
        if use is None:
            continue
        read += 1
        if not once.first(use):
            continue
        if use.subject not in wanted or not start_ms <= use.time_ms <= end_ms:
            continue
        usage = clear_use.get(use.subject)
        if usage is not None and use.allowed:
            cap = RANK.get(by_id[use.subject].clearance, 0)  # above it: a grant's doing
            shown = [lv for lv in use.clear_levels if default < RANK[lv] <= cap]
            if shown:
                usage.add(use.time_ms, _top(shown))
        for g in active:
            if g.get("subject") != use.subject:
                continue
            window = windows[str(g["id"])]
            if window is None or not window[0].timestamp() * 1000 <= use.time_ms:
                continue
            if use.time_ms > window[1].timestamp() * 1000:
                continue
            facts = by_id.get(use.subject)
            used, level = _grant_use(g, facts.clearance if facts else "L0", use)
            if used:
                grant_use[str(g["id"])].add(use.time_ms, level)
    lines: list[ReviewLine] = []
    for s in above:
        u = clear_use[s.id]
        lines.append(
            ReviewLine(
                line=f"clearance:{s.id}",
                kind="clearance",
                subject=s.id,
                department=s.department,
                roles=s.roles,
                permission=f"standing clearance {s.clearance}"
                + (" (disabled)" if s.disabled else ""),
                level=s.clearance,
                granted=None,
                expires=None,
                approved_by=(),
                last_use=_ms_iso(u.last),
                uses_in_period=u.count,
                highest_level_used=u.highest,
                unused=u.count == 0,
            )
        )
    for g in active:
        u = grant_use[str(g["id"])]
        facts = by_id.get(str(g.get("subject")))
        level = g.get("level")
        lines.append(
            ReviewLine(
                line=f"grant:{g['id']}",
                kind="grant",
                subject=str(g.get("subject")),
                department=str(g.get("department") or (facts.department if facts else "")),
                roles=facts.roles if facts else (),
                permission=f"grant {g.get('type')}" + (f" {level}" if level else ""),
                level=str(level) if level else None,
                granted=str(g.get("activated") or g.get("created") or "") or None,
                expires=str(g.get("expires") or "") or None,
                approved_by=tuple(str(a) for a in g.get("approved_by") or ()),
                last_use=_ms_iso(u.last),
                uses_in_period=u.count,
                highest_level_used=u.highest,
                unused=u.count == 0,
            )
        )
    return Review(start, end, default_clearance, lines, events_read=read)


# -- sign-off ------------------------------------------------------------------------


def parse_decisions(raw: bytes, filename: str = "") -> dict[str, tuple[str, str]]:
    """line -> (decision, note) from JSON (`[{line, decision, note}]` or `{line: decision}`)
    or CSV with columns `line,decision,note`."""
    text = raw.decode("utf-8-sig")
    rows: list[Mapping[str, Any]]
    if filename.lower().endswith(".csv") or not text.lstrip().startswith(("[", "{")):
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ClientError(f"decisions file is not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            rows = [{"line": k, "decision": v} for k, v in data.items()]
        elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
            rows = data
        else:
            raise ClientError("decisions: a list of {line, decision, note} or {line: decision}")
    out: dict[str, tuple[str, str]] = {}
    for row in rows:
        line = str(row.get("line") or "").strip()
        decision = str(row.get("decision") or "").strip().lower()
        if not line:
            raise ClientError("decisions: a row without a line id")
        if decision not in DECISIONS:
            raise ClientError(f"decisions: {line}: decision must be confirm or revoke")
        if line in out:
            raise ClientError(f"decisions: {line} appears twice")
        out[line] = (decision, str(row.get("note") or "").strip())
    return out


def check_reviewer(reviewer: str, subject: SubjectFacts | None) -> None:
    """The reviewer is a real, enabled subject with a reviewer role (not whatever was typed)."""
    if subject is None:
        raise Forbidden(f"reviewer {reviewer!r} is not in the directory")
    if subject.disabled:
        raise Forbidden(f"reviewer {reviewer!r} is disabled")
    if not REVIEWER_ROLES & set(subject.roles):
        roles = ", ".join(sorted(REVIEWER_ROLES))
        raise Forbidden(f"reviewer {reviewer!r} has none of the reviewer roles ({roles})")


def apply_decisions(
    review: Review,
    decisions: Mapping[str, tuple[str, str]],
    *,
    reviewer: str,
    now: datetime | None = None,
) -> Review:
    """The review with every line decided; refuses incomplete, unknown or self-confirmed
    lines. The reviewer's own lines may be revoked or left out: they then stay open
    (`outcome` "for another reviewer") for a second review."""
    ids = {ln.line for ln in review.lines}
    unknown = sorted(set(decisions) - ids)
    if unknown:
        raise ClientError(f"decisions name lines not in the review: {', '.join(unknown)}")
    own = {ln.line for ln in review.lines if ln.subject == reviewer}
    self_confirmed = sorted(ln for ln in own if decisions.get(ln, ("",))[0] == "confirm")
    if self_confirmed:
        raise Forbidden(
            "a reviewer does not confirm their own access: " + ", ".join(self_confirmed)
        )
    missing = sorted(ids - set(decisions) - own)
    if missing:
        raise ClientError(f"every line needs a decision; missing: {', '.join(missing)}")
    lines = [
        replace(ln, decision=decisions[ln.line][0], note=decisions[ln.line][1])
        if ln.line in decisions
        else replace(ln, outcome=OPEN)
        for ln in review.lines
    ]
    when = now or datetime.now(UTC)
    return replace(
        review,
        lines=lines,
        reviewer=reviewer,
        signed_at=_iso(when),
        review_id="rv-" + when.strftime("%Y%m%d") + "-" + secrets.token_hex(4),
    )


def seal(review: Review) -> Review:
    """Set `digest`: sha256 over the canonical document (outcomes included, no digest)."""
    review.digest = ""
    review.audit_event_uid = ""
    body = orjson.dumps(review.document(), option=orjson.OPT_SORT_KEYS)
    review.digest = hashlib.sha256(body).hexdigest()
    return review


def review_event(review: Review, *, uid: str, time_ms: int, time_dt: str) -> dict[str, Any]:
    """The audit event of a signed review (OCSF Entity Management shaped, 3004 Update):
    who reviewed, when, the period, and every line's decision and outcome (ids only)."""
    s = review.summary()
    return {
        "class_uid": 3004,
        "class_name": "Entity Management",
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "activity_id": 3,
        "activity_name": "Update",
        "type_uid": 300403,
        "severity_id": 2 if s["revoked"] else 1,
        "time": time_ms,
        "time_dt": time_dt,
        "status_id": 1 if all(not ln.outcome.startswith("failed") for ln in review.lines) else 2,
        "message": f"periodic access review signed: {s['confirmed']} confirmed, "
        f"{s['revoked']} revoked",
        "metadata": {
            "version": "1.8.0",
            "product": {"name": "crm-gateway", "vendor_name": "crm-gateway"},
            "uid": uid,
            "log_name": "crm-governance",
        },
        "actor": {"user": {"uid": review.reviewer}},
        "entity": {"type": "access_review", "uid": review.review_id},
        "unmapped": {
            "governance": {
                "action": "review.signed",
                "review_id": review.review_id,
                "reviewer": review.reviewer,
                "signed_at": review.signed_at,
                "period": {"start": _iso(review.period_start), "end": _iso(review.period_end)},
                "default_clearance": review.default_clearance,
                "summary": s,
                "evidence_sha256": review.digest,
                "lines": [
                    {
                        "line": ln.line,
                        "subject": ln.subject,
                        "permission": ln.permission,
                        "unused": ln.unused,
                        "decision": ln.decision,
                        "outcome": ln.outcome,
                    }
                    for ln in review.lines
                ],
            }
        },
    }


def subjects_above(subjects: Sequence[SubjectFacts], default_clearance: str) -> list[str]:
    return [s.id for s in subjects if RANK.get(s.clearance, 0) > RANK[default_clearance]]
