"""Client certificates: verified by the gateway's TLS listener (`listen.tls` with
`client_auth`), or forwarded by a trusted ingress that terminated TLS.

A listener certificate has already been verified against `listen.tls.client_ca` by
the TLS layer. A forwarded one is believed only from `forwarded_from` peers and is
verified again here against `forwarded_ca` (chain, validity, client-auth use), so
an ingress misconfigured to pass unverified certificates does not let them in.
The certificate's subject CN or a SAN (e-mail, DNS) names a directory entry.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gateway.core.model import Subject
from gateway.errors import ConfigError, Unauthenticated
from gateway.identity.authn.base import Clock, DirectoryHandle, lookup, peer_address, utcnow
from gateway.settings import MtlsSettings

_XFCC_CERT = re.compile(r'(?:^|;)\s*Cert="?([^";,]+)"?', re.IGNORECASE)


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


def x509_names(cert: x509.Certificate, match: str) -> list[str]:
    """The same names from a parsed certificate."""
    if match == "cn":
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    kind = x509.RFC822Name if match == "san_email" else x509.DNSName
    return [str(v) for v in san.get_values_for_type(kind)]


def forwarded_pem(value: str, fmt: str) -> bytes:
    """The PEM certificate in a forwarding header (URL-encoded in both formats)."""
    if fmt == "xfcc":
        # The first element is the client's; later ones are proxies re-forwarding.
        first = value.split(",", 1)[0]
        found = _XFCC_CERT.search(first)
        if found is None:
            raise Unauthenticated("the forwarded client certificate header has no Cert element")
        value = found.group(1)
    return unquote(value).encode()


class ForwardedCertVerifier:
    """Chain verification of forwarded certificates against the configured CA."""

    def __init__(self, ca: Path, clock: Clock = utcnow) -> None:
        try:
            roots = x509.load_pem_x509_certificates(ca.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"identity.mtls.forwarded_ca: cannot load {ca}: {exc}") from exc
        self._store = Store(roots)
        self._clock = clock

    def verify(self, pem: bytes) -> x509.Certificate:
        try:
            chain = x509.load_pem_x509_certificates(pem)
        except ValueError as exc:
            raise Unauthenticated(
                "the forwarded client certificate is not a PEM certificate"
            ) from exc
        leaf, intermediates = chain[0], chain[1:]
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(self._clock().astimezone(UTC).replace(tzinfo=None))
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, intermediates)
        except VerificationError as exc:
            raise Unauthenticated(
                f"the forwarded client certificate does not verify: {exc}"
            ) from exc
        return leaf


class MtlsAuthenticator:
    name = "mtls"

    def __init__(
        self,
        settings: MtlsSettings,
        directory: DirectoryHandle,
        resolve: Callable[[Path], Path] = Path,
    ) -> None:
        self._s = settings
        self._directory = directory
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in settings.forwarded_from]
        self._verifier = (
            ForwardedCertVerifier(resolve(settings.forwarded_ca))
            if settings.forwarded_header and settings.forwarded_ca is not None
            else None
        )

    async def authenticate(self, request: web.Request) -> Subject | None:
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        if cert:
            names = cert_names(cert, self._s.match)
            source = "the certificate"
        else:
            forwarded = self._forwarded(request)
            if forwarded is None:
                return None
            names, source = forwarded, "the forwarded certificate"
        if not names:
            return None
        entry = lookup(self._directory.current(), self._s.directory_match, names[0], source)
        return entry.subject_for("mtls", mfa=False, certificate=names[0])

    def _forwarded(self, request: web.Request) -> list[str] | None:
        if self._verifier is None:
            return None
        value = request.headers.get(self._s.forwarded_header, "").strip()
        if not value:
            return None
        peer = peer_address(request)
        if peer is None or not any(peer in net for net in self._trusted):
            return None  # not from the ingress: not believed (and stripped for the CRM)
        leaf = self._verifier.verify(forwarded_pem(value, self._s.forwarded_format))
        return x509_names(leaf, self._s.match) or []
