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
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError, model_validator

from gateway.errors import ConfigError
from gateway.settings.access import AccessSettings, RevealSettings
from gateway.settings.base import Section as _Section
from gateway.settings.guard import (
    GuardSettings,
    MonitorSettings,
    NetworkRuleSettings,
    RateLimitRuleSettings,
    WorkingHoursSettings,
)
from gateway.settings.identity import (
    CrmIntrospectionSettings,
    CrmJwtSettings,
    IdentitySettings,
    MtlsSettings,
    OidcSettings,
    TrustedHeaderSettings,
)
from gateway.settings.proxy import (
    ClientTlsSettings,
    ForwardedSettings,
    LimitSettings,
    ListenSettings,
    ListenTlsSettings,
    RouteSettings,
    UpstreamSettings,
)
from gateway.settings.stages import (
    AdminSettings,
    AuditSettings,
    ClassificationSettings,
    LoggingSettings,
    PolicySettings,
    RedisSettings,
)

__all__ = [
    "REPO_ROOT",
    "AccessSettings",
    "AdminSettings",
    "AuditSettings",
    "ClassificationSettings",
    "ClientTlsSettings",
    "CrmIntrospectionSettings",
    "CrmJwtSettings",
    "ForwardedSettings",
    "GuardSettings",
    "IdentitySettings",
    "LimitSettings",
    "ListenSettings",
    "ListenTlsSettings",
    "LoggingSettings",
    "MonitorSettings",
    "MtlsSettings",
    "NetworkRuleSettings",
    "OidcSettings",
    "PolicySettings",
    "RateLimitRuleSettings",
    "RedisSettings",
    "RevealSettings",
    "RouteSettings",
    "Settings",
    "TrustedHeaderSettings",
    "UpstreamSettings",
    "WorkingHoursSettings",
    "format_problems",
    "load_settings",
]

ENV_PREFIX = "CRM_GATEWAY__"
REPO_ROOT = Path(__file__).resolve().parents[2]


def dev_state_dir() -> Path:
    """Where development keys are generated: the user's state directory
    ($XDG_STATE_HOME, else ~/.local/state) under crm-gateway/, outside any checkout."""
    root = os.environ.get("XDG_STATE_HOME")
    if not root:
        try:
            root = str(Path.home() / ".local" / "state")
        except RuntimeError:  # no home directory (a service account without one)
            root = tempfile.gettempdir()
    return Path(root) / "crm-gateway"


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
    access: AccessSettings = AccessSettings()
    reveal: RevealSettings = RevealSettings()
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
        if self.environment == "production" and self.identity.directory_mfa:
            raise ValueError(
                "identity.directory_mfa: the directory's mfa flags prove no second factor; "
                "not allowed in production"
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

    def dev_key_path(self) -> Path:
        """The development HMAC key file (`audit.dev_key_file`, else the state directory)."""
        configured = self.audit.dev_key_file
        return self.path(configured) if configured else dev_state_dir() / "dev-hmac.key"

    def seal_key_path(self) -> Path | None:
        """The seal key file: `audit.seal_key_file`; unset, a development key in the
        state directory, and None in production (which never generates one)."""
        configured = self.audit.seal_key_file
        if configured:
            return self.path(configured)
        return None if self.environment == "production" else dev_state_dir() / "seal-ed25519.pem"

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
