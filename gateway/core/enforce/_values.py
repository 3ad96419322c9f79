"""Value-level rewriting shared by every body shape: one field, container or text.

A value arrives with its key, its key path and its classification slot. A
categorised value gets its table action (and is re-scanned when the operator's
output still looks like another identifier); containers are walked; anything
unclassified is classified by its detectors, and strings without a whole-value
match are scanned as free text, where only the detected spans are masked.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from gateway.core import detectors
from gateway.core.catalog import Packed, RecordShape, SideRule, suspect_key
from gateway.core.detectors import unescape
from gateway.core.enforce._shared import Shared
from gateway.core.enforce._tables import CAT, PACKED, SCAN, TEXT, ActionTable, Slot
from gateway.core.links import LinkMap
from gateway.core.masking import DROPPED, Masker
from gateway.core.model import Action, Verb
from gateway.core.report import EnforcementReport, outcome_of
from gateway.core.rewrite import BlockResponse, UnidentifiedRecords

# a tuple for isinstance: a `dict | list` union is rebuilt at every call (Python 3.11)
_JSON_CONTAINERS = (dict, list)

_NOT_MASKED = frozenset({Verb.ALLOW, Verb.BLOCK, Verb.DROP})
# table, level, action, report outcome, compiled masker function (None: not masked), residue
_Act = tuple[ActionTable, str, Action, str, Callable[[Any], Any] | None, "re.Pattern[str] | None"]


class ValueRewriter(ABC):
    """The value half of the enforcer (see `Enforcer` for records and documents)."""

    report: EnforcementReport
    _shared: Shared
    _masker: Masker
    # category -> the table it was resolved under and what to do (see _categorised):
    # the same category recurs on every record, its action is looked up once.
    _acts: dict[str, _Act]
    _shape: RecordShape
    _outside: bool  # an envelope value: identifying data there cannot be checked
    _identifying: frozenset[str]  # categories that identify a customer (needs rules)

    @abstractmethod
    def _shape_record(self, record: dict[str, Any], prefix: str) -> dict[str, Any] | None:
        """A record found by its facts inside a value: the Enforcer's record path."""

    @abstractmethod
    def _unidentified(self, why: str) -> UnidentifiedRecords:
        """The refusal for data whose records cannot be checked (the Enforcer's)."""

    _outside_ids: int
    _deep: bool  # containers may hold records (see Enforcer._nested_in)

    def _outside_hit(self, category: str) -> None:
        """Customer data outside every record, under a decision with record conditions.
        One customer number alone is let through (a write's `{"ok": true, "id": ...}`
        echoes the id the caller named); a second one is a list of customers whose
        grades nobody can check, and anything else identifying is blocked at once."""
        if category == "customer_no":
            self._outside_ids += 1
            if self._outside_ids == 1:
                return
            raise self._unidentified("customer numbers outside any record")
        raise self._unidentified(f"customer data ({category}) outside any record")

    # Links back to the CRM, rewritten to the gateway's public base before any scan
    # (set by the handler per response; None: left as they are).
    links: LinkMap | None = None

    def _value(self, value: Any, key: str, path: str, slot: Slot, table: ActionTable) -> Any:
        if value is None:
            return value
        if slot.mode == CAT and slot.category is not None:
            kind = value.__class__
            if (kind is dict or kind is list) and self._deep and self._holds_record(value):
                return self._contained(value, path, table)
            category = slot.category
            if kind is str and category in detectors.SHAPED_CATEGORIES:
                if detectors.message_shaped(value):
                    return self._text(value, table)  # a message about the field
                if category in detectors.USCC_CATEGORIES:
                    category = detectors.uscc_category(value, category)
            elif kind is list and category in detectors.SHAPED_CATEGORIES and _messages(value):
                return [self._text(v, table) for v in value]
            return self._categorised(value, category, table)
        if slot.mode == PACKED and slot.packed is not None:
            if value.__class__ is str:
                return self._packed(value, slot.packed, table)
            if value.__class__ is list:
                return [self._value(v, key, path, slot, table) for v in value]
            # not the string the catalog describes: nothing in it can be read positively
            return self._value(value, key, path, Slot(SCAN), self._shared.unread)
        if isinstance(value, bool):
            return value  # an unclassified flag carries no identifier
        if self._side and not self._in_side and isinstance(value, _JSON_CONTAINERS):
            side = self._shared.side_at(path)
            if side is not None:
                return self._side_value(side, value, key, path)
        if isinstance(value, dict):
            if self._deep and self._shape.is_record(value):  # a record in a record
                found = self._shape_record(value, path)
                return DROPPED if found is None else found
            return self._walk_dict(value, path, table)
        if isinstance(value, list):
            return self._walk_list(value, key, path, table)
        if slot.mode == TEXT and isinstance(value, str):
            self._ids_outside(value)
            return self._text(value, table)
        return self._scan(value, key, table)

    _side: bool  # the route declares side data
    _in_side: bool  # a side-data value is being rewritten (its rule holds throughout)
    _owners: dict[str, ActionTable | None]  # record prefix -> its table (None: dropped)

    def _side_value(self, rule: SideRule, value: Any, key: str, path: str) -> Any:
        """Side data (catalog `side:`) at `path`: left out, masked with its record's
        table (dropped with the record), or masked strict. Never "outside every
        record": the catalog says whose it is, or that it is masked as if it were
        the strictest record. A record found by its facts inside keeps its own rules."""
        self.report.side_data[f"{rule.path}: {rule.treatment}"] += 1
        if value is None:
            return None
        gone: Any = [] if value.__class__ is list else DROPPED  # a list is emptied, as streamed
        if rule.treatment == "omit":
            return gone
        table = self._shared.strict
        if rule.treatment == "of" and rule.owner in self._owners:
            owner = self._owners[rule.owner]
            if owner is None:
                return gone  # its record was dropped: so is the copy of its data
            table = owner
        outside, inside = self._outside, self._in_side
        self._outside, self._in_side = False, True
        try:
            kind = value.__class__
            if kind is dict:
                if self._shape.is_record(value):
                    found = self._shape_record(value, path)
                    return DROPPED if found is None else found
                return self._walk_dict(value, path, table)
            if kind is list:
                return self._walk_list(value, key, path, table)
            return self._value(value, key, path, self._shared.classifier.slot(key, path), table)
        finally:
            self._outside, self._in_side = outside, inside

    def _categorised(self, value: Any, category: str, table: ActionTable) -> Any:
        entry = self._acts.get(category)
        if entry is None or entry[0] is not table:
            level, action = table.action(category)
            fn = None if action.verb in _NOT_MASKED else self._masker.compiled(category, action)
            residue = self._shared.residue(category, action)
            entry = (table, level, action, outcome_of(action), fn, residue)
            self._acts[category] = entry
        _, level, action, outcome, fn, residue = entry
        if self._outside and category in self._identifying and value != "":
            self._outside_hit(category)
        self.report.add_field(category, level, outcome)
        if fn is None:
            return self._act(value, category, action, table)
        new = fn(value)
        return new if residue is None else self._residue(new, table, residue)

    def _packed(self, value: str, packed: Packed, table: ActionTable) -> str:
        """Several people in one value: each person's fields by position, with their
        categories' actions under the holding record's table. A person the catalog's
        shape does not describe (see `_readable`) is masked whole, strict, as the
        highest-level category named; a separator holding letters or digits is
        scanned as text."""
        out: list[str] = []
        for person, is_sep in packed.split(value):
            if is_sep:
                out.append(self._separator(person, table))
                continue
            parts = packed.parts(person)
            if not _readable(parts, packed.fields):
                top = self._shared.taxonomy.highest(packed.fields)
                out.append(_text_of(self._categorised(person, top, self._shared.unread)))
                continue
            for i, (part, part_is_sep) in enumerate(parts):
                if part_is_sep:
                    out.append(self._separator(part, table))
                elif part:
                    out.append(self._packed_field(part, packed.fields[i // 2], table))
        return "".join(out)

    def _packed_field(self, part: str, category: str, table: ActionTable) -> str:
        """One field of a packed person. Shown in clear, a field whose category has no
        shape of its own (a relation, a note) is still scanned as text: positions in
        a packed cell are typed by hand, and `配偶 13912345678` in the relation's
        place must not carry a mobile past a caller who may not see it."""
        new = _text_of(self._categorised(part, category, table))
        if new == part and category not in _RECOGNISED:
            return self._text(part, table)
        return new

    def _separator(self, text: str, table: ActionTable) -> str:
        return self._text(text, table) if any(c.isalnum() for c in text) else text

    def _act(self, value: Any, category: str, action: Action, table: ActionTable) -> Any:
        if action.verb is Verb.ALLOW:
            clear = self._shared.clear_residue(category)
            return value if clear is None else self._residue(value, table, clear)
        if action.verb is Verb.BLOCK:
            self.report.blocked_reason = f"field {category}"
            raise BlockResponse(f"the policy blocks {category}")
        if action.verb is Verb.DROP:
            return DROPPED
        new = self._masker.apply(value, category, action)
        residue = self._shared.residue(category, action)
        return new if residue is None else self._residue(new, table, residue)

    def _residue(self, new: Any, table: ActionTable, residue: re.Pattern[str]) -> Any:
        """Scan what an operator left, or a clear free-form value, when it looks like it
        holds another identifier (`residue` matches): as free text, spans only."""
        kind = type(new)
        if kind is str:
            return self._text(new, table) if _looks_like_more(residue, new) else new
        if kind is list:
            return [self._residue(v, table, residue) for v in new]
        if kind is dict:
            return {k: self._residue(v, table, residue) for k, v in new.items()}
        return new

    def _contained(self, value: Any, path: str, table: ActionTable) -> Any:
        """A container under a catalogued key that holds a record (a customer under
        `owner`): its records get their own rules, not the holder's category as one
        unit; DROPPED when it is itself a dropped record."""
        if value.__class__ is dict:
            if self._shape.is_record(value):
                found = self._shape_record(value, path)
                return DROPPED if found is None else found
            return self._walk_dict(value, path, table)
        return self._walk_list(value, path.rpartition(".")[2], path, table)

    def _holds_record(self, value: Any, depth: int = 0) -> bool:
        """Whether a container holds a record at any depth (bounded)."""
        if depth > 32:
            return True  # too deep to vouch for: walked, not passed as one unit
        if value.__class__ is dict:
            if self._shape.is_record(value):
                return True
            items: Any = value.values()
        elif value.__class__ is list:
            items = value
        else:
            return False
        for v in items:
            kind = v.__class__
            if (kind is dict or kind is list) and self._holds_record(v, depth + 1):
                return True
        return False

    def _walk_dict(self, value: dict[str, Any], path: str, table: ActionTable) -> dict[str, Any]:
        out: dict[str, Any] = {}
        classifier = self._shared.classifier
        for k, v in value.items():
            sk = str(k)
            child = f"{path}.{sk}" if path else sk
            new = self._value(v, sk, child, classifier.slot(sk, child), table)
            if new is not DROPPED:
                if new is None and v.__class__ is dict and suspect_key(sk):
                    continue  # a record dropped under a key that names it: both go
                out[self._text(sk, table) if suspect_key(sk) else k] = new
        return out

    def _walk_list(self, value: list[Any], key: str, path: str, table: ActionTable) -> list[Any]:
        child = f"{path}.item" if path else "item"
        slot = self._shared.classifier.slot(key, child)
        out = []
        for v in value:
            new = self._value(v, key, child, slot, table)
            if new is not DROPPED:
                out.append(new)
        return out

    def _scan(self, value: Any, key: str, table: ActionTable) -> Any:
        """A value no rule or key name classified: its detectors decide.

        Integers are looked at as their digits (a mobile stored as a number);
        floats are measurements, not identifiers.
        """
        if isinstance(value, str):
            text = value
            self._ids_outside(text)
        elif isinstance(value, int):
            text = str(value)
        else:
            return value
        hit = detectors.classify_value(text, key_hint=key or None)
        if hit is not None:
            self.report.detectors[hit.detector] += 1
            return self._categorised(value, hit.category, table)
        if isinstance(value, str):
            return self._text(value, table)
        return value

    def _text(self, text: str, table: ActionTable) -> str:
        """Free text: only the detected spans are masked.

        Links to the CRM are rewritten first; the gateway's own base is never scanned
        as data. Character references, JSON escapes and percent-encoding are undone
        for the scan (`unescape`), and a span found there is masked in the original
        text and spelled back in the escape it used."""
        if not text:
            return text
        links = self.links
        if links is not None and "/" in text:
            text = links.rewrite(text)
            pieces = links.split(text)
            if len(pieces) > 1:
                scan = self._text_piece
                return "".join(p if links.is_base(p) else scan(p, table) for p in pieces)
        return self._text_piece(text, table)

    def _ids_outside(self, text: str) -> None:
        """Record ids (the catalog's `id_pattern`) in a value outside every record: each
        counts as a customer number there (a key naming its record goes with it, so
        keys are not counted)."""
        ids = self._shape.id_pattern
        if ids is not None and self._outside and "customer_no" in self._identifying:
            for _ in ids.finditer(text):
                self._outside_hit("customer_no")

    def _text_piece(self, text: str, table: ActionTable) -> str:
        decoded = unescape.decode(text) if _MAYBE_ESCAPED.search(text) else None
        hits = detectors.detect(text if decoded is None else decoded.text)
        if not hits:
            return text
        for hit in hits:
            if self._outside and hit.category in self._identifying:
                self._outside_hit(hit.category)  # a customer named outside every record
            level, action = table.action(hit.category)
            self.report.detectors[hit.detector] += 1
            self.report.add_field(hit.category, level, outcome_of(action))
            if action.verb is Verb.BLOCK:
                self.report.blocked_reason = f"text {hit.category}"
                raise BlockResponse(f"the policy blocks {hit.category}")

        def action_for(h: detectors.Hit) -> Action:
            return table.action(h.category)[1]

        if decoded is None:
            return self._masked_text(text, hits, table, action_for)
        out: list[str] = []
        pos = 0
        for hit in hits:  # sorted, non-overlapping (detect's contract)
            start, end = decoded.to_original(hit.start, hit.end)
            if start < pos:
                continue
            span = decoded.text[hit.start : hit.end]
            whole = detectors.Hit(hit.category, 0, len(span), hit.detector, hit.confidence)
            masked = self._masker.mask_text(span, [whole], action_for)
            out.append(text[pos:start])
            out.append(unescape.respell(text[start:end], masked))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def _masked_text(
        self,
        text: str,
        hits: list[detectors.Hit],
        table: ActionTable,
        action_for: Callable[[detectors.Hit], Action],
    ) -> str:
        """`text` with its spans masked. Short texts repeat (templated notes, the same
        record on every page) and their masking is pure (the spans come from the text,
        the actions from the table, the masks from the masker), so the result is
        remembered per (text, table, masker); the report is still counted per call."""
        if len(text) > _MASKED_MAX_LEN:
            return self._masker.mask_text(text, hits, action_for)
        memo = self._shared.masked_texts
        key = (text, id(table), id(self._masker))
        found = memo.get(key)
        if found is not None and found[0] is table and found[1] is self._masker:
            return found[2]
        out = self._masker.mask_text(text, hits, action_for)
        if len(memo) >= _MASKED_SIZE:
            memo.clear()
        memo[key] = (table, self._masker, out)
        return out


_MASKED_MAX_LEN = 256
_MASKED_SIZE = 4096
_MAYBE_ESCAPED = re.compile(r"&#?[0-9A-Za-z]|\\[ux/\\\"']|%[0-9A-Fa-f]{2}")


# Masked outputs repeat far more than inputs ("***", "张*", "138****5678" shapes),
# so whether one still looks like an identifier is remembered (bounded; emptied
# when full). Keyed by the pattern's source and flags: same source, same answer.
_RESCAN: dict[tuple[str, int, str], bool] = {}
_RESCAN_MAX_LEN = 64
_RESCAN_SIZE = 8192


def _looks_like_more(residue: re.Pattern[str], text: str) -> bool:
    if text.isalpha():  # letters only (most names, employers): no digit run, no "@"
        return False
    if _MAYBE_ESCAPED.search(text) is not None:  # `&#54;...`: the residue is in the escapes
        decoded = unescape.decode(text)
        if decoded is not None:
            return residue.search(decoded.text) is not None
    key = (residue.pattern, residue.flags, text)
    found = _RESCAN.get(key)
    if found is None:
        found = residue.search(text) is not None
        if len(text) <= _RESCAN_MAX_LEN:
            if len(_RESCAN) >= _RESCAN_SIZE:
                _RESCAN.clear()
            _RESCAN[key] = found
    return found


def _messages(values: list[Any]) -> bool:
    """A list of validation messages (`errors.phone: ["Enter a valid ..."]`)."""
    return bool(values) and all(v.__class__ is str and detectors.message_shaped(v) for v in values)


def _text_of(new: Any) -> str:
    """An operator's output as text in a packed value (a dropped field leaves nothing)."""
    if new is DROPPED or new is None:
        return ""
    return new if isinstance(new, str) else str(new)


# categories whose values the detectors always recognise (checksums, fixed shapes):
# a packed field of one of them must hold one
_RECOGNISED = frozenset({"mobile", "landline", "email", "id_number", "bank_card"})


def _readable(parts: list[tuple[str, bool]], fields: tuple[str, ...]) -> bool:
    """Whether a packed person is what the catalog says: no more (non-empty) fields
    than it names, no field holding a value the detectors give another category (a
    mobile where the name should be: the fields are out of place), and a value of
    the recognised shape in every field whose category has one."""
    if any(part for part, _ in parts[2 * len(fields) :]):
        return False
    for i in range(0, min(len(parts), 2 * len(fields)), 2):
        part, category = parts[i][0], fields[i // 2]
        if not part:
            continue
        hit = detectors.classify_value(part, key_hint=category)
        if hit is not None and hit.category != category:
            return False
        if hit is None and category in _RECOGNISED:
            return False
    return True
