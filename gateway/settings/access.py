"""Settings of the security team's console: who may do what, the approval chains'
order and size, request lifetimes, break-glass and the lockdown profile.

Which departments a *grant type* needs is the policy's own data
(`rego/data.json`, `crm.config.approvals`): the gateway never activates a grant
the policy would ignore. What lives here is what the policy does not know: the
order of the steps and how many approvers each needs, the chains of standing
clearance changes and new directory entries (账号审核), and the console roles.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.settings.base import Section as _Section

Level = Literal["L0", "L1", "L2", "L3", "L4", "L5"]


class ChainSettings(_Section):
    # Departments that approve, in order when `ordered`; `business` = the subject's own.
    steps: tuple[str, ...]
    ordered: bool = True
    approvals_per_step: int = Field(default=1, ge=1, le=5)  # distinct people per step

    @field_validator("steps")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("a department appears twice in one chain")
        return v


class BreakGlassSettings(_Section):
    duration: float = Field(default=3600.0, gt=0, le=4 * 3600)  # seconds, fixed (not asked)
    level: Level = "L4"  # the level a break-glass grant reaches (never L5)
    review_within: float = Field(default=24 * 3600.0, gt=0)  # seconds until the task is overdue
    review_department: str = "security"  # who closes the review task
    min_justification: int = Field(default=10, ge=1)  # characters


class LockdownSettings(_Section):
    # While lockdown is on: levels above this are masked for everyone (grants and
    # break-glass included); exports are refused when `block_exports`.
    max_clear_level: Level = "L1"
    block_exports: bool = True
    block_writes: bool = False
    poll_interval: float = Field(default=0.5, gt=0, le=1.0)  # safety net behind pub/sub


class RevealSettings(_Section):
    """Reveal with reason (查看明文): which masked values a caller may reveal is the
    policy's (`obligations.reveal`, rego/reveal.rego); these are the mechanics."""

    enabled: bool = True
    # Opt-in per request: `X-Gateway-Reveal: handles` asks for reveal handles; they
    # come back in one response header, the body is never changed.
    request_header: str = "X-Gateway-Reveal"
    response_header: str = "X-Gateway-Reveal-Handles"
    max_handles: int = Field(default=20, ge=1, le=200)  # per response (then truncated)
    max_header_bytes: int = Field(default=6144, ge=512, le=64 * 1024)  # the header's size
    handle_ttl: float = Field(default=300.0, gt=0, le=3600.0)  # seconds a handle lives
    # Hex key (>= 32 bytes) sealing the handles, the same on every replica. Unset:
    # derived from the pseudonym key (development); production needs one of them.
    key_env: str = "CRM_GATEWAY_REVEAL_KEY"
    min_reason: int = Field(default=6, ge=1, le=200)  # characters, at least 2 letters
    max_reason: int = Field(default=512, ge=16, le=4096)


class AccessSettings(_Section):
    # Console roles, read from the directory's `roles` (never from the request).
    security_admin_roles: tuple[str, ...] = ("security_admin",)
    auditor_roles: tuple[str, ...] = ("auditor",)
    # An approver approves for the department the directory puts them in.
    approver_roles: tuple[str, ...] = ("approver", "department_head")
    # Chain steps whose approver must not belong to the subject's department
    # (no approval for one's own department's benefit). Empty: not enforced.
    no_own_department_steps: tuple[str, ...] = ()
    chains: dict[str, ChainSettings] = Field(
        default_factory=lambda: {
            "A": ChainSettings(steps=("security", "it")),
            "B": ChainSettings(steps=("security",)),
            "C": ChainSettings(steps=("business",)),
        }
    )
    # Standing clearance changes: the target level decides the chain (a chain name above).
    clearance_chains: dict[str, str] = Field(
        default_factory=lambda: {"L0": "C", "L1": "C", "L2": "B", "L3": "B", "L4": "A"}
    )
    # Standing data-role changes (promotion, transfer): this chain.
    role_change_chain: str = "B"
    # New directory entries (账号审核): approved by this chain, created at default_clearance.
    account_chain: ChainSettings = ChainSettings(steps=("business", "security"))
    default_clearance: Level = "L1"
    request_ttl: float = Field(default=72 * 3600.0, gt=0)  # a pending request expires after
    # State-changing admin calls must carry this header (browsers cannot send it cross-site).
    csrf_header: str = "X-Requested-With"
    # The grants CLI may record approvals (bound to a directory entry and the OS user).
    cli_approvals: bool = False
    review_check_interval: float = Field(default=30.0, gt=0)  # overdue break-glass reviews
    break_glass: BreakGlassSettings = BreakGlassSettings()
    lockdown: LockdownSettings = LockdownSettings()

    @model_validator(mode="after")
    def _chains_known(self) -> AccessSettings:
        for level, name in self.clearance_chains.items():
            if name not in self.chains:
                raise ValueError(f"clearance_chains.{level}: unknown chain {name!r}")
        if self.role_change_chain not in self.chains:
            raise ValueError(f"role_change_chain: unknown chain {self.role_change_chain!r}")
        if "L5" in self.clearance_chains:
            raise ValueError("clearance_chains.L5: the top level is never granted")
        return self
