"""Access requests, approval chains and grants (the policy's grant input)."""

from gateway.access.chains import DEFAULT_CHAINS, ChainTable
from gateway.access.grants import GrantService, GrantStateError, grant_status

__all__ = ["DEFAULT_CHAINS", "ChainTable", "GrantService", "GrantStateError", "grant_status"]
