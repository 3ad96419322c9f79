"""`crm-gateway explain`: what the gateway would do with each field of a sample body.

The security team writes catalogs and policies; before deploying them they want
to see, for a captured response, every field's category, level, how it was
classified (catalog rule, key name or value detector) and the resulting action.
The classification walks the sample with the enforcer's own classifier and action
tables; the action and the value sent are then read from what the enforcer itself
makes of the sample (the body a caller of that clearance would get), so the table
cannot drift from enforcement: a field a record rule, a bulk limit or a record's
own-value masking changed shows what was done to it, and a field the enforcer left
alone says `allow` whatever the tables predicted.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, replace
from typing import Any

import orjson

from gateway.core import detectors
from gateway.core.catalog import Catalog, RouteSpec, record_facts
from gateway.core.enforce import build_enforcer
from gateway.core.enforce._tables import (
    CAT,
    TEXT,
    ActionTable,
    Classifier,
    Slot,
    envelope_slot,
)
from gateway.core.masking import Masker
from gateway.core.model import Action, Decision, RecordVerb
from gateway.core.rewrite import BlockResponse
from gateway.core.static_policy import static_decision, synthetic_subject
from gateway.core.taxonomy import Taxonomy

EXPLAIN_SUBJECT = "explain"
UNCLASSIFIED = "(none)"  # a value scanned without finding anything: passed as is
DROPPED_TEXT = "(removed)"
# Pseudonyms in the sent column are keyed with this fixed key, never the gateway's.
_EXPLAIN_KEY = b"crm-gateway explain: not a deployment key"
_SPAN = re.compile(r"\[\d+:\d+\]$")
_SHOWN_MAX = 40


@dataclass(frozen=True, slots=True)
class ExplainRow:
    path: str
    category: str
    level: str
    detector: str  # catalog | key | <detector name> | record-rule
    confidence: float
    action: str
    sent: str = ""  # the value as the enforcer sends it (masked), or DROPPED_TEXT


def _action_text(action: Action) -> str:
    return f"{action.verb.value}:{action.style}" if action.style else action.verb.value


class _Explainer:
    def __init__(self, taxonomy: Taxonomy, route: RouteSpec | None, decision: Decision) -> None:
        self.taxonomy = taxonomy
        self.route = route
        self.decision = decision
        self.classifier = Classifier(route)
        self.prefixes = frozenset(route.records) if route else frozenset()
        self.rows: list[ExplainRow] = []

    def table(self, rules: tuple[int, ...]) -> ActionTable:
        chosen = tuple(self.decision.records[i] for i in rules)
        return ActionTable(self.decision, chosen, frozenset(), self.taxonomy, rules)

    def node(self, node: Any, path: str, prefix: str, table: ActionTable) -> None:
        if isinstance(node, dict) and prefix in self.prefixes:
            self.record(node, path, table)
        elif isinstance(node, dict):
            for k, v in node.items():
                self.node(v, _join(path, str(k)), _join(prefix, str(k)), table)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self.node(v, f"{path}[{i}]", _join(prefix, "item"), table)
        else:
            key, slot = envelope_slot(self.classifier, prefix.split(".") if prefix else [])
            self.value(node, key, prefix, path, slot, table)

    def record(self, record: dict[str, Any], path: str, base: ActionTable) -> None:
        facts = record_facts(record, self.route.facts if self.route else None)
        rules = self.decision.records
        matched = tuple(i for i, r in enumerate(rules) if r.matches(facts, EXPLAIN_SUBJECT))
        verb = max((rules[i].record for i in matched), key=_RECORD_RANK.__getitem__, default=None)
        if verb is not None and verb is not RecordVerb.SHOW:
            reason = "; ".join(rules[i].reason for i in matched if rules[i].reason)
            self.rows.append(
                ExplainRow(path or "$", "(record)", "", f"record-rule {reason}".strip(), 1.0,
                           verb.value)
            )  # fmt: skip
            return
        table = self.table(matched) if matched else base
        for k, v in record.items():
            key = str(k)
            self.value(v, key, key, _join(path, key), self.classifier.slot(key, key), table)

    def value(
        self, value: Any, key: str, kpath: str, path: str, slot: Slot, table: ActionTable
    ) -> None:
        if value is None or isinstance(value, bool):
            return
        if slot.mode == CAT and slot.category is not None:
            self.add(path, slot.category, slot.source, 1.0, table)
        elif slot.packed is not None:
            for category in dict.fromkeys(slot.packed.fields):  # one row per category
                self.add(path, category, "catalog (packed)", 1.0, table)
        elif isinstance(value, dict):
            for k, v in value.items():
                child = _join(kpath, str(k))
                self.value(v, str(k), child, _join(path, str(k)),
                           self.classifier.slot(str(k), child), table)  # fmt: skip
        elif isinstance(value, list):
            child = _join(kpath, "item")
            slot = self.classifier.slot(key, child)
            for i, v in enumerate(value):
                self.value(v, key, child, f"{path}[{i}]", slot, table)
        elif isinstance(value, str) and slot.mode == TEXT:
            if not self.text(value, path, table):
                self.rows.append(ExplainRow(path, UNCLASSIFIED, "", "free text", 0.0, "allow"))
        elif isinstance(value, str | int) and not isinstance(value, bool):
            hit = detectors.classify_value(str(value), key_hint=key or None)
            if hit is not None:
                self.add(path, hit.category, hit.detector, hit.confidence, table)
            elif not (isinstance(value, str) and self.text(value, path, table)):
                self.rows.append(ExplainRow(path, UNCLASSIFIED, "", "scanned", 0.0, "allow"))

    def text(self, text: str, path: str, table: ActionTable) -> int:
        hits = detectors.detect(text)
        for hit in hits:
            self.add(f"{path}[{hit.start}:{hit.end}]", hit.category, hit.detector,
                     hit.confidence, table)  # fmt: skip
        return len(hits)

    def add(self, path: str, category: str, source: str, conf: float, table: ActionTable) -> None:
        level, action = table.action(category)
        self.rows.append(ExplainRow(path, category, level, source, conf, _action_text(action)))


_RECORD_RANK = {RecordVerb.SHOW: 0, RecordVerb.DROP: 1, RecordVerb.BLOCK: 2}


def _join(base: str, part: str) -> str:
    return f"{base}.{part}" if base else part


def explain_sample(
    taxonomy: Taxonomy,
    catalog: Catalog | None,
    route_or_none: RouteSpec | None,
    doc: Any,
    decision_or_level: Decision | str,
) -> list[ExplainRow]:
    """One row per classified field (or detected span) of `doc`, in document order.

    `decision_or_level` is a Decision, or a level code for a synthetic caller of
    that clearance under the static table. Record rules are evaluated for a
    caller who is assigned no records. Without a route, the catalog's own rules
    apply and records are looked for under every prefix any route declares (a
    root-level record, prefix "", then takes the whole document).
    """
    if isinstance(decision_or_level, str):
        try:
            level = taxonomy.level(decision_or_level).code
        except KeyError:
            raise ValueError(f"unknown level {decision_or_level!r}") from None
        decision = static_decision(taxonomy, synthetic_subject(level), method="GET")
    else:
        decision = decision_or_level
    route = route_or_none
    if route is None and catalog is not None:
        route = catalog.any_route()
    explainer = _Explainer(taxonomy, route, decision)
    if route_or_none is None and isinstance(doc, dict):
        heads = {p.split(".", 1)[0] for p in explainer.prefixes if p}
        if heads & set(doc):  # the records are inside: the root is an envelope
            explainer.prefixes -= {""}
    explainer.node(doc, "", "", explainer.table(()))
    return _as_enforced(explainer.rows, doc, taxonomy, route, decision)


def _as_enforced(
    rows: list[ExplainRow],
    doc: Any,
    taxonomy: Taxonomy,
    route: RouteSpec | None,
    decision: Decision,
) -> list[ExplainRow]:
    """The rows with the action and value the enforcer gives each field of `doc`."""
    enforcer = build_enforcer(
        taxonomy=taxonomy,
        route=route,
        decision=decision,
        subject_id=EXPLAIN_SUBJECT,
        masker=Masker(taxonomy, _EXPLAIN_KEY),
        label="explain",
    )
    try:
        out = enforcer.rewrite_document(copy.deepcopy(doc))
    except BlockResponse as exc:  # the whole response is refused: say so first
        return [ExplainRow("$", "(response)", "", f"enforcer: {exc}", 1.0, "block"), *rows]
    dropped = {r.path for r in rows if r.category == "(record)" and r.action == "drop"}
    before, after = _nodes(doc), _aligned(doc, out, "", dropped, {})
    covered = set(dropped)  # a dropped record's row stands for its fields
    enforced = []
    for row in rows:
        node = _SPAN.sub("", row.path)
        if row.category == "(record)" or node not in before:
            enforced.append(row)
            continue
        covered.add(node)
        done = _done(row.action, before[node], after.get(node, _GONE))
        enforced.append(replace(row, action=done, sent=_sent(after.get(node, _GONE))))
    for node, value in before.items():  # changed by the enforcer, in no classified field
        if isinstance(value, dict | list) or any(p in covered for p in _prefixes(node)):
            continue
        got = after.get(node, _GONE)
        if got != value:
            enforced.append(
                ExplainRow(node, "(record)", "", "enforcer", 1.0, _done("", value, got), _sent(got))
            )
    return enforced


_GONE = object()  # not in the enforced document


def _done(predicted: str, value: Any, got: Any) -> str:
    """What the enforcer did to one node; a mask keeps the style the table predicted."""
    if got is _GONE:
        return "drop"
    if got == value:
        return "allow"
    return predicted if predicted.startswith("mask") else "mask"


def _sent(got: Any) -> str:
    if got is _GONE:
        return DROPPED_TEXT
    text = got if isinstance(got, str) else orjson.dumps(got).decode()
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 1] + "…"


def _nodes(node: Any, path: str = "") -> dict[str, Any]:
    """Every node of a document (containers too) by the rows' spelling (`a.b[0].c`)."""
    out: dict[str, Any] = {path: node}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(_nodes(v, _join(path, str(k))))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.update(_nodes(v, f"{path}[{i}]"))
    return out


def _aligned(
    old: Any, new: Any, path: str, dropped: set[str], out: dict[str, Any]
) -> dict[str, Any]:
    """The enforced document's nodes under the paths they had in the sample: a list the
    enforcer dropped records from is matched element by element (the records the
    record rules drop first, then by the fields each kept element shares)."""
    out[path] = new
    if isinstance(old, dict) and isinstance(new, dict):
        for k, v in new.items():
            if k in old:
                _aligned(old[k], v, _join(path, str(k)), dropped, out)
    elif isinstance(old, list) and isinstance(new, list):
        kept = [i for i in range(len(old)) if f"{path}[{i}]" not in dropped]
        if len(kept) != len(new):
            kept = _match(old, new)
        for j, i in enumerate(kept):
            _aligned(old[i], new[j], f"{path}[{i}]", dropped, out)
    return out


def _match(old: list[Any], new: list[Any]) -> list[int]:
    """For each element of `new`, in order, the index of the element of `old` it is
    (elements are only ever removed): the closest by equal fields within reach."""
    picked, cursor, spare = [], 0, len(old) - len(new)
    for j, element in enumerate(new):
        reach = range(cursor, min(len(old), cursor + max(spare, 0) + 1))
        i = max(reach, key=lambda i: _likeness(old[i], element), default=min(j, len(old) - 1))
        spare -= i - cursor
        picked.append(i)
        cursor = i + 1
    return picked


def _likeness(old: Any, new: Any) -> float:
    if isinstance(old, dict) and isinstance(new, dict):
        return sum(1.0 if old[k] == v else 0.25 for k, v in new.items() if k in old)
    return 1.0 if old == new else 0.0


def _prefixes(path: str) -> list[str]:
    """The path and the paths of the containers it is in."""
    cuts = [i for i, ch in enumerate(path) if ch in ".["]
    return [path, *(path[:i] for i in cuts)]


def format_rows(rows: list[ExplainRow]) -> str:
    """A plain text table (fixed-width columns; CJK counted as two cells)."""
    header = ("field", "category", "level", "classified by", "conf", "action", "sent")
    body = [
        (r.path, r.category, r.level, r.detector, f"{r.confidence:.2f}", r.action, r.sent)
        for r in rows
    ]
    widths = [max(_width(x) for x in col) for col in zip(header, *body, strict=False)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=True))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header).rstrip(), rule, *(line(b).rstrip() for b in body)]) + "\n"


def _width(text: str) -> int:
    return sum(2 if "\u2e80" <= ch <= "\ufaff" or "\uff00" <= ch <= "\uffef" else 1 for ch in text)
