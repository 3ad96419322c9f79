"""`crm-gateway catalog draft|coverage`: getting a catalog complete and keeping it so
(registered by cli.py).

crm-gateway catalog draft --openapi schema.{json,yaml} [--taxonomy FILE] [--name NAME]
                          [--from-observed [--config FILE]]
crm-gateway catalog coverage [--config FILE] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from gateway.settings import REPO_ROOT, Settings

Loader = Callable[[str | None], Settings]


def _read_structured(path: Path) -> Any:
    import yaml

    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return orjson.loads(text)
    return yaml.safe_load(text)


def cmd_catalog_draft(args: argparse.Namespace, load: Loader) -> int:
    from gateway.core.catalog.draft import DraftError, NameHints, draft_from_openapi
    from gateway.core.catalog.draft_yaml import render
    from gateway.core.taxonomy import Taxonomy

    tax_path = Path(args.taxonomy) if args.taxonomy else REPO_ROOT / "config" / "taxonomy.yaml"
    try:
        raw_tax = _read_structured(tax_path)
        taxonomy = Taxonomy.from_dict(raw_tax)
        hints = NameHints.from_taxonomy_dict(raw_tax, taxonomy)
        doc = _read_structured(Path(args.openapi))
        if not isinstance(doc, dict):
            raise DraftError(f"{args.openapi}: not a JSON/YAML mapping")
        draft = draft_from_openapi(doc, hints, taxonomy, name=args.name or "")
        if args.from_observed:
            from gateway.core.catalog.draft import merge_observed

            merge_observed(draft, asyncio.run(_observed(load(args.config))))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(draft))
    return 0


async def _observed(settings: Settings) -> Any:
    from gateway.state.observations import open_store

    async with open_store(settings) as store:
        return await store.snapshot()


def cmd_catalog_coverage(args: argparse.Namespace, load: Loader) -> int:
    from gateway.core.catalog import Catalog
    from gateway.core.observe import coverage

    settings = load(args.config)

    catalog = Catalog.load(settings.path(settings.classification.catalog))
    report = coverage(catalog, asyncio.run(_observed(settings)))
    if args.json:
        print(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(report.text())
    return 0


def add_catalog_commands(sub: Any, load: Loader) -> None:
    c = sub.add_parser(
        "catalog", help="draft a catalog from OpenAPI; report what traffic shows it lacks"
    )
    csub = c.add_subparsers(dest="catalog_cmd", required=True)
    d = csub.add_parser("draft", help="print a draft catalog (YAML, commented) for a reviewer")
    d.add_argument("--openapi", required=True, help="the CRM's OpenAPI 3 schema (.json or .yaml)")
    d.add_argument("--taxonomy", help="taxonomy with field_names (default config/taxonomy.yaml)")
    d.add_argument("--name", help="the catalog's name (default: the schema's title)")
    d.add_argument(
        "--from-observed",
        action="store_true",
        help="merge what observe mode recorded (routes, detector hits) into the draft",
    )
    d.add_argument("--config", help="gateway settings naming the observation store")
    d.set_defaults(func=lambda a: cmd_catalog_draft(a, load))
    v = csub.add_parser(
        "coverage",
        help="routes seen but not catalogued, fields with detector hits the catalog does not "
        "name, catalog entries never seen",
    )
    v.add_argument("--config", help="gateway configuration (default: config/gateway.yaml)")
    v.add_argument("--json", action="store_true", help="machine-readable report")
    v.set_defaults(func=lambda a: cmd_catalog_coverage(a, load))
