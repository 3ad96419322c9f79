"""Classification slots, per-record action tables and cached record plans.

The hot path of enforcement is "for each field of a record, what do I do?".
Everything that does not depend on the field's *value* is computed once and
cached:

- a `Slot` per (route, key path): the category from the catalog or the key
  name, or "free text", "walk inside", "classify by value";
- an `ActionTable` per (decision, matching record rules, bulk-limited levels):
  category -> (level, action), the decision's action made stricter by every
  matching record rule;
- a `Plan` per (record key tuple, table): the fields that need masking, the
  fields that need a look at their value, the report batch and the levels
  shown in clear. Records of one route nearly always share their key tuple,
  so a 20-record page builds one plan and reuses it 19 times.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gateway.core import detectors
from gateway.core.catalog import Packed, RouteSpec, suspect_key
from gateway.core.model import DROP, Action, Decision, RecordRule, Verb
from gateway.core.report import FieldKey, outcome_of
from gateway.core.taxonomy import Taxonomy

CAT, TEXT, WALK, SCAN, PACKED = 0, 1, 2, 3, 4
STRICT = Action(Verb.MASK, "strict")
REDACT = Action(Verb.REDACT)


@dataclass(frozen=True, slots=True)
class Slot:
    mode: int  # CAT | TEXT | WALK | SCAN | PACKED
    category: str | None = None
    source: str = ""  # catalog | key (for explain)
    packed: Packed | None = None  # PACKED: several people's fields in one value


@lru_cache(maxsize=8192)
def category_for_key(key: str) -> str | None:
    """The detectors' key-name mapping, memoised (keys repeat across requests)."""
    return detectors.category_for_key(key)


class Classifier:
    """Slots for one route (or for no route: key names and values only)."""

    __slots__ = ("_memo", "csv_columns", "route")

    def __init__(self, route: RouteSpec | None) -> None:
        self.route = route
        self.csv_columns = dict(route.csv_columns) if route else {}
        self._memo: dict[tuple[str, str], Slot] = {}

    def slot(self, key: str, path: str) -> Slot:
        memo_key = (key, path)
        found = self._memo.get(memo_key)
        if found is not None:
            return found
        found = self._classify(key, path)
        if len(self._memo) < 8192:
            self._memo[memo_key] = found
        return found

    def column(self, name: str) -> Slot:
        named = self.csv_columns.get(name)
        if isinstance(named, Packed):
            return Slot(PACKED, None, "catalog", named)
        return Slot(CAT, named, "catalog") if named else self.slot(name, name)

    def _classify(self, key: str, path: str) -> Slot:
        rule = self.route.rule_for(key, path) if self.route else None
        if rule is not None:
            if rule.category is not None:
                return Slot(CAT, rule.category, "catalog")
            if rule.packed is not None:
                return Slot(PACKED, None, "catalog", rule.packed)
            return Slot(TEXT if rule.text else WALK, None, "catalog")
        category = category_for_key(key) if key else None
        if category is not None:
            return Slot(CAT, category, "key")
        if key and detectors.is_free_text_key(key):
            return Slot(TEXT, None, "key")
        return Slot(SCAN)


def envelope_slot(classifier: Classifier, parts: list[str]) -> tuple[str, Slot]:
    """The key and slot for a scalar outside any record, from its key path (list
    positions spelled `item`): the outermost categorised ancestor wins (an
    envelope `holdings: [...]` is holdings leaf by leaf), else the scalar's own
    key (for a list member, its list's key)."""
    key = ""
    for i, part in enumerate(parts):
        if part == "item":
            continue
        key = part
        if i < len(parts) - 1:
            slot = classifier.slot(part, ".".join(parts[: i + 1]))
            if slot.mode == CAT:
                return part, slot
    return key, classifier.slot(key, ".".join(parts))


def packed_clear(slot: Slot, table: ActionTable) -> tuple[str, ...]:
    """The levels a packed value shows in clear under `table` (for the bulk quota:
    the people in one cell count like the fields of the record holding them)."""
    if slot.packed is None:
        return ()
    found = (table.action(category) for category in slot.packed.fields)
    return tuple(level for level, act in found if act.verb is Verb.ALLOW)


class ActionTable:
    """category -> (level, action) for one set of matching record rules."""

    __slots__ = (
        "_decision",
        "_memo",
        "_never_clear",
        "_rules",
        "_taxonomy",
        "bulk",
        "rules_key",
        "strict",
    )

    def __init__(
        self,
        decision: Decision,
        rules: tuple[RecordRule, ...],
        bulk: frozenset[str],
        taxonomy: Taxonomy,
        rules_key: tuple[int, ...] = (),
        *,
        strict: bool = False,
    ) -> None:
        self._decision = decision
        # strict: side data whose record facts are unknown (catalog `side: mask: strict`),
        # every category masked strict at least, as if every record rule matched
        self.strict = strict
        self._rules = rules
        self.bulk = bulk
        self.rules_key = rules_key
        self._taxonomy = taxonomy
        self._never_clear = frozenset(lv.code for lv in taxonomy.levels if lv.never_clear)
        self._memo: dict[str, tuple[str, Action]] = {}

    def action(self, category: str) -> tuple[str, Action]:
        """The level and the action for a category. A category the taxonomy does not
        know (a catalog typo, a detector ahead of the taxonomy) counts as the top
        level and is dropped whatever the decision says: fail closed."""
        found = self._memo.get(category)
        if found is not None:
            return found
        try:
            level = self._taxonomy.category(category).level
        except KeyError:
            found = (self._taxonomy.levels[-1].code, DROP)
            self._memo[category] = found
            return found
        act = self._decision.field_action(category, level)
        for rule in self._rules:
            # a rule names categories (model.RecordRule); a level code there
            # covers every category of that level (an addition, same ordering)
            for extra in (rule.fields.get(category), rule.fields.get(level)):
                if extra is not None:
                    if self.strict and extra.verb is Verb.BLOCK:
                        extra = DROP  # a rule that may not apply never refuses the response
                    act = act.stricter(extra)
        if self.strict or level in self.bulk:
            act = act.stricter(STRICT)
        if level in self._never_clear and act.verb is Verb.ALLOW:
            act = REDACT
        self._memo[category] = (level, act)
        return level, act


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with a record of one key tuple under one action table."""

    # key, category, action (mask and the like), residue pattern (see Shared.residue)
    work: tuple[tuple[str, str, Action, re.Pattern[str] | None], ...]
    drops: tuple[str, ...]  # keys removed outright
    dynamic: tuple[tuple[str, Slot], ...]  # fields whose value must be looked at
    batch: tuple[FieldKey, ...]  # report entries of the fixed fields
    clear_levels: frozenset[str]
    blocked: str | None  # a category whose action is BLOCK
    # clear fields of a free-form category (a name, an address) and the pattern that
    # says one holds an identifier besides (see Shared.clear_residue): scanned
    scans: tuple[tuple[str, re.Pattern[str]], ...] = ()
    # keys that may themselves hold an identifier (`{"13812345678": ...}`): scanned
    suspect: frozenset[Any] = frozenset()
    # every key with a catalogued category: a container there may hold a record
    categorised: tuple[Any, ...] = ()


def build_plan(
    keys: tuple[Any, ...],
    classifier: Classifier,
    table: ActionTable,
    residue: Callable[[str, Action], re.Pattern[str] | None],
    clear_residue: Callable[[str], re.Pattern[str] | None],
) -> Plan:
    work: list[tuple[str, str, Action, re.Pattern[str] | None]] = []
    scans: list[tuple[str, re.Pattern[str]]] = []
    drops: list[str] = []
    dynamic: list[tuple[str, Slot]] = []
    batch: list[FieldKey] = []
    clear: set[str] = set()
    blocked = None
    for key in keys:
        skey = str(key)
        slot = classifier.slot(skey, skey)
        if slot.mode != CAT or slot.category is None or slot.category in detectors.USCC_CATEGORIES:
            dynamic.append((key, slot))  # (a credit code's own prefix says whose it is)
            clear.update(packed_clear(slot, table))
            continue
        level, act = table.action(slot.category)
        batch.append((slot.category, level, outcome_of(act)))
        if act.verb is Verb.ALLOW:
            clear.add(level)
            pattern = clear_residue(slot.category)
            if pattern is not None:
                scans.append((key, pattern))
        elif act.verb is Verb.BLOCK:
            blocked = blocked or slot.category
        elif act.verb is Verb.DROP:
            drops.append(key)
        else:
            work.append((key, slot.category, act, residue(slot.category, act)))
    dynamic_keys = {k for k, _ in dynamic}
    return Plan(
        tuple(work),
        tuple(drops),
        tuple(dynamic),
        tuple(batch),
        frozenset(clear),
        blocked,
        tuple(scans),
        frozenset(k for k in keys if suspect_key(str(k))),
        tuple(k for k in keys if k not in dynamic_keys),
    )
