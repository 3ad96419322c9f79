"""Record rules before a write: may this caller see the record it changes?

A caller the record rules hide a record from (grade B without a grant, a 流失
customer for sales, a partner's unassigned customer) must not PATCH, PUT or
DELETE it blind. `gateway/visibility.py` fetches the record through the
catalog's read route for the same path; this module finds the record in that
body and applies the decision's record rules to its facts, the same rules the
enforcer applies to a read. Anything unreadable is a refusal (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.catalog import Catalog, FactsReader, RouteMatch
from gateway.core.catalog._spec import PARAM
from gateway.core.model import Decision, RecordFacts, RecordVerb

__all__ = [
    "Verdict",
    "named_record",
    "needs_check",
    "read_route",
    "record_verdict",
    "response_route",
    "targets",
]


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
