"""Who is calling, and may they call at all: authenticators, directory, revocation, guard.

The handler uses:

- `Identity.open(settings, revocations)` / `identity.authenticate(request) -> Subject`
- `RequestGuard.from_settings(settings, ratelimiter)` / `guard.check(request, subject, route_key)`
- `strip_spoofable(headers, settings)` and `upstream_identity_headers(settings, subject)`
- `step_up_challenge(exc, realm)` / `step_up_redirect(exc, redirect, return_to)`

The CLI uses `revoke_user`, `restore_user`, `list_revoked`, `hash_key_command`,
`publish_directory` and `demo_keys`.
"""

from __future__ import annotations

from gateway.identity.apikeys import hash_key_command
from gateway.identity.directory import demo_keys
from gateway.identity.guard import GuardResult, RequestGuard, strip_method_override_param
from gateway.identity.publish import publish_directory
from gateway.identity.revocation import list_revoked, restore_user, revoke_user
from gateway.identity.service import Identity
from gateway.identity.stepup import step_up_challenge, step_up_redirect, wants_html
from gateway.identity.upstream_headers import (
    apply_identity,
    strip_spoofable,
    upstream_identity_headers,
)

__all__ = [
    "GuardResult",
    "Identity",
    "RequestGuard",
    "apply_identity",
    "demo_keys",
    "hash_key_command",
    "list_revoked",
    "publish_directory",
    "restore_user",
    "revoke_user",
    "step_up_challenge",
    "step_up_redirect",
    "strip_method_override_param",
    "strip_spoofable",
    "upstream_identity_headers",
    "wants_html",
]
