"""The golden-case matcher itself: it must notice every kind of difference."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.model import Action, Decision, RecordVerb, Verb

from .golden import GoldenCase, check_decision, enforce_sample, load_cases, mismatches


def test_partial_object_match() -> None:
    actual = {"allow": True, "fields": {"a": {"action": "allow"}, "b": {"action": "drop"}}}
    assert mismatches(actual, {"fields": {"a": {"action": "allow"}}}) == []
    assert mismatches(actual, {"fields": {"a": {"action": "drop"}}}) != []
    assert mismatches(actual, {"fields": {"c": {"action": "allow"}}}) == ["$.fields.c: missing"]


@pytest.mark.parametrize(
    ("actual", "expected"),
    [(1, True), (True, 1), (0, None), (None, False), ("30", 30), ([], {}), ({}, [])],
)
def test_types_are_not_confused(actual: Any, expected: Any) -> None:
    assert mismatches(actual, expected) != []


def test_numbers_compare_by_value() -> None:
    assert mismatches(30.0, 30) == []


def test_lists_match_by_containment_and_empty_means_empty() -> None:
    rules = [
        {"when": {"grade": ["A"]}, "record": "drop"},
        {"when": {"tier": ["VIP"]}, "record": "show"},
    ]
    assert mismatches(rules, [{"when": {"grade": ["A"]}}]) == []
    assert mismatches(rules, [{"when": {"grade": ["B"]}}]) != []
    assert mismatches(rules, []) != []
    assert mismatches([], []) == []


def _decision() -> dict[str, Any]:
    return {
        "allow": True,
        "fields": {"mobile": {"action": "allow"}},
        "levels": {"L2": {"action": "allow"}},
        "records": [
            {
                "when": {"tier": ["VIP"]},
                "record": "show",
                "fields": {"mobile": {"action": "mask", "style": "standard"}},
                "reason": "vip",
            },
            {"when": {"not_assigned": True}, "record": "drop", "reason": "mine only"},
        ],
    }


def test_samples_apply_the_stricter_action_and_verb() -> None:
    decision = Decision.from_json(_decision())
    vip = {"record": {"tier": "VIP", "assignees": ["u-1"]}, "category": "mobile"}
    verb, action = enforce_sample(decision, "u-1", vip)
    assert verb is RecordVerb.SHOW
    assert action == Action(Verb.MASK, "standard")
    other = {"record": {"tier": "一般", "assignees": ["u-2"]}, "category": "mobile"}
    assert enforce_sample(decision, "u-1", other)[0] is RecordVerb.DROP


def test_check_decision_reports_absent_rules_and_wrong_samples() -> None:
    case = GoldenCase(
        name="t",
        description="t",
        input={"subject": {"id": "u-1"}},
        expect={"allow": True},
        absent_records=({"when": {"not_assigned": True}},),
        samples=(
            {
                "record": {"tier": "VIP", "assignees": ["u-1"]},
                "category": "mobile",
                "record_verb": "show",
                "action": {"action": "allow"},
            },
        ),
    )
    problems = check_decision(case, _decision())
    assert len(problems) == 2
    assert "unexpected rule" in problems[0]
    assert "samples[0]" in problems[1]


def test_case_files_load() -> None:
    cases = load_cases()
    assert cases
    assert all(c.description and c.input and isinstance(c.expect, dict) for c in cases)
