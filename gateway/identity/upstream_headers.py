"""Identity headers for the CRM: set by the gateway only, never passed through.

A CRM that trusts `X-Remote-User` (or similar) must only ever see the value the
gateway put there. So every configured identity header, and the always-stripped
list, is removed from the client's request before the gateway adds its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from multidict import CIMultiDict

from gateway.core.model import Subject
from gateway.settings import Settings

METHOD_OVERRIDE_HEADERS = ("X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method")


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def upstream_identity_headers(settings: Settings, subject: Subject) -> dict[str, str]:
    """`{"X-Remote-User": "{id}"}` style templates filled from the subject.

    Placeholders: id, display_name, department, clearance, roles (comma-separated),
    mfa (true/false), auth_method, and any `attributes` key. Unknown ones are empty.
    CR/LF are removed from values so a directory entry cannot split headers.
    """
    fields: dict[str, Any] = {
        k: v for k, v in subject.attributes.items() if isinstance(v, str | int | float)
    }
    fields.update(
        id=subject.id,
        display_name=subject.display_name,
        department=subject.department,
        clearance=subject.clearance,
        roles=",".join(subject.roles),
        mfa="true" if subject.mfa else "false",
        auth_method=subject.auth_method,
    )
    out = {}
    for name, template in settings.identity.upstream_identity_headers.items():
        # Plain `{name}` substitution only: no format specs, no attribute access.
        value = _PLACEHOLDER.sub(lambda m: str(fields.get(m.group(1), "")), template)
        out[name] = value.replace("\r", "").replace("\n", "")
    return out


def spoofable_headers(settings: Settings) -> tuple[str, ...]:
    names = [
        *settings.identity.strip_request_headers,
        *settings.identity.upstream_identity_headers,
        settings.identity.api_key_header,  # the gateway's own credential never reaches the CRM
    ]
    names.append(settings.identity.trusted_headers.user_header)
    if settings.identity.trusted_headers.mfa_header:
        names.append(settings.identity.trusted_headers.mfa_header)
    if settings.identity.mtls.forwarded_header:
        names.append(settings.identity.mtls.forwarded_header)  # the ingress's, never the CRM's
    if settings.guard.method_override == "strip":
        names.extend(METHOD_OVERRIDE_HEADERS)
    return tuple(dict.fromkeys(names))


def strip_spoofable(headers: CIMultiDict[str], settings: Settings) -> None:
    """Remove, in place, every header a client must not be able to set for the CRM."""
    for name in spoofable_headers(settings):
        headers.popall(name, None)


def apply_identity(
    headers: CIMultiDict[str], settings: Settings, subject: Subject
) -> Mapping[str, str]:
    """strip_spoofable, then add the gateway's own identity headers; returns what was set.

    A gateway API key sent as `Authorization: Bearer` is removed too: it means nothing
    to the CRM and must not end up in its logs. Other credentials pass through.
    """
    strip_spoofable(headers, settings)
    if subject.auth_method == "api_key":
        headers.popall("Authorization", None)
    added = upstream_identity_headers(settings, subject)
    headers.update(added)
    return added
