"""Golden decision cases, evaluated by the real OPA against rego/.

Each case must (1) be a valid policy input, (2) produce a decision that is
valid against rego/schema/output.json, parses with Decision.from_json and names
every category and level, and (3) match its expectations (see golden.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.core.model import Decision

from .golden import GoldenCase, check_decision, load_cases

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "rego" / "schema"
CASES = load_cases()


def _opa() -> str:
    local = ROOT / ".tools" / "bin" / "opa"
    if local.exists():
        return str(local)
    found = shutil.which("opa")
    if found is None:
        pytest.fail("opa not found in .tools/bin or on PATH: run `make tools`", pytrace=False)
    return found


def evaluate(policy_input: Any) -> dict[str, Any]:
    """`data.crm.gateway.decision` for one input, evaluated by `opa eval` on the rego/ bundle."""
    result = subprocess.run(
        [_opa(), "eval", "--bundle", "rego", "--stdin-input", "--format", "json",
         "data.crm.gateway.decision"],
        cwd=ROOT, input=json.dumps(policy_input), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer.get("result"), f"decision undefined: {answer}"
    value: dict[str, Any] = answer["result"][0]["expressions"][0]["value"]
    return value


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def test_there_are_cases() -> None:
    assert len(CASES) >= 20
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case(case: GoldenCase) -> None:
    jsonschema.validate(case.input, _schema("input"))
    result = evaluate(case.input)
    jsonschema.validate(result, _schema("output"))

    decision = Decision.from_json(result)
    categories = set(case.input["taxonomy"]["categories"])
    assert set(decision.fields) == categories
    assert set(decision.explain) == categories
    assert set(decision.write) == categories
    assert set(decision.levels) == set(case.input["taxonomy"]["levels"])

    problems = check_decision(case, result)
    assert problems == [], f"{case.name}: {case.description}\n" + "\n".join(problems)


def test_undefined_input_is_a_denial_not_an_error() -> None:
    result = evaluate({})
    decision = Decision.from_json(result)
    assert decision.allow is False
    assert decision.fields == {}
