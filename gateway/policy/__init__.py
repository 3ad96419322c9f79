"""The policy stage: one OPA decision (action table) per request, cached.

The handler uses `PolicyEngine` (engine.py), `PolicyRequest` (inputs.py) and
`DecisionOutcome`; the CLI uses `explain_decision` (explain.py).
"""

from gateway.policy.engine import DecisionOutcome, PolicyEngine
from gateway.policy.inputs import PolicyRequest

__all__ = ["DecisionOutcome", "PolicyEngine", "PolicyRequest"]
