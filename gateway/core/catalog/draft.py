"""A first catalog for a CRM, drafted from its OpenAPI schema (`crm-gateway catalog draft`).

The draft is for a reviewer, never loaded as is: every route, record prefix,
field rule and record fact carries a confidence and the reason it was guessed,
as a YAML comment. Field categories are guessed from the key, the schema's
title and description, and the value's type and format, against the names in
the taxonomy's `field_names:` section (English, Chinese, pinyin initials).

Records are the outermost objects of a response schema (list items or nested
objects, `$ref`s resolved) that hold customer fields; a detail body's `""` when
the whole document is the record. Write routes list the request fields the
write guard will classify.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.core.taxonomy import Taxonomy

WRITE_METHODS = ("post", "put", "patch")
METHODS = ("get", "head", "post", "put", "patch", "delete")
_MAX_DEPTH = 8
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z0-9]+|[\u4e00-\u9fff]+")
_MIN_WORD = 3  # `kh`, `mm`, `cc`: pinyin initials too short to find inside a longer key
_MIN_DESC_WORD = 5
_LABEL_WORDS = 4  # a description this short reads as a label ("Mobile phone")
_FACTS = ("id", "grade", "tier", "owner", "consent")


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", name).lower()


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(_CAMEL.sub(" ", text).replace("_", " "))]


class DraftError(ValueError):
    """The schema or the taxonomy's `field_names` cannot be read; the message names the key."""


@dataclass(frozen=True, slots=True)
class NameHints:
    """The taxonomy's `field_names:` section, normalised for matching."""

    categories: Mapping[str, str]  # normalised name -> category
    text: frozenset[str]
    facts: Mapping[str, frozenset[str]]  # fact -> normalised names
    whole_only: frozenset[str] = frozenset()
    person_words: frozenset[str] = frozenset()

    @classmethod
    def from_taxonomy_dict(cls, raw: Any, taxonomy: Taxonomy) -> NameHints:
        section = raw.get("field_names") if isinstance(raw, Mapping) else None
        if not isinstance(section, Mapping):
            raise DraftError("field_names: the taxonomy has no field_names section")
        cats = section.get("categories")
        if not isinstance(cats, Mapping):
            raise DraftError("field_names.categories: must be a mapping")
        names: dict[str, str] = {}
        for cat, aliases in cats.items():
            if str(cat) not in taxonomy.categories:
                raise DraftError(f"field_names.categories.{cat}: not a taxonomy category")
            if not isinstance(aliases, list):
                raise DraftError(f"field_names.categories.{cat}: must be a list of names")
            for alias in aliases:
                names.setdefault(_norm(str(alias)), str(cat))
        facts_raw = section.get("record_facts") or {}
        if not isinstance(facts_raw, Mapping):
            raise DraftError("field_names.record_facts: must be a mapping")
        facts = {}
        for fact in _FACTS:
            values = facts_raw.get(fact) or []
            if not isinstance(values, list):
                raise DraftError(f"field_names.record_facts.{fact}: must be a list of names")
            facts[fact] = frozenset(_norm(str(v)) for v in values)
        lists = {}
        for key in ("text", "whole_only", "person_words"):
            value = section.get(key) or []
            if not isinstance(value, list):
                raise DraftError(f"field_names.{key}: must be a list of names")
            lists[key] = frozenset(_norm(str(v)) for v in value)
        return cls(names, lists["text"], facts, lists["whole_only"], lists["person_words"])


@dataclass(frozen=True, slots=True)
class Guess:
    """A field's category (or "text") with a confidence and the reason."""

    category: str
    confidence: float
    why: str


@dataclass(slots=True)
class Field:
    key: str
    path: str  # ijson-style, from the record (or the document root outside records)
    guess: Guess | None


@dataclass(slots=True)
class Route:
    path: str
    methods: list[str]
    records: list[tuple[str, float, str]] = field(default_factory=list)  # prefix, conf, why
    fields: list[Field] = field(default_factory=list)  # response fields
    writes: list[Field] = field(default_factory=list)  # request-body fields
    required: list[str] = field(default_factory=list)
    media: list[str] = field(default_factory=list)  # response types other than JSON
    facts: dict[str, tuple[str, float]] = field(default_factory=dict)


@dataclass(slots=True)
class Draft:
    name: str
    routes: list[Route]
    facts: dict[str, tuple[str, float, str]]  # fact -> path, confidence, why
    observed: list[str] = field(default_factory=list)  # reviewer notes from traffic


def guess_field(key: str, schema: Mapping[str, Any], hints: NameHints) -> Guess | None:
    """A key's category by name, then title/description words, then type/format."""
    norm = _norm(key)
    if norm in hints.text:
        return Guess("text", 0.9, f"name {key!r} is free text")
    if norm in hints.categories:
        return Guess(hints.categories[norm], 0.9, f"name {key!r}")
    fmt = str(schema.get("format") or "")
    words = _words(key)
    for i in range(len(words) - 1, -1, -1):  # the last word names the thing (`client_phone`)
        w = words[i]
        if len(w) < _MIN_WORD or w not in hints.categories:
            continue
        if w in hints.whole_only and not (i and words[i - 1] in hints.person_words):
            continue
        return Guess(hints.categories[w], 0.7, f"word {w!r} of {key!r}")
    for source in ("title", "description"):
        text = str(schema.get(source) or "")
        if not text:
            continue
        if len(_norm(text)) >= _MIN_WORD and _norm(text) in hints.categories:
            return Guess(hints.categories[_norm(text)], 0.7, f"{source} {text!r}")
        label_like = len(_words(text)) <= _LABEL_WORDS
        for w in _words(text) if label_like else ():
            if len(w) >= _MIN_DESC_WORD and w in hints.categories and w not in hints.whole_only:
                return Guess(hints.categories[w], 0.5, f"{source} word {w!r}")
        for alias, cat in hints.categories.items():
            if len(alias) > 2 and not alias.isascii() and alias in text:
                return Guess(cat, 0.5, f"{source} mentions {alias!r}")
    if fmt == "email":
        return Guess("email", 0.6, "format email")
    if fmt in ("date-time", "uuid") and norm.endswith(("at", "id", "by")):
        return Guess("internal", 0.4, f"format {fmt}")
    return None


class _Schema:
    """$ref resolution and property walking over one OpenAPI document."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc

    def resolve(self, schema: Any, seen: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The schema with $ref, allOf, oneOf/anyOf merged into one mapping."""
        if not isinstance(schema, Mapping):
            return {}
        out: dict[str, Any] = {}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref in seen or not ref.startswith("#/"):
                return {"x-cycle": ref}
            node: Any = self.doc
            for part in ref[2:].split("/"):
                node = node.get(part) if isinstance(node, Mapping) else None
            if node is None:
                raise DraftError(f"{ref}: unresolved $ref")
            out.update(self.resolve(node, seen | {ref}))
        for key in ("allOf", "oneOf", "anyOf"):
            for part in schema.get(key) or ():
                sub = self.resolve(part, seen)
                props = {**out.get("properties", {}), **sub.get("properties", {})}
                out = {**sub, **out}
                if props:
                    out["properties"] = props
        out.update(
            {k: v for k, v in schema.items() if k not in ("$ref", "allOf", "oneOf", "anyOf")}
        )
        return out

    def objects(
        self, schema: Any, prefix: str, depth: int = 0, seen: frozenset[str] = frozenset()
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every object schema reachable from `schema`, with its ijson-style prefix."""
        if depth > _MAX_DEPTH or not isinstance(schema, Mapping):
            return
        ref = schema.get("$ref")
        if isinstance(ref, str):
            seen = seen | {ref}
        node = self.resolve(schema, frozenset() if depth == 0 else seen - {ref} if ref else seen)
        if "x-cycle" in node:
            return
        if node.get("type") == "array" or "items" in node:
            yield from self.objects(node.get("items"), _join(prefix, "item"), depth + 1, seen)
            return
        props = node.get("properties")
        if isinstance(props, Mapping):
            yield prefix, node
            for key, sub in props.items():
                yield from self.objects(sub, _join(prefix, str(key)), depth + 1, seen)


def _join(prefix: str, part: str) -> str:
    return f"{prefix}.{part}" if prefix else part


def _leaves(
    schema: _Schema, node: Mapping[str, Any], prefix: str, depth: int = 0
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, key, resolved schema) of every property under `node`, lists spelled `item`."""
    if depth > _MAX_DEPTH:
        return
    for key, raw in (node.get("properties") or {}).items():
        sub = schema.resolve(raw)
        path = _join(prefix, str(key))
        yield path, str(key), sub
        if "x-cycle" in sub:
            continue
        inner = sub
        item_path = path
        while inner.get("type") == "array" and isinstance(inner.get("items"), Mapping):
            item_path += ".item"
            inner = schema.resolve(inner["items"])
        if isinstance(inner.get("properties"), Mapping):
            yield from _leaves(schema, inner, item_path, depth + 1)


def _customer(guess: Guess | None, taxonomy: Taxonomy) -> bool:
    if guess is None or guess.category in ("text", "internal"):
        return False
    return taxonomy.level_rank(taxonomy.category(guess.category).level) >= 2


def _direct(node: Mapping[str, Any], hints: NameHints, taxonomy: Taxonomy) -> int:
    """How many of the object's own properties hold customer data."""
    return sum(
        _customer(guess_field(str(k), v if isinstance(v, Mapping) else {}, hints), taxonomy)
        for k, v in (node.get("properties") or {}).items()
    )


def _records(
    schema: _Schema, body: Any, hints: NameHints, taxonomy: Taxonomy
) -> list[tuple[str, float, str]]:
    """The outermost objects holding two or more customer fields."""
    found: list[tuple[str, float, str]] = []
    staff: list[str] = []
    for prefix, node in schema.objects(body, ""):
        if any(prefix == p or prefix.startswith(p + ".") or p == "" for p, _, _ in found):
            continue
        if any(prefix == p or prefix.startswith(p + ".") for p in staff):
            continue
        keys = [k for k in prefix.split(".") if k != "item"]
        guess = guess_field(keys[-1], {}, hints) if keys else None
        if guess is not None and guess.category == "internal":  # staff, teams, the tenant
            staff.append(prefix)
            continue
        n = _direct(node, hints, taxonomy)
        if n >= 2:
            conf = 0.8 if prefix.endswith("item") or prefix == "" else 0.6
            where = "list items" if prefix.endswith("item") else "an object"
            found.append((prefix, conf, f"{where} with {n} customer fields"))
    return found


def _json_schema(content: Any) -> tuple[Any, list[str]]:
    if not isinstance(content, Mapping):
        return None, []
    other = [str(t) for t in content if "json" not in str(t)]
    for media, entry in content.items():
        if "json" in str(media) and isinstance(entry, Mapping):
            return entry.get("schema"), other
    return None, other


def _ok_response(op: Mapping[str, Any]) -> Any:
    responses = op.get("responses") or {}
    for status in ("200", "201", 200, 201):
        if status in responses:
            return responses[status]
    return None


def _facts(
    schema: _Schema, route: Route, body: Any, hints: NameHints
) -> dict[str, tuple[str, float]]:
    """Record facts found by name inside the route's first record."""
    out: dict[str, tuple[str, float]] = {}
    for prefix, _, _ in route.records[:1]:
        for p, node in schema.objects(body, ""):
            if p != prefix:
                continue
            for path, key, _ in _leaves(schema, node, ""):
                norm = _norm(key)
                for fact in _FACTS:
                    if fact not in out and (
                        norm in hints.facts[fact] or _norm(path) in hints.facts[fact]
                    ):
                        out[fact] = (path, 0.9 if "." not in path else 0.6)
    return out


def draft_from_openapi(
    doc: Mapping[str, Any], hints: NameHints, taxonomy: Taxonomy, name: str = ""
) -> Draft:
    """Routes, records, field guesses and record facts from one OpenAPI 3 document."""
    paths = doc.get("paths")
    if not isinstance(paths, Mapping) or not paths:
        raise DraftError("paths: the schema has no paths (is it an OpenAPI 3 document?)")
    schema = _Schema(doc)
    routes: list[Route] = []
    fact_votes: dict[str, Counter[str]] = {f: Counter() for f in _FACTS}
    for template in sorted(paths, key=_route_order):
        item = paths[template]
        if not isinstance(item, Mapping):
            raise DraftError(f"paths.{template}: must be a mapping")
        methods = [m for m in METHODS if isinstance(item.get(m), Mapping)]
        if not methods:
            continue
        route = Route(str(template), [m.upper() for m in methods])
        get = item.get("get")
        if isinstance(get, Mapping):
            ok = _ok_response(get)
            body, other = _json_schema(ok.get("content") if isinstance(ok, Mapping) else None)
            route.media = other
            route.records = _records(schema, body, hints, taxonomy)
            for p, node in schema.objects(body, ""):
                if p != "":
                    continue
                route.fields = [
                    Field(key, path, guess_field(key, sub, hints))
                    for path, key, sub in _leaves(schema, node, "")
                ]
            route.facts = _facts(schema, route, body, hints)
            for fact, (path, _) in route.facts.items():
                fact_votes[fact][path] += 1
        for m in WRITE_METHODS:
            op = item.get(m)
            if not isinstance(op, Mapping):
                continue
            req = op.get("requestBody")
            body, _ = _json_schema(req.get("content") if isinstance(req, Mapping) else None)
            node = schema.resolve(body)
            seen = {f.key for f in route.writes}
            for path, key, sub in _leaves(schema, node, ""):
                if key not in seen and "." not in path:
                    route.writes.append(Field(key, path, guess_field(key, sub, hints)))
                    seen.add(key)
            route.required = sorted(
                set(route.required) | {str(r) for r in node.get("required") or ()}
            )
        routes.append(route)
    facts: dict[str, tuple[str, float, str]] = {}
    for fact, votes in fact_votes.items():
        if votes:
            path, n = votes.most_common(1)[0]
            facts[fact] = (path, 0.9 if n > 1 else 0.6, f"found in {n} route(s)")
    return Draft(name or str((doc.get("info") or {}).get("title") or "crm"), routes, facts)


def _route_order(template: str) -> tuple[str, ...]:
    """Fixed segments before `{param}` ones beside them (`/kanban/` before `/{id}/`)."""
    return tuple("\uffff" + s if s.startswith("{") else s for s in template.split("/"))


def merge_observed(draft: Draft, observed: Mapping[str, Mapping[str, Any]]) -> None:
    """Add what observe mode saw to the draft: routes the schema lacks, and fields
    with detector hits no guess named (their most often detected category)."""
    routes = {r.path: r for r in draft.routes}
    for template, obs in sorted(observed.items()):
        route = routes.get(template)
        if route is None:
            route = routes[template] = Route(template, ["GET"])
            draft.routes.append(route)
            draft.observed.append(
                f"{template}: seen {obs.get('requests', 0)} time(s), not in the schema"
            )
        known = {f.key for f in route.fields if f.guess is not None}
        prefixes: Counter[str] = Counter()
        for path, stats in sorted((obs.get("paths") or {}).items()):
            hits = Counter({str(c): int(n) for c, n in (stats.get("hits") or {}).items()})
            if not hits or stats.get("named"):
                continue
            key = next((p for p in reversed(path.split(".")) if p != "item"), "")
            if not key or key in known:
                continue
            cat, n = hits.most_common(1)[0]
            why = f"observed: {cat} detected in {n} of {stats.get('n', n)} value(s) at {path}"
            route.fields.append(Field(key, path, Guess(cat, 0.5, why)))
            known.add(key)
            if ".item." in path:
                prefixes[path.rsplit(".item.", 1)[0] + ".item"] += 1
        have = {p for p, _, _ in route.records}
        for prefix, n in prefixes.items():
            if n >= 2 and prefix not in have:
                route.records.append((prefix, 0.5, f"observed: {n} detected fields"))
    draft.routes.sort(key=lambda r: _route_order(r.path))
