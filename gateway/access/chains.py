"""Approval chains: which departments must approve a grant before it counts.

The founding rules name three chains: A = security AND IT departments, B =
security department, C = the business department the grantee belongs to. The
policy (rego/data.json, `crm.config.approvals` and `level_grant_approvers`) says
which departments each grant *type* needs, and only honours a grant whose
`approved_by` covers them. So the table here is read from that same data file
(`ChainTable.from_policy_data`): the gateway never activates a grant the policy
would ignore, nor the other way round. `DEFAULT_CHAINS` mirrors the shipped data
for when the file is not at hand (external OPA with bundles).

The token `business` in an approvers list stands for "the grantee's own
department"; its approval is recorded in `approved_by` as `business`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

BUSINESS = "business"

_CHAIN_NAMES = {
    frozenset({"security", "it"}): "A",
    frozenset({"security"}): "B",
    frozenset({BUSINESS}): "C",
    frozenset(): "none",
}

# How long a grant of each chain may last (reference/cn-standards.md §5.2):
# A at most a day, B at most 30 days, C standing but reviewed quarterly,
# break-glass (no approvers) a few hours.
MAX_DURATION = {
    "A": timedelta(hours=24),
    "B": timedelta(days=30),
    "C": timedelta(days=90),
    "none": timedelta(hours=4),
}
_OTHER_MAX = timedelta(hours=24)

# The top level (credentials, C3 data) cannot be granted through the gateway.
NOT_GRANTABLE_LEVELS = frozenset({"L5"})


@dataclass(frozen=True, slots=True)
class TypeRule:
    approvers: frozenset[str]
    mfa: bool


@dataclass(frozen=True, slots=True)
class ChainTable:
    types: Mapping[str, TypeRule]
    level_extra: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def required(self, grant_type: str, level: str | None) -> frozenset[str]:
        """Departments (or `business`) that must approve; KeyError for an unknown type."""
        need = self.types[grant_type].approvers
        if grant_type == "level" and level is not None:
            need = need | self.level_extra.get(level, frozenset())
        return need

    @staticmethod
    def chain_name(required: frozenset[str]) -> str:
        return _CHAIN_NAMES.get(required, "+".join(sorted(required)))

    @staticmethod
    def max_duration(chain: str) -> timedelta:
        return MAX_DURATION.get(chain, _OTHER_MAX)

    @classmethod
    def from_policy_data(cls, data: Mapping[str, Any]) -> ChainTable:
        """Read `crm.config.approvals` / `level_grant_approvers` of the policy data."""
        config = data.get("crm", {}).get("config", {})
        approvals = config.get("approvals")
        if not isinstance(approvals, Mapping) or not approvals:
            raise ValueError("policy data has no crm.config.approvals")
        types = {
            str(name): TypeRule(
                frozenset(str(a) for a in rule.get("approvers", [])), bool(rule.get("mfa", False))
            )
            for name, rule in approvals.items()
            if isinstance(rule, Mapping)
        }
        extra_raw = config.get("level_grant_approvers") or {}
        extra = {str(lv): frozenset(str(a) for a in deps) for lv, deps in extra_raw.items()}
        return cls(types=types, level_extra=extra)

    @classmethod
    def load(cls, data_file: Path) -> ChainTable:
        """From the policy's data.json; DEFAULT_CHAINS if the file is absent."""
        if not data_file.is_file():
            return DEFAULT_CHAINS
        return cls.from_policy_data(orjson.loads(data_file.read_bytes()))


DEFAULT_CHAINS = ChainTable(
    types={
        "grade_a": TypeRule(frozenset({"security", "it"}), mfa=True),
        "grade_b": TypeRule(frozenset({"security"}), mfa=False),
        "grade_c": TypeRule(frozenset({BUSINESS}), mfa=False),
        "oncall": TypeRule(frozenset({"security"}), mfa=True),
        "break_glass": TypeRule(frozenset(), mfa=True),
        "bulk_export": TypeRule(frozenset({"security"}), mfa=True),
        "level": TypeRule(frozenset({"security"}), mfa=True),
        # reveal with reason of L4 values, one at a time (rego/reveal.rego)
        "reveal": TypeRule(frozenset({"security"}), mfa=True),
    },
    level_extra={"L4": frozenset({"security", "it"})},
)
