"""Route rules from `routes:` in gateway.yaml and the catalog route, matched on the
normalised path so that no spelling of a sensitive path escapes its rule.

A request matches the first rule whose glob and methods fit. With no match the
default rule applies: sensitive (responses are classified and masked), not
public (a caller must authenticate), no WebSocket. Being strict by default is
the point: a route the security team forgot is masked, not leaked.

The CRM behind may read a path more loosely than the gateway (IIS and old Java
front ends ignore case and strip `;jsessionid=`), so matching is lopsided:

- a rule that relaxes anything (public, not sensitive, report-only, WebSocket)
  applies only to the spelling as written: its glob must match the path both
  with and without path parameters, case-sensitively, and the path must not be
  a case variant of a sensitive catalog route;
- strict rules and catalog routes match every spelling the CRM could route the
  same way: any case, path parameters stripped (`guard.matrix_params: strip`;
  by default a path with parameters is refused with 400 `bad_path`);
- when allow-listed rewrite headers (`X-Original-URL`, ...) are forwarded, the
  path they name is routed too and the stricter outcome wins; the catalog route
  is the one of the path the CRM will serve.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import translate
from typing import Literal

from gateway.core import headers as h
from gateway.core.catalog import (
    Catalog,
    RouteMatch,
    RouteSpec,
    match_routes,
    route_family,
    template_regex,
)
from gateway.core.catalog._spec import PARAM
from gateway.core.paths import PathRejected, has_matrix, normalize_path, strip_matrix
from gateway.settings import RouteSettings

DEFAULT_RULE = RouteSettings(path="*")
_MEMO = 4096
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: RouteSettings
    exact: re.Pattern[str]  # case as written
    folded: re.Pattern[str]  # any case
    methods: frozenset[str]
    relaxed: bool


def _relaxes(rule: RouteSettings) -> bool:
    return rule.public or not rule.sensitive or rule.report_only or rule.websocket


class RouteTable:
    def __init__(
        self,
        rules: Sequence[RouteSettings],
        *,
        catalog: Catalog | None = None,
        matrix_params: Literal["reject", "strip"] = "reject",
        case_insensitive: bool = False,
        rewrite_allow: Iterable[str] = (),
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self._rules = tuple(
            _Compiled(
                r,
                re.compile(translate(r.path)),
                re.compile(translate(r.path), re.IGNORECASE),
                frozenset(m.upper() for m in r.methods),
                _relaxes(r),
            )
            for r in rules
        )
        self._catalog = catalog
        self._folded = _FoldedCatalog(catalog.routes if catalog else ())
        self._strip_matrix = matrix_params == "strip"
        self._case_insensitive = case_insensitive
        self._rewrite_allow = frozenset(n.lower() for n in rewrite_allow)
        self._trusted = tuple(trusted_proxies)
        # (method, path[, query]) -> answer: the table is immutable and the same few
        # paths come on every request; bounded, since paths come from clients
        self._rule_memo: dict[tuple[str, str], RouteSettings] = {}
        self._route_memo: dict[tuple[str, str, str | None], RouteMatch | None] = {}
        self._dispatch_memo: dict[str, frozenset[str]] = {}

    def match(self, method: str, path: str) -> RouteSettings:
        """The rule for a canonical path (see the module doc for the lopsided matching)."""
        memo = (method, path)
        found = self._rule_memo.get(memo)
        if found is None:
            found = self._match(method, path)
            if len(self._rule_memo) < _MEMO:
                self._rule_memo[memo] = found
        return found

    def _match(self, method: str, path: str) -> RouteSettings:
        key = self._key(path)
        exact = path == key
        ci_route = self._folded.match(method, key)
        case_variant = False
        if ci_route is not None and ci_route.route.sensitive and self._catalog is not None:
            exact_route = self._catalog.match(method, key)
            case_variant = exact_route is None or exact_route.route.name != ci_route.route.name
        for c in self._rules:
            if c.methods and method not in c.methods:
                continue
            if c.relaxed:
                if not case_variant and c.exact.match(path) and (exact or c.exact.match(key)):
                    return c.rule
            elif c.folded.match(path) or c.folded.match(key):
                return c.rule
        return DEFAULT_RULE

    def crm_route(self, method: str, path: str, query: str | None = None) -> RouteMatch | None:
        """The catalog route for a canonical path, in any case and without parameters
        (the raw query string chooses among query-dispatched routes)."""
        if self._catalog is None:
            return None
        memo = (method, path, query)
        try:
            return self._route_memo[memo]
        except KeyError:
            pass
        key = self._key(path)
        found = self._catalog.match(method, key, query) or self._folded.match(method, key, query)
        if len(self._route_memo) < _MEMO:
            self._route_memo[memo] = found
        return found

    def dispatch_params(self, path: str) -> frozenset[str]:
        """The query parameters that choose among the catalog routes of this path."""
        if self._catalog is None:
            return frozenset()
        found = self._dispatch_memo.get(path)
        if found is None:
            key = self._key(path)
            found = self._catalog.dispatch_params(key) | self._folded.dispatch_params(key)
            if len(self._dispatch_memo) < _MEMO:
                self._dispatch_memo[path] = found
        return found

    def resolve(
        self,
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]] = (),
        peer_ip: str = "",
        query: str | None = None,
    ) -> tuple[RouteSettings, RouteMatch | None]:
        """Rule and catalog route, also for the paths forwarded rewrite headers name."""
        rule, crm_route = self.match(method, path), self.crm_route(method, path, query)
        if not self._rewrite_allow:
            return rule, crm_route
        trusted = h.is_trusted(peer_ip, self._trusted)
        for raw in h.rewrite_targets(headers, path, self._rewrite_allow, trusted):
            try:
                alt = normalize_path(raw, case_insensitive=self._case_insensitive)
            except PathRejected as exc:
                raise PathRejected(f"rewrite header: {exc.message}") from exc
            alt_rule = self.match(method, alt)
            if alt_rule != rule:
                rule = DEFAULT_RULE
            crm_route = self.crm_route(method, alt, query) or crm_route
        return rule, crm_route

    def _key(self, path: str) -> str:
        if not has_matrix(path):
            return path
        if not self._strip_matrix:
            raise PathRejected(
                "path parameters (;name=value) are refused (guard.matrix_params: reject)"
            )
        return strip_matrix(path)


class _FoldedCatalog:
    """The catalog's routes matched in any case and either side of a trailing slash
    (fixed paths first, like the catalog)."""

    def __init__(self, routes: Iterable[RouteSpec]) -> None:
        self._static: dict[str, list[RouteSpec]] = {}
        self._dynamic: list[tuple[re.Pattern[str], RouteSpec]] = []
        for route in routes:
            if PARAM.search(route.template):
                self._dynamic.append((template_regex(route.template, re.IGNORECASE), route))
            else:
                self._static.setdefault(route.template.lower(), []).append(route)

    def match(self, method: str, path: str, query: str | None = None) -> RouteMatch | None:
        """In any case, and with the trailing slash added or removed when the spelling
        given matches nothing (a lenient CRM serves `/customers/1/` as `/customers/1`)."""
        found = self._match(method, path, query)
        if found is None and len(path) > 1:
            alt = path[:-1] if path.endswith("/") else path + "/"
            found = self._match(method, alt, query)
        return found

    def dispatch_params(self, path: str) -> frozenset[str]:
        family = route_family(self._static, self._dynamic, None, path.lower(), path)
        return frozenset(name for m in family for name in m.route.query)

    def _match(self, method: str, path: str, query: str | None) -> RouteMatch | None:
        return match_routes(self._static, self._dynamic, method, path.lower(), path, query)
