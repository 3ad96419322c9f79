"""Request-side checks on writes (POST/PUT/PATCH bodies, JSON or form-encoded).

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.core.catalog import RouteSpec
from gateway.core.detectors import category_for_key, is_free_text_key
from gateway.core.detectors.checks import landline_area, luhn_ok, mobile_ok, resident_id_ok
from gateway.core.masking import is_masked_placeholder
from gateway.core.model import Decision
from gateway.core.taxonomy import Taxonomy
from gateway.errors import EntryValidationFailed, Forbidden, MaskedValueWrite

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
# Masked spans the enforcer leaves in free text: "**" runs and pseudonym tokens.
# Notes saved back with them would replace the real numbers in the CRM.
_MASKED_SPAN = re.compile(r"\*{2,}|(?<![A-Za-z0-9])pn_[a-z2-7]{16}(?![A-Za-z0-9])")


def _category(route: RouteSpec | None, key: str, path: str) -> str | None:
    rule = route.rule_for(key, path) if route else None
    if rule is not None and rule.category is not None:
        return rule.category
    if rule is not None and rule.text:
        return FREE_TEXT
    if rule is None and is_free_text_key(key):
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

    Raises MaskedValueWrite (reject mode), Forbidden (a category the decision
    does not let this caller write) or EntryValidationFailed.
    """
    report = WriteReport()
    if not isinstance(body, Mapping):
        if isinstance(body, list):
            out_list = [_check_object(item, route, taxonomy, mode, report, f"[{i}].")
                        if isinstance(item, Mapping) else item
                        for i, item in enumerate(body)]  # fmt: skip
            _check_permissions(report, decision)
            return out_list, report
        return body, report
    out = _check_object(body, route, taxonomy, mode, report, "")
    _check_permissions(report, decision)
    if validate_entry and route is not None and route.entry is not None:
        problems = validate(out, route)
        if problems:
            raise EntryValidationFailed(
                "entry validation failed: " + ", ".join(sorted(problems)), fields=problems
            )
    return out, report


def _check_object(
    body: Mapping[str, Any],
    route: RouteSpec | None,
    taxonomy: Taxonomy,
    mode: str,
    report: WriteReport,
    prefix: str,
) -> dict[str, Any]:
    masked: list[str] = []
    out = _walk(body, route, taxonomy, report, masked, prefix, "")
    if masked:
        if mode == "reject":
            raise MaskedValueWrite(
                "masked values must not overwrite stored data: " + ", ".join(masked),
                fields=masked,
            )
        report.stripped.extend(masked)
        out = _strip(out, {m.removeprefix(prefix) for m in masked}, "")
    return out


def _walk(
    node: Mapping[str, Any],
    route: RouteSpec | None,
    taxonomy: Taxonomy,
    report: WriteReport,
    masked: list[str],
    prefix: str,
    path: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in node.items():
        key = str(k)
        child = f"{path}.{key}" if path else key
        name = prefix + child
        category = _category(route, key, child)
        if isinstance(v, Mapping) and category is None:
            out[k] = _walk(v, route, taxonomy, report, masked, prefix, child)
            continue
        out[k] = v
        if category is None:
            report.unclassified.append(name)
        elif category == FREE_TEXT:
            report.free_text.append(name)
            if isinstance(v, str) and _MASKED_SPAN.search(v):
                masked.append(name)
        else:
            report.fields[name] = category
            if _is_placeholder(v, category, taxonomy) or _has_masked_span(v, category, taxonomy):
                masked.append(name)
    return out


def _is_placeholder(value: Any, category: str, taxonomy: Taxonomy) -> bool:
    try:
        taxonomy.category(category)
    except KeyError:
        return False
    if isinstance(value, list):
        return any(_is_placeholder(v, category, taxonomy) for v in value)
    if not isinstance(value, str):
        return False
    return is_masked_placeholder(value, category, taxonomy)


def _has_masked_span(value: Any, category: str, taxonomy: Taxonomy) -> bool:
    """A `free_form` category's value (a name, an address) whose clear form the enforcer
    scans and masks in place (a card typed into it): saved back, it carries a masked
    span. Other categories are one value each, left to `is_masked_placeholder` ("**"
    may well be part of a new password)."""
    if not isinstance(value, str) or ("*" not in value and "pn_" not in value):
        return False
    try:
        free_form = taxonomy.category(category).free_form
    except KeyError:
        return False
    return free_form and _MASKED_SPAN.search(value) is not None


def _strip(node: dict[str, Any], drop: set[str], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in node.items():
        child = f"{path}.{k}" if path else str(k)
        if child in drop:
            continue
        out[k] = _strip(v, drop, child) if isinstance(v, dict) else v
    return out


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
