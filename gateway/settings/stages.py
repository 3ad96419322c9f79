"""Settings of the policy, state, classification, audit, logging and admin stages."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from gateway.settings.base import Section as _Section
from gateway.settings.base import check_zone
from gateway.settings.proxy import ClientTlsSettings


class PolicySettings(_Section):
    # static: the action table derived from `static_table` (no OPA);
    # managed: the gateway supervises `opa run --server --watch rego/`;
    # external: an OPA server at `url`.
    engine: Literal["static", "managed", "external"] = "managed"
    url: str = "http://127.0.0.1:8181"
    # For an https:// external OPA: the CA its certificate chains to and the gateway's
    # client certificate (OPA `--authentication=tls`).
    tls: ClientTlsSettings = ClientTlsSettings()
    decision_path: str = "crm/gateway/decision"
    rego_dir: Path = Path("rego")
    opa_binary: str = ""  # empty: PATH, then .tools/bin/opa
    # Managed mode fed by a bundle server: the supervised OPA runs with this OPA
    # configuration file (services, signed bundles, persistence: deploy/opa/
    # opa-config.yaml) instead of watching rego_dir, and is ready once a bundle is active.
    opa_config_file: Path | None = None
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
    # Decision-input log for `crm-gateway policy impact`: distinct value-free policy
    # inputs with hourly counts, in Redis (redis.url) or JSONL files under input_log_dir
    # (default: `decision-inputs/` beside audit.file).
    input_log: bool = True
    input_log_dir: Path | None = None
    input_log_retention_days: int = Field(default=8, ge=1)
    input_log_max_distinct: int = Field(default=10_000, ge=1)  # per hour and process
    input_log_flush: float = Field(default=10.0, gt=0)  # seconds between writes

    _timezone = field_validator("timezone")(check_zone)


class RedisSettings(_Section):
    # Empty: in-memory state (one process only). Set: shared by every replica, and
    # the gateway refuses to start while it cannot reach it.
    url: str = ""


class ObserveSettings(_Section):
    # Observe mode (`crm-gateway catalog coverage`): per route template, the field
    # paths, value shapes and detector categories of the CRM's responses (counts
    # only, never values), in Redis when `redis.url` is set. Works beside
    # enforcement and in report-only mode alike.
    enabled: bool = False
    max_routes: int = Field(default=2000, ge=1)
    max_fields: int = Field(default=2000, ge=1)  # counters per route template
    max_leaves: int = Field(default=5000, ge=1)  # values looked at per response


class ClassificationSettings(_Section):
    taxonomy: Path = Path("config/taxonomy.yaml")
    catalog: Path = Path("config/crm/demo.yaml")
    pseudonym_key_env: str = "CRM_GATEWAY_PSEUDONYM_KEY"
    # What to do with a write carrying a masked placeholder: reject (409) or strip.
    masked_write: Literal["reject", "strip"] = "reject"
    entry_validation: bool = False
    observe: ObserveSettings = ObserveSettings()


class AuditSettings(_Section):
    sinks: tuple[str, ...] = ("stdout",)
    file: Path = Path("var/audit/audit.jsonl")
    spool_dir: Path = Path("var/audit/spool")
    # Writer registry (one JSON file per writer, and `<stream>:writers` in Redis): the
    # verifier's list of writers that existed, refreshed every `registry_heartbeat` s.
    registry_dir: Path = Path("var/audit/writers")
    registry_heartbeat: float = Field(default=1.0, gt=0)
    stream: str = "crm-gateway:audit"
    hmac_key_env: str = "CRM_GATEWAY_AUDIT_KEY"
    # Key rotation (docs/backup.md): retired HMAC keys (hex, comma or space separated)
    # in this variable, and retired seal public keys (PEM files), verify older chains.
    hmac_retired_keys_env: str = "CRM_GATEWAY_AUDIT_KEYS_RETIRED"
    seal_retired_public_keys: tuple[Path, ...] = ()
    # Audit before release: a response carrying a category of this level or above is
    # released only once its event is durable (fsynced spool or Redis acknowledgement),
    # else 503. null turns it off; `strict_levels` adds single levels on top.
    durable_from: str | None = "L2"
    strict_levels: tuple[str, ...] = ()
    # Emitter: bounded queue, batch size, breaker pause, durable-write deadline (seconds).
    queue_size: int = Field(default=50_000, ge=1)
    batch_size: int = Field(default=500, ge=1)
    breaker_cooldown: float = Field(default=1.0, gt=0)
    durable_timeout: float = Field(default=0.5, gt=0)
    # Below `durable_from`, events wait in memory at most this long before the flusher
    # sends them (sooner once `batch_size` are queued): the crash-loss window.
    flush_interval_ms: int = Field(default=200, ge=1, le=10_000)
    # Durable writes also wait for WAITAOF (Redis >= 7.2 with AOF); else they rely on
    # XADD (run Redis with appendfsync always) and fall back to the fsynced spool.
    durable_waitaof: bool = False
    # Approximate MAXLEN trimming of the stream; 0 = never trim (trim after archiving instead).
    stream_maxlen: int = Field(default=0, ge=0)
    # Integrity: dev HMAC key file (used only when the env var is unset outside production),
    # Ed25519 seal key (PEM; the public key is written next to it), seal cadence. Unset,
    # both are development keys generated once in the user's state directory
    # ($XDG_STATE_HOME/crm-gateway, else ~/.local/state/crm-gateway), never in a
    # checkout; production needs `seal_key_file` set to a key the security team made.
    dev_key_file: Path | None = None
    seal_key_file: Path | None = None
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


class ConsoleSettings(_Section):
    """The security team's web pages under `{prefix}/admin/ui/` (docs/console.md)."""

    # A session dies after this long unused, and at the latest this long after sign-in.
    session_idle: float = Field(default=900.0, gt=0, le=24 * 3600)  # seconds
    session_max: float = Field(default=8 * 3600.0, gt=0, le=7 * 24 * 3600)  # seconds
    cookie_name: str = "crmgw_console"
    # Secure cookies: auto = when listen.public_url is https or the request came over TLS.
    secure_cookie: Literal["auto", "always"] = "auto"
    default_language: Literal["zh", "en"] = "zh"
    # Rows of recent audit events on the live page.
    live_events: int = Field(default=50, ge=1, le=500)
    # Period of the periodic review checklist (e.g. 90d, 12w).
    review_period: str = Field(default="90d", pattern=r"^[1-9][0-9]*[dwh]$")


class AdminSettings(_Section):
    prefix: str = "/_gateway"
    # Networks allowed to call admin endpoints other than health/ready (metrics included).
    allowed_networks: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    # Roles whose members may revoke and restore subjects through the admin API.
    roles: tuple[str, ...] = ("security_admin",)
    console: ConsoleSettings = ConsoleSettings()
