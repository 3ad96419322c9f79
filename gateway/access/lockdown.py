"""Lockdown (应急预案): one switch, every replica within a second, every decision.

The profile is applied to each request's decision *after* the decision cache
and the policy (`overlay`), so no cached or freshly computed decision escapes
it, grants and break-glass included: levels above `max_clear_level` become at
least masked in the default table, the per-level table and every record rule;
exports (and writes, when the profile says so) are refused. The document that
switches lockdown on carries the profile it applies, so replicas with slightly
different config files still apply the same one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gateway.core.model import Action, Decision, Verb
from gateway.core.taxonomy import Taxonomy

MASK = Action(Verb.MASK, "standard")
LEVELS = ("L0", "L1", "L2", "L3", "L4", "L5")


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


def _cap(action: Action, level: str, max_rank: int) -> Action:
    return action.stricter(MASK) if _rank(level) > max_rank else action


def overlay(
    decision: Decision, profile: Mapping[str, Any], taxonomy: Taxonomy, operation: str
) -> Decision:
    """The decision as lockdown allows it (a decision already denied stays denied)."""
    if not decision.allow:
        return dataclasses.replace(decision, report_only=False)
    if profile.get("block_exports", True) and operation == "export":
        return Decision.deny("lockdown: exports are suspended", decision.revision)
    if profile.get("block_writes", False) and operation in ("modify", "delete"):
        return Decision.deny("lockdown: writes are suspended", decision.revision)
    # (Decision.deny is never report-only: refusals under lockdown are enforced.)
    max_level = str(profile.get("max_clear_level", "L0"))
    max_rank = _rank(max_level) if max_level in LEVELS else -1  # unknown: everything masked
    cats = taxonomy.categories

    def level_of(category: str) -> str:
        cat = cats.get(category)
        return cat.level if cat is not None else "L5"

    fields = {c: _cap(a, level_of(c), max_rank) for c, a in decision.fields.items()}
    levels = {lv: _cap(a, lv, max_rank) for lv, a in decision.levels.items()}
    records = tuple(
        dataclasses.replace(
            rule, fields={c: _cap(a, level_of(c), max_rank) for c, a in rule.fields.items()}
        )
        for rule in decision.records
    )
    # Nothing masked by the profile is revealable while it holds.
    reveal = decision.obligations.reveal
    kept = frozenset(c for c in reveal.categories if _rank(level_of(c)) <= max_rank)
    obligations = dataclasses.replace(
        decision.obligations, reveal=dataclasses.replace(reveal, categories=kept)
    )
    return dataclasses.replace(
        decision,
        report_only=False,  # an emergency profile is enforced, roll-out mode or not
        reason=f"{decision.reason}; lockdown: above {max_level} masked",
        fields=fields,
        levels=levels,
        records=records,
        obligations=obligations,
    )
