"""The static table against the golden cases the OPA policy is held to.

`policy.engine: static` and `explain --level` answer with the static table; it must
give every field, level and write flag the Rego policy gives, for each golden case
whose decision rests on what the table models (levels, clearance, roles, purpose,
time, place, MFA, partners, denials). Cases that turn on grants are the policy's
alone and are named below, so a new case is compared unless it is listed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from gateway.core.model import Action, Decision, Subject
from gateway.core.static_policy import RequestFacts, StaticRules, static_decision
from gateway.core.taxonomy import Taxonomy
from gateway.settings import REPO_ROOT

from .golden import GoldenCase, load_cases

TAXONOMY = Taxonomy.load(REPO_ROOT / "config" / "taxonomy.yaml")
CONFIG = json.loads((REPO_ROOT / "rego" / "data.json").read_text(encoding="utf-8"))["crm"]["config"]
RULES = StaticRules.from_config(CONFIG)
CASES = load_cases()
# Decided by grants (grade, level, on-call, break-glass, bulk), which the table lacks.
GRANT_CASES = {c.name for c in CASES if c.input["grants"]}
COMPARED = [c for c in CASES if c.name not in GRANT_CASES]


def _static(case: GoldenCase) -> Decision:
    s, r = case.input["subject"], case.input["request"]
    at = datetime.fromisoformat(r["time"]["rfc3339"])
    expires = s["partner_expires"]
    subject = Subject(
        id=s["id"],
        roles=tuple(s["roles"]),
        department=s["department"],
        clearance=s["clearance"],
        mfa=s["mfa"],
        partner=s["partner"],
        partner_expires=datetime.fromisoformat(expires) if expires else None,
        disabled=s["disabled"],
    )
    facts = RequestFacts(
        operation=r["operation"],
        purpose=r["purpose"],
        network_zone=s["network_zone"],
        network_allowed=s["network_allowed"],
        revoked=s["revoked"],
        at=at,
    )
    return static_decision(
        TAXONOMY,
        subject,
        method=r["method"],
        now=at,
        request=facts,
        rules=RULES,
        revision=CONFIG["revision"],
    )


def _disagreements(case: GoldenCase, decision: Decision) -> list[str]:
    want: dict[str, Any] = dict(case.expect)
    problems = []
    if "allow" in want and decision.allow is not want["allow"]:
        problems.append(f"allow {decision.allow}, OPA {want['allow']}")
    if "reason" in want and decision.reason != want["reason"] and not decision.allow:
        problems.append(f"reason {decision.reason!r}, OPA {want['reason']!r}")
    for category, action in want.get("fields", {}).items():
        got = decision.fields.get(category)
        if got != Action.from_json(action):
            problems.append(f"fields.{category}: {got}, OPA {action}")
    for level, action in want.get("levels", {}).items():
        got = decision.levels.get(level)
        if got != Action.from_json(action):
            problems.append(f"levels.{level}: {got}, OPA {action}")
    for category, flag in want.get("write", {}).items():
        if decision.may_write(category) is not flag:
            problems.append(f"write.{category}: {decision.may_write(category)}, OPA {flag}")
    if "purposes" in want.get("obligations", {}):  # the declarable purposes, exactly
        declared = decision.obligations.purposes
        listed = None if declared is None else sorted(declared)
        if listed != want["obligations"]["purposes"]:
            problems.append(f"obligations.purposes {listed}, OPA {want['obligations']['purposes']}")
    return problems


def test_the_cases_use_the_shipped_taxonomy() -> None:
    for case in CASES:
        assert case.input["taxonomy"] == TAXONOMY.to_policy(), case.name


def test_most_cases_are_compared() -> None:
    assert len(COMPARED) >= 15
    assert {"baseline_internal_rm", "purpose_missing", "step_up_without_mfa"} <= {
        c.name for c in COMPARED
    }


@pytest.mark.parametrize("case", COMPARED, ids=lambda c: c.name)
def test_static_table_agrees_with_the_golden_case(case: GoldenCase) -> None:
    assert _disagreements(case, _static(case)) == []


def test_some_cases_name_the_declarable_purposes() -> None:
    named = [c.name for c in COMPARED if "purposes" in c.expect.get("obligations", {})]
    assert {"baseline_internal_rm", "customer_service_scope"} <= set(named)


def test_an_spi_category_takes_its_raised_level() -> None:
    """`balance` is L3 and SPI: it counts as L4, so an L2 caller gets the strict mask."""
    decision = static_decision(TAXONOMY, Subject(id="u", clearance="L2"), method="GET")
    assert decision.fields["balance"] == Action.from_json({"action": "mask", "style": "strict"})
    assert decision.fields["income"] == Action.from_json({"action": "mask", "style": "standard"})
