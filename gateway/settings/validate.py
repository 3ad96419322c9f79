"""The one start-up validation: `crm-gateway check-config` prints what it finds and
`serve` refuses to start on the same list, so a file that passes the one is accepted
by the other.

`validate(settings)` looks past the schema (which `load_settings` has already
enforced) at what the settings point to: the files they name, the OPA binary, and
the keys the environment must hold. Every problem is returned at once, each with the
dotted path of the setting it concerns; an empty list means the gateway can start.
Production is strict: keys that development generates or derives must be given, and
report-only mode (nothing enforced) is an error, not a warning.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from gateway.errors import ConfigError
from gateway.settings import REPO_ROOT, Settings
from gateway.settings.identity import OIDC_OVERRIDABLE

__all__ = ["Loader", "find_opa_binary", "validate"]

_MIN_KEY_BYTES = 32


Loader = Callable[[Path], object]


def validate(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    directory_loader: Loader | None = None,
) -> list[str]:
    """Every problem that would stop the gateway from starting (empty: none).

    The directory's format belongs to `gateway.identity`, a layer above settings: its
    reader is handed in (`gateway.checks.startup_problems` does, for both commands);
    without one only the file's presence is checked."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    if not settings.upstream.url:
        problems.append("upstream.url: required (the CRM's base URL)")
    problems += _files(settings, directory_loader or _exists)
    problems += _policy(settings)
    problems += _keys(settings, env)
    problems += _identity(settings, env)
    problems += _audit_sinks(settings, env)
    return problems


def find_opa_binary(settings: Settings) -> str:
    """settings.policy.opa_binary, else `opa` on PATH, else <repo>/.tools/bin/opa."""
    configured = settings.policy.opa_binary
    if configured:
        path = shutil.which(configured) or shutil.which(str(settings.path(Path(configured))))
        if path is None:
            raise ConfigError(f"policy.opa_binary: {configured!r} is not an executable file")
        return path
    found = shutil.which("opa")
    if found:
        return found
    for root in (settings.base_dir, REPO_ROOT):
        local = root / ".tools" / "bin" / "opa"
        if shutil.which(str(local)):
            return str(local)
    raise ConfigError(
        "policy.engine is 'managed' but no OPA binary was found "
        "(set policy.opa_binary, put `opa` on PATH, or run `make tools`)"
    )


def _exists(path: Path) -> None:
    """No reader: presence only (`_check_file` has already seen the file exists)."""


def _files(settings: Settings, directory_loader: Loader) -> list[str]:
    from gateway.core.catalog import Catalog
    from gateway.core.taxonomy import Taxonomy

    c = settings.classification
    problems = _check_file(settings, "classification.taxonomy", c.taxonomy, Taxonomy.load)
    problems += _check_file(settings, "classification.catalog", c.catalog, Catalog.load)
    if settings.identity.directory_source == "file":
        problems += _check_file(
            settings, "identity.directory", settings.identity.directory, directory_loader
        )
    if problems:
        return problems  # the cross-file check needs both files readable
    taxonomy = Taxonomy.load(settings.path(c.taxonomy))
    catalog = Catalog.load(settings.path(c.catalog))
    return [  # catalog rules naming categories the taxonomy does not define (typos)
        f"classification.catalog: {problem}"
        for problem in catalog.problems_with(
            set(taxonomy.categories), frozenset(lv.code for lv in taxonomy.levels)
        )
    ]


def _check_file(settings: Settings, key: str, rel: Path, loader: Loader) -> list[str]:
    path = settings.path(rel)
    if not path.exists():
        return [f"{key}: {path} does not exist"]
    try:
        loader(path)
    except ConfigError as exc:
        return [f"{key}: {path}: {line}" for line in exc.problems]
    except (ValueError, OSError) as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
        return [f"{key}: {path}: {line}" for line in lines]
    return []


def _policy(settings: Settings) -> list[str]:
    problems: list[str] = []
    p = settings.policy
    if p.engine == "managed":
        rego = settings.path(p.rego_dir)
        if p.opa_config_file is not None:
            config = settings.path(p.opa_config_file)
            if not config.is_file():
                problems.append(f"policy.opa_config_file: {config} does not exist")
        elif not rego.is_dir():
            problems.append(f"policy.rego_dir: {rego} is not a directory")
        try:
            find_opa_binary(settings)
        except ConfigError as exc:
            msg = exc.message
            problems.append(msg if msg.startswith("policy.") else f"policy.opa_binary: {msg}")
    if settings.environment == "production" and p.report_only:
        problems.append("policy.report_only: report-only mode in production leaves data unmasked")
    return problems


def _keys(settings: Settings, env: Mapping[str, str]) -> list[str]:
    production = settings.environment == "production"
    a = settings.audit
    problems = _hex_key(env, a.hmac_key_env, "audit.hmac_key_env", "the audit HMAC key")
    if production and not env.get(a.hmac_key_env):
        problems.append(
            f"audit.hmac_key_env: {a.hmac_key_env} is not set: production needs the audit HMAC key"
        )
    seal = settings.seal_key_path()
    if seal is None:
        problems.append("audit.seal_key_file: not set: production needs an Ed25519 seal key "
                        "(it does not generate one)")  # fmt: skip
    elif production and not seal.exists():
        problems.append(f"audit.seal_key_file: {seal} does not exist (production does not "
                        "generate one)")  # fmt: skip
    elif seal.exists():
        problems += _seal_key(seal)
    problems += _retired(settings, env)
    pseudonym = settings.classification.pseudonym_key_env
    if production and not env.get(pseudonym):
        problems.append(
            f"classification.pseudonym_key_env: {pseudonym} must be set in production "
            "(pseudonymisation key)"
        )
    problems += _hex_key(env, settings.reveal.key_env, "reveal.key_env", "the reveal handle key")
    return problems


def _retired(settings: Settings, env: Mapping[str, str]) -> list[str]:
    """The keys a rotation retired (verification only): hex HMAC keys, seal public keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    name = settings.audit.hmac_retired_keys_env
    items = env.get(name, "").replace(",", " ").split()
    problems = [
        line
        for n, item in enumerate(items, 1)
        for line in _hex_key({name: item}, name, "audit.hmac_retired_keys_env",
                             f"retired HMAC key {n}")
    ]  # fmt: skip
    for rel in settings.audit.seal_retired_public_keys:
        path = settings.path(rel)
        try:
            loaded = serialization.load_pem_public_key(path.read_bytes())
        except (ValueError, OSError):
            loaded = None
        if not isinstance(loaded, Ed25519PublicKey):
            problems.append(f"audit.seal_retired_public_keys: {path} is not a readable "
                            "Ed25519 public key (PEM)")  # fmt: skip
    return problems


def _hex_key(env: Mapping[str, str], name: str, key: str, what: str) -> list[str]:
    raw = env.get(name, "")
    if not raw:
        return []
    try:
        value = bytes.fromhex(raw.strip())
    except ValueError:
        return [f"{key}: {name}: {what} must be hex"]
    if len(value) < _MIN_KEY_BYTES:
        return [f"{key}: {name}: {what} must be at least {_MIN_KEY_BYTES} bytes (64 hex)"]
    return []


def _seal_key(path: Path) -> list[str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError):
        loaded = None
    if not isinstance(loaded, Ed25519PrivateKey):
        return [f"audit.seal_key_file: {path} is not an Ed25519 private key (PEM)"]
    return []


def _identity(settings: Settings, env: Mapping[str, str]) -> list[str]:
    ident = settings.identity
    problems: list[str] = []
    if ident.directory_source == "redis" and not settings.redis.url:
        problems.append("identity.directory_source: redis, but redis.url is empty")
    if "crm_jwt" in ident.authenticators:
        name = ident.crm_jwt.secret_env
        if len(env.get(name, "").encode()) < _MIN_KEY_BYTES:  # RFC 7518 3.2
            problems.append(
                f"identity.crm_jwt.secret_env: crm_jwt is enabled but {name} is unset or "
                f"shorter than {_MIN_KEY_BYTES} bytes"
            )
    if "oidc" in ident.authenticators:
        bad = [f for f in ident.oidc.claim_overrides if f not in OIDC_OVERRIDABLE]
        if bad:
            problems.append(
                f"identity.oidc.claim_overrides: cannot override {bad}; only "
                f"{list(OIDC_OVERRIDABLE)}"
            )
    if "crm_introspection" in ident.authenticators and not (
        ident.crm_introspection.url or settings.upstream.url
    ):
        problems.append(
            "identity.crm_introspection.url: needed (or upstream.url) for crm_introspection"
        )
    return problems


def _audit_sinks(settings: Settings, env: Mapping[str, str]) -> list[str]:
    a = settings.audit
    problems: list[str] = []
    if "hec" in a.sinks and not (a.hec_url and env.get(a.hec_token_env)):
        problems.append(f"audit.sinks: the hec sink needs audit.hec_url and {a.hec_token_env}")
    if "redis" in a.sinks and not settings.redis.url:
        problems.append("audit.sinks: the redis sink needs redis.url")
    return problems
