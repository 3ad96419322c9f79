"""The obligations a decision puts on a request (policy.obligations), as the handler and
`explain` of a request apply them: a denial, a purpose the roles may not declare, a
step-up, a break-glass grant without a justification, in that order."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.core.model import Decision, DecisionError, Obligations, Subject
from gateway.errors import Forbidden, PurposeNotDeclarable, StepUpRequired
from gateway.policy.engine import DecisionOutcome, PolicyRequest
from gateway.policy.explain import render
from gateway.policy.obligations import enforce_obligations


def decision(allow: bool = True, **obligations: Any) -> Decision:
    return Decision.from_json(
        {
            "allow": allow,
            "reason": "allowed" if allow else "subject_disabled",
            "revision": "r1",
            "fields": {},
            "levels": {},
            "obligations": obligations,
        }
    )


def check(d: Decision, purpose: str | None = None, *, justified: bool = False,
          report_only: bool = False) -> None:  # fmt: skip
    enforce_obligations(
        d, purpose=purpose, justified=justified, report_only=report_only, step_up_max_age=300
    )


def test_a_declarable_purpose_or_none_goes_on() -> None:
    d = decision(purposes=["advisory", "service"])
    check(d, "advisory")
    check(d, None)
    check(d, "")  # an empty header declares nothing


@pytest.mark.parametrize("purpose", ["marketing", "Advisory", "advisory ", "service,advisory"])
def test_any_other_purpose_is_refused_naming_the_declarable_ones(purpose: str) -> None:
    with pytest.raises(PurposeNotDeclarable) as caught:
        check(decision(purposes=["service", "advisory"]), purpose)
    err = caught.value
    assert err.status == 403 and err.code == "purpose_not_declarable"
    assert err.details == {"declarable": ["advisory", "service"]}
    assert "declare one of: advisory, service" in err.message
    assert repr(purpose) not in err.message  # the header is not echoed


def test_a_caller_whose_roles_declare_nothing_is_told_to_send_none() -> None:
    with pytest.raises(PurposeNotDeclarable, match="send none"):
        check(decision(purposes=[]), "service")


def test_without_a_purposes_list_any_purpose_is_passed_on() -> None:
    check(decision(), "anything at all")


def test_a_denial_comes_before_the_purpose() -> None:
    with pytest.raises(Forbidden) as caught:
        check(decision(allow=False, purposes=[]), "service")
    assert type(caught.value) is Forbidden and "subject_disabled" in caught.value.message


def test_the_purpose_comes_before_the_step_up() -> None:
    with pytest.raises(PurposeNotDeclarable):
        check(decision(purposes=["service"], step_up=True), "marketing")
    with pytest.raises(StepUpRequired) as caught:
        check(decision(purposes=["service"], step_up=True), "service")
    assert caught.value.max_age == 300


def test_report_only_asks_for_neither_purpose_nor_step_up_but_break_glass_needs_a_reason() -> None:
    check(decision(allow=False, purposes=[], step_up=True), "marketing", report_only=True)
    with pytest.raises(Forbidden, match="justification"):
        check(decision(justification_required=True), report_only=True)
    check(decision(justification_required=True), justified=True, report_only=True)


@pytest.mark.parametrize("bad", ["service", [1], {"a": 1}, [None]])
def test_a_malformed_purposes_list_is_a_decision_error(bad: object) -> None:
    with pytest.raises(DecisionError, match="purposes"):
        Obligations.from_json({"purposes": bad})


def test_purposes_parse_to_a_set_and_null_to_none() -> None:
    assert Obligations.from_json({"purposes": ["b", "a", "a"]}).purposes == frozenset({"a", "b"})
    assert Obligations.from_json({"purposes": None}).purposes is None
    assert Obligations.from_json({}).purposes is None


def test_explain_names_the_declarable_purposes_and_a_refused_one() -> None:
    now = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    subject = Subject(id="u1", roles=("sales",), clearance="L2")
    outcome = DecisionOutcome(decision(purposes=["sales"]), False, 0.1, "digest", False)
    request = PolicyRequest("GET", "view", "/api/customers", "marketing", False, "internal",
                            True, now)  # fmt: skip
    text = render(outcome, subject, request, None)
    assert (
        "purposes   may declare: sales  (declared 'marketing' is refused: purpose_not_declarable)"
        in text.splitlines()
    )
    allowed = dataclasses.replace(request, purpose="sales")
    assert "purposes   may declare: sales" in render(outcome, subject, allowed, None).splitlines()
    none = DecisionOutcome(decision(), False, 0.1, "digest", False)
    assert "purposes" not in render(none, subject, request, None)
