"""What enforcement did to one response, in a form the audit event can carry.

The report never holds a customer value: only record ids (which the audit trail
needs to say *whose* data was seen), categories, levels, outcomes and counts.
It is filled on the hot path, so the enforcer adds whole batches (one per
record plan) instead of one call per field, and the totals are expanded only
when `to_audit()` is called.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.core.model import Action, Verb

OUTCOMES = ("clear", "masked", "generalised", "pseudonymised", "redacted", "dropped", "blocked")

_OUTCOME = {
    Verb.ALLOW: "clear",
    Verb.MASK: "masked",
    Verb.GENERALISE: "generalised",
    Verb.PSEUDONYMISE: "pseudonymised",
    Verb.REDACT: "redacted",
    Verb.DROP: "dropped",
    Verb.BLOCK: "blocked",
}

FieldKey = tuple[str, str, str]  # (category, level, outcome)


def outcome_of(action: Action) -> str:
    return _OUTCOME[action.verb]


@dataclass(slots=True)
class EnforcementReport:
    """Counters for one response; `max_ids` bounds the list of record ids kept."""

    max_ids: int = 200
    fields: Counter[FieldKey] = field(default_factory=Counter)
    record_ids: list[str] = field(default_factory=list)
    records_seen: int = 0
    records_dropped: int = 0
    ids_total: int = 0
    _grade_tier: dict[tuple[str | None, str | None], int] = field(default_factory=dict)
    clear_records: Counter[str] = field(default_factory=Counter)  # level -> records (extra)
    bulk_limited: Counter[str] = field(default_factory=Counter)  # level -> records masked
    detectors: Counter[str] = field(default_factory=Counter)
    rules_matched: Counter[str] = field(default_factory=Counter)  # rule reason -> records
    side_data: Counter[str] = field(default_factory=Counter)  # "path: treatment" -> values
    blocked_reason: str | None = None
    # id(batch) -> [batch, times]: keyed by identity so the hot path never hashes
    # a whole batch; the entry holds the batch, so its id stays unique.
    _batches: dict[int, list[Any]] = field(default_factory=dict)

    def add_field(self, category: str, level: str, outcome: str, n: int = 1) -> None:
        self.fields[(category, level, outcome)] += n

    def add_batch(self, batch: tuple[FieldKey, ...], clear_levels: frozenset[str]) -> None:
        """One record's fixed-plan fields and the levels it shows in clear; expanded
        lazily (`field_counts`, `clear_by_level`)."""
        entry = self._batches.get(id(batch))
        if entry is None:
            self._batches[id(batch)] = [batch, clear_levels, 1]
        else:
            entry[2] += 1

    def add_record(self, record_id: str | None, grade: str | None, tier: str | None) -> None:
        self.records_seen += 1
        if record_id is not None:
            self.ids_total += 1
            if len(self.record_ids) < self.max_ids:
                self.record_ids.append(record_id)
        if grade is not None or tier is not None:
            pairs = self._grade_tier
            pairs[(grade, tier)] = pairs.get((grade, tier), 0) + 1

    def grades(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (grade, _), n in self._grade_tier.items():
            if grade is not None:
                out[grade] = out.get(grade, 0) + n
        return out

    def tiers(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_, tier), n in self._grade_tier.items():
            if tier is not None:
                out[tier] = out.get(tier, 0) + n
        return out

    def field_counts(self) -> dict[FieldKey, int]:
        total = dict(self.fields)
        get = total.get
        for batch, _, times in self._batches.values():
            for key in batch:
                total[key] = get(key, 0) + times
        return total

    def clear_by_level(self) -> dict[str, int]:
        """Records that showed at least one field of each level in clear."""
        total = dict(self.clear_records)
        for _, levels, times in self._batches.values():
            for level in levels:
                total[level] = total.get(level, 0) + times
        return total

    def max_clear_level(self, rank: dict[str, int]) -> str | None:
        """The highest level shown in clear (the response's effective level)."""
        levels = [lvl for (_, lvl, out), n in self.field_counts().items() if out == "clear" and n]
        return max(levels, key=lambda lv: rank.get(lv, -1)) if levels else None

    def summary(self) -> ReportSummary:
        """A frozen snapshot: ids, categories, levels and counts only, no customer values."""
        by_outcome: dict[str, dict[str, dict[str, int]]] = {}
        for (category, level, outcome), n in sorted(self.field_counts().items()):
            by_outcome.setdefault(outcome, {}).setdefault(level, {})[category] = n
        return ReportSummary(
            records=RecordSummary(
                seen=self.records_seen,
                dropped=self.records_dropped,
                ids=tuple(self.record_ids),
                ids_total=self.ids_total,
                ids_truncated=self.ids_total > len(self.record_ids),
                clear_by_level=dict(sorted(self.clear_by_level().items())),
                bulk_limited_by_level=dict(sorted(self.bulk_limited.items())),
            ),
            grades=dict(sorted(self.grades().items())),
            tiers=dict(sorted(self.tiers().items())),
            fields=by_outcome,
            detectors=dict(sorted(self.detectors.items())),
            record_rules=dict(sorted(self.rules_matched.items())),
            side_data=dict(sorted(self.side_data.items())),
            blocked=self.blocked_reason,
        )

    def to_audit(self) -> dict[str, Any]:
        """The summary as plain JSON-shaped data (what tests and tools compare)."""
        return self.summary().to_audit()


Counts = Mapping[str, int]
# outcome -> level -> category -> fields
FieldOutcomes = Mapping[str, Mapping[str, Mapping[str, int]]]


@dataclass(frozen=True, slots=True)
class RecordSummary:
    """The records of one response: how many, which ids (bounded), clear levels."""

    seen: int = 0
    dropped: int = 0
    ids: tuple[str, ...] = ()
    ids_total: int = 0
    ids_truncated: bool = False
    clear_by_level: Counts = field(default_factory=dict)
    bulk_limited_by_level: Counts = field(default_factory=dict)
    # ids per level shown in clear, when a producer knows them (exact anomaly counts)
    clear_ids_by_level: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """What enforcement did to one response, frozen when the access is recorded."""

    records: RecordSummary = field(default_factory=RecordSummary)
    grades: Counts = field(default_factory=dict)
    tiers: Counts = field(default_factory=dict)
    fields: FieldOutcomes = field(default_factory=dict)
    detectors: Counts = field(default_factory=dict)
    record_rules: Counts = field(default_factory=dict)
    side_data: Counts = field(default_factory=dict)
    blocked: str | None = None

    def shown_at(self, levels: frozenset[str] | set[str]) -> bool:
        """Some field of one of `levels` left in a form other than dropped or blocked."""
        return any(
            lvl in levels and any(cats.values())
            for outcome, by_level in self.fields.items()
            if outcome not in ("dropped", "blocked")
            for lvl, cats in by_level.items()
        )

    def to_audit(self) -> dict[str, Any]:
        r = self.records
        return {
            "records": {
                "seen": r.seen,
                "dropped": r.dropped,
                "ids": list(r.ids),
                "ids_total": r.ids_total,
                "ids_truncated": r.ids_truncated,
                "clear_by_level": dict(r.clear_by_level),
                "bulk_limited_by_level": dict(r.bulk_limited_by_level),
            },
            "grades": dict(self.grades),
            "tiers": dict(self.tiers),
            "fields": {o: {lv: dict(c) for lv, c in by.items()} for o, by in self.fields.items()},
            "detectors": dict(self.detectors),
            "record_rules": dict(self.record_rules),
            "side_data": dict(self.side_data),
            "blocked": self.blocked,
        }
