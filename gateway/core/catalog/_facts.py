"""Reading record-level facts (id, grade, tier, assignees, consents) from a record."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gateway.core.catalog._spec import FactsSpec
from gateway.core.model import RecordFacts

# a tuple for isinstance: a `dict | list` union is rebuilt at every call (Python 3.11)
_JSON_CONTAINERS = (dict, list)


def get_path(record: Mapping[str, Any], dotted: str) -> Any:
    """Read a dotted key path from a record (None when any step is missing)."""
    cur: Any = record
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
        if cur is None:
            return None
    return cur


def record_facts(record: Mapping[str, Any], spec: FactsSpec | None) -> RecordFacts:
    """The record-level facts the policy's record rules test, read via the catalog."""
    if spec is None:
        return RecordFacts()
    return FactsReader(spec).full(record)


Getter = Callable[[Mapping[str, Any]], Any]


def _getter(path: str | None) -> Getter:
    if not path:
        return lambda _record: None
    parts = tuple(path.split("."))
    if len(parts) == 1:
        key = parts[0]
        return lambda record: record.get(key)

    def get(record: Mapping[str, Any]) -> Any:
        cur: Any = record
        for part in parts:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(part)
        return cur

    return get


def _granted(value: Any) -> bool:
    """A consent flag: JSON true, or exactly its spelling in text formats (XML, CSV,
    forms carry `true`); nothing looser ("yes", "1") counts."""
    return value is True or value == "true"


def _scalar(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return None if isinstance(value, _JSON_CONTAINERS) else str(value)


class FactsReader:
    """Pre-compiled readers for one FactsSpec (record facts are read per record)."""

    __slots__ = ("_assignees", "_consents", "_flat", "_grade", "_id", "_tier", "paths")

    def __init__(self, spec: FactsSpec) -> None:
        # which facts this reader can read at all (a route may declare `grade: null`:
        # its records carry no grade, and grade rules cannot be checked there)
        self.paths = frozenset(n for n, p in (("grade", spec.grade), ("tier", spec.tier)) if p)
        self._id = _getter(spec.id)
        self._grade = _getter(spec.grade)
        self._tier = _getter(spec.tier)
        self._assignees = tuple(_getter(p) for p in spec.assignees)
        self._consents = tuple((name, _getter(p)) for name, p in spec.consents.items())
        paths = (spec.id, spec.grade, spec.tier)
        # top-level keys (the usual case) are read with three dict lookups
        self._flat = (
            tuple(p or "\x00" for p in paths)
            if all(p is None or "." not in p for p in paths)
            else None
        )

    def basic(self, record: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
        """Id, grade and tier: all the report needs when the decision has no record rules."""
        if self._flat is not None:
            get = record.get
            a, b, c = self._flat
            i, g, t = get(a), get(b), get(c)
            if (
                (type(i) is str or i is None)
                and (type(g) is str or g is None)
                and (type(t) is str or t is None)
            ):
                return i, g, t
            return _scalar(i), _scalar(g), _scalar(t)
        return _scalar(self._id(record)), _scalar(self._grade(record)), _scalar(self._tier(record))

    def full(self, record: Mapping[str, Any]) -> RecordFacts:
        assignees: set[str] = set()
        for get in self._assignees:
            got = get(record)
            if isinstance(got, list):
                assignees.update(str(x) for x in got if x is not None)
            elif got is not None and not isinstance(got, dict):
                assignees.add(str(got))
        record_id, grade, tier = self.basic(record)
        return RecordFacts(
            record_id=record_id,
            grade=grade,
            tier=tier,
            consents={name: _granted(get(record)) for name, get in self._consents},
            assignees=frozenset(assignees),
        )


class RecordShape:
    """Is an object a record, wherever it is? It is when it carries a grade or tier
    fact at the catalog's paths (`grade`, `custom_fields.grade`). `keys` are the
    paths' first segments: the cheap test (one set disjointness per object) that
    nearly every non-record fails; the values are read only when it passes."""

    __slots__ = ("_getters", "id_pattern", "keys")

    def __init__(self, spec: FactsSpec) -> None:
        self.id_pattern = (
            re.compile(rf"(?<![0-9A-Za-z])(?:{spec.id_pattern})(?![0-9A-Za-z])")
            if spec.id_pattern
            else None
        )
        paths = [p for p in (spec.grade, spec.tier) if p]
        self.keys = frozenset(p.split(".", 1)[0] for p in paths)
        self._getters = tuple(_getter(p) for p in paths)

    def is_record(self, obj: Mapping[str, Any]) -> bool:
        if self.keys.isdisjoint(obj):
            return False
        for get in self._getters:
            value = get(obj)
            if value is not None and not isinstance(value, _JSON_CONTAINERS):
                return True
        return False
