"""`crm-gateway explain`: what the gateway would do with each field of a sample body.

The security team writes catalogs and policies; before deploying them they want
to see, for a captured response, every field's category, level, how it was
classified (catalog rule, key name or value detector) and the resulting action.
This walks the sample with the same classifier and action tables the enforcer
uses, so the table cannot drift from enforcement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core import detectors
from gateway.core.catalog import Catalog, RouteSpec, record_facts
from gateway.core.enforce._tables import (
    CAT,
    TEXT,
    ActionTable,
    Classifier,
    Slot,
    envelope_slot,
)
from gateway.core.model import Action, Decision, RecordVerb
from gateway.core.static_policy import static_decision, synthetic_subject
from gateway.core.taxonomy import Taxonomy

EXPLAIN_SUBJECT = "explain"
UNCLASSIFIED = "(none)"  # a value scanned without finding anything: passed as is


@dataclass(frozen=True, slots=True)
class ExplainRow:
    path: str
    category: str
    level: str
    detector: str  # catalog | key | <detector name> | record-rule
    confidence: float
    action: str


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
    return explainer.rows


def format_rows(rows: list[ExplainRow]) -> str:
    """A plain text table (fixed-width columns; CJK counted as two cells)."""
    header = ("field", "category", "level", "classified by", "conf", "action")
    body = [
        (r.path, r.category, r.level, r.detector, f"{r.confidence:.2f}", r.action) for r in rows
    ]
    widths = [max(_width(x) for x in col) for col in zip(header, *body, strict=False)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=True))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header).rstrip(), rule, *(line(b).rstrip() for b in body)]) + "\n"


def _width(text: str) -> int:
    return sum(2 if "\u2e80" <= ch <= "\ufaff" or "\uff00" <= ch <= "\uffef" else 1 for ch in text)
