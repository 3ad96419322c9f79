"""Golden decision cases shared by the Rego policy and the Python gateway.

Each `cases/*.json` file holds one request and what the decision must say about it:

    {"description": "...",
     "input":   {...the complete policy input (rego/schema/input.json)...},
     "expect":  {...a partial decision (rego/schema/output.json)...},
     "absent_records": [{...partial record rule...}],   # optional: must match no rule
     "samples": [{"record": {...RecordFacts...}, "category": "mobile",
                  "record_verb": "show" | "drop" | "block",
                  "action": {...}}]}                   # optional; action only when shown

`expect` is matched partially: every key it names must be present with a matching
value, lists match when each expected item matches some actual item (an empty
expected list demands an empty one), scalars compare by type and value. `samples`
check the enforcement semantics the decision is written for: a record's field gets
`fields[category]` made stricter by every matching record rule, and the record
verb is the most restrictive one of the matching rules.

The policy tests evaluate the cases with `opa eval`; the policy stage's tests can
feed the same inputs to a running OPA (or any engine) and call `check_decision`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.model import Action, Decision, RecordFacts, RecordVerb

CASES_DIR = Path(__file__).resolve().parent / "cases"

_VERB_RANK = {RecordVerb.SHOW: 0, RecordVerb.DROP: 1, RecordVerb.BLOCK: 2}


@dataclass(frozen=True, slots=True)
class GoldenCase:
    name: str
    description: str
    input: Mapping[str, Any]
    expect: Mapping[str, Any]
    absent_records: tuple[Mapping[str, Any], ...]
    samples: tuple[Mapping[str, Any], ...]


def load_cases(directory: Path = CASES_DIR) -> list[GoldenCase]:
    """Every case file in `directory`, sorted by name."""
    cases = []
    for path in sorted(directory.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        cases.append(
            GoldenCase(
                name=path.stem,
                description=raw["description"],
                input=raw["input"],
                expect=raw["expect"],
                absent_records=tuple(raw.get("absent_records", ())),
                samples=tuple(raw.get("samples", ())),
            )
        )
    return cases


def mismatches(actual: Any, expected: Any, path: str = "$") -> list[str]:
    """Where `actual` fails the partial `expected` value; empty when it matches."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{path}: expected an object, got {actual!r}"]
        problems: list[str] = []
        for key, want in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems.extend(mismatches(actual[key], want, f"{path}.{key}"))
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {actual!r}"]
        if not expected:
            return [] if not actual else [f"{path}: expected empty, got {actual!r}"]
        return [
            f"{path}: no item matches {want!r}"
            for want in expected
            if not any(not mismatches(item, want) for item in actual)
        ]
    if isinstance(expected, bool) or expected is None or isinstance(actual, bool):
        same = type(actual) is type(expected) and actual == expected
    elif isinstance(expected, int | float):
        same = isinstance(actual, int | float) and actual == expected
    else:
        same = actual == expected
    return [] if same else [f"{path}: expected {expected!r}, got {actual!r}"]


def enforce_sample(
    decision: Decision, subject_id: str, sample: Mapping[str, Any]
) -> tuple[RecordVerb, Action]:
    """The record verb and field action the decision implies for one record and category."""
    raw = sample["record"]
    facts = RecordFacts(
        record_id=raw.get("record_id"),
        grade=raw.get("grade"),
        tier=raw.get("tier"),
        consents=dict(raw.get("consents", {})),
        assignees=frozenset(raw.get("assignees", ())),
    )
    category = str(sample["category"])
    # The level only matters for a category the decision does not name.
    level = str(sample.get("level", ""))
    action = decision.field_action(category, level)
    verb = RecordVerb.SHOW
    for rule in decision.records:
        if not rule.matches(facts, subject_id):
            continue
        if _VERB_RANK[rule.record] > _VERB_RANK[verb]:
            verb = rule.record
        extra = rule.fields.get(category)
        if extra is not None:
            action = action.stricter(extra)
    return verb, action


def check_decision(case: GoldenCase, result: Mapping[str, Any]) -> list[str]:
    """Everything wrong with `result` (the raw decision JSON) for `case`; empty when right."""
    problems = mismatches(result, case.expect)
    for absent in case.absent_records:
        for rule in result.get("records", []):
            if not mismatches(rule, absent):
                problems.append(f"$.records: unexpected rule {rule!r}")
    decision = Decision.from_json(result)
    subject_id = str(case.input["subject"]["id"])
    for i, sample in enumerate(case.samples):
        verb, action = enforce_sample(decision, subject_id, sample)
        want_verb = RecordVerb(sample["record_verb"])
        if verb is not want_verb:
            problems.append(f"samples[{i}]: record {verb.value}, expected {want_verb.value}")
        if verb is RecordVerb.SHOW and "action" in sample:
            want = Action.from_json(sample["action"])
            if action != want:
                problems.append(f"samples[{i}]: {sample['category']} {action}, expected {want}")
    return problems
