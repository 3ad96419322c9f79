"""Client certificates, when the gateway terminates TLS with `CERT_REQUIRED`/`OPTIONAL`.

The TLS layer has already verified the chain against the configured CA; here the
certificate's subject CN or a SAN (e-mail, DNS) names a directory entry.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.core.model import Subject
from gateway.identity.authn.base import DirectoryHandle, lookup
from gateway.settings import MtlsSettings


def cert_names(cert: dict[str, Any], match: str) -> list[str]:
    """Names of the given kind in an `ssl.getpeercert()` dictionary."""
    if match == "cn":
        return [
            str(value)
            for rdn in cert.get("subject", ())
            for key, value in rdn
            if key == "commonName"
        ]
    kind = "email" if match == "san_email" else "DNS"
    return [str(value) for key, value in cert.get("subjectAltName", ()) if key == kind]


class MtlsAuthenticator:
    name = "mtls"

    def __init__(self, settings: MtlsSettings, directory: DirectoryHandle) -> None:
        self._s = settings
        self._directory = directory

    async def authenticate(self, request: web.Request) -> Subject | None:
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        if not cert:
            return None
        names = cert_names(cert, self._s.match)
        if not names:
            return None
        entry = lookup(
            self._directory.current(), self._s.directory_match, names[0], "the certificate"
        )
        return entry.subject_for("mtls", mfa=False, certificate=names[0])
