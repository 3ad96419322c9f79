"""Tables shared by every enforcer built for the same (taxonomy, route, decision).

Decisions are cached by the policy engine, so the same Decision object serves many
responses; its action tables and record plans are kept on the decision itself
(`Decision.enforcement_cache`), so a new enforcer starts warm and the tables go when
the engine lets the decision go. There is no process-wide cache. An entry holds
the taxonomy and route it was built for and is only taken for those same objects.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.core.catalog import FactsReader, FactsSpec, RecordShape, RouteSpec, SideRule
from gateway.core.enforce._tables import ActionTable, Classifier, Plan, Slot, build_plan
from gateway.core.model import Action, Decision, RecordVerb, Verb
from gateway.core.taxonomy import Taxonomy

_MAX_ROUTES = 64  # per decision: the catalog's routes, and the fallback
_MAX_PLANS = 1024


class Shared:
    __slots__ = (
        "__weakref__",
        "_clear_residue",
        "_residue",
        "_side_memo",
        "_tables",
        "_unread",
        "ancestors",
        "base",
        "classifier",
        "decision",
        "drops_records",
        "envelope",
        "facts",
        "hidden_totals",
        "identifying",
        "masked_texts",
        "needs",
        "never_clear",
        "plans",
        "route",
        "shape",
        "side",
        "side_owners",
        "taxonomy",
        "wide",
    )
    # After a category's operator ran, a run of 9+ digits (identifiers are
    # longer than dates, which have 8) or an "@" left in the
    # output means the field held something else too (a card typed into a name
    # field): the output is then scanned like free text. E-mail masks keep their
    # "@" by design, so for them only digit runs count.
    _residue_any = re.compile(r"\d(?:[ -]?\d){8,}|@")
    _residue_digits = re.compile(r"\d(?:[ -]?\d){8,}")

    def __init__(self, taxonomy: Taxonomy, route: RouteSpec | None, decision: Decision) -> None:
        self.taxonomy = taxonomy
        self.route = route
        self.decision = decision
        self.classifier = Classifier(route)
        self.never_clear = frozenset(lv.code for lv in taxonomy.levels if lv.never_clear)
        self._tables: dict[tuple[tuple[int, ...], frozenset[str]], ActionTable] = {}
        self.plans: dict[tuple[int, tuple[Any, ...]], Plan] = {}
        self._residue: dict[tuple[str, Action], re.Pattern[str] | None] = {}
        self._clear_residue: dict[str, re.Pattern[str] | None] = {}
        self.envelope: dict[str, tuple[str, Slot]] = {}  # dotted path -> key, slot
        # free text as masked under a table by a masker (see ValueRewriter._masked_text)
        self.masked_texts: dict[tuple[str, int, int], tuple[object, object, str]] = {}
        self.facts = FactsReader(route.facts if route else FactsSpec())
        self.base = self.table((), frozenset())
        self._record_model(taxonomy, route, decision)
        self.side = route.side if route else ()
        self.side_owners = frozenset(r.owner for r in self.side if r.treatment == "of")
        self._side_memo: dict[str, SideRule | None] = {}
        self._unread: ActionTable | None = None

    def side_at(self, path: str) -> SideRule | None:
        """The first side-data rule whose glob matches `path` (memoised, bounded)."""
        try:
            return self._side_memo[path]
        except KeyError:
            pass
        found = next((r for r in self.side if r.matches(path)), None) if path else None
        if len(self._side_memo) < 4096:
            self._side_memo[path] = found
        return found

    def side_within(self, dotted: str) -> SideRule | None:
        """The side rule for a scalar at `dotted` or for any container above it (a
        streamed envelope hands scalars over one by one)."""
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):
            found = self.side_at(".".join(parts[:i]))
            if found is not None:
                return found
        return None

    @property
    def strict(self) -> ActionTable:
        """The table for side data whose record facts are unknown: every record rule's
        field additions and at least a strict mask for every category. Without record
        rules there is nothing the facts would change: the decision's own table."""
        return self.unread if self.decision.records else self.base

    @property
    def unread(self) -> ActionTable:
        """The table for a value the gateway cannot read positively (a packed value
        whose shape the catalog does not describe): every category masked strict at
        least, whatever the caller's clearance, with every record rule's additions."""
        if self._unread is None:
            rules = self.decision.records
            key = tuple(range(len(rules)))
            self._unread = ActionTable(
                self.decision, rules, frozenset(), self.taxonomy, key, strict=True
            )
        return self._unread

    def _record_model(
        self, taxonomy: Taxonomy, route: RouteSpec | None, decision: Decision
    ) -> None:
        """What the record model needs, once per (route, decision): the catalog-wide
        facts (records recognised by shape on every route), the facts the record
        rules test (a record without them cannot be checked), the categories that
        identify a customer (outside every record they cannot be checked either),
        the declared prefixes' ancestors (envelope objects, never records) and the
        envelope totals hidden when the rules may drop records."""
        wide = (route.wide_facts or route.facts) if route else FactsSpec()
        self.wide = FactsReader(wide)
        self.shape = RecordShape(wide)
        self.needs = frozenset(
            key for rule in decision.records for key in rule.when if key in ("grade", "tier")
        )
        self.identifying: frozenset[str] = frozenset()
        if self.needs:
            self.identifying = frozenset(
                name
                for name, cat in taxonomy.categories.items()
                if name == "customer_no" or taxonomy.level_rank(cat.level) >= 2
            )
        records = route.records if route else ()
        self.ancestors = frozenset(
            ".".join(parts[:i])
            for p in records
            for parts in [p.split(".")]
            if p
            for i in range(len(parts))
        )
        drops = any(rule.record is not RecordVerb.SHOW for rule in decision.records)
        self.hidden_totals = route.totals if route and drops else frozenset()
        self.drops_records = drops

    def residue(self, category: str, action: Action) -> re.Pattern[str] | None:
        """The pattern that flags a masked value as still holding another identifier;
        None where the operator's output is fixed (redaction, tokens, "fixed" masks)."""
        key = (category, action)
        if key in self._residue:
            return self._residue[key]
        found: re.Pattern[str] | None = self._residue_any
        try:
            cat = self.taxonomy.category(category)
        except KeyError:
            cat = None
        if action.verb in (Verb.REDACT, Verb.PSEUDONYMISE, Verb.DROP):
            found = None
        elif cat is not None:
            fixed = action.verb is Verb.MASK and cat.masks.get(action.style or "") == "fixed"
            if fixed or cat.level in self.never_clear:
                found = None
            elif cat.kind == "email":
                found = self._residue_digits
        self._residue[key] = found
        return found

    def clear_residue(self, category: str) -> re.Pattern[str] | None:
        """For a field the caller may see in clear: the pattern that flags it as holding
        another identifier too, which is then scanned like free text (only the spans
        above the caller's clearance change). Only for the taxonomy's `free_form`
        categories (names, addresses: typed by staff); a clear mobile or card is
        exactly what was allowed, and scanning every clear field costs."""
        if category in self._clear_residue:
            return self._clear_residue[category]
        try:
            free_form = self.taxonomy.category(category).free_form
        except KeyError:
            free_form = False
        found = self._residue_any if free_form else None
        self._clear_residue[category] = found
        return found

    def table(self, rules_key: tuple[int, ...], bulk: frozenset[str]) -> ActionTable:
        key = (rules_key, bulk)
        found = self._tables.get(key)
        if found is None:
            rules = tuple(self.decision.records[i] for i in rules_key)
            found = ActionTable(self.decision, rules, bulk, self.taxonomy, rules_key)
            self._tables[key] = found
        return found

    def plan(self, keys: tuple[Any, ...], table: ActionTable) -> Plan:
        key = (id(table), keys)
        found = self.plans.get(key)
        if found is None:
            found = build_plan(keys, self.classifier, table, self.residue, self.clear_residue)
            if len(self.plans) < _MAX_PLANS:
                self.plans[key] = found
        return found


def shared_for(taxonomy: Taxonomy, route: RouteSpec | None, decision: Decision) -> Shared:
    cache = decision.enforcement_cache
    key = (id(taxonomy), id(route))
    found: Shared | None = cache.get(key)
    if found is None or found.taxonomy is not taxonomy or found.route is not route:
        found = Shared(taxonomy, route, decision)
        if len(cache) >= _MAX_ROUTES:
            del cache[next(iter(cache))]
        cache[key] = found
    return found
