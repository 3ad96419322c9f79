"""`check-config` and the `explain --sample` file helper (the checks: `settings.validate`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import orjson

from gateway.errors import ConfigError
from gateway.settings import Settings, load_settings
from gateway.settings.validate import validate


def check_config(path: Path) -> list[str]:
    """Return every problem in the file and in what it points to (empty = OK): the
    schema's, then `validate`'s, the same list `serve` refuses to start on."""
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return exc.problems
    return startup_problems(settings)


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


def startup_problems(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """`validate` with the readers of the stages' own files: what `check-config` prints
    and what `serve` refuses to start on."""
    from gateway.identity.directory import Directory

    problems = validate(settings, environ, directory_loader=Directory.load)
    return problems + _tls_files(settings)


def explain_sample_file(settings: Settings, crm: str | None, sample: Path, level: str) -> str:
    from gateway.core.catalog import Catalog
    from gateway.core.explain import explain_sample, format_rows
    from gateway.core.taxonomy import Taxonomy

    taxonomy = Taxonomy.load(settings.path(settings.classification.taxonomy))
    catalog = Catalog.load(Path(crm) if crm else settings.path(settings.classification.catalog))
    doc = orjson.loads(sample.read_bytes())
    return format_rows(explain_sample(taxonomy, catalog, None, doc, level))
