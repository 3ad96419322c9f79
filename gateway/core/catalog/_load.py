"""Building a catalog from its YAML form, collecting every problem with its key path."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from gateway.core.catalog._spec import (
    ENTRY_FORMATS,
    METHODS,
    PARAM,
    Absent,
    EntrySpec,
    FactsSpec,
    FieldRule,
    Packed,
    RouteSpec,
    SideRule,
)

Built = tuple[
    str,
    tuple[RouteSpec, ...],
    str,
    tuple[FieldRule, ...],
    FactsSpec,
    frozenset[str],
    tuple[SideRule, ...],
]


def build(raw: Any, problems: list[str]) -> Built | None:
    """The parts of a Catalog, or None; every problem is appended to `problems`."""
    if not isinstance(raw, Mapping):
        problems.append("catalog: must be a mapping")
        return None
    top = {"name", "version", "record", "fields", "entry", "routes", "totals"}
    top |= {"response_types", "format_params", "side"}  # negotiation: read by _types
    _unknown_keys(raw, top, "", problems)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append("name: required non-empty string")
        name = "?"
    base_rules = _rules(raw.get("fields", []), "fields", problems)
    base_facts = _facts(raw.get("record", {}), "record", None, problems)
    base_entry = _entry(raw.get("entry"), "entry", problems)
    totals = frozenset(_str_list(raw.get("totals", []), "totals", problems))
    base_side = _side(raw.get("side", []), "side", (), problems)
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
        route = replace(route, wide_facts=base_facts, totals=totals, side=route.side + base_side)
        if route.name in seen:
            problems.append(f"routes[{i}].name: duplicate route name {route.name!r}")
        seen.add(route.name)
        routes.append(route)
    check_reveal_routes(tuple(routes), problems)
    check_reads(tuple(routes), problems)
    canon = json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str)
    fingerprint = hashlib.sha256(canon.encode()).hexdigest()[:16]
    return name, tuple(routes), fingerprint, base_rules, base_facts, totals, base_side


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
        "search",
        "search_body",
        "side",
        "reveal_route",
        "reads",
        "document",
        "query",
        "absent",
    }
    allowed.add("response_types")  # read by _types.negotiation
    _unknown_keys(raw, allowed | {"entry"}, where, problems)
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        problems.append(f"{where}.path: required, must start with '/'")
        return None
    if re.search(r"[{}]", PARAM.sub("", path)):
        problems.append(f"{where}.path: malformed parameter in {path!r}")
    methods_raw = raw.get("methods", [])
    methods: set[str] = set()
    if not isinstance(methods_raw, list):
        problems.append(f"{where}.methods: must be a list")
    else:
        for j, m in enumerate(methods_raw):
            if not isinstance(m, str) or m.upper() not in METHODS:
                problems.append(f"{where}.methods[{j}]: unknown method {m!r}")
            else:
                methods.add(m.upper())
    sensitive = raw.get("sensitive", True)
    if not isinstance(sensitive, bool):
        problems.append(f"{where}.sensitive: must be true or false")
        sensitive = True
    facts = _facts(raw.get("record", {}), f"{where}.record", base_facts, problems)
    records, prefix_facts = _records(raw.get("records", []), f"{where}.records", facts, problems)
    columns = _csv_columns(raw.get("csv", {}), f"{where}.csv", problems)
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
        facts=facts,
        prefix_facts=prefix_facts,
        csv_columns=columns,
        entry=entry,
        catalog=catalog,
        export=export,
        search=_search(raw.get("search", {}), f"{where}.search", problems),
        search_body=_flag(raw, "search_body", where, problems),
        side=_side(raw.get("side", []), f"{where}.side", tuple(records), problems),
        reveal_route=_reveal_route(raw, where, problems),
        reads=_route_name(raw, "reads", where, problems),
        document=_document(raw, where, problems),
        query=_query(raw, where, problems),
        absent=_absent(raw.get("absent"), f"{where}.absent", problems),
    )


def _absent(raw: Any, where: str, problems: list[str]) -> Absent | None:
    """`absent: {status: 200, body: {...} | "exact text"}` (sent with the headers and
    media type of the response it stands in for)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or "body" not in raw:
        problems.append(f"{where}: must be {{status, body}} (the CRM's answer for a "
                        "record it does not have)")  # fmt: skip
        return None
    _unknown_keys(raw, {"status", "body"}, where, problems)
    status = raw.get("status", 200)
    if type(status) is not int or not 200 <= status <= 599:
        problems.append(f"{where}.status: must be an HTTP status")
        return None
    body = raw["body"]
    if isinstance(body, str):
        return Absent(status, body.encode("utf-8"))
    if isinstance(body, Mapping | list):
        compact = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return Absent(status, compact.encode("utf-8"))
    problems.append(f"{where}.body: must be the exact text or a JSON value")
    return None


_QUERY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")


def _query(raw: Mapping[str, Any], where: str, problems: list[str]) -> dict[str, str]:
    value = raw.get("query", {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and _QUERY_NAME.fullmatch(k) and isinstance(v, str) and v
        for k, v in value.items()
    ):
        problems.append(f"{where}.query: must map parameter names to the values that "
                        "select this route (`{method: list}`)")  # fmt: skip
        return {}
    return dict(value)


def _document(raw: Mapping[str, Any], where: str, problems: list[str]) -> str | None:
    value = raw.get("document")
    if value is not None and (not isinstance(value, str) or not re.fullmatch(r"L\d{1,2}", value)):
        problems.append(f"{where}.document: must be the level the document carries (L3)")
        return None
    return value


def _reveal_route(raw: Mapping[str, Any], where: str, problems: list[str]) -> str | None:
    return _route_name(raw, "reveal_route", where, problems)


def _route_name(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        problems.append(f"{where}.{key}: must be the name of a route")
        return None
    return value


def _named_routes(
    routes: tuple[RouteSpec, ...], key: str
) -> Iterator[tuple[str, RouteSpec, str, RouteSpec | None]]:
    """(where, route, the name it gives under `key`, the route of that name or None)
    for every route that names another one under `key`."""
    by_name = {r.name: r for r in routes}
    for i, route in enumerate(routes):
        name = getattr(route, key)
        if name is not None:
            yield f"routes[{i}].{key}", route, name, by_name.get(name)


def check_reads(routes: tuple[RouteSpec, ...], problems: list[str]) -> None:
    """`reads` belongs to a query-dispatched write and names a GET page of the same
    path, query-dispatched too, that declares where its records are."""
    for where, route, name, target in _named_routes(routes, "reads"):
        if not route.query:
            problems.append(f"{where}: only a query-dispatched route reads its record so")
        elif target is None:
            problems.append(f"{where}: no route named {name!r}")
        elif (
            (target.methods and "GET" not in target.methods)
            or target.template != route.template
            or not target.query
            or not target.records
        ):
            problems.append(
                f"{where}: {name!r} must be a GET page of the same path, chosen by "
                "a query parameter, with declared records"
            )


def check_reveal_routes(routes: tuple[RouteSpec, ...], problems: list[str]) -> None:
    """A `reveal_route` names a GET route with one path parameter (the record id)
    that declares where its records are: reveals fetch the value again through it."""
    for where, _, name, target in _named_routes(routes, "reveal_route"):
        if target is None:
            problems.append(f"{where}: no route named {name!r}")
        elif (
            (target.methods and "GET" not in target.methods)
            or len(PARAM.findall(target.template)) != 1
            or not target.records
            or target.export
            or target.query
        ):
            problems.append(
                f"{where}: {name!r} must be a GET route with exactly one "
                "path parameter (the record id) and declared records, not an export "
                "nor a query-dispatched route"
            )


def _flag(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        problems.append(f"{where}.{key}: must be true or false")
        return False
    return value


def _search(raw: Any, where: str, problems: list[str]) -> dict[str, tuple[str, ...]]:
    """`search: {q: [id_number, mobile, name]}`: what each free-text parameter matches."""
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(c, str) for c in v)
        for k, v in raw.items()
    ):
        problems.append(f"{where}: must map parameter names to lists of categories")
        return {}
    return {k: tuple(v) for k, v in raw.items()}


def _records(
    raw: Any, where: str, facts: FactsSpec, problems: list[str]
) -> tuple[list[str], dict[str, FactsSpec]]:
    """`records: [contact_obj, {path: contacts.item, record: {grade: ...}}]`: prefixes,
    and the facts of those that hold records of another kind than the route's."""
    if not isinstance(raw, list):
        problems.append(f"{where}: must be a list of prefixes")
        return [], {}
    prefixes: list[str] = []
    own: dict[str, FactsSpec] = {}
    for i, item in enumerate(raw):
        if isinstance(item, str):
            prefixes.append(item)
            continue
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("path"), str):
            problems.append(f"{at}: must be a prefix or a mapping with path (and record)")
            continue
        _unknown_keys(item, {"path", "record"}, at, problems)
        prefixes.append(item["path"])
        own[item["path"]] = _facts(item.get("record", {}), f"{at}.record", facts, problems)
    return prefixes, own


def _entries(
    raw: Any, where: str, keys: set[str], problems: list[str]
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The mappings of a list of rules, each with where it stands (`fields[3]`); what is
    not a list, not a mapping or carries unknown keys is reported in `problems`."""
    if not isinstance(raw, list):
        problems.append(f"{where}: must be a list")
        return
    for i, r in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(r, Mapping):
            problems.append(f"{at}: must be a mapping")
            continue
        _unknown_keys(r, keys, at, problems)
        yield at, r


def _side(
    raw: Any, where: str, records: tuple[str, ...], problems: list[str]
) -> tuple[SideRule, ...]:
    """`side: [{path: address_obj, of: contact_obj}, {path: colleagues, mask: strict},
    {path: users, omit: true}]`; `of` names a declared single-record prefix."""
    out: list[SideRule] = []
    for at, r in _entries(raw, where, {"path", "of", "mask", "omit"}, problems):
        path = r.get("path")
        if not isinstance(path, str) or not path:
            problems.append(f"{at}.path: required non-empty string")
            continue
        given = [k for k in ("of", "mask", "omit") if k in r]
        if len(given) != 1:
            problems.append(f"{at}: needs exactly one of of, mask: strict, omit: true")
            continue
        if "mask" in r:
            if r["mask"] != "strict":
                problems.append(f"{at}.mask: must be strict")
                continue
            out.append(SideRule(path, "strict"))
        elif "omit" in r:
            if r["omit"] is not True:
                problems.append(f"{at}.omit: must be true")
                continue
            out.append(SideRule(path, "omit"))
        else:
            owner = r["of"]
            singles = [p for p in records if p != "item" and not p.endswith(".item")]
            if not isinstance(owner, str) or owner not in singles:
                problems.append(
                    f"{at}.of: must name one of this route's single-record prefixes "
                    f"{singles} (a list's records cannot own side data)"
                )
                continue
            out.append(SideRule(path, "of", owner))
        if any(fnmatch.fnmatchcase(p, path) or p.startswith(path + ".") for p in records):
            problems.append(f"{at}.path: {path!r} is (or holds) a records prefix")
            out.pop()
    return tuple(out)


def _csv_columns(raw: Any, where: str, problems: list[str]) -> dict[str, str | Packed]:
    """`columns: {header: category}`; a column packing several people says
    `{packed: {fields: [...], ...}}` instead of a category."""
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping")
        return {}
    _unknown_keys(raw, {"columns"}, where, problems)
    cols = raw.get("columns", {})
    if not isinstance(cols, Mapping) or not all(isinstance(k, str) for k in cols):
        problems.append(f"{where}.columns: must map column names to categories")
        return {}
    out: dict[str, str | Packed] = {}
    for name, value in cols.items():
        at = f"{where}.columns.{name}"
        if isinstance(value, str) and value:
            out[name] = value
        elif isinstance(value, Mapping) and set(value) == {"packed"}:
            packed = _packed(value["packed"], f"{at}.packed", problems)
            if packed is not None:
                out[name] = packed
        else:
            problems.append(f"{at}: must be a category or {{packed: {{fields: [...]}}}}")
    return out


# a packed value's default separators: people by semicolons (either width) or line
# breaks, a person's fields by commas, slashes or vertical bars
_PEOPLE = r"\s*[;；\n]\s*"
_BETWEEN = r"\s*[,，/|]\s*"


def _packed(raw: Any, where: str, problems: list[str]) -> Packed | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    _unknown_keys(raw, {"fields", "people", "between"}, where, problems)
    fields = raw.get("fields")
    if (
        not isinstance(fields, list)
        or not fields
        or not all(isinstance(f, str) and f for f in fields)
    ):
        problems.append(f"{where}.fields: must list each field's category, in order")
        return None
    separators = []
    for key, default in (("people", _PEOPLE), ("between", _BETWEEN)):
        pattern = raw.get(key, default)
        try:
            compiled = re.compile(pattern) if isinstance(pattern, str) else None
        except re.error as exc:
            problems.append(f"{where}.{key}: not a regular expression: {exc}")
            return None
        if compiled is None or compiled.fullmatch("") or compiled.search("") is not None:
            problems.append(f"{where}.{key}: must be a regular expression that matches text")
            return None
        separators.append(compiled)
    return Packed(tuple(fields), separators[0], separators[1])


def _rules(raw: Any, where: str, problems: list[str]) -> tuple[FieldRule, ...]:
    out: list[FieldRule] = []
    keys = {"key", "path", "pattern", "category", "text", "walk", "packed"}
    for at, r in _entries(raw, where, keys, problems):
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
        packed = None
        if "packed" in r:
            packed = _packed(r["packed"], f"{at}.packed", problems)
            if packed is None:
                continue
        if sum((category is not None, text, walk, packed is not None)) != 1:
            problems.append(f"{at}: needs exactly one of category, text: true, walk: true, packed")
            continue
        out.append(FieldRule(kind, r[kind], category, text, walk, regex, packed))
    return tuple(out)


def _id_pattern_problem(pattern: Any) -> str | None:
    if not isinstance(pattern, str):
        return "must be a regular expression string"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"not a regular expression: {exc}"
    return "must not match the empty string" if compiled.fullmatch("") else None


def _facts(raw: Any, where: str, base: FactsSpec | None, problems: list[str]) -> FactsSpec:
    base = base or FactsSpec()
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping")
        return base
    _unknown_keys(
        raw, {"id", "grade", "tier", "assignees", "consents", "id_pattern"}, where, problems
    )
    values: dict[str, Any] = {}
    if raw.get("id_pattern") is not None:
        problem = _id_pattern_problem(raw["id_pattern"])
        if problem:
            problems.append(f"{where}.id_pattern: {problem}")
        else:
            values["id_pattern"] = raw["id_pattern"]
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
        id_pattern=values.get("id_pattern", base.id_pattern),
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
