"""The catalog's data: routes, field rules, record-fact paths, entry rules."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.core.negotiation import DEFAULT_RESPONSE_TYPES

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENTRY_FORMATS = frozenset({"id_card", "mobile", "bank_card", "email", "landline", "not_blank"})


@dataclass(frozen=True, slots=True)
class Packed:
    """A value that packs several people's fields into one string, as legacy exports
    flatten a company's contacts into one cell: `张伟/13812345678; 李娜/13987654321`.

    `people` separates the people, `between` a person's fields, and `fields` names
    each field's category by position. A person with more fields than `fields`
    names cannot be read positively: it is masked whole, strict, as the packed
    category of the highest level.
    """

    fields: tuple[str, ...]
    people: re.Pattern[str]
    between: re.Pattern[str]

    def split(self, value: str) -> list[tuple[str, bool]]:
        """`value` cut into (text, is_separator) pieces; joined they spell it again."""
        return _pieces(self.people, value)

    def parts(self, person: str) -> list[tuple[str, bool]]:
        return _pieces(self.between, person)


def _pieces(separator: re.Pattern[str], text: str) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    pos = 0
    for m in separator.finditer(text):
        out.append((text[pos : m.start()], False))
        out.append((m.group(), True))
        pos = m.end()
    out.append((text[pos:], False))
    return out


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One catalog line: a key matcher and what a matching field is.

    `kind` is `key` (exact key name), `path` (glob on the dotted key path, list
    items spelled `item`) or `pattern` (regex searched in the key name).
    Exactly one of `category`, `text`, `walk` is meaningful: a category says
    what the value is (containers are then handled as one unit unless `walk`),
    `text` marks free text (scanned, only matched spans masked), `walk` says
    "look inside this container and classify its members".
    """

    kind: str
    value: str
    category: str | None = None
    text: bool = False
    walk: bool = False
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    packed: Packed | None = None  # several people's fields in one value (see Packed)

    def matches(self, key: str, path: str) -> bool:
        if self.kind == "key":
            return key == self.value
        if self.kind == "path":
            return fnmatch.fnmatchcase(path, self.value)
        assert self.regex is not None  # set by the loader for kind == "pattern"
        return self.regex.search(key) is not None


SIDE_TREATMENTS = ("of", "strict", "omit")


@dataclass(frozen=True, slots=True)
class SideRule:
    """Side data: what a response carries next to its records, declared by path.

    `path` is a glob on the ijson-style path of the value (`address_obj`,
    `contacts.item`, `*.contacts_list`): from the document root outside records,
    from the record inside one. `treatment` says how it is checked:
      of       a copy of the record's own data (`owner` is the record's prefix):
               dropped with the record, else masked with the record's own table;
               masked strict when that record was not seen before it
      strict   references to records whose facts the response does not carry
               (`{id, first_name}` lists): masked at the strictest level, ids too
      omit     left out of the response, key and all
    """

    path: str
    treatment: str
    owner: str = ""

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.path)


@dataclass(frozen=True, slots=True)
class FactsSpec:
    """Where the record-level facts (RecordFacts) live, as dotted key paths."""

    id: str | None = None
    grade: str | None = None
    tier: str | None = None
    assignees: tuple[str, ...] = ()
    consents: Mapping[str, str] = field(default_factory=dict)  # consent name -> path
    # the CRM's record ids as a regex (`C\d{6}`): found in any value outside every
    # record, they name customers whose grades nobody can check
    id_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """Entry validation (客户录入) for writes: required fields and value formats."""

    required: tuple[str, ...] = ()
    formats: Mapping[str, str] = field(default_factory=dict)  # field -> format name


@dataclass(frozen=True, slots=True)
class Absent:
    """The CRM's own answer for a missing record (catalog `absent:`)."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class RouteSpec:
    name: str
    template: str
    methods: frozenset[str]  # empty: every method
    sensitive: bool
    records: tuple[str, ...]  # ijson-style prefixes; "" is the document root
    rules: tuple[FieldRule, ...]  # route rules first, then the catalog's
    facts: FactsSpec
    csv_columns: Mapping[str, str | Packed]  # CSV header -> category (or packed people)
    entry: EntrySpec | None
    catalog: str
    export: bool = False  # a bulk export (audited as operation "export")
    # Free-text search parameters (`q`) -> the categories they match (query_guard).
    search: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    search_body: bool = False  # a POST search: body fields are filter criteria
    # record model (issue 12): the catalog-wide facts (records recognised by shape,
    # on every route) and the envelope totals hidden when records may be dropped
    wide_facts: FactsSpec | None = None
    totals: frozenset[str] = frozenset()
    response_types: tuple[str, ...] = DEFAULT_RESPONSE_TYPES  # media types it may answer in
    side: tuple[SideRule, ...] = ()  # side data: route rules first, then the catalog's
    # a records prefix's own facts (`records: [{path: contacts.item, record: {...}}]`):
    # records of another kind on the same route (contacts inside an account)
    prefix_facts: Mapping[str, FactsSpec] = field(default_factory=dict)
    # the route that reads one of this route's records by its id: reveal handles are
    # offered for this route's masked fields, and reveals fetch the value through it
    reveal_route: str | None = None
    # A rendered document (PDF, image, spreadsheet) the gateway cannot look inside,
    # carrying customer data up to this level: released whole to a caller who sees
    # that level in clear (and whom no record rule could hide it from), else refused.
    document: str | None = None
    # Routes told apart by a query parameter (`/legacy.do?method=list` and
    # `?method=detail`: one path, two answers): the parameters and values this
    # route needs. Matching: gateway.core.catalog.dispatch.
    query: Mapping[str, str] = field(default_factory=dict)
    # How the CRM answers a record it does not have, when that is not a 404: an HTTP
    # status and the exact body (`{code: 1001, msg: 记录不存在}` with 200). A record the
    # request names that the record rules hide is answered exactly so.
    absent: Absent | None = None
    # A write on a query-dispatched page (`customer.do?method=update&id=C1`): the
    # route that reads the record it changes (`?method=detail&id=C1`). The record
    # is read through it first and the record rules decide (gateway/visibility.py).
    reads: str | None = None
    _memo: dict[str, FieldRule | None] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    @property
    def label(self) -> str:
        """The route as audit events, metrics and the policy name it: its template,
        and for a query-dispatched route the parameters that select it."""
        if not self.query:
            return self.template
        return self.template + "?" + "&".join(f"{k}={v}" for k, v in sorted(self.query.items()))

    def facts_at(self, prefix: str) -> FactsSpec:
        """The record facts of the records under `prefix`."""
        return self.prefix_facts.get(prefix, self.facts)

    def rule_for(self, key: str, path: str) -> FieldRule | None:
        """The first rule matching a field, memoised per key path (hot path)."""
        try:
            return self._memo[path]
        except KeyError:
            pass
        found = None
        for rule in self.rules:
            if rule.matches(key, path):
                found = rule
                break
        if len(self._memo) < 4096:  # bounded: key paths come from upstream bodies
            self._memo[path] = found
        return found


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: RouteSpec
    template: str
    params: Mapping[str, str]
