"""The record enforcer: one Decision applied to the customer data of one response.

Per field: the category comes from the catalog rule, else the key name, else
the value's detectors; the level from the taxonomy; the action from the
decision, made stricter by every record rule matching the record, and by the
bulk rule once a level's quota of clear records is used up. Free text and
unclassified strings are scanned and only the detected spans are masked.

The enforcer is stateful across records (bulk quota, report) so a streaming
codec can call `rewrite_record` record by record in bounded memory. It never
changes its inputs: a rewritten record is a copy, so the handler's report-only
mode can still forward the original body.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import orjson

from gateway.core.catalog import FactsReader, RouteSpec, suspect_key
from gateway.core.detectors import USCC_CATEGORIES
from gateway.core.enforce._shared import Shared, shared_for
from gateway.core.enforce._tables import (
    CAT,
    ActionTable,
    Plan,
    Slot,
    envelope_slot,
    packed_clear,
)
from gateway.core.enforce._values import ValueRewriter
from gateway.core.masking import DROPPED, Masker
from gateway.core.model import Decision, RecordVerb, Verb
from gateway.core.observe import Observer
from gateway.core.report import EnforcementReport, outcome_of
from gateway.core.reveal import RevealTargets
from gateway.core.rewrite import BlockResponse, UnidentifiedRecords
from gateway.core.taxonomy import Taxonomy

# tuples for isinstance: a `dict | list` union is rebuilt at every call (Python 3.11)
_CONTAINERS = (dict, list, tuple)
_JSON_CONTAINERS = (dict, list)

_NO_BULK: frozenset[str] = frozenset()
_SCALARS = frozenset({str, int, float, bool, type(None)})  # exact JSON leaf types
_RESCANNED = (str, list, dict)  # operator outputs that may still hold an identifier
# one planned field: key, the masker's function for its (category, action), residue
_Bound = tuple[str, Callable[[Any], Any], "re.Pattern[str] | None"]


class Enforcer(ValueRewriter):
    """Implements gateway.core.rewrite.RecordEnforcer; `.report` says what it did."""

    def __init__(
        self,
        *,
        taxonomy: Taxonomy,
        route: RouteSpec | None,
        decision: Decision,
        subject_id: str,
        masker: Masker,
        label: str = "",
    ) -> None:
        self.report = EnforcementReport()
        self.observer: Observer | None = None  # observe mode (gateway.core.observe)
        self._shared: Shared = shared_for(taxonomy, route, decision)
        self._route = route
        self._decision = decision
        self._subject = subject_id
        self._masker = masker
        self._prefixes = frozenset(route.records) if route else frozenset()
        self._limits = dict(decision.obligations.max_clear_records)
        self._bulk_block = decision.obligations.bulk_action == "block"
        # level -> ids of the records already shown in clear (at most N each): a
        # record the CRM repeats in one body (BottleCRM's results[] and
        # contact_obj_list[]) is one record, not two, for the bulk quota.
        self._cleared: dict[str, set[str | None]] = {lvl: set() for lvl in self._limits}
        self._record_id: str | None = None
        self._header: tuple[tuple[str, ...], list[str], list[Slot]] | None = None
        # id(table) -> (table, the current CSV header's column plan under it)
        self._row_plans: dict[int, tuple[ActionTable, _RowPlan]] = {}
        self._base = self._shared.base
        self._facts = self._shared.facts
        # id(plan) -> (plan, its work with each (category, action) bound to the
        # masker's compiled function): one lookup per record instead of one per field.
        self._bound: dict[int, tuple[Plan, tuple[_Bound, ...]]] = {}
        # per plan: the keys of masked free-form fields (names, addresses), see _own_values
        self._free: dict[int, tuple[Plan, tuple[str, ...]]] = {}
        self._free_form = frozenset(n for n, c in taxonomy.categories.items() if c.free_form)
        self._acts = {}
        # the record model (see Shared._record_model)
        self._label = label or (route.name if route else "(uncatalogued)")
        self._wide = self._shared.wide
        self._shape = self._shared.shape
        self._needs = self._shared.needs
        self._identifying = self._shared.identifying
        self._ancestors = self._shared.ancestors
        self._totals = self._shared.hidden_totals
        self._outside = False  # an envelope value is being rewritten
        self._outside_ids = 0  # customer numbers seen outside every record
        self._needles = tuple((k, orjson.dumps(k) + b":") for k in sorted(self._shape.keys))
        self._deep = True  # containers may hold records (False inside a record without)
        self._need_route = tuple(sorted(self._needs & self._facts.paths))
        self._need_wide = tuple(sorted(self._needs & self._wide.paths))
        # a route whose records carry no grade by design (`record: {grade: null}`) may
        # still hold records that do (contacts in an account): those are read with the
        # catalog-wide facts, so a declaration never switches a record's rules off
        self._narrow = not self._facts.paths >= self._wide.paths
        # records prefixes with facts of their own (records of another kind)
        self._readers = {
            p: FactsReader(spec) for p, spec in (route.prefix_facts if route else {}).items()
        }
        # side data (catalog `side:`): the owners' verdicts, prefix -> table (None: dropped)
        self._side = bool(self._shared.side)
        self._owners: dict[str, ActionTable | None] = {}
        self._in_side = False
        # set by the handler when the caller asked for reveal handles (core/reveal.py)
        self.reveal: RevealTargets | None = None

    @property
    def blocks_in_bulk(self) -> bool:
        """Whether the bulk quota refuses the response once used up (`bulk_action:
        block`): a refusal that comes with the record past the quota, however late."""
        return self._bulk_block and bool(self._limits)

    @property
    def drops_records(self) -> bool:
        """Whether record rules may leave records out (so counts of a list reveal them)."""
        return bool(self._shared.drops_records)

    # --- RecordEnforcer -------------------------------------------------------

    def record_prefixes(self) -> list[str]:
        return list(self._route.records) if self._route else []

    def record_keys(self) -> frozenset[str]:
        return self._shape.keys

    def rewrite_subtree(self, prefix: str, value: Any) -> Any:
        self._check_allowed()
        if self.observer is not None:
            self.observer.document(prefix, value)
        return self._node(value, prefix)  # DROPPED: omitted side data, key and all

    def rewrite_document(self, doc: Any) -> Any:
        self._check_allowed()
        if self.observer is not None:
            self.observer.document("", doc)
        out = self._node(doc, "")
        return None if out is DROPPED else out

    def rewrite_record(self, record: dict[str, Any], prefix: str = "") -> dict[str, Any] | None:
        if self.observer is not None:
            self.observer.record(prefix, record)
        return self._rewrite_record(record, prefix)

    def _rewrite_record(self, record: dict[str, Any], prefix: str) -> dict[str, Any] | None:
        self._check_allowed()
        reader = self._readers.get(prefix, self._facts) if self._readers else self._facts
        if not reader.paths >= self._wide.paths and self._shape.is_record(record):
            reader = self._wide
        table = self._record_table(record, reader)
        owner = prefix in self._shared.side_owners
        if table is None:
            if owner:
                self._owners[prefix] = None
            return None
        plan, table = self._plan(record, table)
        if owner:
            self._owners[prefix] = table
        return self._apply(record, plan, table, prefix)

    def rewrite_header(self, header: list[str]) -> list[str]:
        """A CSV/TSV header row, before any byte of the export is sent. Every row is a
        record: when the decision tests grade or tier and no column holds them (an
        export that leaves the custom fields out), no row can be checked, so the
        export is refused here, not cut after the first rows. The cells are scanned
        (a pivoted export names customers in its header)."""
        self._check_allowed()
        if self._need_route:
            names, _ = self._columns(header)
            _, grade, tier = self._facts.basic(dict.fromkeys(names, "?"))
            readable = {"grade": grade is not None, "tier": tier is not None}
            missing = [n for n in self._need_route if not readable[n]]
            if missing:
                raise self._unidentified(
                    f"an export whose header has no {' or '.join(missing)} column"
                )
        return [self.rewrite_text(cell) for cell in header]

    def _shape_record(self, record: dict[str, Any], prefix: str) -> dict[str, Any] | None:
        """A record found by its facts where the catalog declares none: read with the
        catalog-wide facts, then the same record rules, bulk quota and report."""
        table = self._record_table(record, self._wide)
        if table is None:
            return None
        plan, table = self._plan(record, table)
        return self._apply(record, plan, table, prefix)

    def _unidentified(self, why: str) -> UnidentifiedRecords:
        reason = (
            f"{why} on route {self._label}: the response cannot be checked against "
            f"the record rules ({', '.join(sorted(self._needs))})"
        )
        self.report.blocked_reason = f"uncatalogued_route: {reason}"
        return UnidentifiedRecords(reason)

    def rewrite_value(self, path: tuple[str | int, ...], value: Any) -> Any:
        self._check_allowed()
        if self.observer is not None:
            self.observer.value(path, value)
        dotted = ".".join(p if isinstance(p, str) else "item" for p in path)
        out = self._envelope_value(dotted, value)
        return None if out is DROPPED else out

    def rewrite_row(self, header: list[str], row: list[str]) -> list[str] | None:
        self._check_allowed()
        if self.observer is not None:
            self.observer.row(header, row)
        names, slots = self._columns(header)
        record = dict(zip(names, row, strict=False))
        reader = self._facts
        if self._narrow and self._shape.is_record(record):
            reader = self._wide
        table = self._record_table(record, reader)
        if table is None:
            return None
        width = min(len(names), len(row))
        groups = self._row_plan(slots, table).clear
        if width == len(names):
            clear = frozenset(level for level, cols in groups if any(row[i] for i in cols))
        else:
            clear = frozenset(
                level for level, cols in groups if any(i < width and row[i] for i in cols)
            )
        if self._limits:
            table, clear = self._bulk_table(clear, table)
        for level in clear:
            self.report.clear_records[level] += 1
        if width < len(names):  # a short row: cell by cell (rare)
            out = list(row)
            for i in range(width):
                out[i] = _cell(self._value(row[i], names[i], names[i], slots[i], table))
            return out
        return self._apply_row(row, names, slots, table)

    def _apply_row(
        self, row: list[str], names: list[str], slots: list[Slot], table: ActionTable
    ) -> list[str]:
        """A full-width row through its column plan: the categorised columns' functions
        are bound once per header and table, the report gets one batch per row."""
        plan = self._row_plan(slots, table)
        if plan.blocked is not None:
            self.report.blocked_reason = f"field {plan.blocked}"
            raise BlockResponse(f"the policy blocks {plan.blocked}")
        out = list(row)
        for i, fn, residue in plan.masked:
            if fn is None:
                out[i] = ""
                continue
            new = fn(row[i])
            if residue is not None:
                new = self._residue(new, table, residue)
            out[i] = _cell(new)
        for i, pattern in plan.scans:
            out[i] = self._residue(row[i], table, pattern)
        for i in plan.dynamic:
            out[i] = _cell(self._value(row[i], names[i], names[i], slots[i], table))
        self.report.add_batch(plan.batch, _NO_BULK)
        return out

    def _row_plan(self, slots: list[Slot], table: ActionTable) -> _RowPlan:
        """The current header's column plan under `table` (reset with the header)."""
        found = self._row_plans.get(id(table))
        if found is not None and found[0] is table:
            return found[1]
        masked: list[tuple[int, Callable[[Any], Any] | None, re.Pattern[str] | None]] = []
        scans: list[tuple[int, re.Pattern[str]]] = []
        clear: list[tuple[int, str]] = []
        dynamic: list[int] = []
        batch: list[tuple[str, str, str]] = []
        blocked = None
        for i, slot in enumerate(slots):
            if slot.mode != CAT or slot.category is None or slot.category in USCC_CATEGORIES:
                dynamic.append(i)  # (a credit code's own prefix says whose it is)
                clear.extend((i, level) for level in packed_clear(slot, table))
                continue
            category = slot.category
            level, action = table.action(category)
            batch.append((category, level, outcome_of(action)))
            if action.verb is Verb.ALLOW:
                clear.append((i, level))
                pattern = self._shared.clear_residue(category)
                if pattern is not None:
                    scans.append((i, pattern))
                continue
            if action.verb is Verb.BLOCK:
                blocked = blocked or category
            elif action.verb is Verb.DROP:
                masked.append((i, None, None))
            else:
                fn = self._masker.compiled(category, action)
                masked.append((i, fn, self._shared.residue(category, action)))
        by_level: dict[str, list[int]] = {}
        for i, level in clear:
            by_level.setdefault(level, []).append(i)
        groups = tuple((level, tuple(cols)) for level, cols in by_level.items())
        plan = _RowPlan(tuple(masked), tuple(scans), groups, tuple(dynamic), tuple(batch), blocked)
        self._row_plans[id(table)] = (table, plan)
        return plan

    def _columns(self, header: list[str]) -> tuple[list[str], list[Slot]]:
        """Column names as the catalog spells them (BOM and padding removed: CRM
        exports often start with a BOM) and their slots, once per header."""
        key = tuple(header)
        found = self._header
        if found is None or found[0] != key:
            names = [h.lstrip("\ufeff").strip() for h in header]
            column = self._shared.classifier.column
            found = self._header = (key, names, [column(n) for n in names])
            self._row_plans.clear()  # row plans are per header
        return found[1], found[2]

    def rewrite_fields(self, fields: Mapping[str, str]) -> dict[str, str]:
        """Flat pairs. They count as a record (record rules, bulk quota, report)
        only when they carry the catalog's record facts (grade, tier); otherwise
        they are classified under the base table, as envelope values are (XML
        leaves outside records, a form that is no customer)."""
        if self.observer is not None:
            self.observer.fields(fields)
        self._check_allowed()
        record = dict(fields)
        table = self._base
        outside = not self._shape.is_record(record)
        if outside:
            if self._identifying:
                self._outside_fields(record)
            for key in self._totals.intersection(record):
                del record[key]  # a list total would count the records dropped
            plan = self._shared.plan(tuple(record), table)
        else:
            found = self._record_table(record, self._facts)
            if found is None:
                return {}
            plan, table = self._plan(record, found)
        self._outside = outside and bool(self._identifying)
        try:
            out = self._apply(record, plan, table, "")
        finally:
            self._outside = False
        return {
            k: v if isinstance(v, str) else ("" if v is None else str(v)) for k, v in out.items()
        }

    def rewrite_text(self, text: str) -> str:
        """Free text outside every record (a text body, an XML comment, a key)."""
        self._check_allowed()
        if not self._identifying:
            return self._text(text, self._base)
        self._outside = True
        try:
            return self._text(text, self._base)
        finally:
            self._outside = False

    # --- records --------------------------------------------------------------

    def _check_allowed(self) -> None:
        if not self._decision.allow:
            self.report.blocked_reason = self._decision.reason or "denied"
            raise BlockResponse(self._decision.reason or "denied by policy")

    def _outside_fields(self, record: Mapping[str, Any]) -> None:
        """Flat fields that are no record: a field whose key says it identifies a
        customer (a name, an id) cannot be checked against the record rules (values
        classified by their detectors are caught in `_categorised`)."""
        slot = self._shared.classifier.slot
        for key, value in record.items():
            if value not in (None, ""):
                found = slot(key, key)
                if found.mode == CAT and found.category in self._identifying:
                    self._outside_hit(found.category)

    def _record_table(self, record: Mapping[str, Any], reader: FactsReader) -> ActionTable | None:
        """Record rules for this record: None = dropped; BlockResponse = blocked."""
        rules = self._decision.records
        if not rules:
            record_id, grade, tier = reader.basic(record)
            self._record_id = record_id
            self.report.add_record(record_id, grade, tier)
            return self._base
        facts = reader.full(record)
        self._record_id = facts.record_id
        self.report.add_record(facts.record_id, facts.grade, facts.tier)
        if self._needs:
            if reader is self._facts:
                wanted = self._need_route
            elif reader is self._wide:
                wanted = self._need_wide
            else:
                wanted = tuple(sorted(self._needs & reader.paths))
            missing = [n for n in wanted if getattr(facts, n) in (None, "")]
            if missing:
                raise self._unidentified(f"a record without its {' and '.join(missing)}")
        matched = tuple(i for i, r in enumerate(rules) if r.matches(facts, self._subject))
        if not matched:
            return self._base
        verb = RecordVerb.SHOW
        for i in matched:
            rule = rules[i]
            self.report.rules_matched[rule.reason or f"rule{i}"] += 1
            if rule.record is RecordVerb.BLOCK:
                verb = RecordVerb.BLOCK
            elif rule.record is RecordVerb.DROP and verb is RecordVerb.SHOW:
                verb = RecordVerb.DROP
        if verb is RecordVerb.BLOCK:
            reason = next(rules[i].reason for i in matched if rules[i].record is verb)
            self.report.blocked_reason = reason or "record rule"
            raise BlockResponse(reason or "a record rule blocks this response")
        if verb is RecordVerb.DROP:
            self.report.records_dropped += 1
            return None
        return self._shared.table(matched, _NO_BULK)

    def _plan(self, record: Mapping[str, Any], table: ActionTable) -> tuple[Plan, ActionTable]:
        plan = self._shared.plan(tuple(record), table)
        if self._limits:
            plan, table = self._bulk(record, plan, table)
        return plan, table

    def _bulk(
        self, record: Mapping[str, Any], plan: Plan, table: ActionTable
    ) -> tuple[Plan, ActionTable]:
        limited, _ = self._bulk_table(plan.clear_levels, table)
        if limited is not table:
            plan = self._shared.plan(tuple(record), limited)
        return plan, limited

    def _bulk_table(
        self, clear_levels: frozenset[str], table: ActionTable
    ) -> tuple[ActionTable, frozenset[str]]:
        """The bulk rule: past N clear records of a level, mask that level strict.

        Returns the table for this record and the levels it still shows in clear.
        """
        rid = self._record_id
        cleared = self._cleared
        over = frozenset(
            lvl
            for lvl in clear_levels
            if lvl in cleared
            and len(cleared[lvl]) >= self._limits[lvl]
            and (rid is None or rid not in cleared[lvl])
        )
        if over:
            if self._bulk_block:
                reason = f"more than {min(self._limits[x] for x in over)} records in clear"
                self.report.blocked_reason = "bulk: " + reason
                raise BlockResponse(reason)
            for lvl in over:
                self.report.bulk_limited[lvl] += 1
            table = self._shared.table(table.rules_key, over | table.bulk)
            clear_levels = clear_levels - over
        for lvl in clear_levels:
            if lvl in cleared:
                # records without an id are told apart by their count
                cleared[lvl].add(rid if rid is not None else f"\x00{self.report.records_seen}")
        return table, clear_levels

    def _apply(
        self, record: dict[str, Any], plan: Plan, table: ActionTable, prefix: str
    ) -> dict[str, Any]:
        if plan.blocked is not None:
            self.report.blocked_reason = f"field {plan.blocked}"
            raise BlockResponse(f"the policy blocks {plan.blocked}")
        out = dict(record)
        for key in plan.drops:
            del out[key]
        for key, fn, residue in self._bind(plan):
            value = record[key]
            if value is None:
                continue
            new = fn(value)
            if new is DROPPED:
                del out[key]
                continue
            if residue is not None and isinstance(new, _RESCANNED):
                new = self._residue(new, table, residue)
            out[key] = new
        for key, pattern in plan.scans:
            value = record[key]
            # skips the call for the common letters-only name (as _looks_like_more would)
            if value is not None and not (value.__class__ is str and value.isalpha()):
                out[key] = self._residue(value, table, pattern)
        outer = self._deep
        # one C-speed look for records nested anywhere inside (rare): only then are
        # containers looked at for records, field by field
        self._deep = deep = bool(self._needles) and self._nested_in(record)
        texts: list[Any] = []
        free = self._free_keys(plan)
        for key, slot in plan.dynamic:
            skey = str(key)
            new = self._value(record[key], skey, skey, slot, table)
            if new is DROPPED:
                del out[key]
            else:
                out[key] = new
                if free and new.__class__ is str:
                    texts.append(key)
        self._deep = outer
        if texts:
            own = _own_values(record, out, free)
            for key in texts if own else ():
                out[key] = _own_values_masked(out[key], own)
        if deep:
            for key in plan.categorised:
                value = record[key]
                kind = value.__class__
                if (kind is dict or kind is list) and self._holds_record(value):
                    new = self._contained(value, str(key), table)
                    if new is DROPPED:
                        out.pop(key, None)
                    else:
                        out[key] = new
        self.report.add_batch(plan.batch, plan.clear_levels)
        if self.reveal is not None:
            self._offer_reveal(record, plan)
        if plan.suspect:
            return {
                (self._text(k, table) if k in plan.suspect and isinstance(k, str) else k): v
                for k, v in out.items()
            }
        return out

    def _offer_reveal(self, record: Mapping[str, Any], plan: Plan) -> None:
        """The masked fields of this record, for reveal handles: only when the record's
        id is one of its own keys and shown in clear (it names the record to the caller)."""
        targets = self.reveal
        rid = self._record_id
        assert targets is not None
        key = targets.id_key
        if rid is None or key is None or key not in record or str(record[key]) != rid:
            return
        if key in plan.drops or any(k == key for k, _, _, _ in plan.work):
            return
        for field_key, category, action, _ in plan.work:
            if record[field_key] is not None and action.verb is not Verb.ALLOW:
                targets.offer(rid, str(field_key), category)

    def field_category(self, key: str) -> str | None:
        """The category the catalog (or the key name) gives a record's field."""
        slot = self._shared.classifier.slot(key, key)
        return slot.category if slot.mode == CAT else None

    def _nested_in(self, record: Mapping[str, Any]) -> bool:
        """Whether a record may hold another record: a fact key (`"grade":`) occurs in
        the serialisation of one of its containers (a string cannot spell the needle:
        its quotes are escaped). Scalars only: nothing to look at."""
        inner = [v for v in record.values() if isinstance(v, _CONTAINERS)]
        if not inner:
            return False
        try:
            blob = orjson.dumps(inner, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return True  # cannot tell cheaply: look field by field
        return any(needle in blob for _, needle in self._needles)

    def _free_keys(self, plan: Plan) -> tuple[str, ...]:
        found = self._free.get(id(plan))
        if found is not None and found[0] is plan:
            return found[1]
        keys = tuple(key for key, cat, _, _ in plan.work if cat in self._free_form)
        self._free[id(plan)] = (plan, keys)
        return keys

    def _bind(self, plan: Plan) -> tuple[_Bound, ...]:
        found = self._bound.get(id(plan))
        if found is not None and found[0] is plan:
            return found[1]
        compiled = self._masker.compiled
        bound = tuple((key, compiled(cat, action), res) for key, cat, action, res in plan.work)
        self._bound[id(plan)] = (plan, bound)
        return bound

    # --- documents ------------------------------------------------------------

    def _node(self, node: Any, prefix: str) -> Any:
        """Walk a document; `prefix` is the ijson-style dotted path (lists: `item`)."""
        if self._side and prefix not in self._prefixes and prefix not in self._ancestors:
            side = self._shared.side_within(prefix)  # a streamed list's members too
            if side is not None:
                return self._side_value(side, node, prefix.rpartition(".")[2], prefix)
        if isinstance(node, dict):
            if prefix in self._prefixes:
                return self._rewrite_record(node, prefix)
            if prefix in self._ancestors:
                if not self._shape.keys.isdisjoint(node):
                    raise self._unidentified("record facts in an envelope object")
            elif self._shape.is_record(node):
                return self._shape_record(node, prefix)
            out: dict[str, Any] = {}
            envelope = self._envelope_value
            for k, v in node.items():
                child = f"{prefix}.{k}" if prefix else str(k)
                suspect = suspect_key(k)
                key = self.rewrite_text(k) if suspect else k
                if v.__class__ in _SCALARS:  # a leaf: skip a level of recursion
                    new = envelope(child, v)
                    if new is DROPPED or (new is None and v is not None):
                        continue
                else:
                    new = self._node(v, child)
                    if _dropped(v, new) or (new is None and suspect):
                        continue  # a record dropped under a key that names it: both go
                out[key] = new
            return out
        if isinstance(node, list):
            child = f"{prefix}.item" if prefix else "item"
            if child in self._prefixes and all(type(v) is dict for v in node):
                records = (self._rewrite_record(v, child) for v in node)
                return [r for r in records if r is not None]
            items = []
            for v in node:
                new = self._node(v, child)
                if new is None and isinstance(v, dict):
                    continue  # a dropped record (objects only become None so)
                if not _dropped(v, new):
                    items.append(new)
            return items
        return self._envelope_value(prefix, node)

    def _envelope_value(self, dotted: str, value: Any) -> Any:
        """A scalar outside any record. Its outermost categorised ancestor decides
        (an envelope `holdings: [...]` is holdings, leaf by leaf, the same in the
        buffered and the streamed path), else its own key and value."""
        found = self._shared.envelope.get(dotted)
        if found is None:
            found = envelope_slot(self._shared.classifier, dotted.split(".") if dotted else [])
            if len(self._shared.envelope) < 4096:
                self._shared.envelope[dotted] = found
        key, slot = found
        if self._totals and dotted.rpartition(".")[2] in self._totals:
            return DROPPED  # a list total would count the records dropped here
        if self._side:
            side = self._shared.side_within(dotted)
            if side is not None:
                return self._side_value(side, value, key, dotted)
        if not self._identifying:
            return self._value(value, key, dotted, slot, self._base)
        self._outside = True
        try:
            return self._value(value, key, dotted, slot, self._base)
        finally:
            self._outside = False


class _RowPlan(NamedTuple):
    """A CSV header's columns under one action table."""

    masked: tuple[tuple[int, Callable[[Any], Any] | None, re.Pattern[str] | None], ...]
    scans: tuple[tuple[int, re.Pattern[str]], ...]  # clear free-form columns (Plan.scans)
    # level -> the columns that show it in clear: a row counts for the level when
    # one of them is non-empty
    clear: tuple[tuple[str, tuple[int, ...]], ...]
    dynamic: tuple[int, ...]  # columns classified by their cells (detectors, free text)
    batch: tuple[tuple[str, str, str], ...]  # report entries of the categorised columns
    blocked: str | None


def _cell(new: Any) -> str:
    return "" if new is DROPPED or new is None else str(new)


def _dropped(old: Any, new: Any) -> bool:
    """Envelope semantics shared with the streaming codec: a scalar rewritten to
    None (from something else) is left out, key and all; a record held by a key
    and dropped stays as null."""
    if new is DROPPED:
        return True
    return new is None and old is not None and not isinstance(old, _JSON_CONTAINERS)


# One enforcer per response (it carries the bulk counters and the report). `route`
# None means a path the catalog does not list: pass the catalog's `fallback_route()`
# so its field names and record facts apply there too; `label` names the route (or
# path) in refusals.
build_enforcer = Enforcer


def _own_values(
    record: Mapping[str, Any], out: Mapping[str, Any], keys: tuple[str, ...]
) -> list[tuple[str, str]]:
    """The record's free-form values (names, addresses: taxonomy `free_form`) the caller
    does not see as they are, longest first, each with how the caller sees it: where
    the same record repeats one in its free text ("与欧阳敏通话" beside a masked name),
    it is masked there too. No detector finds a bare name in a sentence; the record
    itself names it (identifiers with a format are found by the detectors anyway).
    Values shorter than two characters of non-ASCII text or four of ASCII are left."""
    own = []
    for key in keys:
        value = record[key]
        if value.__class__ is not str:
            continue
        shown = out.get(key, "***")
        if shown != value and len(value) >= (4 if value.isascii() else 2):
            own.append((value, shown if shown.__class__ is str else "***"))
    own.sort(key=lambda pair: -len(pair[0]))
    return own


def _own_values_masked(text: str, own: list[tuple[str, str]]) -> str:
    for value, shown in own:
        if value in text:
            text = text.replace(value, shown)
    return text
