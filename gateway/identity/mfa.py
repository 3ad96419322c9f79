"""Whether a subject has proved a second factor recently enough for step-up.

Only an authenticator that shows the factor *and its time* counts: an OIDC token
with a multi-factor `amr`/`acr` and an `auth_time` no older than the max age for
the caller's clearance (`identity.step_up_max_age`). A trusted SSO proxy's MFA
header is its own assertion. Static API keys, CRM tokens and client certificates
prove one factor and no time; the directory's `mfa: true` flags count for them
only with `identity.directory_mfa` (development only).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from gateway.core.model import Subject
from gateway.identity.directory import Directory
from gateway.settings import IdentitySettings

MAX_AGE_ATTRIBUTE = "mfa_max_age"


def fresh(auth_time: object, now: datetime, max_age: int, leeway: float) -> bool:
    """`auth_time` (seconds since the epoch) within `max_age` of now, not in the future."""
    if isinstance(auth_time, bool) or not isinstance(auth_time, int | float):
        return False
    age = now.timestamp() - float(auth_time)
    return -leeway <= age <= max_age + leeway


def judge(
    subject: Subject, settings: IdentitySettings, directory: Directory, now: datetime
) -> Subject:
    """The subject with `mfa` as proved, and the max age its step-up challenge names."""
    max_age = settings.step_up_max_age_for(subject.clearance)
    if subject.auth_method == "oidc":
        auth_time = subject.attributes.get("auth_time")
        mfa = subject.mfa and fresh(auth_time, now, max_age, settings.oidc.leeway)
    elif subject.auth_method == "trusted_header":
        mfa = subject.mfa
    else:
        entry = directory.get(subject.id)
        mfa = (
            settings.directory_mfa
            and entry is not None
            and entry.flags_mfa(subject.attributes.get("credential_id"))
        )
    attributes = {**subject.attributes, MAX_AGE_ATTRIBUTE: max_age}
    return dataclasses.replace(subject, mfa=mfa, attributes=attributes)
