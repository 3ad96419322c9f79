"""Start-up validation shared by `check-config` and `serve`: every problem, with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from gateway.errors import ConfigError
from gateway.settings import Settings, load_settings


def check_config(path: Path) -> list[str]:
    """Return every problem in the file and in what it points to (empty = OK)."""
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return exc.problems
    problems: list[str] = []
    if not settings.upstream.url:
        problems.append("upstream.url: required (the CRM's base URL)")
    problems += _check_file(
        settings, "classification.taxonomy", settings.classification.taxonomy, _taxonomy
    )
    problems += _check_file(
        settings, "classification.catalog", settings.classification.catalog, _catalog
    )
    problems += _check_file(settings, "identity.directory", settings.identity.directory, _directory)
    problems += _catalog_categories(settings)
    if settings.policy.engine == "managed":
        rego = settings.path(settings.policy.rego_dir)
        if not rego.is_dir():
            problems.append(f"policy.rego_dir: {rego} is not a directory")
        problems += _opa_binary(settings)
    if settings.environment == "production" and settings.policy.report_only:
        problems.append("policy.report_only: report-only mode in production leaves data unmasked")
    problems += _tls_files(settings)
    return problems


def _tls_files(settings: Settings) -> list[str]:
    """Every certificate, key and CA the TLS settings name exists and loads."""
    from urllib.parse import parse_qs, urlsplit

    from gateway.tls import client_context, server_context

    named: list[tuple[str, Path | None]] = [
        (f"{section}.{field}", getattr(tls, field))
        for section, tls in (
            ("listen.tls", settings.listen.tls),
            ("upstream.tls", settings.upstream.tls),
            ("policy.tls", settings.policy.tls),
        )
        for field in ("cert", "key", "ca" if section != "listen.tls" else "client_ca")
    ]
    if settings.identity.mtls.forwarded_ca is not None:
        named.append(("identity.mtls.forwarded_ca", settings.identity.mtls.forwarded_ca))
    query = parse_qs(urlsplit(settings.redis.url).query)
    for param in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        named += [(f"redis.url ({param})", Path(v)) for v in query.get(param, [])]
    missing = [
        f"{key}: {settings.path(p)} does not exist"
        for key, p in named
        if p is not None and not settings.path(p).is_file()
    ]
    if missing:
        return missing
    problems: list[str] = []
    try:
        if settings.listen.tls.enabled:
            server_context(settings.listen.tls, settings.path)
        client_context(settings.upstream.tls, settings.path, "upstream.tls")
        client_context(settings.policy.tls, settings.path, "policy.tls")
    except ConfigError as exc:
        problems.append(exc.message)
    return problems


def _catalog_categories(settings: Settings) -> list[str]:
    """Catalog rules naming categories the taxonomy does not define (typos)."""
    from gateway.core.catalog import Catalog
    from gateway.core.taxonomy import Taxonomy

    try:
        taxonomy = Taxonomy.load(settings.path(settings.classification.taxonomy))
        catalog = Catalog.load(settings.path(settings.classification.catalog))
    except (ValueError, OSError):
        return []  # already reported by the file checks
    return [
        f"classification.catalog: {problem}"
        for problem in catalog.problems_with(set(taxonomy.categories))
    ]


def _opa_binary(settings: Settings) -> list[str]:
    """The same search the gateway makes at start-up (configured, PATH, .tools/bin)."""
    from gateway.policy.supervisor import find_opa_binary

    try:
        find_opa_binary(settings)
    except ConfigError as exc:
        msg = str(exc)
        return [msg if msg.startswith("policy.") else f"policy.opa_binary: {msg}"]
    return []


def _check_file(settings: Settings, key: str, rel: Path, loader: Any) -> list[str]:
    path = settings.path(rel)
    if not path.exists():
        return [f"{key}: {path} does not exist"]
    try:
        loader(path)
    except (ValueError, ConfigError, OSError) as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
        return [f"{key}: {path}: {line}" for line in lines]
    return []


def _taxonomy(path: Path) -> None:
    from gateway.core.taxonomy import Taxonomy

    Taxonomy.load(path)


def _catalog(path: Path) -> None:
    from gateway.core.catalog import Catalog

    Catalog.load(path)


def _directory(path: Path) -> None:
    from gateway.identity.directory import Directory

    Directory.load(path)


def explain_sample_file(settings: Settings, crm: str | None, sample: Path, level: str) -> str:
    from gateway.core.catalog import Catalog
    from gateway.core.explain import explain_sample, format_rows
    from gateway.core.taxonomy import Taxonomy

    taxonomy = Taxonomy.load(settings.path(settings.classification.taxonomy))
    catalog = Catalog.load(Path(crm) if crm else settings.path(settings.classification.catalog))
    doc = orjson.loads(sample.read_bytes())
    return format_rows(explain_sample(taxonomy, catalog, None, doc, level))
