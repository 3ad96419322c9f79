"""`crm-gateway policy impact --rego DIR [--window 7d]`: what a policy change would change.

Before the security team publishes a policy, the decision inputs the gateways
actually saw in a recent window (the decision-input log, input_log.py) are
replayed against the running policy and the candidate, both on a real OPA: the
running one is the configured engine (managed: a second `opa run` on
`policy.rego_dir`; external: `policy.url`), the candidate a loopback `opa run
--bundle DIR` started here. The two action tables are compared per request:

- per category (at its taxonomy level), the effective outcome class: clear,
  masked (mask, generalise, pseudonymise, redact), dropped or blocked;
  changes are `unmasked` (to clear), `newly_masked` (clear to masked/dropped),
  `newly_blocked`, `unblocked`, or `changed` (another action, e.g. mask style);
- the whole request: allowed -> denied is `newly_blocked` for category `*`
  (its categories are not listed one by one), denied -> allowed `unblocked`;
- on writes (operation modify/delete), the categories that may be written:
  `write_allowed`, `write_refused`;
- record rules (grades, tiers, consent) and obligations (step-up, purpose,
  justification, bulk limits) that differ are listed per subject and route.

Every change carries request counts (the log's hourly counts over the window),
distinct inputs, and the subjects and routes it touches, with counts. The
replay needs no customer data: inputs are value-free by construction.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.core.model import Action, Decision, RecordRule, Verb
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ConfigError, PolicyUnavailable
from gateway.policy.breaker import CircuitBreaker
from gateway.policy.client import OpaClient, load_output_validator
from gateway.policy.input_log import input_log_dir, normalised_from_document
from gateway.policy.inputs import build_opa_input, taxonomy_digest
from gateway.policy.supervisor import OpaSupervisor, find_opa_binary
from gateway.settings import Settings
from gateway.state.decision_inputs import (
    DecisionInputStore,
    Doc,
    current_hour,
    open_decision_input_store,
)

_WINDOW = re.compile(r"(\d+)\s*([dhm])")
_UNIT = {"d": "days", "h": "hours", "m": "minutes"}
_CONCURRENCY = 8

CLEAR, MASKED, DROPPED, BLOCKED = "clear", "masked", "dropped", "blocked"
KINDS = (
    "newly_blocked", "unblocked", "unmasked", "newly_masked", "changed", "write_allowed",
    "write_refused",
)  # fmt: skip
_WRITES = frozenset({"modify", "delete"})


def parse_window(text: str) -> timedelta:
    """`7d`, `36h`, `90m`."""
    m = _WINDOW.fullmatch(text.strip().lower())
    if m is None or int(m.group(1)) <= 0:
        raise ConfigError(f"--window: expected e.g. 7d, 24h or 90m, got {text!r}")
    return timedelta(**{_UNIT[m.group(2)]: int(m.group(1))})


def outcome_class(action: Action) -> str:
    if action.verb is Verb.ALLOW:
        return CLEAR
    if action.verb is Verb.BLOCK:
        return BLOCKED
    if action.verb is Verb.DROP:
        return DROPPED
    return MASKED


def change_kind(old: str, new: str) -> str:
    if new == BLOCKED:
        return "newly_blocked"
    if old == BLOCKED:
        return "unblocked"
    if new == CLEAR:
        return "unmasked"
    if old == CLEAR:
        return "newly_masked"
    return "changed"


def _act(a: Action) -> str:
    return f"{a.verb.value}:{a.style}" if a.style else a.verb.value


def _rule_text(rule: RecordRule) -> str:
    fields = ",".join(f"{c}={_act(a)}" for c, a in sorted(rule.fields.items()))
    when = ",".join(f"{k}={v}" for k, v in sorted(rule.when.items()))
    return f"when {when} -> {rule.record.value}" + (f" [{fields}]" if fields else "")


def _obligations(d: Decision) -> dict[str, Any]:
    ob = d.obligations
    return {
        "step_up": ob.step_up,
        "purpose_required": ob.purpose_required,
        "justification_required": ob.justification_required,
        "max_clear_records": dict(sorted(ob.max_clear_records.items())),
        "bulk_action": ob.bulk_action,
        "audit_level": ob.audit_level,
    }


@dataclass
class Change:
    """One kind of change of one category (or `*`, the whole request, or a record/
    obligation key), summed over the inputs it occurred in."""

    kind: str
    category: str
    level: str
    requests: int = 0
    inputs: int = 0
    subjects: dict[str, int] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)
    transitions: dict[str, int] = field(default_factory=dict)

    def add(self, subject: str, route: str, transition: str, n: int) -> None:
        self.requests += n
        self.inputs += 1
        self.subjects[subject] = self.subjects.get(subject, 0) + n
        self.routes[route] = self.routes.get(route, 0) + n
        self.transitions[transition] = self.transitions.get(transition, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "category": self.category,
            "level": self.level,
            "requests": self.requests,
            "inputs": self.inputs,
            "subjects": dict(sorted(self.subjects.items())),
            "routes": dict(sorted(self.routes.items())),
            "transitions": dict(sorted(self.transitions.items())),
        }


@dataclass
class ImpactReport:
    since: datetime
    until: datetime
    candidate_dir: str
    running_revision: str = ""
    candidate_revision: str = ""
    inputs: int = 0
    requests: int = 0
    changed_inputs: int = 0
    changed_requests: int = 0
    skipped: int = 0  # documents that could not be read back
    errors: list[str] = field(default_factory=list)  # evaluation failures (first few)
    failed: int = 0
    other_taxonomy: int = 0  # inputs recorded under another taxonomy than the configured one
    recorded_revisions: dict[str, int] = field(default_factory=dict)
    changes: dict[tuple[str, str], Change] = field(default_factory=dict)
    records: dict[str, Change] = field(default_factory=dict)  # rule text -> change
    obligations: dict[str, Change] = field(default_factory=dict)  # "key: old -> new"

    def change(self, kind: str, category: str, level: str) -> Change:
        key = (kind, category)
        found = self.changes.get(key)
        if found is None:
            found = self.changes[key] = Change(kind, category, level)
        return found

    def _sorted_changes(self) -> list[Change]:
        order = {k: i for i, k in enumerate(KINDS)}
        return sorted(self.changes.values(), key=lambda c: (order[c.kind], c.category))

    def subjects(self) -> dict[str, dict[str, int]]:
        """subject -> {kind: requests}, over category and whole-request changes."""
        out: dict[str, dict[str, int]] = {}
        for c in self.changes.values():
            for s, n in c.subjects.items():
                kinds = out.setdefault(s, {})
                kinds[c.kind] = kinds.get(c.kind, 0) + n
        return dict(sorted(out.items()))

    def routes(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for c in self.changes.values():
            for r, n in c.routes.items():
                kinds = out.setdefault(r, {})
                kinds[c.kind] = kinds.get(c.kind, 0) + n
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": {"since": self.since.isoformat(), "until": self.until.isoformat()},
            "candidate": {"dir": self.candidate_dir, "revision": self.candidate_revision},
            "running": {"revision": self.running_revision},
            "recorded_revisions": dict(sorted(self.recorded_revisions.items())),
            "inputs": self.inputs,
            "requests": self.requests,
            "changed_inputs": self.changed_inputs,
            "changed_requests": self.changed_requests,
            "changes": [c.to_dict() for c in self._sorted_changes()],
            "subjects": self.subjects(),
            "routes": self.routes(),
            "records": [{"rule": k, **c.to_dict()} for k, c in sorted(self.records.items())],
            "obligations": [
                {"change": k, **c.to_dict()} for k, c in sorted(self.obligations.items())
            ],
            "skipped": self.skipped,
            "failed": self.failed,
            "errors": self.errors,
            "other_taxonomy": self.other_taxonomy,
        }

    def text(self) -> str:
        lines = [
            f"policy impact: {self.candidate_dir} (revision {self.candidate_revision or '?'}) "
            f"vs running (revision {self.running_revision or '?'})",
            f"window       {self.since.isoformat(timespec='minutes')} .. "
            f"{self.until.isoformat(timespec='minutes')}",
            f"replayed     {self.inputs} distinct input(s), {self.requests} request(s)",
            f"changed      {self.changed_inputs} input(s), {self.changed_requests} request(s)",
        ]
        if self.failed or self.skipped or self.other_taxonomy:
            lines.append(
                f"warnings     {self.failed} evaluation failure(s), {self.skipped} unreadable, "
                f"{self.other_taxonomy} recorded under another taxonomy"
            )
        if not self.changes and not self.records and not self.obligations:
            lines.append("\nno decision changes in the window")
            return "\n".join(lines)
        lines += ["", f"{'change':<14} {'category':<20} {'level':<5} {'requests':>8} {'inputs':>6}"]
        for c in self._sorted_changes():
            lines.append(
                f"{c.kind:<14} {c.category:<20} {c.level:<5} {c.requests:>8} {c.inputs:>6}"
            )
            lines.append("    " + ", ".join(f"{t} x{n}" for t, n in sorted(c.transitions.items())))
            lines.append("    subjects " + _counts(c.subjects))
            lines.append("    routes   " + _counts(c.routes))
        for title, group in (("record rules", self.records), ("obligations", self.obligations)):
            if group:
                lines += ["", title]
                for key, c in sorted(group.items()):
                    lines.append(f"  {c.kind:<8} {key}  ({c.requests} request(s))")
                    lines.append("    subjects " + _counts(c.subjects))
                    lines.append("    routes   " + _counts(c.routes))
        lines += ["", "by subject"]
        lines += [f"  {s:<24} {_counts(k)}" for s, k in self.subjects().items()]
        lines += ["", "by route"]
        lines += [f"  {r:<40} {_counts(k)}" for r, k in self.routes().items()]
        return "\n".join(lines)


def _counts(m: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={n}" for k, n in sorted(m.items()))


def compare(
    report: ImpactReport,
    old: Decision,
    new: Decision,
    categories: Mapping[str, str],
    subject: str,
    route: str,
    n: int,
    operation: str = "view",
) -> bool:
    """Add the differences between two decisions for one input; True if any."""
    changed = False
    if old.allow != new.allow:
        kind = "newly_blocked" if not new.allow else "unblocked"
        transition = f"{'allowed' if old.allow else 'denied'} -> " + (
            f"denied ({new.reason})" if not new.allow else "allowed"
        )
        report.change(kind, "*", "*").add(subject, route, transition, n)
        return True
    if not new.allow:
        return False
    for category, level in sorted(categories.items()):
        a, b = old.field_action(category, level), new.field_action(category, level)
        if a == b:
            continue
        kind = change_kind(outcome_class(a), outcome_class(b))
        report.change(kind, category, level).add(subject, route, f"{_act(a)} -> {_act(b)}", n)
        changed = True
    for category, level in sorted(categories.items()) if operation in _WRITES else ():
        w_old, w_new = old.may_write(category), new.may_write(category)
        if w_old != w_new:
            kind = "write_allowed" if w_new else "write_refused"
            transition = f"write {'yes' if w_old else 'no'} -> {'yes' if w_new else 'no'}"
            report.change(kind, category, level).add(subject, route, transition, n)
            changed = True
    old_rules = {_rule_text(r) for r in old.records}
    new_rules = {_rule_text(r) for r in new.records}
    for text, kind in [(t, "added") for t in new_rules - old_rules] + [
        (t, "removed") for t in old_rules - new_rules
    ]:
        found = report.records.setdefault(text, Change(kind, "records", "*"))
        found.add(subject, route, kind, n)
        changed = True
    a_ob, b_ob = _obligations(old), _obligations(new)
    for key in a_ob:
        if a_ob[key] != b_ob[key]:
            text = f"{key}: {a_ob[key]} -> {b_ob[key]}"
            found = report.obligations.setdefault(text, Change("changed", key, "*"))
            found.add(subject, route, text, n)
            changed = True
    return changed


async def _engine(
    settings: Settings, binary: str, rego_dir: Path | None, url: str | None
) -> tuple[OpaClient, OpaSupervisor | None]:
    supervisor = None
    if rego_dir is not None:
        supervisor = OpaSupervisor(binary, rego_dir, start_timeout=settings.policy.start_timeout)
        await supervisor.start()
        url = supervisor.url
    assert url is not None
    schema = (rego_dir or settings.path(settings.policy.rego_dir)) / "schema" / "output.json"
    if not schema.is_file():
        schema = settings.path(settings.policy.rego_dir) / "schema" / "output.json"
    client = OpaClient(
        url,
        settings.policy.decision_path,
        timeout=10.0,
        pool_size=_CONCURRENCY,
        validator=load_output_validator(schema),
        breaker=CircuitBreaker(1_000_000, 0.1),
    )
    return client, supervisor


async def policy_impact(
    settings: Settings,
    candidate: Path,
    window: timedelta,
    *,
    now: datetime | None = None,
    store: DecisionInputStore | None = None,
) -> ImpactReport:
    """Replay the window's recorded inputs against the running and candidate policies."""
    if settings.policy.engine == "static":
        raise ConfigError("policy impact compares OPA policies; policy.engine is 'static'")
    if not await asyncio.to_thread(candidate.is_dir):
        raise ConfigError(f"--rego: {candidate} is not a directory")
    until = now or datetime.now(UTC)
    since = until - window
    report = ImpactReport(since=since, until=until, candidate_dir=str(candidate))
    own_store = store is None
    if store is None:
        store = open_decision_input_store(
            settings.redis.url, input_log_dir(settings), settings.policy.input_log_retention_days
        )
    try:
        counts, docs = await store.read(
            current_hour(since.timestamp()), current_hour(until.timestamp())
        )
    finally:
        if own_store:
            await store.close()
    taxonomy = Taxonomy.load(settings.path(settings.classification.taxonomy))
    tax_policy = taxonomy.to_policy()
    digest_now = taxonomy_digest(tax_policy)
    categories = {name: c.level for name, c in taxonomy.categories.items()}
    binary = find_opa_binary(settings)
    running_dir = (
        settings.path(settings.policy.rego_dir) if settings.policy.engine == "managed" else None
    )
    opened: list[tuple[OpaClient, OpaSupervisor | None]] = []
    try:
        opened.append(await _engine(settings, binary, running_dir, settings.policy.url))
        opened.append(await _engine(settings, binary, candidate, None))
        (running, _), (cand, _) = opened
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def replay(digest: str, n: int) -> None:
            doc: Doc | None = docs.get(digest)
            try:
                norm = normalised_from_document(doc) if doc is not None else None
            except (KeyError, ValueError, TypeError):
                norm = None
            if norm is None:
                report.skipped += 1
                return
            report.inputs += 1
            report.requests += n
            report.recorded_revisions[norm.revision] = (
                report.recorded_revisions.get(norm.revision, 0) + n
            )
            if norm.taxonomy_digest != digest_now:
                report.other_taxonomy += 1
            opa_input = build_opa_input(norm, tax_policy)
            async with gate:
                try:
                    old, new = await asyncio.gather(
                        running.evaluate(opa_input), cand.evaluate(opa_input)
                    )
                except PolicyUnavailable as exc:
                    report.failed += 1
                    if len(report.errors) < 5:
                        report.errors.append(f"{digest}: {exc}")
                    return
            report.running_revision = report.running_revision or old.revision
            report.candidate_revision = report.candidate_revision or new.revision
            label = f"{norm.method} {norm.route}"
            if compare(report, old, new, categories, norm.subject_id, label, n, norm.operation):
                report.changed_inputs += 1
                report.changed_requests += n

        await asyncio.gather(*(replay(d, n) for d, n in sorted(counts.items())))
    finally:
        for client, supervisor in reversed(opened):
            await client.close()
            if supervisor is not None:
                await supervisor.stop()
    return report
