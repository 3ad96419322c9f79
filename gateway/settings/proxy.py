"""Settings of the HTTP side: listener, upstream, limits, forwarding, route rules."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.core.headers import REWRITE
from gateway.settings.base import Section as _Section


class ClientTlsSettings(_Section):
    """TLS to a server the gateway calls (CRM, OPA): whom to trust and, for mTLS,
    the gateway's own client certificate. Empty `ca`: the system's trust store."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> ClientTlsSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together (the client certificate and its key)")
        return self


class ListenTlsSettings(_Section):
    """TLS termination at the gateway. Empty `cert`: plain HTTP (behind a TLS ingress)."""

    cert: Path | None = None  # PEM chain, leaf first
    key: Path | None = None
    # CA bundle client certificates must chain to (mTLS); needed unless client_auth is none.
    client_ca: Path | None = None
    # none: no client certificate asked; optional: verified when sent; required: refused without.
    client_auth: Literal["none", "optional", "required"] = "none"
    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    # Seconds between checks of the files' modification times; a changed certificate, key
    # or CA is loaded for new connections without a restart. 0: never reloaded.
    reload_interval: float = Field(5.0, ge=0)

    @property
    def enabled(self) -> bool:
        return self.cert is not None

    @model_validator(mode="after")
    def _complete(self) -> ListenTlsSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        if self.client_auth != "none" and self.client_ca is None:
            raise ValueError(f"client_auth {self.client_auth} needs client_ca")
        if self.client_ca is not None and self.cert is None:
            raise ValueError("client_ca needs cert and key (the gateway must terminate TLS)")
        return self


class ListenSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    # Seconds a client may take to send the request line and headers (slowloris guard).
    # aiohttp uses one timer for this and for idle keep-alive between requests.
    header_timeout: float = Field(15.0, gt=0)
    # Seconds between two chunks of a request body before the request is abandoned.
    body_timeout: float = Field(30.0, gt=0)
    # Longest request target (path and query) in bytes; longer: 414 uri_too_long.
    max_line_size: int = Field(8190, ge=1024)
    # Longest header field (name and value) in bytes; longer: 431 request_header_too_large.
    max_field_size: int = Field(8190, ge=1024)
    # Most header fields in one request; more: 431 request_header_too_large.
    max_headers: int = Field(128, ge=16, le=10_000)
    # The gateway's own name in Via.
    via_name: str = "crm-gateway"
    # The base URL clients reach the gateway at (https://crm.example.com). Links the CRM
    # builds to itself are rewritten to it; empty: the request's own scheme and host.
    public_url: str = ""
    tls: ListenTlsSettings = ListenTlsSettings()


class UpstreamSettings(_Section):
    url: str = ""
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    total_timeout: float = Field(300.0, gt=0)
    pool_size: int = Field(100, ge=1)
    pool_per_host: int = Field(0, ge=0)
    keepalive_timeout: float = Field(30.0, ge=0)
    # Forward the client's Host header (some CRMs build absolute links from it).
    preserve_host: bool = False
    verify_tls: bool = True
    # CA to verify the CRM with and the gateway's client certificate for a CRM that
    # wants mTLS (https:// URLs only).
    tls: ClientTlsSettings = ClientTlsSettings()
    # Other origins the CRM uses for itself in links (http://crm.internal:8000); links to
    # them, and to `url`, are rewritten to the gateway's public base.
    aliases: tuple[str, ...] = ()

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")


class LimitSettings(_Section):
    max_request_body: int = Field(10 * 1024 * 1024, ge=0)
    max_response_body: int = Field(64 * 1024 * 1024, ge=0)  # buffered rewrites
    max_streamed_response: int = Field(0, ge=0)  # 0 = unlimited when streaming
    # Decompression of upstream bodies before masking.
    max_decompressed_body: int = Field(256 * 1024 * 1024, ge=0)
    max_decompression_ratio: int = Field(200, ge=1)


class ForwardedSettings(_Section):
    # Client networks whose X-Forwarded-*/Forwarded headers are believed. Empty: none.
    trusted_proxies: tuple[str, ...] = ()
    # Emit X-Forwarded-For/-Proto/-Host (and always Via) to the CRM.
    emit_x_forwarded: bool = True
    emit_forwarded: bool = False
    # Rewrite headers (X-Original-URL, X-Forwarded-Prefix, ...) let through to the CRM.
    # None by default: a CRM that honours them serves another path than the gateway
    # routed. The X-Forwarded-* ones pass only from trusted_proxies; the gateway then
    # routes on the rewritten path too and applies the stricter rule.
    rewrite_headers_allow: tuple[str, ...] = ()

    @field_validator("rewrite_headers_allow")
    @classmethod
    def _rewrite_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(n.strip().lower() for n in v)
        unknown = [n for n in names if n not in REWRITE]
        if unknown:
            raise ValueError(
                f"{unknown} are not rewrite headers the gateway strips "
                f"(known: {', '.join(sorted(REWRITE))}); other headers pass anyway"
            )
        return names


class RouteSettings(_Section):
    """A route rule. `path` is a glob on the normalised path (`/api/contacts/*`)."""

    path: str
    methods: tuple[str, ...] = ()
    sensitive: bool = True
    public: bool = False
    websocket: bool = False
    report_only: bool = False
