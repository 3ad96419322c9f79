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

import fnmatch
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.core.model import RecordFacts

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENTRY_FORMATS = frozenset({"id_card", "mobile", "bank_card", "email", "landline", "not_blank"})


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One catalog line: a key matcher and what a matching field is.

    `kind` is `key` (exact key name), `path` (glob on the dotted key path, list
    items spelled `item`) or `pattern` (regex searched in the key name).
    Exactly one of `category`, `text`, `walk` is meaningful: a category says
    what the value is (containers are then handled as one unit unless `walk`),
    `text` marks free text (scanned, only matched spans masked), `walk` says
    "look inside this container and classify its members".
    """

    kind: str
    value: str
    category: str | None = None
    text: bool = False
    walk: bool = False
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, key: str, path: str) -> bool:
        if self.kind == "key":
            return key == self.value
        if self.kind == "path":
            return fnmatch.fnmatchcase(path, self.value)
        assert self.regex is not None  # set by the loader for kind == "pattern"
        return self.regex.search(key) is not None


@dataclass(frozen=True, slots=True)
class FactsSpec:
    """Where the record-level facts (RecordFacts) live, as dotted key paths."""

    id: str | None = None
    grade: str | None = None
    tier: str | None = None
    assignees: tuple[str, ...] = ()
    consents: Mapping[str, str] = field(default_factory=dict)  # consent name -> path


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """Entry validation (客户录入) for writes: required fields and value formats."""

    required: tuple[str, ...] = ()
    formats: Mapping[str, str] = field(default_factory=dict)  # field -> format name


@dataclass(frozen=True, slots=True)
class RouteSpec:
    name: str
    template: str
    methods: frozenset[str]  # empty: every method
    sensitive: bool
    records: tuple[str, ...]  # ijson-style prefixes; "" is the document root
    rules: tuple[FieldRule, ...]  # route rules first, then the catalog's
    facts: FactsSpec
    csv_columns: Mapping[str, str]  # CSV header -> category
    entry: EntrySpec | None
    catalog: str
    export: bool = False  # a bulk export (audited as operation "export")
    _memo: dict[str, FieldRule | None] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    def rule_for(self, key: str, path: str) -> FieldRule | None:
        """The first rule matching a field, memoised per key path (hot path)."""
        try:
            return self._memo[path]
        except KeyError:
            pass
        found = None
        for rule in self.rules:
            if rule.matches(key, path):
                found = rule
                break
        if len(self._memo) < 4096:  # bounded: key paths come from upstream bodies
            self._memo[path] = found
        return found


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: RouteSpec
    template: str
    params: Mapping[str, str]


class Catalog:
    """A loaded, validated field catalog for one CRM."""

    def __init__(
        self,
        name: str,
        routes: tuple[RouteSpec, ...],
        fingerprint: str,
        rules: tuple[FieldRule, ...] = (),
        facts: FactsSpec | None = None,
    ) -> None:
        self.name = name
        self.routes = routes
        self.fingerprint = fingerprint
        self.rules = rules  # the catalog-wide field rules (every route ends with them)
        self.facts = facts or FactsSpec()
        self._static: dict[str, list[RouteSpec]] = {}
        self._dynamic: list[tuple[re.Pattern[str], RouteSpec]] = []
        for route in routes:
            if _PARAM.search(route.template):
                self._dynamic.append((_compile_template(route.template), route))
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
        catalog = _build(raw, problems)
        if problems or catalog is None:
            raise ValueError("invalid catalog: " + "; ".join(problems or ["empty"]))
        return catalog

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route for an already normalised path; fixed paths win over templates."""
        method = method.upper()
        for route in self._static.get(path, ()):
            if not route.methods or method in route.methods:
                return RouteMatch(route, route.template, {})
        for regex, route in self._dynamic:
            if route.methods and method not in route.methods:
                continue
            m = regex.fullmatch(path)
            if m is not None:
                return RouteMatch(route, route.template, m.groupdict())
        return None

    def route(self, name: str) -> RouteSpec | None:
        return next((r for r in self.routes if r.name == name), None)

    def any_route(self) -> RouteSpec:
        """A route for bodies whose path is unknown (explain): catalog-wide rules and
        facts, and every record prefix any route declares."""
        prefixes = dict.fromkeys(p for r in self.routes for p in r.records)
        return RouteSpec(
            name="(any)",
            template="",
            methods=frozenset(),
            sensitive=True,
            records=tuple(prefixes),
            rules=self.rules,
            facts=self.facts,
            csv_columns={},
            entry=None,
            catalog=self.name,
        )

    def problems_with(self, known: set[str] | frozenset[str]) -> list[str]:
        """Categories the catalog names that the taxonomy does not know (check-config)."""
        out = []
        for route in self.routes:
            for rule in route.rules:
                if rule.category and rule.category not in known:
                    out.append(f"routes.{route.name}: unknown category {rule.category!r}")
            for column, category in route.csv_columns.items():
                if category not in known:
                    out.append(f"routes.{route.name}.csv.columns.{column}: unknown category")
        return sorted(set(out))

    def categories(self) -> set[str]:
        """Every category the catalog names (for cross-checking with the taxonomy)."""
        out = {r.category for route in self.routes for r in route.rules if r.category}
        out.update(c for route in self.routes for c in route.csv_columns.values())
        return out


def _compile_template(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _PARAM.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


def _build(raw: Any, problems: list[str]) -> Catalog | None:
    if not isinstance(raw, Mapping):
        problems.append("catalog: must be a mapping")
        return None
    _unknown_keys(raw, {"name", "version", "record", "fields", "entry", "routes"}, "", problems)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append("name: required non-empty string")
        name = "?"
    base_rules = _rules(raw.get("fields", []), "fields", problems)
    base_facts = _facts(raw.get("record", {}), "record", None, problems)
    base_entry = _entry(raw.get("entry"), "entry", problems)
    routes_raw = raw.get("routes")
    if not isinstance(routes_raw, list) or not routes_raw:
        problems.append("routes: required non-empty list")
        return None
    routes: list[RouteSpec] = []
    seen: set[str] = set()
    for i, r in enumerate(routes_raw):
        route = _route(r, f"routes[{i}]", name, base_rules, base_facts, base_entry, problems)
        if route is None:
            continue
        if route.name in seen:
            problems.append(f"routes[{i}].name: duplicate route name {route.name!r}")
        seen.add(route.name)
        routes.append(route)
    canon = json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str)
    fingerprint = hashlib.sha256(canon.encode()).hexdigest()[:16]
    return Catalog(name, tuple(routes), fingerprint, base_rules, base_facts)


def _route(
    raw: Any,
    where: str,
    catalog: str,
    base_rules: tuple[FieldRule, ...],
    base_facts: FactsSpec,
    base_entry: EntrySpec | None,
    problems: list[str],
) -> RouteSpec | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    allowed = {
        "name",
        "path",
        "methods",
        "sensitive",
        "records",
        "fields",
        "record",
        "csv",
        "export",
    }
    _unknown_keys(raw, allowed | {"entry"}, where, problems)
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        problems.append(f"{where}.path: required, must start with '/'")
        return None
    if re.search(r"[{}]", _PARAM.sub("", path)):
        problems.append(f"{where}.path: malformed parameter in {path!r}")
    methods_raw = raw.get("methods", [])
    methods: set[str] = set()
    if not isinstance(methods_raw, list):
        problems.append(f"{where}.methods: must be a list")
    else:
        for j, m in enumerate(methods_raw):
            if not isinstance(m, str) or m.upper() not in _METHODS:
                problems.append(f"{where}.methods[{j}]: unknown method {m!r}")
            else:
                methods.add(m.upper())
    sensitive = raw.get("sensitive", True)
    if not isinstance(sensitive, bool):
        problems.append(f"{where}.sensitive: must be true or false")
        sensitive = True
    records = _str_list(raw.get("records", []), f"{where}.records", problems)
    csv_raw = raw.get("csv", {})
    columns: dict[str, str] = {}
    if not isinstance(csv_raw, Mapping):
        problems.append(f"{where}.csv: must be a mapping")
    else:
        _unknown_keys(csv_raw, {"columns"}, f"{where}.csv", problems)
        cols = csv_raw.get("columns", {})
        if not isinstance(cols, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in cols.items()
        ):
            problems.append(f"{where}.csv.columns: must map column names to categories")
        else:
            columns = dict(cols)
    entry_raw = raw.get("entry", False)
    entry: EntrySpec | None
    if entry_raw is True:
        entry = base_entry or EntrySpec()
    elif entry_raw is False or entry_raw is None:
        entry = None
    else:
        entry = _entry(entry_raw, f"{where}.entry", problems)
    export = raw.get("export", False)
    if not isinstance(export, bool):
        problems.append(f"{where}.export: must be true or false")
        export = False
    name = raw.get("name", path)
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: must be a non-empty string")
        name = path
    return RouteSpec(
        name=name,
        template=path,
        methods=frozenset(methods),
        sensitive=sensitive,
        records=tuple(records),
        rules=_rules(raw.get("fields", []), f"{where}.fields", problems) + base_rules,
        facts=_facts(raw.get("record", {}), f"{where}.record", base_facts, problems),
        csv_columns=columns,
        entry=entry,
        catalog=catalog,
        export=export,
    )


def _rules(raw: Any, where: str, problems: list[str]) -> tuple[FieldRule, ...]:
    if not isinstance(raw, list):
        problems.append(f"{where}: must be a list")
        return ()
    out: list[FieldRule] = []
    for i, r in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(r, Mapping):
            problems.append(f"{at}: must be a mapping")
            continue
        _unknown_keys(r, {"key", "path", "pattern", "category", "text", "walk"}, at, problems)
        kinds = [k for k in ("key", "path", "pattern") if k in r]
        if len(kinds) != 1 or not isinstance(r[kinds[0]], str) or not r[kinds[0]]:
            problems.append(f"{at}: needs exactly one of key, path, pattern (a string)")
            continue
        kind = kinds[0]
        regex = None
        if kind == "pattern":
            try:
                regex = re.compile(r[kind])
            except re.error as exc:
                problems.append(f"{at}.pattern: {exc}")
                continue
        category, text, walk = r.get("category"), r.get("text", False), r.get("walk", False)
        if category is not None and (not isinstance(category, str) or not category):
            problems.append(f"{at}.category: must be a non-empty string")
            continue
        if not isinstance(text, bool) or not isinstance(walk, bool):
            problems.append(f"{at}: text and walk must be true or false")
            continue
        if sum((category is not None, text, walk)) != 1:
            problems.append(f"{at}: needs exactly one of category, text: true, walk: true")
            continue
        out.append(FieldRule(kind, r[kind], category, text, walk, regex))
    return tuple(out)


def _facts(raw: Any, where: str, base: FactsSpec | None, problems: list[str]) -> FactsSpec:
    base = base or FactsSpec()
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping")
        return base
    _unknown_keys(raw, {"id", "grade", "tier", "assignees", "consents"}, where, problems)
    values: dict[str, Any] = {}
    for key in ("id", "grade", "tier"):
        if key in raw:
            if raw[key] is not None and not isinstance(raw[key], str):
                problems.append(f"{where}.{key}: must be a key path string")
            else:
                values[key] = raw[key]
    if "assignees" in raw:
        values["assignees"] = tuple(_str_list(raw["assignees"], f"{where}.assignees", problems))
    if "consents" in raw:
        cons = raw["consents"]
        if not isinstance(cons, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in cons.items()
        ):
            problems.append(f"{where}.consents: must map consent names to key paths")
        else:
            values["consents"] = dict(cons)
    return FactsSpec(
        id=values.get("id", base.id),
        grade=values.get("grade", base.grade),
        tier=values.get("tier", base.tier),
        assignees=values.get("assignees", base.assignees),
        consents=values.get("consents", base.consents),
    )


def _entry(raw: Any, where: str, problems: list[str]) -> EntrySpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    _unknown_keys(raw, {"required", "formats"}, where, problems)
    required = _str_list(raw.get("required", []), f"{where}.required", problems)
    formats = raw.get("formats", {})
    if not isinstance(formats, Mapping):
        problems.append(f"{where}.formats: must be a mapping")
        formats = {}
    for k, v in formats.items():
        if v not in ENTRY_FORMATS:
            problems.append(
                f"{where}.formats.{k}: unknown format {v!r} (one of {sorted(ENTRY_FORMATS)})"
            )
    return EntrySpec(tuple(required), {str(k): str(v) for k, v in formats.items()})


def _str_list(raw: Any, where: str, problems: list[str]) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        problems.append(f"{where}: must be a list of strings")
        return []
    return list(raw)


def _unknown_keys(raw: Mapping[str, Any], allowed: set[str], where: str, out: list[str]) -> None:
    for key in raw:
        if key not in allowed:
            out.append(f"{where + '.' if where else ''}{key}: unknown key")


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


def _scalar(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return None if isinstance(value, dict | list) else str(value)


class FactsReader:
    """Pre-compiled readers for one FactsSpec (record facts are read per record)."""

    __slots__ = ("_assignees", "_consents", "_flat", "_grade", "_id", "_tier")

    def __init__(self, spec: FactsSpec) -> None:
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
            consents={name: get(record) is True for name, get in self._consents},
            assignees=frozenset(assignees),
        )
