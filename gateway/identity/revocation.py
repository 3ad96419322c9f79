"""Revoking and restoring subjects from the command line (`crm-gateway users revoke`).

The live check is `Identity.check_active`, against the `RevocationList` every
gateway process keeps current (see `gateway.state.revocation`).
"""

from __future__ import annotations

from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.state.revocation import Revocation, RevocationList


async def _open_shared(settings: Settings) -> RevocationList:
    if not settings.redis.url:
        raise ConfigError(
            "revoking from the command line needs redis.url: without Redis each gateway "
            "process keeps its own list. Set `disabled: true` for the subject in "
            f"{settings.identity.directory} instead (re-read within seconds)."
        )
    return await RevocationList.open(settings.redis.url, subscribe=False)


async def revoke_user(settings: Settings, subject_id: str, reason: str, by: str) -> None:
    """Revoke `subject_id` (a subject or an API-key id) on every replica within a second."""
    if not reason.strip():
        raise ConfigError("a revocation needs a reason (it is kept for the audit trail)")
    revocations = await _open_shared(settings)
    try:
        await revocations.revoke(subject_id, reason=reason, by=by)
    finally:
        await revocations.close()


async def restore_user(settings: Settings, subject_id: str, by: str) -> bool:
    """Lift a revocation; False if `subject_id` was not revoked."""
    revocations = await _open_shared(settings)
    try:
        return await revocations.restore(subject_id, by=by)
    finally:
        await revocations.close()


async def list_revoked(settings: Settings) -> list[Revocation]:
    revocations = await _open_shared(settings)
    try:
        return await revocations.list()
    finally:
        await revocations.close()
