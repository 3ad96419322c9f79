"""Learning the catalog from traffic: what one response showed, and what the
catalog lacks (`crm-gateway catalog coverage`, `GET /_gateway/admin/catalog/coverage`).

In observe mode the enforcer hands every record and envelope value it is given
(the CRM's original, before any rewriting) to an `Observer`, which keeps, per
field path, the value *shapes* (`digits:11`, `cjk:2-4`, `str:9-32` ...), the
categories the detectors find there and whether the catalog names the path.
Values never leave the observer: a shape is a type, a character class and a
length band, and the detectors' hits are kept as category names only.

Paths are ijson-style from the document root (`results.item.phone`), CSV columns
`csv.<header>`, form fields `form.<name>`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.core.catalog import Catalog, RouteSpec
from gateway.core.detectors import classify_value, detect

MAX_LEAVES = 5000  # per response: a huge export is sampled, not walked whole
_MAX_TEXT = 4096  # longer strings are scanned in their first 4 KiB only
_CJK = re.compile(r"^[\u3400-\u9fff\u00b7]+$")
_DIGITS = re.compile(r"^\+?\d+$")
_BANDS = ((8, "1-8"), (32, "9-32"), (256, "33-256"))


def shape(value: Any) -> str:
    """A value's shape: type, character class, length band. Never the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    text = str(value)
    if not text:
        return "str:empty"
    if _DIGITS.match(text):
        return f"digits:{len(text)}"
    if _CJK.match(text):
        return "cjk:1" if len(text) == 1 else "cjk:2-4" if len(text) <= 4 else "cjk:5+"
    band = next((b for limit, b in _BANDS if len(text) <= limit), "257+")
    return f"{'text' if ' ' in text or not text.isascii() else 'str'}:{band}"


@dataclass(slots=True)
class PathStats:
    n: int = 0
    shapes: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    named: bool = False


class Observer:
    """What one response showed on one route (filled by the enforcer, read once)."""

    def __init__(
        self, template: str, route: RouteSpec | None, *, max_leaves: int = MAX_LEAVES
    ) -> None:
        self.template = template
        self.route = route
        self.catalogued = route is not None
        self.paths: dict[str, PathStats] = {}
        self._left = max_leaves
        self.truncated = False

    def document(self, prefix: str, doc: Any) -> None:
        """A whole document or subtree at `prefix` (records found inside by path)."""
        self._walk(doc, prefix, prefix, None)

    def record(self, prefix: str, record: Mapping[str, Any]) -> None:
        self._walk(record, prefix, "", prefix)

    def value(self, path: tuple[str | int, ...], value: Any) -> None:
        dotted = ".".join(p if isinstance(p, str) else "item" for p in path)
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        self._leaf(dotted, key, dotted, value)

    def row(self, header: list[str], row: list[str]) -> None:
        declared = self.route.csv_columns if self.route else {}
        for name, cell in zip(header, row, strict=False):
            stats = self._leaf(f"csv.{name}", name, name, cell)
            if stats is not None and name in declared:
                stats.named = True

    def fields(self, pairs: Mapping[str, str]) -> None:
        for name, value in pairs.items():
            self._leaf(f"form.{name}", name, name, value)

    def _walk(self, node: Any, full: str, inner: str, record_at: str | None) -> None:
        records = self.route.records if self.route else ()
        if record_at is None and full in records and isinstance(node, Mapping):
            record_at, inner = full, ""
        if isinstance(node, Mapping):
            for k, v in node.items():
                key = str(k)
                child_inner = f"{inner}.{key}" if inner else key
                child_full = f"{full}.{key}" if full else key
                if isinstance(v, Mapping | list):
                    self._walk(v, child_full, child_inner, record_at)
                else:
                    self._leaf(child_full, key, child_inner, v)
        elif isinstance(node, list):
            for v in node:
                self._walk(
                    v,
                    f"{full}.item" if full else "item",
                    f"{inner}.item" if inner else "item",
                    record_at,
                )

    def _leaf(self, full: str, key: str, inner: str, value: Any) -> PathStats | None:
        if self._left <= 0:
            self.truncated = True
            return None
        self._left -= 1
        stats = self.paths.get(full)
        if stats is None:
            stats = self.paths[full] = PathStats(named=self._named(key, inner, full))
        stats.n += 1
        stats.shapes[shape(value)] += 1
        if isinstance(value, str) and value:
            text = value[:_MAX_TEXT]
            hit = classify_value(text, key)
            cats = {hit.category} if hit is not None else {h.category for h in detect(text)}
            for cat in cats:
                stats.hits[cat] += 1
        return stats

    def _named(self, key: str, inner: str, full: str) -> bool:
        route = self.route
        if route is None:
            return False
        if route.rule_for(key, inner) is not None:
            return True
        return any(rule.matches(full) or full.startswith(rule.path + ".") for rule in route.side)

    def to_dict(self) -> dict[str, Any]:
        """Counts and categories only (what the store keeps)."""
        return {
            "template": self.template,
            "catalogued": self.catalogued,
            "truncated": self.truncated,
            "paths": {
                p: {"n": s.n, "shapes": dict(s.shapes), "hits": dict(s.hits), "named": s.named}
                for p, s in self.paths.items()
            },
        }


@dataclass(slots=True)
class Coverage:
    """What traffic shows the catalog lacks, and what it names that traffic never showed."""

    uncatalogued_routes: list[dict[str, Any]]
    unnamed_fields: list[dict[str, Any]]
    unseen_routes: list[dict[str, Any]]
    unseen_fields: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "uncatalogued_routes": self.uncatalogued_routes,
            "unnamed_fields": self.unnamed_fields,
            "unseen_routes": self.unseen_routes,
            "unseen_fields": self.unseen_fields,
        }

    def text(self) -> str:
        lines = [f"routes seen but not in the catalog: {len(self.uncatalogued_routes)}"]
        lines += [
            f"  {r['template']}  ({r['requests']} requests)" for r in self.uncatalogued_routes
        ]
        lines.append(
            f"fields with detector hits the catalog does not name: {len(self.unnamed_fields)}"
        )
        for f in self.unnamed_fields:
            hits = ", ".join(f"{c} x{n}" for c, n in f["hits"].items())
            lines.append(f"  {f['template']}  {f['path']}  {hits}  ({f['requests']} requests)")
        lines.append(f"catalog routes never seen: {len(self.unseen_routes)}")
        lines += [f"  {r['name']}  {r['template']}" for r in self.unseen_routes]
        lines.append(f"catalog-wide field rules never seen: {len(self.unseen_fields)}")
        lines += [f"  {f['rule']}" for f in self.unseen_fields]
        return "\n".join(lines)


def coverage(catalog: Catalog, observed: Mapping[str, Mapping[str, Any]]) -> Coverage:
    """`observed`: template -> {requests, catalogued, paths: {path: {n, hits, named, ...}}}
    as the observation store's snapshot returns it."""
    uncatalogued, unnamed = [], []
    for template, obs in sorted(observed.items()):
        requests = int(obs.get("requests", 0))
        if not obs.get("catalogued"):
            uncatalogued.append({"template": template, "requests": requests})
        for path, stats in sorted((obs.get("paths") or {}).items()):
            hits = {c: int(n) for c, n in (stats.get("hits") or {}).items() if int(n)}
            if hits and not stats.get("named"):
                unnamed.append(
                    {"template": template, "path": path, "hits": hits, "requests": requests}
                )
    seen_templates = set(observed)
    unseen = [
        {"name": r.name, "template": r.label}
        for r in catalog.routes
        if r.label not in seen_templates and r.sensitive
    ]
    keys = {_last_key(p) for obs in observed.values() for p in (obs.get("paths") or {})}
    unseen_fields = [
        {
            "rule": f"key: {rule.value}",
            "category": rule.category
            or ("text" if rule.text else "packed" if rule.packed else "walk"),
        }
        for rule in catalog.fallback_route().rules
        if rule.kind == "key" and rule.value not in keys
    ]
    return Coverage(uncatalogued, unnamed, unseen, unseen_fields)


def _last_key(path: str) -> str:
    parts = [p for p in path.split(".") if p != "item"]
    return parts[-1] if parts else ""


def unnamed_hits(observed: Mapping[str, Mapping[str, Any]]) -> Iterable[tuple[str, str, str]]:
    """(template, path, the category most often detected) of every unnamed path with hits."""
    for template, obs in observed.items():
        for path, stats in (obs.get("paths") or {}).items():
            hits = Counter({c: int(n) for c, n in (stats.get("hits") or {}).items()})
            if hits and not stats.get("named"):
                yield template, path, hits.most_common(1)[0][0]
