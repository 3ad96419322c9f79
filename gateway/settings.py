"""Typed settings: the only reader of configuration files and environment variables.

Load order: built-in defaults < YAML file < environment (`CRM_GATEWAY__SECTION__KEY=value`,
double underscore between levels; values are parsed as YAML scalars, so `true`, `30`
and `[a, b]` work) < command-line flags (applied by `cli.py` via `with_overrides`).

Every problem is reported at once with its dotted path (`upstream.url: ...`), so
`crm-gateway check-config` can print them all. A default that only needs
`upstream.url` works.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.errors import ConfigError

ENV_PREFIX = "CRM_GATEWAY__"
REPO_ROOT = Path(__file__).resolve().parent.parent


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    # Seconds a client may take to send the request line and headers (slowloris guard).
    # aiohttp uses one timer for this and for idle keep-alive between requests.
    header_timeout: float = Field(15.0, gt=0)
    # Seconds between two chunks of a request body before the request is abandoned.
    body_timeout: float = Field(30.0, gt=0)
    max_line_size: int = Field(8190, ge=1024)
    max_field_size: int = Field(8190, ge=1024)
    # The gateway's own name in Via.
    via_name: str = "crm-gateway"


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


class RouteSettings(_Section):
    """A route rule. `path` is a glob on the normalised path (`/api/contacts/*`)."""

    path: str
    methods: tuple[str, ...] = ()
    sensitive: bool = True
    public: bool = False
    websocket: bool = False
    report_only: bool = False
    catalog_route: str | None = None


_MATCH = Literal["id", "email", "alias"]
_ASYMMETRIC_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def _check_networks(values: tuple[str, ...]) -> tuple[str, ...]:
    import ipaddress

    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError as exc:
            raise ValueError(f"{v!r} is not an IP network (CIDR)") from exc
    return values


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
    """Client certificates, when the gateway terminates TLS itself."""

    match: Literal["cn", "san_email", "san_dns"] = "cn"
    directory_match: _MATCH = "alias"


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
        return self


class PolicySettings(_Section):
    # static: the action table derived from `static_table` (no OPA);
    # managed: the gateway supervises `opa run --server --watch rego/`;
    # external: an OPA server at `url`.
    engine: Literal["static", "managed", "external"] = "managed"
    url: str = "http://127.0.0.1:8181"
    decision_path: str = "crm/gateway/decision"
    rego_dir: Path = Path("rego")
    opa_binary: str = ""  # empty: PATH, then .tools/bin/opa
    timeout: float = Field(default=0.1, gt=0)  # decision deadline; slower = deny (503)
    report_only: bool = False
    purpose_header: str = "X-Purpose"
    justification_header: str = "X-Justification"
    # The policy's clock: hour/weekday/date rules (business hours, holidays) are local.
    timezone: str = "Asia/Shanghai"
    cache_size: int = Field(default=10_000, ge=0)  # decisions kept (LRU); 0 disables the cache
    pool_size: int = Field(default=64, ge=1)  # connections to OPA
    breaker_threshold: int = Field(default=5, ge=1)  # consecutive failures that open the breaker
    breaker_cooldown: float = Field(default=2.0, gt=0)  # seconds failing fast before a trial call
    revision_path: str = "crm/config/revision"
    revision_poll: float = Field(default=1.0, gt=0)  # seconds between revision checks
    start_timeout: float = Field(default=15.0, gt=0)  # managed OPA must be healthy within this
    output_schema: Path | None = None  # default: <rego_dir>/schema/output.json
    # External mode on this host's rego_dir (workers of one supervised OPA): also
    # hash rego_dir into the revision, as managed mode does.
    track_rego_dir: bool = False

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class RedisSettings(_Section):
    url: str = ""  # empty: in-memory state (single process only)
    required: bool = False


class ClassificationSettings(_Section):
    taxonomy: Path = Path("config/taxonomy.yaml")
    catalog: Path = Path("config/crm/demo.yaml")
    pseudonym_key_env: str = "CRM_GATEWAY_PSEUDONYM_KEY"
    # What to do with a write carrying a masked placeholder: reject (409) or strip.
    masked_write: Literal["reject", "strip"] = "reject"
    entry_validation: bool = False


class AuditSettings(_Section):
    sinks: tuple[str, ...] = ("stdout",)
    file: Path = Path("var/audit/audit.jsonl")
    spool_dir: Path = Path("var/audit/spool")
    stream: str = "crm-gateway:audit"
    hmac_key_env: str = "CRM_GATEWAY_AUDIT_KEY"
    strict_levels: tuple[str, ...] = ()
    # Emitter: bounded queue, batch size, breaker pause, durable-write deadline (seconds).
    queue_size: int = Field(default=50_000, ge=1)
    batch_size: int = Field(default=500, ge=1)
    breaker_cooldown: float = Field(default=1.0, gt=0)
    durable_timeout: float = Field(default=0.5, gt=0)
    # Durable writes also wait for WAITAOF (Redis >= 7.2 with AOF); else they rely on
    # XADD (run Redis with appendfsync always) and fall back to the fsynced spool.
    durable_waitaof: bool = False
    # Approximate MAXLEN trimming of the stream; 0 = never trim (trim after archiving instead).
    stream_maxlen: int = Field(default=0, ge=0)
    # Integrity: dev HMAC key file (used only when the env var is unset outside production),
    # Ed25519 seal key (PEM; the public key is written next to it), seal cadence.
    dev_key_file: Path = Path("var/audit/dev-hmac.key")
    seal_key_file: Path = Path("var/audit/seal-ed25519.pem")
    seal_every: int = Field(default=1000, ge=1)
    seal_interval: float = Field(default=10.0, gt=0)
    # Idle writers still seal this often, so a verifier can tell "quiet" from "cut off".
    seal_heartbeat: float = Field(default=60.0, gt=0)
    # Record ids per event; bigger responses continue in linked follow-up events.
    ids_per_event: int = Field(default=500, ge=1)
    # File sink rotation.
    file_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    file_backups: int = Field(default=5, ge=0)
    # Shipper (consumer group on the stream).
    shipper_group: str = "shippers"
    shipper_batch: int = Field(default=500, ge=1)
    claim_idle_ms: int = Field(default=60_000, ge=1)
    # RFC 5424 syslog (TCP, or TLS when syslog_tls) and CEF over the same transport.
    syslog_host: str = "127.0.0.1"
    syslog_port: int = Field(default=6514, ge=1, le=65535)
    syslog_tls: bool = True
    syslog_ca_file: Path | None = None
    syslog_cert_file: Path | None = None
    syslog_key_file: Path | None = None
    syslog_app_name: str = "crm-gateway"
    syslog_sd_id: str = "crmaudit@32473"
    cef_vendor: str = "crm-gateway"
    cef_product: str = "CRM Access Gateway"
    # Splunk HEC: token read from the env var; ack polling when hec_ack.
    hec_url: str = ""
    hec_token_env: str = "CRM_GATEWAY_HEC_TOKEN"  # noqa: S105 (an env var name, not a secret)
    hec_ack: bool = True
    hec_ack_timeout: float = Field(default=30.0, gt=0)
    hec_sourcetype: str = "crm:audit:ocsf"
    hec_index: str = ""
    hec_verify_tls: bool = True

    @field_validator("sinks")
    @classmethod
    def _known_sinks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        known = ("stdout", "file", "syslog", "cef", "hec", "redis")
        bad = [s for s in v if s not in known]
        if bad:
            raise ValueError(f"unknown audit sink(s) {bad}; known: {', '.join(known)}")
        return v


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class AdminSettings(_Section):
    prefix: str = "/_gateway"
    # Networks allowed to call admin endpoints other than health/ready/metrics.
    allowed_networks: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    # Roles whose members may revoke and restore subjects through the admin API.
    roles: tuple[str, ...] = ("security_admin",)


_DAY = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class NetworkRuleSettings(_Section):
    """IP allow/deny lists for some roles or subjects (empty roles and subjects: everyone)."""

    roles: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @field_validator("allow", "deny")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(v)


class WorkingHoursSettings(_Section):
    """A window in which the listed roles/subjects may call (a subject matched by several
    rules may call inside any of them)."""

    roles: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    timezone: str = "Asia/Shanghai"
    days: tuple[_DAY, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: str = "08:00"
    end: str = "20:00"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        h, sep, m = v.partition(":")
        if not (sep and h.isdigit() and m.isdigit() and int(h) <= 24 and int(m) < 60):
            raise ValueError(f"{v!r} is not HH:MM")
        return v


class RateLimitRuleSettings(_Section):
    """`limit` requests per `period` seconds, counted per subject, per route or both,
    shared by every replica through Redis. `routes` are globs on the route key."""

    name: str
    per: Literal["subject", "route", "subject_route"] = "subject"
    routes: tuple[str, ...] = ("*",)
    roles: tuple[str, ...] = ()
    limit: int = Field(ge=1)
    period: float = Field(gt=0)


class GuardSettings(_Section):
    """Request-side checks before anything reaches the CRM."""

    # X-HTTP-Method-Override and friends: refuse (400) or strip before forwarding.
    method_override: Literal["reject", "strip"] = "reject"
    # Network zones for the policy input, first match wins; anything else is "external".
    network_zones: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "internal": ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
            "vpn": (),
        }
    )
    network_rules: tuple[NetworkRuleSettings, ...] = ()
    # false: network violations are reported to the policy (network_allowed) but not refused.
    enforce_networks: bool = True
    working_hours: tuple[WorkingHoursSettings, ...] = ()
    rate_limits: tuple[RateLimitRuleSettings, ...] = ()
    # The CRM treats paths case-insensitively: normalise to lower case before routing.
    case_insensitive_paths: bool = False
    # Failed sign-ins per client address before further attempts are refused (429)
    # for the rest of the window; 0: no limit. Shared by replicas through Redis.
    auth_failure_limit: int = Field(default=50, ge=0)
    auth_failure_period: float = Field(default=300.0, gt=0)

    @field_validator("network_zones")
    @classmethod
    def _zones(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for nets in v.values():
            _check_networks(nets)
        return v


class MonitorSettings(_Section):
    """Real-time anomaly detection shared by every replica through Redis, and honeytokens.

    Windows are fixed buckets (`window_seconds`, `blocked_burst_seconds`); each alert
    kind fires at most once per subject per bucket, whichever replica sees the breach.
    `action` applies to the distinct-customer and blocked-burst alerts; access outside
    usual hours only alerts (one call at night is a question, not proof).
    """

    enabled: bool = False
    window_seconds: int = Field(default=3600, ge=60, le=7 * 86400)
    # Level -> distinct customers seen in clear by one subject in a window that raise an alert.
    distinct_customers: dict[str, int] = Field(
        default_factory=lambda: {"L2": 500, "L3": 200, "L4": 50}
    )
    blocked_burst_count: int = Field(default=20, ge=1)
    blocked_burst_seconds: int = Field(default=60, ge=1, le=86400)
    # Usual hours [start, end) on `usual_days` in `timezone`; start > end wraps past midnight.
    # 0-24 on every day turns the off-hours alert off.
    usual_hours_start: int = Field(default=0, ge=0, le=23)
    usual_hours_end: int = Field(default=24, ge=1, le=24)
    usual_days: tuple[_DAY, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    timezone: str = "Asia/Shanghai"
    action: Literal["alert", "throttle", "revoke"] = "alert"
    throttle_seconds: int = Field(default=900, ge=1)
    # Decoy customer record ids no legitimate task touches; any access alerts at once.
    honeytokens: tuple[str, ...] = ()
    honeytoken_action: Literal["alert", "revoke"] = "alert"
    # Detector plumbing: bounded queue, batch size, seconds between throttle refreshes.
    queue_size: int = Field(default=10_000, ge=1)
    batch_size: int = Field(default=500, ge=1)
    refresh_seconds: float = Field(default=1.0, gt=0)

    @field_validator("distinct_customers")
    @classmethod
    def _levels(cls, v: dict[str, int]) -> dict[str, int]:
        bad = [k for k, n in v.items() if not (k[:1] == "L" and k[1:].isdigit()) or n < 1]
        if bad:
            raise ValueError(f"levels must look like L3 with a threshold >= 1, not {bad}")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class Settings(_Section):
    environment: Literal["development", "production"] = "development"
    listen: ListenSettings = ListenSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    limits: LimitSettings = LimitSettings()
    forwarded: ForwardedSettings = ForwardedSettings()
    routes: tuple[RouteSettings, ...] = ()
    identity: IdentitySettings = IdentitySettings()
    policy: PolicySettings = PolicySettings()
    redis: RedisSettings = RedisSettings()
    classification: ClassificationSettings = ClassificationSettings()
    audit: AuditSettings = AuditSettings()
    logging: LoggingSettings = LoggingSettings()
    admin: AdminSettings = AdminSettings()
    guard: GuardSettings = GuardSettings()
    monitor: MonitorSettings = MonitorSettings()
    # Where relative paths in this file are resolved from (the config file's project root).
    base_dir: Path = REPO_ROOT

    @model_validator(mode="after")
    def _production_needs_redis(self) -> Settings:
        if self.environment == "production" and not self.redis.url:
            raise ValueError(
                "environment is production but redis.url is empty: several replicas "
                "would not share revocations, grants or rate limits"
            )
        return self

    def path(self, p: Path) -> Path:
        """Relative paths resolve from `base_dir`; the shipped defaults (config/, rego/)
        fall back to the source tree, so a file naming only `upstream.url` works anywhere."""
        if p.is_absolute():
            return p
        local = self.base_dir / p
        shipped = p.parts[:1] in (("config",), ("rego",))  # read-only defaults, never outputs
        if shipped and not local.exists() and (REPO_ROOT / p).exists():
            return REPO_ROOT / p
        return local

    def with_overrides(self, **dotted: Any) -> Settings:
        """Return a copy with `section.key` overrides applied and re-validated."""
        data = self.model_dump()
        for key, value in dotted.items():
            if value is None:
                continue
            _set_dotted(data, key.split("."), value)
        return _validate(data)


def _set_dotted(data: dict[str, Any], parts: list[str], value: Any) -> None:
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if parts:
            _set_dotted(out, parts, yaml.safe_load(raw) if raw else raw)
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def format_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{loc}: {msg}")
    return problems


def _validate(data: Mapping[str, Any]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = format_problems(exc)
        raise ConfigError(f"{len(problems)} configuration error(s)", problems) from exc


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read YAML (optional), apply environment overrides, validate once."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {p}: {exc.strerror}") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
        data = loaded or {}
        data.setdefault("base_dir", str(_project_root_for(p)))
    _merge(data, _env_overrides(os.environ if environ is None else environ))
    return _validate(data)


def _project_root_for(config_file: Path) -> Path:
    """Config files in `<root>/config/` resolve relative paths from `<root>`."""
    parent = config_file.resolve().parent
    return parent.parent if parent.name == "config" else parent
