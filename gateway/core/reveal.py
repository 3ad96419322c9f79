"""Reveal handles: which masked fields of a response may be revealed one by one.

When a caller opts in (`X-Gateway-Reveal: handles`), the enforcer offers every
masked field it writes to a `RevealTargets`: a field is kept when the policy's
`obligations.reveal` lists its category, the record has an id that the caller
sees in clear (it names the record in the response header), and the bound is not
reached. The gateway seals each target into a handle (`gateway.access.handles`);
this module only chooses them, so it stays pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Target:
    record_id: str
    field: str  # the record's own key (top level of the record)
    category: str
    level: str


@dataclass(slots=True)
class RevealTargets:
    """At most `limit` distinct (record, field) targets; `truncated`: more were seen."""

    categories: frozenset[str]
    levels: Mapping[str, str]  # category -> level (the taxonomy's)
    never: frozenset[str]  # levels never revealed (the taxonomy's top level)
    id_key: str | None  # the record id's key in a record (the catalog's `record.id`)
    limit: int
    items: list[Target] = field(default_factory=list)
    truncated: bool = False
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def revealable(self, category: str) -> bool:
        level = self.levels.get(category)
        return category in self.categories and level is not None and level not in self.never

    def offer(self, record_id: str, key: str, category: str) -> None:
        if not self.revealable(category) or (record_id, key) in self._seen:
            return
        if len(self.items) >= self.limit:
            self.truncated = True
            return
        self._seen.add((record_id, key))
        self.items.append(Target(record_id, key, category, self.levels[category]))
