"""Record rules before a write: may this caller see the record it changes?

A caller the record rules hide a record from (grade B without a grant, a 流失
customer for sales, a partner's unassigned customer) must not PATCH, PUT or
DELETE it blind. `gateway/visibility.py` fetches the record through the
catalog's read route for the same path; this module finds the record in that
body and applies the decision's record rules to its facts, the same rules the
enforcer applies to a read. Anything unreadable is a refusal (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from gateway.core.catalog import Catalog, FactsReader, RouteMatch
from gateway.core.catalog._spec import PARAM
from gateway.core.model import Decision, RecordFacts, RecordVerb
from gateway.core.paths import PathRejected, normalize_path

__all__ = [
    "TooManyNamed",
    "Verdict",
    "dispatched_read",
    "named_record",
    "named_records",
    "names_record",
    "needs_check",
    "read_route",
    "record_verdict",
    "response_route",
    "targets",
]
MAX_NAMED = 100  # records one write may name (each is read before the write)
_MAX_DEPTH = 6  # how deep a body is searched for record paths


@dataclass(frozen=True, slots=True)
class Verdict:
    visible: bool
    reason: str = ""
    record_id: str | None = None


def read_route(catalog: Catalog, path: str) -> RouteMatch | None:
    """The catalog's read route for `path` (GET, same template) when it names records."""
    found = catalog.match("GET", path)
    return found if found is not None and found.route.records else None


def needs_check(method: str, path: str, catalog: Catalog, write: RouteMatch | None) -> bool:
    """Writes and deletes on a record route (a template with a parameter), POST
    included (a comment added to a contact); a collection (POST create) is not one."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    found = catalog.match("GET", path) or write
    return found is not None and PARAM.search(found.template) is not None


def dispatched_read(
    catalog: Catalog, path: str, query: str, write: RouteMatch
) -> tuple[str, RouteMatch] | None:
    """For a write on a query-dispatched page with `reads:`, the GET request that
    reads its record (`?method=update&id=C1` -> `?method=detail&id=C1`: the read
    page's dispatch values, the write's other parameters) and the route it matches;
    None when that request would not reach the read page."""
    target = catalog.route(write.route.reads) if write.route.reads else None
    if target is None:
        return None
    own = set(write.route.query) | set(target.query)
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in own]
    qs = urlencode([*target.query.items(), *pairs])
    found = catalog.match("GET", path, qs)
    return (f"{path}?{qs}", found) if found is not None and found.route is target else None


def names_record(query: str, write: RouteMatch) -> bool:
    """Whether a query value is one of the CRM's record ids (the catalog's
    `id_pattern`): a write on a dispatched page that names a record."""
    facts = write.route.wide_facts or write.route.facts
    pattern = write.route.facts.id_pattern or facts.id_pattern
    if pattern is None:
        return False
    ids = re.compile(pattern)
    return any(ids.fullmatch(v) for _, v in parse_qsl(query, keep_blank_values=True))


def response_route(
    catalog: Catalog, method: str, path: str, write: RouteMatch | None
) -> RouteMatch | None:
    """The route whose record prefixes the response to a write is enforced with: the
    write route's own when it declares records, else the read route of the same path,
    so a CRM answering PATCH with the record has its record rules applied."""
    if method in ("GET", "HEAD") or (write is not None and write.route.records):
        return write
    return read_route(catalog, path) or write


def _at(node: Any, parts: list[str]) -> Iterator[Any]:
    if not parts:
        yield node
        return
    head, rest = parts[0], parts[1:]
    if head == "item":
        if isinstance(node, list):
            for item in node:
                yield from _at(item, rest)
        return
    if isinstance(node, Mapping) and head in node:
        yield from _at(node[head], rest)


def records_at(doc: Any, prefix: str) -> list[Mapping[str, Any]]:
    """The records under an ijson-style prefix (`customer`, `results.item`, `""`)."""
    parts = prefix.split(".") if prefix else []
    return [r for r in _at(doc, parts) if isinstance(r, Mapping)]


def targets(doc: Any, route: RouteMatch) -> list[RecordFacts]:
    """Facts of the record(s) the write is aimed at: those whose id is a path
    parameter, else the records under the first prefix that has any."""
    spec = route.route
    params = {str(v) for v in route.params.values()}
    by_prefix = [
        [reader.full(r) for r in records_at(doc, p)]
        for p in spec.records
        for reader in [FactsReader(spec.facts_at(p))]
    ]
    named = [f for group in by_prefix for f in group if f.record_id in params]
    if named:
        return named
    return next((group for group in by_prefix if group), [])


def named_record(
    doc: Any, route: RouteMatch, record_id: str
) -> tuple[str, Mapping[str, Any]] | None:
    """The record with this id under the route's record prefixes, with its prefix
    (the reveal endpoint reads one value of it); None when it is not there."""
    reader = FactsReader(route.route.facts)
    for prefix in route.route.records:
        for record in records_at(doc, prefix):
            if reader.basic(record)[0] == record_id:
                return prefix, record
    return None


def record_verdict(decision: Decision, facts: list[RecordFacts], subject_id: str) -> Verdict:
    """Visible only when records were found and no record rule drops or blocks any."""
    if not facts:
        return Verdict(False, "the record's facts could not be read")
    for record in facts:
        for i, rule in enumerate(decision.records):
            if rule.record is RecordVerb.SHOW or not rule.matches(record, subject_id):
                continue
            return Verdict(False, rule.reason or f"record rule {i}", record.record_id)
    return Verdict(True, record_id=facts[0].record_id)


class TooManyNamed(Exception):
    """A write names more records than can be read before it (MAX_NAMED)."""


def named_records(trees: Iterable[Any], path: str, catalog: Catalog) -> list[str]:
    """Read paths of the records a write body names besides the one in its path.

    A CRM may upsert by the body's id, take bulk bodies, prefer the body's id to
    the path's, or run batch operations that carry their own paths. So the records
    named are: objects with the catalog's id key at the top of the body, in a
    top-level list, or under a one-key envelope (`{"data": [...]}`), read through
    the read route beside the write path (`/api/customers` + `/C102`); and strings
    anywhere that are paths or URLs of a catalogued record read route. Ids without
    such a route are not customer records (a line item's id) and are left alone.
    """
    own = read_route(catalog, path)
    bare, slash = path.rstrip("/"), "/" if path.endswith("/") else ""  # DRF-style slashes
    base = bare.rsplit("/", 1)[0] if own is not None and PARAM.search(own.template) else bare
    id_key = catalog.facts.id
    found: dict[str, None] = {}
    for tree in trees:
        if id_key:
            for record in _top_records(tree):
                value = record.get(id_key)
                if isinstance(value, str | int) and not isinstance(value, bool):
                    candidate = f"{base}/{quote(str(value), safe='')}{slash}"
                    if read_route(catalog, candidate) is not None:
                        found[candidate] = None
        for text in _strings(tree, 0):
            named = _record_path(text, catalog)
            if named is not None:
                found[named] = None
        if len(found) > MAX_NAMED:
            raise TooManyNamed(f"the write names more than {MAX_NAMED} records")
    found.pop(path, None)
    return list(found)


def _top_records(tree: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(tree, Mapping):
        yield tree
        if len(tree) == 1:  # an envelope: {"customer": {...}}, {"data": [...]}
            yield from _top_records(next(iter(tree.values())))
    elif isinstance(tree, list):
        for item in tree:
            if isinstance(item, Mapping):
                yield item


def _strings(node: Any, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, str):
        if node[:1] == "/" or node[:4].lower() == "http":
            yield node
    elif isinstance(node, Mapping):
        for v in node.values():
            yield from _strings(v, depth + 1)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, depth + 1)


def _record_path(text: str, catalog: Catalog) -> str | None:
    """The canonical path of a catalogued record read route that `text` names, if any."""
    try:
        raw = urlsplit(text.strip()).path
        canonical = normalize_path(raw)
    except (ValueError, PathRejected):
        return None
    found = read_route(catalog, canonical)
    if found is None or PARAM.search(found.template) is None:
        return None
    return canonical
