"""Search and filter oracles: which categories a request filters, sorts or searches by.

A list filtered by a field the caller sees masked answers "is this the number?"
(`?mobile=139...`, `?mobile__startswith=139`, `?q=<a mobile>`, `?ordering=bank_card`):
five masked mobiles were recovered in 146 such queries. So every parameter is
read as the CRM might read it, in every common spelling:

- key names: `mobile`, `sjhm`, `手机号`, `filter[mobile]`, `where[mobile][like]`,
  `mobile__startswith` (Django), `q[mobile_cont]` (Ransack), `mobile.eq`, `mobile:eq`,
  percent-encoded once or twice, full-width (NFKC);
- sort parameters: `sort=-annual_income`, `ordering=bank_card`, `order_by=mobile desc`;
- expressions and JSON: `where={"mobile": {"$regex": "^139"}}`, `$filter=mobile eq '1'`,
  `filter=mobile==139*`;
- values: a whole identifier anywhere (`?q=13912345678`, `?x=...`), a partial number
  in a free-text search parameter (`?q=1391`), any free-text search the catalog
  says matches protected categories (`search: {q: [id_number, mobile, name]}`),
  and identifiers as path segments (`/api/customers/by-mobile/139...`);
- cookies named like any of the above (`cookie_query`): lenient stacks read them as
  parameters when the query has none.

A category is *clear* for a decision when its table action is `allow` and no
record rule makes it stricter. Filtering by anything else is refused, unless
the decision's `obligations.lookup` names the category and the term is an exact
lookup (a complete value compared for equality: no prefix, range, wildcard,
list or sort). The refusal names the parameter and the category, never the value.

Pure: no I/O; the policy stage adds the lookup rate limit and the anomaly counts.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

import orjson

from gateway.core import detectors
from gateway.core.catalog import RouteSpec
from gateway.core.model import Decision, RecordVerb, Verb
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ProtectedFilter


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


MAX_VALUE = 2048  # longer values are cut before scanning
MAX_PARAMS = 200  # more parameters than this: the rest are still checked by key only
MAX_DEPTH = 8  # JSON filter documents nested deeper are refused as uninspectable

SORT_KEYS = words(
    "sort sortby sort_by sortfield sort_field sortname sortorder sort_order sidx order orderby "
    "order_by ordering orderfield order_field $orderby sorting sorts 排序 排序字段"
)
SEARCH_KEYS = words(
    "q query search searchtext search_text searchterm search_term searchkey keyword keywords kw "
    "term terms s wd text find lookup filter $search globalsearch global_search fulltext "
    "full_text quicksearch quick_search gjz gjc 关键字 关键词 搜索 查询 检索"
)
# Parameters whose value may be a field expression or a JSON filter document.
EXPR_KEYS = words(
    "$filter filter filters where query q criteria condition conditions cond expr rsql fq "
    "search 条件 查询条件"
)
# Paging, format and protocol parameters: never a filter, whatever their key says.
IGNORED_KEYS = words(
    "page page_size pagesize per_page perpage limit offset size start count cursor "
    "page_token pagetoken next_token nexttoken continuation_token csrf_token _ format "
    "callback jsonp fields include expand lang locale draw _method"
)
# Keys of a write body that are criteria, not fields (a POST search: `{"sort": ...}`);
# a GraphQL mutation under `query` is a write (the write guard reads its values).
CRITERIA_KEYS = SORT_KEYS | SEARCH_KEYS | EXPR_KEYS
_MUTATION = re.compile(r"\s*mutation\b")


def body_criteria(tree: Any, route: RouteSpec | None) -> dict[str, Any] | None:
    """The part of a parsed write body the search guard must read: every field of a
    `search_body` route, else the top-level keys that name a sort, a search or a
    filter expression (`sort`, `ordering`, `q`, `where`, `filter`, ...)."""
    if not isinstance(tree, Mapping):
        return None
    if route is not None and route.search_body:
        return dict(tree)
    found = {
        str(k): v
        for k, v in tree.items()
        if _norm(str(k)).lower() in CRITERIA_KEYS and not _MUTATION.match(str(v))
    }
    return found or None


OPERATOR_WORDS = words(
    "startswith istartswith endswith iendswith contains icontains like ilike cont start end "
    "regex iregex gte gt lte lt range ne neq not in nin notin prefix suffix match matches "
    "fuzzy sw ew between wildcard gteq lteq begins starts ends has any all re"
)
EQUALITY_WORDS = words("eq exact iexact is equals equal")
EXPR_SYNTAX = re.compile(r"[=<>~(:{]|\s(?:eq|ne|lt|gt|le|ge|like|in|and|or)\s", re.IGNORECASE)
WILDCARDS = re.compile(r"[*%?_]|\.\*|\[")
IDENT = re.compile(r"[A-Za-z_\u4e00-\u9fff$][\w\u4e00-\u9fff.$]*")
KEY_SPLIT = re.compile(r"__|[\[\].:|()\s,/]+")
DIGIT_RUN = re.compile(r"\d(?:[\s.\-/_*%]*\d){3,}")  # four digits, separators aside
_PATH_VALUE = re.compile(r"\d{3,}")
_MAY_IDENTIFY = re.compile(r"[0-9@%\uff10-\uff19\uff20]")

# Categories whose values always hold a digit, and those that never do: a
# free-text search can only match the categories its value's shape allows.
NEEDS_DIGIT = words(
    "mobile landline bank_card bank_account income assets balance postal_code id_number "
    "passport securities_account uscc_person uscc_org licence_plate ip_address customer_no "
    "birth_date"
)
TEXT_ONLY = words("name gender marital nationality occupation employer")
# Categories a value detector can recognise as a complete, valid value.
IDENTIFIERS = words(
    "mobile landline id_number bank_card email passport uscc_person uscc_org bank_account "
    "securities_account ip_address licence_plate postal_code"
)


@dataclass(frozen=True, slots=True)
class FilterTerm:
    """One way a request narrows or orders the records by a category."""

    param: str  # where: a parameter name (never its value), "path", or "body.<key>"
    category: str
    use: str  # filter | sort | search
    exact: bool  # a complete value compared for equality (may be a lookup)
    value: str = field(default="", repr=False, compare=False)  # for digests; never shown

    def describe(self) -> str:
        return f"{self.use} by {self.category} (parameter {self.param!r})"


@dataclass(frozen=True, slots=True)
class QueryVerdict:
    terms: tuple[FilterTerm, ...] = ()
    refused: tuple[FilterTerm, ...] = ()  # above the clear level, no lookup allows them
    lookups: tuple[FilterTerm, ...] = ()  # above the clear level, allowed as lookups

    @property
    def allowed(self) -> bool:
        return not self.refused

    def error(self) -> ProtectedFilter:
        parts = sorted({t.describe() for t in self.refused})
        return ProtectedFilter(
            "filtering, sorting or searching by a field above your clear level is not "
            "allowed: " + "; ".join(parts),
            parameters=[
                {"parameter": t.param, "category": t.category, "use": t.use}
                for t in sorted(set(self.refused), key=lambda t: (t.param, t.category, t.use))
            ],
        )


# -- which categories are clear ---------------------------------------------------


def is_clear(decision: Decision, category: str, level: str) -> bool:
    """Shown in clear on every record: the table allows it and no record rule that
    shows the record makes it stricter (VIP contact data, marketing consent)."""
    if decision.field_action(category, level).verb is not Verb.ALLOW:
        return False
    for rule in decision.records:
        if rule.record is not RecordVerb.SHOW:
            continue  # the record is left out altogether
        action = rule.fields.get(category)
        if action is not None and action.verb is not Verb.ALLOW:
            return False
    return True


def _level(taxonomy: Taxonomy, category: str) -> str:
    try:
        return taxonomy.category(category).level
    except KeyError:
        return taxonomy.levels[-1].code  # unknown: the top level, never clear


def check_terms(
    terms: Iterable[FilterTerm], decision: Decision, taxonomy: Taxonomy
) -> QueryVerdict:
    lookup = decision.obligations.lookup
    all_terms = tuple(terms)
    refused: list[FilterTerm] = []
    lookups: list[FilterTerm] = []
    for term in all_terms:
        if is_clear(decision, term.category, _level(taxonomy, term.category)):
            continue
        if term.exact and term.use != "sort" and term.category in lookup.categories:
            lookups.append(term)
        else:
            refused.append(term)
    return QueryVerdict(all_terms, tuple(refused), tuple(lookups))


# -- reading the request ------------------------------------------------------------


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _key_forms(raw: str) -> list[str]:
    """The key as the CRM may read it: decoded up to three times, NFKC, lower case."""
    forms: list[str] = []
    current = raw
    for _ in range(4):
        norm = _norm(current).lower()
        if norm not in forms:
            forms.append(norm)
        decoded = unquote_plus(current)
        if decoded == current:
            break
        current = decoded
    return forms


def _decoded(raw: str) -> str:
    """A value as a lenient CRM may read it: percent-decoded until stable (three times
    at most), NFKC."""
    current = raw
    for _ in range(3):
        decoded = unquote(current)
        if decoded == current:
            break
        current = decoded
    return _norm(current)


_KeyInfo = tuple[list[str], tuple[str, ...], frozenset[str], bool, bool]


@functools.lru_cache(maxsize=4096)
def _key_info(raw_key: str) -> _KeyInfo | None:
    """(forms, parts, operators, is_sort, is_search) of a parameter name; None for the
    paging/format parameters. Memoised: keys repeat far more than values."""
    forms = _key_forms(raw_key)
    if any(f in IGNORED_KEYS for f in forms):
        return None
    parts = tuple(p for f in forms for p in (f, *KEY_SPLIT.split(f)) if p)
    ops = frozenset(p for p in parts if p in OPERATOR_WORDS) | {
        tail for p in parts for tail in p.rsplit("_", 1)[1:] if tail in OPERATOR_WORDS
    }
    is_sort = any(p in SORT_KEYS for p in parts)
    is_search = any(f in SEARCH_KEYS for f in forms)
    return forms, parts, ops, is_sort, is_search


def safe_param(name: str) -> str:
    """A parameter name fit to show: digit runs (a value smuggled into a key) hidden."""
    return re.sub(r"\d{3,}", "#", name)[:64]


class _Reader:
    def __init__(self, route: RouteSpec | None, taxonomy: Taxonomy | None) -> None:
        self.route = route
        self.taxonomy = taxonomy
        self.categories = tuple(taxonomy.categories) if taxonomy is not None else ()
        self.terms: list[FilterTerm] = []
        self._seen: set[tuple[str, str, str, bool]] = set()

    def add(self, param: str, category: str, use: str, exact: bool, value: str = "") -> None:
        key = (param, category, use, exact)
        if key not in self._seen:
            self._seen.add(key)
            self.terms.append(FilterTerm(param, category, use, exact, value))

    def field_category(self, name: str) -> str | None:
        """The category of a field named `name` (catalog rules first, then key rules)."""
        name = name.strip().strip("\"'`").lstrip("-+")
        if not name or name in OPERATOR_WORDS or name in EQUALITY_WORDS:
            return None
        if self.route is not None:
            rule = self.route.rule_for(name, name)
            if rule is not None and rule.category is not None and not rule.walk:
                return rule.category
            if rule is not None and rule.packed is not None and self.taxonomy is not None:
                return self.taxonomy.highest(rule.packed.fields)  # a filter on the people
        return detectors.category_for_key(name)

    def searchable(self) -> tuple[str, ...]:
        """What an undeclared free-text search may match: every category below the top
        level (secrets are never released, and no CRM search matches them)."""
        if self.taxonomy is None:
            return ()
        top = self.taxonomy.levels[-1].code
        return tuple(n for n, c in self.taxonomy.categories.items() if c.level != top)

    # one parameter ------------------------------------------------------------------

    def param(self, raw_key: str, raw_value: str, where: str = "") -> None:
        key = _key_info(raw_key)
        if key is None:
            return  # paging, format, protocol
        forms, parts, ops, is_sort, is_search = key
        shown = where or safe_param(forms[-1])
        value = _decoded(raw_value)[:MAX_VALUE] if raw_value else ""
        named = {c for p in parts if p not in SORT_KEYS and (c := self.field_category(p))}
        if is_sort:
            for category in named:
                self.add(shown, category, "sort", False)
            for name in re.split(r"[,\s|;]+", value):
                by = self.field_category(re.split(r"[:.]", name.lstrip("-+"))[0])
                if by:
                    self.add(shown, by, "sort", False)
            return
        if not value:
            return  # an empty filter (`?mobile=`) narrows nothing
        for category in named:
            self.add(shown, category, "filter", self.exact(category, value, ops), value)
        expression = any(f in EXPR_KEYS for f in forms) or value[:1] in "{["
        if expression and self.expression(shown, value):
            return
        free_text = is_search and not named
        if not free_text and value.isascii() and not _MAY_IDENTIFY.search(value):
            return  # ASCII without a digit or an @ (VIP, asc, C) identifies nobody
        self.values(shown, value, free_text, key_hint=forms[-1])

    def exact(self, category: str, value: str, ops: Collection[str]) -> bool:
        if ops or WILDCARDS.search(value) or "," in value:
            return False
        if category in IDENTIFIERS:
            hit = detectors.classify_value(value)
            return hit is not None and hit.category == category
        return len(value) >= 2

    def values(self, shown: str, value: str, free_text: bool, key_hint: str) -> None:
        """What the value itself is: an identifier anywhere; for a free-text search,
        every category its shape could match."""
        whole = detectors.classify_value(value, key_hint=key_hint or None)
        if whole is not None:
            self.add(shown, whole.category, "search", self.exact(whole.category, value, set()),
                     value)  # fmt: skip
            return
        hits = detectors.detect(value)
        for hit in hits:
            self.add(shown, hit.category, "search", False, value)
        if not free_text or hits:
            return
        declared = self.route.search.get(shown) if self.route is not None else None
        candidates = declared if declared is not None else self.searchable()
        has_digit = any(ch.isdigit() for ch in value)
        has_letter = any(ch.isalpha() for ch in value)
        for category in candidates:
            if (category in NEEDS_DIGIT and not has_digit) or (
                category in TEXT_ONLY and not has_letter
            ):
                continue
            if not has_digit and not has_letter:
                continue
            if declared is None and not DIGIT_RUN.search(value) and category not in TEXT_ONLY:
                # Undeclared search: a short token can only be a partial identifier
                # when it carries four digits or more; text categories still count.
                continue
            self.add(shown, category, "search", self.exact(category, value, set()), value)

    def expression(self, shown: str, value: str) -> bool:
        """A JSON filter document or a field expression; True when it was one."""
        if value[:1] in "{[":
            try:
                doc = orjson.loads(value)
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, dict | list):
                self.json(shown, doc, None, True, 0)
                return True
        if not EXPR_SYNTAX.search(value):
            return False
        found = False
        for ident in IDENT.findall(value):
            for part in (ident, *KEY_SPLIT.split(ident)):
                category = self.field_category(part) if part else None
                if category:
                    self.add(shown, category, "filter", False, value)
                    found = True
        for hit in detectors.detect(value):
            self.add(shown, hit.category, "search", False, value)
        return found

    def json(self, shown: str, node: Any, category: str | None, exact: bool, depth: int) -> None:
        if depth > MAX_DEPTH:
            for cat in self.categories:
                self.add(shown, cat, "filter", False)  # too deep to read: strictest
            return
        if isinstance(node, dict):
            for key, child in node.items():
                k = _norm(str(key)).lower()
                op = k.lstrip("$")
                if op in OPERATOR_WORDS or op in EQUALITY_WORDS or k.startswith("$"):
                    exact_here = exact and (op in EQUALITY_WORDS or op in ("and", "or"))
                    self.json(shown, child, category, exact_here, depth + 1)
                    continue
                if k in SORT_KEYS:
                    for name in _names(child):
                        if c := self.field_category(name):
                            self.add(shown, c, "sort", False)
                    continue
                named = self.field_category(k)
                self.json(shown, child, named or category, exact if named is None else True,
                          depth + 1)  # fmt: skip
        elif isinstance(node, list):
            for child in node:
                self.json(shown, child, category, False, depth + 1)
        elif node is not None and not isinstance(node, bool):
            text = _norm(str(node))[:MAX_VALUE]
            if category is not None:
                self.add(shown, category, "filter", exact and self.exact(category, text, set()),
                         text)  # fmt: skip
            else:
                self.values(shown, text, False, key_hint="")


def _names(node: Any) -> list[str]:
    if isinstance(node, str):
        return [n.lstrip("-+") for n in re.split(r"[,\s|;]+", node) if n]
    if isinstance(node, dict):
        return [str(k) for k in node]
    if isinstance(node, list):
        return [n for item in node for n in _names(item)]
    return []


def _searching(before: list[str]) -> bool:
    """A path that searches: `.../by-mobile/...`, `findByPhone`, `.../search/mobile/...`."""
    last = _norm(unquote(before[-1])).lower()
    if re.match(r"(find|search|get|query|lookup)?_?-?by[-_]?[a-z\u4e00-\u9fff]", last):
        return True
    return any(_norm(unquote(s)).lower() in SEARCH_KEYS for s in before[:-1])


def _pairs(query: str) -> list[tuple[str, str]]:
    """Query pairs split on `&` and on `;` (some servlet containers split on both)."""
    out: list[tuple[str, str]] = []
    for chunk in re.split(r"[&;]", query):
        if not chunk:
            continue
        key, _, value = chunk.partition("=")
        out.append((key, value.replace("+", " ")))
    return out


def query_terms(
    path: str,
    query: str,
    *,
    route: RouteSpec | None = None,
    taxonomy: Taxonomy | None = None,
    body: Mapping[str, Any] | None = None,
) -> list[FilterTerm]:
    """Every category the request filters, sorts or searches by.

    `path` is the normalised path (identifiers as path segments count as searches);
    `body`, a parsed JSON or form body of a route declared as a search, is read like
    a query string.
    """
    if not query and body is None and not _MAY_IDENTIFY.search(path):
        return []
    reader = _Reader(route, taxonomy)
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if not _MAY_IDENTIFY.search(segment):
            continue  # identifiers all carry a digit (or an e-mail's @), escapes aside
        segment, _, matrix = segment.partition(";")
        for key, value in _pairs(matrix.replace(";", "&")):  # /customers;mobile=139
            reader.param(key, value, where=f"matrix:{safe_param(_key_forms(key)[-1])}")
        text = _norm(unquote(segment))
        hit = detectors.classify_value(text) if text else None
        if hit is not None and hit.category in IDENTIFIERS:
            reader.add("path", hit.category, "search", True, text)
        elif i and _PATH_VALUE.search(text) and _searching(segments[:i]):
            # /by-mobile/1391234, /search/phone/139...: a field named, then a value
            named = reader.field_category(_norm(unquote(segments[i - 1])).lower())
            if named is not None:
                reader.add("path", named, "filter", reader.exact(named, text, ()), text)
    pairs = _pairs(query)
    for i, (key, value) in enumerate(pairs):
        reader.param(key, value if i < MAX_PARAMS else "")
    if body is not None:
        for key, value in body.items():
            if isinstance(value, dict | list):
                reader.json(f"body.{safe_param(str(key))}", {key: value}, None, True, 0)
            elif value is not None and not isinstance(value, bool):
                reader.param(str(key), str(value), where=f"body.{safe_param(str(key))}")
    return reader.terms


def audit_path(path: str) -> str:
    """A path fit for the audit trail when no catalog template names it: matrix
    parameters and segments that may hold a value (three digits or more, an @, any
    non-ASCII or percent-encoded character) become `{}`, so a refused probe such as
    `/api/customers/by-mobile/1391234` is not recorded with its value."""
    out = []
    for segment in path.split("/"):
        head, semi, _ = segment.partition(";")
        if _PATH_VALUE.search(head) or "@" in head or "%" in head or not head.isascii():
            head = "{}"
        out.append(head + (";{}" if semi else ""))
    return "/".join(out)


# What cookies are for (session ids, CSRF and auth tokens: the credentials category
# by their names): a CRM filters by none of them, and every browser sends them.
_COOKIE_KINDS = frozenset({"credentials"})


def cookie_query(cookie_headers: Iterable[str], route: RouteSpec | None) -> str:
    """The cookies a lenient CRM reads as request parameters (ASP.NET's
    `Request["mobile"]` looks in the query, the form, then the cookies; PHP's
    $_REQUEST does with `request_order` C), as query pairs for the filter check.
    Only cookies named like a filter, sort or search parameter: a session cookie's
    random value filters nothing, and is left alone."""
    reader = _Reader(route, None)
    pairs: list[str] = []
    for header in cookie_headers:
        for item in header.split(";"):
            name, eq, value = item.strip().partition("=")
            info = _key_info(name) if name and eq else None
            if info is None:
                continue
            _, parts, _, is_sort, is_search = info
            named = {reader.field_category(p) for p in parts} - {None, *_COOKIE_KINDS}
            if is_sort or is_search or named:
                pairs.append(f"{quote(name, safe='')}={quote(value.strip(), safe='')}")
    return "&".join(pairs)


def check_request(
    path: str,
    query: str,
    decision: Decision,
    taxonomy: Taxonomy,
    *,
    route: RouteSpec | None = None,
    body: Mapping[str, Any] | None = None,
) -> QueryVerdict:
    """`query_terms` judged against the decision (see the module docstring)."""
    terms = query_terms(path, query, route=route, taxonomy=taxonomy, body=body)
    return check_terms(terms, decision, taxonomy)
