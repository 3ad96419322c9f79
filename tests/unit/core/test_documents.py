"""Which documents may leave whole (gateway.core.documents)."""

from __future__ import annotations

from typing import Any

from gateway.core.catalog import FactsSpec
from gateway.core.documents import withheld_because
from gateway.core.model import Decision


def _decision(l3: str = "allow", *records: dict[str, Any]) -> Decision:
    return Decision.from_json({
        "allow": True,
        "levels": {"L1": {"action": "allow"}, "L2": {"action": "allow"}, "L3": {"action": l3}},
        "records": list(records),
    })  # fmt: skip


HIDE_A = {"when": {"grade": ["A"]}, "record": "drop", "reason": "grade A needs a grant"}
MASK_VIP = {"when": {"tier": ["VIP"]}, "fields": {"mobile": "redact"}, "reason": "VIP"}
SHOW_ALL = {"when": {"grade": ["B"]}, "reason": "no effect"}
OWNERS = {"when": {"not_assigned": True}, "record": "drop", "reason": "owners only"}
NOT_MINE = {"when": {"not_assigned": False}, "record": "drop", "reason": "odd"}


def test_the_level_must_be_clear() -> None:
    assert withheld_because(_decision(), "L3", FactsSpec()) is None
    assert withheld_because(_decision("mask"), "L3", FactsSpec()) == (
        "the caller does not see L3 in clear"
    )
    assert withheld_because(_decision(), "L4", FactsSpec()) is not None  # unnamed: dropped


def test_a_rule_on_a_fact_the_kind_does_not_have_never_applies() -> None:
    no_grades = FactsSpec(grade=None, tier=None)
    assert withheld_because(_decision("allow", HIDE_A, MASK_VIP), "L3", no_grades) is None
    assert withheld_because(_decision("allow", NOT_MINE), "L3", no_grades) is None


def test_a_rule_on_a_fact_inside_the_document_may_apply() -> None:
    graded = FactsSpec(grade="custom_fields.grade", tier="custom_fields.tier")
    why = withheld_because(_decision("allow", HIDE_A), "L3", graded)
    assert why is not None and "grade A needs a grant" in why
    assert withheld_because(_decision("allow", MASK_VIP), "L3", graded) is not None
    assert withheld_because(_decision("allow", SHOW_ALL), "L3", graded) is None
    # Nobody is assigned to a kind without owners: "not assigned to the caller" holds.
    assert withheld_because(_decision("allow", OWNERS), "L3", FactsSpec()) is not None
