"""Settings of who is calling: authenticators, directory, step-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.settings.base import Section as _Section
from gateway.settings.base import check_networks as _check_networks

_MATCH = Literal["id", "email", "alias"]
_LEVEL = Literal["L0", "L1", "L2", "L3", "L4", "L5"]
_ASYMMETRIC_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OidcSettings(_Section):
    """OIDC/JWT bearer tokens from the identity provider (enabled by `authenticators`)."""

    issuer: str = ""
    audience: tuple[str, ...] = ()
    jwks_url: str = ""
    # Pinned signature algorithms; asymmetric only, so no `none` and no HS/RS confusion.
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway: float = Field(default=30.0, ge=0, le=300)
    required_claims: tuple[str, ...] = ("exp", "iat", "sub")
    # Which claim names the caller and which directory key it is.
    subject_claim: str = "sub"
    directory_match: _MATCH = "id"
    require_directory_entry: bool = True
    # `amr` / `acr` values that count as multi-factor authentication.
    mfa_amr: tuple[str, ...] = ("mfa", "otp", "hwk", "swk", "fpt", "face", "sc")
    mfa_acr: tuple[str, ...] = ()
    # Subject fields a token claim may override (field -> claim); others come from the directory.
    claim_overrides: dict[str, str] = Field(default_factory=dict)
    jwks_cache_ttl: float = Field(default=3600.0, gt=0)
    # Unknown `kid`: refetch the JWKS, but at most once per this many seconds.
    jwks_min_refresh_interval: float = Field(default=30.0, ge=0)
    timeout: float = Field(default=3.0, gt=0)

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in v if a not in _ASYMMETRIC_ALGS]
        if bad or not v:
            raise ValueError(f"only asymmetric algorithms are allowed, not {bad or 'none'}")
        return v


class CrmIntrospectionSettings(_Section):
    """Ask the CRM who a credential belongs to (a "who am I" endpoint; for BottleCRM
    see config/bottlecrm-gateway.yaml, which uses `/api/profile/`).

    Only `Authorization` is forwarded by default: a CRM may accept other headers
    that do not name a person (BottleCRM's `Token:` also takes the org API key and
    answers with an arbitrary admin), so each extra header is an explicit choice."""

    url: str = ""  # empty: upstream.url
    path: str = "/api/auth/me/"
    forward_headers: tuple[str, ...] = ("Authorization",)
    user_id_path: str = "user.id"
    email_path: str = "user.email"
    directory_match: _MATCH = "email"
    cache_ttl: float = Field(default=30.0, ge=0)
    negative_cache_ttl: float = Field(default=5.0, ge=0)
    cache_size: int = Field(default=10_000, ge=1)
    timeout: float = Field(default=3.0, gt=0)


class CrmJwtSettings(_Section):
    """Verify JWTs the CRM issues itself (HS256 with a shared secret read from env)."""

    secret_env: str = "CRM_GATEWAY_CRM_JWT_SECRET"  # noqa: S105 (an env var name)
    algorithms: tuple[Literal["HS256", "HS384", "HS512"], ...] = ("HS256",)
    subject_claim: str = "user_email"
    directory_match: _MATCH = "email"
    required_claims: tuple[str, ...] = ("exp",)
    leeway: float = Field(default=30.0, ge=0, le=300)


class TrustedHeaderSettings(_Section):
    """Identity asserted by an SSO proxy in front; believed only from these networks."""

    source_networks: tuple[str, ...] = ()
    user_header: str = "X-Remote-User"
    directory_match: _MATCH = "id"
    # Header the proxy sets to `true` after MFA (empty: never MFA).
    mfa_header: str = ""

    @field_validator("source_networks")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(v)


class MtlsSettings(_Section):
    """Client certificates: from the gateway's own TLS listener (`listen.tls` with
    `client_auth`), or forwarded by a trusted ingress that terminated TLS."""

    match: Literal["cn", "san_email", "san_dns"] = "cn"
    directory_match: _MATCH = "alias"
    # Header a TLS-terminating ingress puts the verified client certificate in; empty: none.
    # `pem`: the URL-encoded PEM (nginx `$ssl_client_escaped_cert`, e.g. `ssl-client-cert`);
    # `xfcc`: Envoy's `X-Forwarded-Client-Cert` (its `Cert="..."` element).
    forwarded_header: str = ""
    forwarded_format: Literal["pem", "xfcc"] = "pem"
    # Peers (the ingress) the header is believed from; from anyone else it is ignored
    # and never reaches the CRM.
    forwarded_from: tuple[str, ...] = ()
    # CA bundle the forwarded certificate must chain to (verified again here).
    forwarded_ca: Path | None = None

    @field_validator("forwarded_from")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(v)

    @model_validator(mode="after")
    def _forwarding(self) -> MtlsSettings:
        if self.forwarded_header and not (self.forwarded_from and self.forwarded_ca):
            raise ValueError("forwarded_header needs forwarded_from and forwarded_ca")
        return self


# Subject fields an OIDC claim may override; the rest always come from the directory.
OIDC_OVERRIDABLE = ("roles", "department", "clearance", "display_name")

Authenticator = Literal["api_key", "oidc", "crm_jwt", "crm_introspection", "trusted_header", "mtls"]


class IdentitySettings(_Section):
    # The directory of subjects (YAML or CSV) the security team manages.
    directory: Path = Path("config/directory.yaml")
    # file: read `directory` (re-read when it changes); redis: the copy published to Redis
    # with `crm-gateway users publish-directory`, shared by every replica.
    directory_source: Literal["file", "redis"] = "file"
    # A replica that could not confirm its revocation list with Redis for this many
    # seconds refuses every caller (503): it cannot know who was revoked. 0: never.
    revocation_max_staleness: float = Field(default=60.0, ge=0)
    # Header carrying an API key (in addition to `Authorization: Bearer`).
    api_key_header: str = "X-Api-Key"
    # Identity headers the CRM trusts: set by the gateway only, client copies removed.
    upstream_identity_headers: dict[str, str] = Field(default_factory=dict)
    # Headers always removed from client requests (identity spoofing).
    strip_request_headers: tuple[str, ...] = (
        "X-Remote-User",
        "X-Forwarded-User",
        "X-Auth-Request-User",
        "X-Gateway-Subject",
        "X-Gateway-Clearance",
    )
    # Authenticators tried in this order; the first that recognises the credential decides.
    authenticators: tuple[Authenticator, ...] = ("api_key",)
    # Env var holding the pepper for API-key hashes (`hmac-sha256:`); unset: plain `sha256:`.
    api_key_pepper_env: str = "CRM_GATEWAY_API_KEY_PEPPER"
    oidc: OidcSettings = OidcSettings()
    crm_introspection: CrmIntrospectionSettings = CrmIntrospectionSettings()
    crm_jwt: CrmJwtSettings = CrmJwtSettings()
    trusted_headers: TrustedHeaderSettings = TrustedHeaderSettings()
    mtls: MtlsSettings = MtlsSettings()
    # Step-up (RFC 9470): realm in WWW-Authenticate; browsers are redirected here instead.
    step_up_realm: str = "crm-gateway"
    step_up_redirect: str = ""
    # Multi-factor authentication counts only from an authenticator that proves a second
    # factor and when it happened: OIDC `amr`/`acr` with an `auth_time` no older than the
    # max age (seconds) for the caller's clearance level; levels not listed use
    # `step_up_default_max_age`. The step-up challenge names the same `max_age`.
    step_up_max_age: dict[_LEVEL, int] = Field(
        default_factory=lambda: dict[_LEVEL, int]({"L3": 3600, "L4": 900, "L5": 300})
    )
    step_up_default_max_age: int = Field(default=3600, ge=1)
    # Development only: count the directory's `mfa: true` flags (on an entry or an API key)
    # as a second factor for static keys and CRM tokens, which prove no second factor and
    # no time. Refused in production.
    directory_mfa: bool = False

    @model_validator(mode="after")
    def _authenticators_configured(self) -> IdentitySettings:
        if "oidc" in self.authenticators and not (
            self.oidc.issuer and self.oidc.jwks_url and self.oidc.audience
        ):
            raise ValueError("oidc is enabled but oidc.issuer, jwks_url or audience is empty")
        if "trusted_header" in self.authenticators and not self.trusted_headers.source_networks:
            raise ValueError(
                "trusted_header is enabled but trusted_headers.source_networks is empty"
            )
        bad = [lvl for lvl, age in self.step_up_max_age.items() if age < 1]
        if bad:
            raise ValueError(f"step_up_max_age: {bad} must be at least 1 second")
        return self

    def step_up_max_age_for(self, clearance: str) -> int:
        """Seconds a second factor stays fresh for a caller of this clearance."""
        for level, age in self.step_up_max_age.items():
            if level == clearance:
                return age
        return self.step_up_default_max_age
