"""Invariants of the policy over generated inputs, asked of a real OPA server.

The golden cases pin single decisions; these properties hold for every input
the gateway may send: the decision is total and well-formed, the top level is
never released, denial blocks everything, nothing is clear above what the
caller's clearance and approved grants reach, partners never get the lighter
mask, and MFA or a declared purpose can only ever unmask, never mask more.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.model import Decision, Verb
from tests.conftest import find_opa, free_port, stop_process, wait_for_port

from .golden import load_cases

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / "rego" / "data.json").read_text(encoding="utf-8"))["crm"]["config"]
OUTPUT_SCHEMA = json.loads((ROOT / "rego" / "schema" / "output.json").read_text(encoding="utf-8"))
TAXONOMY = next(c for c in load_cases() if c.name == "baseline_internal_rm").input["taxonomy"]
LEVELS: list[str] = TAXONOMY["levels"]
RANK = {level: i for i, level in enumerate(LEVELS)}
NOW = "2026-11-25T10:15:00+08:00"
PURPOSES = sorted({p for ps in CONFIG["purposes"].values() for p in ps})


@pytest.fixture(scope="module")
def opa_port() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [find_opa(), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error",
         "--bundle", str(ROOT / "rego")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        stop_process(proc)


def decide(port: int, policy_input: dict[str, Any]) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = json.dumps({"input": policy_input})
        conn.request(
            "POST", "/v1/data/crm/gateway/decision", body, {"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        answer = json.load(response)
    finally:
        conn.close()
    assert response.status == 200, answer
    assert "result" in answer, f"decision undefined for {policy_input}"
    result: dict[str, Any] = answer["result"]
    return result


grants = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.text("abc123", min_size=1, max_size=6),
            "type": st.sampled_from(
                ["grade_a", "grade_b", "oncall", "break_glass", "bulk_export", "level"]
            ),
            "approved_by": st.lists(st.sampled_from(["security", "it", "sales"]), unique=True),
            "expires": st.sampled_from(
                ["2026-11-25T10:00:00+08:00", "2026-11-25T10:17:00+08:00", "2026-12-01T00:00:00Z"]
            ),
            "justification": st.none() | st.just("INC-1"),
        },
        optional={"level": st.sampled_from(LEVELS)},
    ),
    max_size=3,
)

subjects = st.fixed_dictionaries(
    {
        "id": st.just("u-1"),
        "roles": st.lists(
            st.sampled_from([*CONFIG["roles"], "intern"]), min_size=0, max_size=2, unique=True
        ),
        "department": st.sampled_from(["wealth", "sales", "facilities", "partner:acme"]),
        "clearance": st.sampled_from(LEVELS),
        "mfa": st.booleans(),
        "auth_method": st.just("oidc"),
        "partner": st.booleans(),
        "partner_expires": st.none()
        | st.sampled_from(["2026-11-25T00:00:00Z", "2026-12-31T00:00:00Z"]),
        "disabled": st.sampled_from([False] * 7 + [True]),
        "revoked": st.sampled_from([False] * 7 + [True]),
        "network_zone": st.sampled_from(["internal", "vpn", "external"]),
        "network_allowed": st.sampled_from([True] * 7 + [False]),
        "assigned_customers_only": st.booleans(),
    }
)

requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "PUT", "DELETE"]),
        "operation": st.sampled_from(["view", "modify", "delete", "export"]),
        "route": st.just("/api/customers/{id}"),
        "purpose": st.none() | st.sampled_from(PURPOSES),
        "justification": st.booleans(),
        "time": st.sampled_from(
            [
                {"weekday": 3, "hour": 10, "date": "2026-11-25", "rfc3339": NOW},
                {
                    "weekday": 7,
                    "hour": 3,
                    "date": "2026-11-29",
                    "rfc3339": "2026-11-29T03:00:00+08:00",
                },
            ]
        ),
        "report_only": st.booleans(),
    }
)

inputs = st.fixed_dictionaries(
    {"subject": subjects, "request": requests, "taxonomy": st.just(TAXONOMY), "grants": grants}
)


def _category_rank(meta: dict[str, Any]) -> int:
    rank = RANK[meta["level"]]
    return max(rank, RANK[CONFIG["spi_min_level"]]) if meta["spi"] else rank


def _reach(policy_input: dict[str, Any]) -> int:
    """The highest level clearance or any (even unapproved) level/break-glass grant could reach."""
    reach = RANK[policy_input["subject"]["clearance"]]
    for grant in policy_input["grants"]:
        if grant["type"] in ("level", "break_glass") and "level" in grant:
            reach = max(reach, min(RANK[grant["level"]], len(LEVELS) - 2))
    return reach


def _ranks(decision: dict[str, Any]) -> dict[str, int]:
    parsed = Decision.from_json(decision)
    return {c: a.rank for c, a in parsed.fields.items()}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy_input=inputs)
def test_decision_invariants(opa_port: int, policy_input: dict[str, Any]) -> None:
    result = decide(opa_port, policy_input)
    jsonschema.validate(result, OUTPUT_SCHEMA)
    decision = Decision.from_json(result)
    categories = TAXONOMY["categories"]
    assert set(decision.fields) == set(categories) == set(decision.explain) == set(decision.write)
    assert set(decision.levels) == set(LEVELS)

    subject = policy_input["subject"]
    top = LEVELS[-1]
    assert decision.levels[top].verb in (Verb.DROP, Verb.BLOCK)
    if subject["revoked"] or subject["disabled"] or not subject["network_allowed"]:
        assert decision.allow is False
    if not decision.allow:
        assert all(a.verb is Verb.BLOCK for a in decision.fields.values())
        assert not any(decision.write.values())
        assert decision.records == ()
        return

    reach = _reach(policy_input)
    for category, action in decision.fields.items():
        rank = _category_rank(categories[category])
        if action.verb is Verb.ALLOW:
            assert rank <= reach, (category, action)
            assert rank < len(LEVELS) - 1, (category, action)
            if not subject["mfa"]:
                assert rank < RANK[CONFIG["mfa_required_from"]]
        if decision.write[category]:
            assert rank <= reach
    if subject["partner"]:
        _assert_strict_only(decision)


def _assert_strict_only(decision: Decision) -> None:
    actions = [*decision.fields.values(), *decision.levels.values()]
    actions += [a for rule in decision.records for a in rule.fields.values()]
    assert all(a.style != "standard" for a in actions)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy_input=inputs, clearance=st.sampled_from(LEVELS[:-2]))
def test_partners_never_get_the_lighter_mask(
    opa_port: int, policy_input: dict[str, Any], clearance: str
) -> None:
    subject = {
        **policy_input["subject"],
        "partner": True,
        "partner_expires": "2026-12-31T00:00:00Z",
        "roles": ["partner_agent"],
        "clearance": clearance,
        "disabled": False,
        "revoked": False,
        "network_allowed": True,
    }
    request = {**policy_input["request"], "operation": "view"}
    decision = Decision.from_json(
        decide(opa_port, {**policy_input, "subject": subject, "request": request})
    )
    assert decision.allow is True
    assert any(a.verb is Verb.MASK for a in decision.fields.values())
    _assert_strict_only(decision)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy_input=inputs, clearance=st.sampled_from(LEVELS[3:]))
def test_without_mfa_nothing_from_the_mfa_level_is_clear(
    opa_port: int, policy_input: dict[str, Any], clearance: str
) -> None:
    subject = {**policy_input["subject"], "roles": ["compliance"], "clearance": clearance}
    subject.update(mfa=False, partner=False, disabled=False, revoked=False, network_allowed=True)
    request = {**policy_input["request"], "operation": "view", "purpose": "audit"}
    result = decide(opa_port, {**policy_input, "subject": subject, "request": request})
    decision = Decision.from_json(result)
    mfa_rank = RANK[CONFIG["mfa_required_from"]]
    for level, action in decision.levels.items():
        if RANK[level] >= mfa_rank:
            assert action.verb is not Verb.ALLOW, (level, action)
    working = request["time"]["weekday"] <= 5 and subject["network_zone"] != "external"
    if working and RANK[clearance] >= mfa_rank:
        assert result["obligations"]["step_up"] is True


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy_input=inputs)
def test_mfa_and_purpose_only_unmask(opa_port: int, policy_input: dict[str, Any]) -> None:
    without = dict(policy_input, subject={**policy_input["subject"], "mfa": False})
    with_mfa = dict(policy_input, subject={**policy_input["subject"], "mfa": True})
    weak, strong = decide(opa_port, without), decide(opa_port, with_mfa)
    if weak["allow"] and strong["allow"]:
        weak_ranks, strong_ranks = _ranks(weak), _ranks(strong)
        assert all(strong_ranks[c] <= weak_ranks[c] for c in weak_ranks)

    roles = policy_input["subject"]["roles"]
    allowed = sorted({p for r in roles for p in CONFIG["purposes"].get(r, [])})
    if allowed:
        no_purpose = dict(policy_input, request={**policy_input["request"], "purpose": None})
        # A marketing purpose adds consent rules, so compare with a non-marketing one.
        purposes = [p for p in allowed if p not in CONFIG["marketing_purposes"]]
        if purposes:
            declared = dict(
                policy_input, request={**policy_input["request"], "purpose": purposes[0]}
            )
            plain, purposed = decide(opa_port, no_purpose), decide(opa_port, declared)
            plain_ranks, purposed_ranks = _ranks(plain), _ranks(purposed)
            assert all(purposed_ranks[c] <= plain_ranks[c] for c in plain_ranks)
