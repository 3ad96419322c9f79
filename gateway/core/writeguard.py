"""Request-side checks on writes: the parsed body of any type (`gateway.core.requestbody`).

A client that loaded a masked page and saves it back would overwrite the CRM's
real values with `138****1234` or `张**`. The guard spots masked placeholders of
protected fields and refuses the write (409 `masked_value_write`) or, in strip
mode, removes those fields so the CRM keeps its stored value. It also refuses
writes to categories the decision does not permit (403) and, where the catalog
enables it, validates entry (客户录入: required fields, ID check digit, mobile
segment, Luhn, e-mail) with a 422 naming each field and reason.

The report names fields and categories only, never values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.core import jsonpatch
from gateway.core.catalog import RouteSpec
from gateway.core.detectors import category_for_key, classify_value, detect, is_free_text_key
from gateway.core.detectors.checks import landline_area, luhn_ok, mobile_ok, resident_id_ok
from gateway.core.masking import is_masked_placeholder
from gateway.core.masking.bands import BANDS
from gateway.core.model import Decision, Verb
from gateway.core.placeholders import masked_span
from gateway.core.query_guard import is_clear
from gateway.core.requestbody import BODY_KEY, WriteBody
from gateway.core.taxonomy import Taxonomy
from gateway.errors import (
    EntryValidationFailed,
    Forbidden,
    MaskedValueWrite,
    ProtectedFieldPatch,
    UnsupportedMediaType,
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_SEPARATORS = str.maketrans("", "", " -")


@dataclass(slots=True)
class WriteReport:
    """What the guard saw in one write: field names and categories only."""

    fields: dict[str, str] = field(default_factory=dict)  # field path -> category
    stripped: list[str] = field(default_factory=list)  # masked placeholders removed
    unclassified: list[str] = field(default_factory=list)
    free_text: list[str] = field(default_factory=list)  # notes, remarks: checked for masks

    def to_audit(self) -> dict[str, Any]:
        return {
            "fields": dict(sorted(self.fields.items())),
            "stripped": list(self.stripped),
            "unclassified": list(self.unclassified),
            "free_text": list(self.free_text),
        }


FREE_TEXT = "(free text)"  # the report's category for catalog free-text fields
MAX_SCANNED = 64 * 1024  # characters of one string scanned for identifiers
_BAND_FLOORS = frozenset(lower for _, _, lower in BANDS)


def _category(route: RouteSpec | None, key: str, path: str) -> str | None:
    rule = route.rule_for(key, path) if route else None
    if rule is None and (not key.isascii() or key != key.lower()):
        # ＥＭＡＩＬ / Email: CRMs that bind fields case-insensitively (or after NFKC)
        # store these under the catalog's key, so they are judged as that key.
        folded = unicodedata.normalize("NFKC", key).lower()
        if folded != key:
            return _category(route, folded, path.removesuffix(key) + folded)
    if rule is not None and rule.category is not None:
        return rule.category
    if rule is not None and (rule.text or rule.packed is not None):
        return FREE_TEXT  # (a packed value is scanned: its people's fields by detectors)
    if rule is None and (is_free_text_key(key) or key == BODY_KEY):
        return FREE_TEXT
    return category_for_key(key)


def check_write(
    body: Any,
    *,
    route: RouteSpec | None,
    taxonomy: Taxonomy,
    decision: Decision,
    mode: Literal["reject", "strip"],
    validate_entry: bool,
) -> tuple[Any, WriteReport]:
    """Return the body to forward (possibly with fields stripped) and a report.

    Objects and lists are walked to any depth; every string leaf of a protected
    field is judged by `is_masked_placeholder` (every mask style, the gateway's
    own outputs), free text and unnamed keys by `masked_span`, and a `null` or a
    band floor written to a field this caller only sees masked counts as the
    gateway's output too. Raises MaskedValueWrite (reject mode), Forbidden (a
    category the decision does not let this caller write) or EntryValidationFailed.
    """
    report = WriteReport()
    if not isinstance(body, Mapping | list):
        return body, report
    if isinstance(body, list) and jsonpatch.is_patch(body):
        # the fields are in the operations' pointers: judged as the writes they make,
        # never rewritten (a stripped operation would change what the rest means)
        _check_patch_reads(body, route, taxonomy, decision)
        _, report = check_write(
            _patch_writes(body), route=route, taxonomy=taxonomy, decision=decision,
            mode="reject", validate_entry=False,
        )  # fmt: skip
        return body, report
    masked: list[str] = []
    walker = _Walker(route, taxonomy, decision, report, masked)
    out = walker.walk(body, "", "")
    if masked:
        if mode == "reject":
            raise MaskedValueWrite(
                "masked values must not overwrite stored data: " + ", ".join(masked),
                fields=masked,
            )
        report.stripped.extend(masked)
        out = _strip(out, set(masked), "")
    _check_permissions(report, decision)
    if validate_entry and route is not None and route.entry is not None and isinstance(out, dict):
        problems = validate(out, route)
        if problems:
            raise EntryValidationFailed(
                "entry validation failed: " + ", ".join(sorted(problems)), fields=problems
            )
    return out, report


def guard_body(
    body: WriteBody,
    *,
    route: RouteSpec | None,
    taxonomy: Taxonomy,
    decision: Decision,
    mode: Literal["reject", "strip"],
    validate_entry: bool,
) -> tuple[bytes | None, WriteReport]:
    """Check every reading of a parsed write body; the bytes to forward instead of
    the original (strip mode removed fields), or None to forward it unchanged.

    A body read more than one way (an unlabelled body that is also a form) cannot
    be rewritten to mean one thing, so its masked values are refused even in
    strip mode; entry validation applies to the primary reading.
    """
    for extra in body.also:  # the query string: checked, never rewritten
        check_write(extra.tree, route=route, taxonomy=taxonomy, decision=decision,
                    mode="reject", validate_entry=False)  # fmt: skip
    first: tuple[Any, WriteReport] | None = None
    for i, reading in enumerate(body.readings):
        checked = check_write(
            reading.tree,
            route=route,
            taxonomy=taxonomy,
            decision=decision,
            mode=mode if i == 0 and not body.ambiguous else "reject",
            validate_entry=validate_entry and i == 0 and reading.format != "text",
        )
        first = first or checked
    assert first is not None  # parse_write_body always returns at least one reading
    out, report = first
    if not report.stripped:
        return None, report
    return body.encode(out, frozenset(report.stripped)), report


def _child(name: str, key: str) -> str:
    return f"{name}.{key}" if name else key


class _Walker:
    """One write body's walk: classifies every key path, collects masked fields."""

    def __init__(
        self,
        route: RouteSpec | None,
        taxonomy: Taxonomy,
        decision: Decision,
        report: WriteReport,
        masked: list[str],
    ) -> None:
        self.route, self.taxonomy, self.decision = route, taxonomy, decision
        self.report, self.masked = report, masked

    def walk(self, node: Any, name: str, path: str) -> Any:
        """`name` is the report's field name (`a.b[0].c`), `path` the catalog's key
        path (`a.b.item.c`)."""
        if isinstance(node, list):
            item_path = f"{path}.item" if path else "item"
            items = []
            for i, v in enumerate(node):
                if not isinstance(v, Mapping | list):  # a string in a list is a value too
                    self._leaf(v, None, f"{name}[{i}]")
                items.append(self.walk(v, f"{name}[{i}]", item_path))
            return items
        if not isinstance(node, Mapping):
            return node
        out: dict[str, Any] = {}
        for k, v in node.items():
            key = str(k)
            child, field = _child(path, key), _child(name, key)
            category = _category(self.route, key, child)
            if category is None and isinstance(v, Mapping | list):
                out[k] = self.walk(v, field, child)
                continue
            out[k] = v
            self._leaf(v, category, field)
            if isinstance(v, Mapping | list):
                # a classified object (`consent: {...}`) may still carry keys of its own
                # category (`consent: {bank_card: ...}`): those are written too
                self.walk(v, field, child)
        return out

    def _leaf(self, value: Any, category: str | None, field: str) -> None:
        if category is None:
            self.report.unclassified.append(field)
            if isinstance(value, str):
                if masked_span(value):
                    self.masked.append(field)
                else:
                    self._classify_by_value(value, field)
                    self._scan_text(value, field)
        elif category == FREE_TEXT:
            self.report.free_text.append(field)
            if _any_text(value, masked_span):
                self.masked.append(field)
            for text in _texts(value):
                self._scan_text(text, field)
        else:
            self.report.fields[field] = category
            if (
                _is_placeholder(value, category, self.taxonomy)
                or _has_masked_span(value, category, self.taxonomy)
                or self._is_own_output(value, category)
            ):
                self.masked.append(field)

    def _classify_by_value(self, value: str, field: str) -> None:
        """An unnamed key holding an identifier (a card under `x1`) is that category:
        a caller may not write a card under a name the catalog does not know."""
        hit = classify_value(value.strip()) if 6 <= len(value) <= 64 else None
        if hit is not None and not self.decision.may_write(hit.category):
            self.report.unclassified.remove(field)
            self.report.fields[field] = hit.category

    def _scan_text(self, text: str, field: str) -> None:
        """Prose, a query language (GraphQL, OData, SQL) or a document carried as a string:
        an identifier in it the caller may not write makes the field that category."""
        if field in self.report.fields or len(text) < 5:
            return
        for hit in detect(text[:MAX_SCANNED]):
            if not self.decision.may_write(hit.category):
                if field in self.report.unclassified:
                    self.report.unclassified.remove(field)
                self.report.fields[field] = hit.category
                return

    def _is_own_output(self, value: Any, category: str) -> bool:
        """`null` (a redacted number, a hidden boolean) or a band floor (a banded
        amount kept numeric) over a field this caller does not see in clear."""
        try:
            cat = self.taxonomy.category(category)
        except KeyError:
            return False
        level = self.taxonomy.level(cat.level)
        shown_clear = (
            not level.never_clear
            and self.decision.field_action(cat.name, cat.level).verb is Verb.ALLOW
        )
        if shown_clear:
            return False
        if value is None:
            return True
        if isinstance(value, bool):
            return False
        if isinstance(value, int | float) and cat.kind in ("amount", "records"):
            return value in _BAND_FLOORS
        if isinstance(value, list):
            return any(self._is_own_output(v, category) for v in value)
        return False


def _texts(value: Any) -> list[str]:
    """Every string in a value (a free-text field may hold a list or an object)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _texts(v)]
    return []


def _any_text(value: Any, test: Any) -> bool:
    if isinstance(value, str):
        return bool(test(value))
    if isinstance(value, list):
        return any(_any_text(v, test) for v in value)
    if isinstance(value, Mapping):
        return any(_any_text(v, test) for v in value.values())
    return False


def _is_placeholder(value: Any, category: str, taxonomy: Taxonomy) -> bool:
    try:
        taxonomy.category(category)
    except KeyError:
        return bool(_any_text(value, masked_span))
    if isinstance(value, list):
        return any(_is_placeholder(v, category, taxonomy) for v in value)
    if isinstance(value, Mapping):
        return any(_is_placeholder(v, category, taxonomy) for v in value.values())
    if not isinstance(value, str):
        return False
    return is_masked_placeholder(value, category, taxonomy)


def _has_masked_span(value: Any, category: str, taxonomy: Taxonomy) -> bool:
    """A `free_form` category's value (a name, an address) whose clear form the enforcer
    scans and masks in place (a card typed into it): saved back, it carries a masked
    span. Other categories are one value each, left to `is_masked_placeholder` ("**"
    may well be part of a new password)."""
    if not isinstance(value, str):
        return False
    try:
        free_form = taxonomy.category(category).free_form
    except KeyError:
        return False
    return free_form and masked_span(value)


def _strip(node: Any, drop: set[str], name: str) -> Any:
    if isinstance(node, list):
        items = ((f"{name}[{i}]", v) for i, v in enumerate(node))
        return [_strip(v, drop, item) for item, v in items if item not in drop]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        child = _child(name, str(k))
        if child in drop:
            continue
        out[k] = _strip(v, drop, child)
    return out


def _patch_writes(body: list[Any]) -> Any:
    ops = jsonpatch.operations(body)
    if ops is None:
        raise UnsupportedMediaType(
            "the write body cannot be inspected: a JSON Patch operation the gateway cannot "
            "read (unknown op, pointer not a string, missing from)",
            reason="unreadable JSON Patch operation",
        )
    return jsonpatch.writes(ops)


def _check_patch_reads(
    body: list[Any], route: RouteSpec | None, taxonomy: Taxonomy, decision: Decision
) -> None:
    """`test`, `copy` and `move` read a field: it must be one the caller sees in clear."""
    ops = jsonpatch.operations(body) or []
    for op, pointer in jsonpatch.reads(ops):
        category = _pointer_category(route, pointer)
        if category is None or category == FREE_TEXT or _clear(taxonomy, decision, category):
            continue
        where = "/" + "/".join(pointer)
        raise ProtectedFieldPatch(
            f"a JSON Patch '{op}' reads a field above your clear level: {category} ({where})",
            op=op,
            path=where[:200],
            category=category,
        )


def _pointer_category(route: RouteSpec | None, pointer: tuple[str, ...]) -> str | None:
    """The category of the field a pointer names: its first classified key, as the
    walker would judge the same field sent as a body."""
    path = ""
    for token in pointer:
        if jsonpatch.is_index(token):
            path = f"{path}.item" if path else "item"
            continue
        path = _child(path, token)
        category = _category(route, token, path)
        if category is not None:
            return category
    return None


def _clear(taxonomy: Taxonomy, decision: Decision, category: str) -> bool:
    try:
        cat = taxonomy.category(category)
    except KeyError:
        return False  # unknown: never clear
    return not taxonomy.level(cat.level).never_clear and is_clear(decision, cat.name, cat.level)


def _check_permissions(report: WriteReport, decision: Decision) -> None:
    refused = sorted(n for n, c in report.fields.items() if not decision.may_write(c))
    if refused:
        raise Forbidden("not permitted to write: " + ", ".join(refused), fields=refused)


def validate(body: Mapping[str, Any], route: RouteSpec) -> dict[str, str]:
    """Entry validation problems as {field: reason}; empty when the entry is valid."""
    spec = route.entry
    if spec is None:
        return {}
    problems: dict[str, str] = {}
    for name in spec.required:
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems[name] = "required"
    for name, fmt in spec.formats.items():
        if name in problems or body.get(name) in (None, ""):
            continue
        reason = check_format(fmt, body[name])
        if reason:
            problems[name] = reason
    return problems


def check_format(fmt: str, value: Any) -> str | None:
    """None when `value` satisfies the entry format, else a short reason."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return "must be a string"
    text = str(value).strip()
    compact = text.translate(_SEPARATORS)
    if fmt == "not_blank":
        return None if text else "required"
    if fmt == "id_card":
        return None if resident_id_ok(compact.upper()) else "invalid ID number (check digit)"
    if fmt == "mobile":
        digits = compact.removeprefix("+86").removeprefix("0086")
        return None if mobile_ok(digits) else "invalid mobile number (segment)"
    if fmt == "bank_card":
        ok = compact.isdigit() and 13 <= len(compact) <= 19 and luhn_ok(compact)
        return None if ok else "invalid card number (Luhn)"
    if fmt == "email":
        return None if _EMAIL.fullmatch(text) else "invalid e-mail address"
    if fmt == "landline":
        return None if landline_area(compact) else "invalid landline number"
    return f"unknown format {fmt}"
