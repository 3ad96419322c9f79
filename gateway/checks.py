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


def startup_problems(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """`validate` with the readers of the stages' own files: what `check-config` prints
    and what `serve` refuses to start on."""
    from gateway.identity.directory import Directory

    return validate(settings, environ, directory_loader=Directory.load)


def explain_sample_file(settings: Settings, crm: str | None, sample: Path, level: str) -> str:
    from gateway.core.catalog import Catalog
    from gateway.core.explain import explain_sample, format_rows
    from gateway.core.taxonomy import Taxonomy

    taxonomy = Taxonomy.load(settings.path(settings.classification.taxonomy))
    catalog = Catalog.load(Path(crm) if crm else settings.path(settings.classification.catalog))
    doc = orjson.loads(sample.read_bytes())
    return format_rows(explain_sample(taxonomy, catalog, None, doc, level))
