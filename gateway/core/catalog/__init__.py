"""Per-CRM field catalogs: where the customer records are and what each field holds.

The taxonomy says how sensitive a *category* is; the catalog says which CRM field
belongs to which category, route by route. It is loaded once at start-up
(`Catalog.load`), validated with errors that name the key path of every problem,
and then only read: route matching is a dict lookup for fixed paths and one
pre-compiled regex per parameterised template, and field classification is
memoised per (route, key path) inside the `RouteSpec`.

The file format is documented at the top of `config/crm/demo.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from gateway.core.catalog._dispatch import (
    AmbiguousDispatch,
    check_body,
    check_cookies,
    check_query_once,
    dispatch,
    query_names,
)
from gateway.core.catalog._facts import FactsReader, RecordShape, get_path, record_facts
from gateway.core.catalog._keys import suspect_key
from gateway.core.catalog._load import build
from gateway.core.catalog._spec import (
    ENTRY_FORMATS,
    PARAM,
    EntrySpec,
    FactsSpec,
    FieldRule,
    Packed,
    RouteMatch,
    RouteSpec,
    SideRule,
)
from gateway.core.catalog._types import negotiation
from gateway.core.negotiation import DEFAULT_FORMAT_PARAMS, DEFAULT_RESPONSE_TYPES

__all__ = [
    "ENTRY_FORMATS",
    "AmbiguousDispatch",
    "Catalog",
    "EntrySpec",
    "FactsReader",
    "FactsSpec",
    "FieldRule",
    "Packed",
    "RecordShape",
    "RouteMatch",
    "RouteSpec",
    "SideRule",
    "check_body",
    "check_cookies",
    "check_query_once",
    "get_path",
    "query_names",
    "record_facts",
    "route_family",
    "suspect_key",
    "template_regex",
]


class Catalog:
    """A loaded, validated field catalog for one CRM."""

    def __init__(
        self,
        name: str,
        routes: tuple[RouteSpec, ...],
        fingerprint: str,
        rules: tuple[FieldRule, ...] = (),
        facts: FactsSpec | None = None,
        totals: frozenset[str] = frozenset(),
        side: tuple[SideRule, ...] = (),
        *,
        response_types: tuple[str, ...] = DEFAULT_RESPONSE_TYPES,
        format_params: tuple[str, ...] = DEFAULT_FORMAT_PARAMS,
    ) -> None:
        self.name = name
        self.routes = routes
        self.fingerprint = fingerprint
        self.rules = rules  # the catalog-wide field rules (every route ends with them)
        self.facts = facts or FactsSpec()
        self.totals = totals  # envelope counts hidden when records may be dropped
        self.side = side  # the catalog-wide side data rules (every route ends with them)
        self._fallback: RouteSpec | None = None
        self.response_types = response_types  # for paths no route matches
        self.format_params = format_params  # query parameters that pick a rendering
        self._static: dict[str, list[RouteSpec]] = {}
        self._dynamic: list[tuple[re.Pattern[str], RouteSpec]] = []
        for route in routes:
            if PARAM.search(route.template):
                self._dynamic.append((template_regex(route.template), route))
            else:
                self._static.setdefault(route.template, []).append(route)

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        try:
            return cls.from_dict(raw)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def from_dict(cls, raw: Any) -> Catalog:
        problems: list[str] = []
        built = build(raw, problems)
        types = negotiation(raw, problems)
        if problems or built is None:
            raise ValueError("invalid catalog: " + "; ".join(problems or ["empty"]))
        name, routes, fingerprint, rules, facts, totals, side = built
        routes = tuple(
            replace(r, response_types=own or types.response_types)
            for r, own in zip(routes, types.per_route, strict=True)
        )
        return cls(
            name,
            routes,
            fingerprint,
            rules,
            facts,
            totals,
            side,
            response_types=types.response_types,
            format_params=types.format_params,
        )

    def match(self, method: str, path: str, query: str | None = None) -> RouteMatch | None:
        """The route for an already normalised path (and its raw query string, for
        query-dispatched routes); fixed paths win over templates."""
        return match_routes(self._static, self._dynamic, method, path, path, query)

    def dispatch_params(self, path: str) -> frozenset[str]:
        """The query parameters that choose among the routes of this path (`query:`),
        whatever methods they answer: the CRM reads them from any request."""
        family = route_family(self._static, self._dynamic, None, path, path)
        return frozenset(name for m in family for name in m.route.query)

    def route(self, name: str) -> RouteSpec | None:
        return next((r for r in self.routes if r.name == name), None)

    def reveal_path(self, read_route: RouteSpec, record_id: str) -> str | None:
        """The read route's path for one record id (its one parameter filled in,
        percent-encoded as one segment), or None when the path would not match
        the same route again (an id the template cannot carry)."""
        param = PARAM.search(read_route.template)
        if param is None or not record_id:
            return None
        path = (
            read_route.template[: param.start()]
            + quote(record_id, safe="")
            + read_route.template[param.end() :]
        )
        found = self.match("GET", path)
        if found is None or found.route is not read_route:
            return None
        return path

    def any_route(self) -> RouteSpec:
        """A route for bodies whose path is unknown (explain): catalog-wide rules and
        facts, and every record prefix any route declares."""
        prefixes = dict.fromkeys(p for r in self.routes for p in r.records)
        return self._catalog_wide("(any)", tuple(prefixes))

    def fallback_route(self) -> RouteSpec:
        """The route for a response whose path the catalog does not list: catalog-wide
        field rules and record facts, no record prefixes (records are recognised by
        their facts, in any shape). One object, so the enforcer caches stay warm."""
        if self._fallback is None:
            self._fallback = self._catalog_wide(
                "(uncatalogued)", (), response_types=self.response_types
            )
        return self._fallback

    def _catalog_wide(
        self,
        name: str,
        records: tuple[str, ...],
        response_types: tuple[str, ...] = DEFAULT_RESPONSE_TYPES,
    ) -> RouteSpec:
        """A route of no path: catalog-wide field rules and record facts."""
        return RouteSpec(
            name=name,
            template="",
            methods=frozenset(),
            sensitive=True,
            records=records,
            rules=self.rules,
            facts=self.facts,
            csv_columns={},
            entry=None,
            catalog=self.name,
            wide_facts=self.facts,
            totals=self.totals,
            side=self.side,
            response_types=response_types,
        )

    def problems_with(
        self, known: set[str] | frozenset[str], levels: frozenset[str] | None = None
    ) -> list[str]:
        """Categories (and document levels, given `levels`) the catalog names that the
        taxonomy does not know (check-config)."""
        out = []
        for route in self.routes:
            if levels is not None and route.document and route.document not in levels:
                out.append(f"routes.{route.name}.document: unknown level {route.document!r}")
            for rule in route.rules:
                for category in _rule_categories(rule):
                    if category not in known:
                        out.append(f"routes.{route.name}: unknown category {category!r}")
            for column, named in route.csv_columns.items():
                cats = named.fields if isinstance(named, Packed) else (named,)
                for category in cats:
                    if category not in known:
                        out.append(
                            f"routes.{route.name}.csv.columns.{column}: "
                            f"unknown category {category!r}"
                        )
            for param, cats in route.search.items():
                for category in cats:
                    if category not in known:
                        out.append(f"routes.{route.name}.search.{param}: unknown category")
        return sorted(set(out))

    def categories(self) -> set[str]:
        """Every category the catalog names (for cross-checking with the taxonomy)."""
        out = {c for route in self.routes for r in route.rules for c in _rule_categories(r)}
        for route in self.routes:
            for named in route.csv_columns.values():
                out.update(named.fields if isinstance(named, Packed) else (named,))
        return out


def _rule_categories(rule: FieldRule) -> tuple[str, ...]:
    if rule.packed is not None:
        return rule.packed.fields
    return (rule.category,) if rule.category else ()


def match_routes(
    fixed: Mapping[str, Sequence[RouteSpec]],
    templated: Sequence[tuple[re.Pattern[str], RouteSpec]],
    method: str,
    key: str,
    path: str,
    query: str | None = None,
) -> RouteMatch | None:
    """Fixed paths (looked up by `key`) win over templates (matched against `path`);
    a route with methods answers only those. The routes of the first template that
    matches are one family; a query parameter may choose among them (`query:`,
    gateway.core.catalog._dispatch)."""
    return dispatch(route_family(fixed, templated, method, key, path), query, method)


def route_family(
    fixed: Mapping[str, Sequence[RouteSpec]],
    templated: Sequence[tuple[re.Pattern[str], RouteSpec]],
    method: str | None,
    key: str,
    path: str,
) -> list[RouteMatch]:
    """The routes of the first template matching the path, in catalog order (of any
    method when `method` is None)."""
    wanted = method.upper() if method is not None else None

    def answers(route: RouteSpec) -> bool:
        return wanted is None or not route.methods or wanted in route.methods

    family = [RouteMatch(route, route.label, {}) for route in fixed.get(key, ()) if answers(route)]
    if not family:
        for regex, route in templated:
            if not answers(route):
                continue
            if family and route.template != family[0].route.template:
                continue
            m = regex.fullmatch(path)
            if m is not None:
                family.append(RouteMatch(route, route.label, m.groupdict()))
    return family


def template_regex(template: str, flags: int = 0) -> re.Pattern[str]:
    """A route template (`/api/customers/{id}`) as a regex, one named group a parameter."""
    out, pos = [], 0
    for m in PARAM.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out), flags)
