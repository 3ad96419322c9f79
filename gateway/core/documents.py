"""Rendered documents (catalog `document: L3`): released whole, or withheld whole.

A PDF, an image or a spreadsheet cannot be masked field by field, and the gateway
cannot read the record facts (grade, tier, consents, owners) inside it. A route
that declares the level its document carries therefore releases the bytes only
when both hold:

- the decision shows that level in clear (the caller's clearance, purpose, time
  and place, grants: whatever the policy decided), and
- no record rule of the decision could hold the record back or mask it further.
  A fact the route declares absent by design (`record: {grade: null}`, no owner
  or consent paths) is known to be absent, as the JSON path reads it; a fact the
  route's records do carry is unknown inside the document, so every rule that
  tests it may apply.

Anything else is withheld: the record stays readable, masked, as data.
"""

from __future__ import annotations

from gateway.core.catalog import FactsSpec
from gateway.core.model import ALLOW, Decision, RecordRule, RecordVerb

__all__ = ["withheld_because"]


def withheld_because(decision: Decision, level: str, facts: FactsSpec) -> str | None:
    """Why a document of `level` may not be released under `decision` (None: it may)."""
    if decision.field_action("", level) != ALLOW:
        return f"the caller does not see {level} in clear"
    for rule in decision.records:
        if (rule.record is not RecordVerb.SHOW or rule.fields) and _may_match(rule, facts):
            return f"a record rule may apply to the record in it ({rule.reason or 'record rule'})"
    return None


def _may_match(rule: RecordRule, facts: FactsSpec) -> bool:
    """Could `rule` match the record a document shows, knowing only the route's facts?"""
    for key, want in rule.when.items():
        if key == "grade" and facts.grade is None and None not in want:
            return False  # the kind has no grade: a grade condition never holds
        if key == "tier" and facts.tier is None and None not in want:
            return False
        if key == "not_assigned" and not facts.assignees and not want:
            return False  # nobody is assigned: "assigned to the caller" never holds
        # missing_consent, unknown conditions, and facts the route carries: may hold
    return True
