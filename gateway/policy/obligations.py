"""The obligations a decision puts on the request before the CRM is asked.

One check for the gateway's handler and for `explain` of a request, so the two cannot
disagree: a denial, a declared purpose the caller's roles may not declare, a step-up,
a break-glass grant without a justification. Report-only routes and decisions record
the denial and go on, and ask for neither the purpose nor the step-up; a break-glass
grant needs its justification in every mode.
"""

from __future__ import annotations

from gateway.core.model import Decision
from gateway.errors import Forbidden, PurposeNotDeclarable, StepUpRequired


def enforce_obligations(
    decision: Decision,
    *,
    purpose: str | None,
    justified: bool,
    report_only: bool,
    step_up_max_age: int | None,
) -> None:
    """Raise the error the caller gets, or return when the request may go on."""
    ob = decision.obligations
    if not report_only:
        if not decision.allow:
            raise Forbidden(decision.reason or "access denied by policy")
        if purpose and ob.purposes is not None and purpose not in ob.purposes:
            declarable = sorted(ob.purposes)
            hint = f"declare one of: {', '.join(declarable)}" if declarable else "send none"
            raise PurposeNotDeclarable(
                f"the declared purpose (X-Purpose) is not one your roles may declare; {hint}",
                declarable=declarable,
            )
        if ob.step_up:
            raise StepUpRequired(
                "this data needs a stronger sign-in (multi-factor authentication)",
                acr_values=ob.acr_values,
                max_age=step_up_max_age,
            )
    if ob.justification_required and not justified:
        raise Forbidden("break-glass access needs a justification (X-Justification header)")
