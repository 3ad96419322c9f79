"""Identity asserted by an SSO proxy in front of the gateway (e.g. `X-Remote-User`).

Believed only when the TCP peer is one of the configured proxy networks. From
anyone else the header is ignored here and stripped before forwarding
(`strip_spoofable`), so a client cannot claim to be someone by sending it.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from gateway.core.model import Subject
from gateway.identity.authn.base import DirectoryHandle, lookup, peer_address
from gateway.settings import TrustedHeaderSettings


class TrustedHeaderAuthenticator:
    name = "trusted_header"

    def __init__(self, settings: TrustedHeaderSettings, directory: DirectoryHandle) -> None:
        self._s = settings
        self._networks = [ipaddress.ip_network(n, strict=False) for n in settings.source_networks]
        self._directory = directory

    def trusts(self, request: web.Request) -> bool:
        peer = peer_address(request)
        return peer is not None and any(peer in net for net in self._networks)

    async def authenticate(self, request: web.Request) -> Subject | None:
        user = request.headers.get(self._s.user_header, "").strip()
        if not user or not self.trusts(request):
            return None
        entry = lookup(self._directory.current(), self._s.directory_match, user, "the SSO proxy")
        mfa = bool(self._s.mfa_header) and (
            request.headers.get(self._s.mfa_header, "").strip().lower() in ("1", "true", "yes")
        )
        return entry.subject_for("trusted_header", mfa=mfa)
