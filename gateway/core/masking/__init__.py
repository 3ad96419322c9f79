"""Apply a field action to a value: allow, mask, generalise, pseudonymise, redact, drop.

`Masker.apply(value, category, action)` returns the value to put in the
response, or `DROPPED` when the field must be removed. Choices that keep the
legacy CRM's clients working (they parse the JSON with a fixed schema):

* Strings stay strings. Numbers stay numbers unless the category sets
  `number_as_string`: a banded amount becomes the band's lower bound
  (350000 -> 100000, a number), or the band label ("10–50万") where allowed;
  redacting a number gives `null`, or "***" where allowed. Booleans under any
  verb but ALLOW become `null`. Lists and objects keep their shape, with every
  leaf handled under the same category and action.
* Levels marked `never_clear` (L5 credentials) are replaced by a fixed
  "******" (non-strings: `null`) whatever the action, even ALLOW, so neither
  the value nor its length ever leaves the gateway.
* PSEUDONYMISE gives "pn_" + 16 base32 characters of HMAC-SHA256(key,
  category, normalised value): stable across requests and replicas sharing the
  key, so masked records still join, and not reversible without the key.
* BLOCK refuses the whole response; it is not a value operation and raises
  `MaskingError` so a caller that forgot to check it fails closed.
* Every operation is idempotent: masking a masked value changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any, Final

from gateway.core.detectors import Hit
from gateway.core.masking import operators as ops
from gateway.core.model import Action, Verb
from gateway.core.normalize import compact, formula_guard, strip_country_code
from gateway.core.placeholders import fold, generalised, masked_span, masked_value
from gateway.core.taxonomy import Category, Taxonomy

__all__ = ["DROPPED", "NEVER_CLEAR", "Masker", "MaskingError", "is_masked_placeholder"]

NEVER_CLEAR: Final = "******"
PSEUDONYM_RE = re.compile(r"pn_[a-z2-7]{16}")
_COMPACT_KINDS = frozenset({"id", "passport", "mobile", "landline", "uscc", "card", "account"})
_BANDED_KINDS = frozenset({"amount", "records"})


class _Dropped:
    """Sentinel: the field is removed from the response."""

    _instance: _Dropped | None = None

    def __new__(cls) -> _Dropped:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DROPPED"

    def __bool__(self) -> bool:
        return False


DROPPED: Final = _Dropped()


class MaskingError(ValueError):
    """An action that cannot be applied to a value (BLOCK). Callers block the response."""


def is_masked_placeholder(value: Any, category: str, taxonomy: Taxonomy | None = None) -> bool:
    """Is `value` something the gateway produced (a mask, band, token), or a masked
    value in any other style (`185＊＊＊＊0203`, `张某`, `[已脱敏]`), not real data?

    The write guard uses it to refuse a client that writes a masked value back
    over the real one. Values are judged after NFKC with every mask glyph folded
    to `*` (`gateway.core.placeholders`). With a taxonomy the category's kind
    decides how strict the judgement is (a credential may contain `*`; an
    identifier may not contain `?`), and the category's own operators recognise
    outputs without a mark (a generalised address is a bare `浙江省杭州市`);
    without, any operator whose fixed point `value` is counts.
    """
    if not isinstance(value, str) or not value:
        return False
    text = fold(value).strip()
    if not text:
        return False
    if text in (ops.REDACTED, NEVER_CLEAR, "****") or PSEUDONYM_RE.fullmatch(text):
        return True
    if text in ops.BAND_LABELS or ops.AGE_BAND_RE.fullmatch(value.strip()):
        return True
    cat = None
    if taxonomy is not None:
        try:
            cat = taxonomy.category(category)
        except KeyError:
            cat = None
    if cat is None:
        if taxonomy is not None and masked_value(text):
            return True
        return "*" in text and any(op(text) == text for op in ops.OPERATORS.values())
    if cat.kind == "credential":
        return False  # a secret may well contain "*": only the fixed forms above count
    if cat.free_form and cat.kind != "name":
        # typed by staff (an employer, an address): "A*B 咨询" is a name, "***" a mask
        if masked_span(text) or generalised(text, cat.kind):
            return True
    elif masked_value(text, cat.kind) or generalised(text, cat.kind):
        return True
    gen = ops.GENERALISERS.get(cat.kind)
    if gen is not None and gen(text) == text:
        return True  # a generalised value (a bare 浙江省杭州市) has no mark of its own
    if "*" not in text:
        return False
    return any(ops.OPERATORS[n](text) == text for n in {*cat.masks.values()})


ValueFn = Callable[[Any], Any]


def _raise_block(value: Any) -> Any:
    raise MaskingError("BLOCK refuses the whole response; it cannot be applied to a value")


def _dropped(value: Any) -> Any:
    return DROPPED


def _identity(value: Any) -> Any:
    return value


def _never_clear(value: Any) -> Any:
    return NEVER_CLEAR if isinstance(value, str) else None


# Short field values repeat across records and pages (names, employers, statuses,
# addresses); every string operator is a pure function of its input, so each
# compiled (category, action) remembers its recent answers. Bounded: emptied when full.
_MEMO_MAX_LEN = 64
_MEMO_SIZE = 4096


def _memoised(fn: Callable[[str], str]) -> Callable[[str], str]:
    memo: dict[str, str] = {}

    def cached(value: str) -> str:
        out = memo.get(value)
        if out is None:
            out = fn(value)
            if len(value) <= _MEMO_MAX_LEN:
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                memo[value] = out
        return out

    return cached


def _masked_guard(value: str) -> int:
    """A formula guard before a value already masked from its first character (`'****`,
    what a guarded `'0` becomes): kept, so masking a masked cell again changes nothing."""
    return 1 if len(value) > 1 and value[1] == "*" else 0


class Masker:
    """Applies actions to values under one taxonomy and one pseudonym key.

    Each (category, action) pair is compiled once into a single function (a
    dict lookup and one call per field on the hot path); there are at most
    categories x actions of them.
    """

    __slots__ = ("_compiled", "_key", "taxonomy")

    def __init__(self, taxonomy: Taxonomy, pseudonym_key: bytes) -> None:
        if len(pseudonym_key) < 16:
            raise ValueError("pseudonym_key must be at least 16 bytes")
        self.taxonomy = taxonomy
        self._key = pseudonym_key
        self._compiled: dict[tuple[str, Action], ValueFn] = {}

    def apply(self, value: Any, category: str, action: Action) -> Any:
        """The value to emit for `category` under `action`, or DROPPED.

        Unknown categories raise KeyError and BLOCK raises MaskingError; both
        must block the response (fail closed).
        """
        return self.compiled(category, action)(value)

    def compiled(self, category: str, action: Action) -> Callable[[Any], Any]:
        """The memoised `compile(category, action)`: callers that apply one pair to
        many values (an enforcer's per-record plan) bind it once and skip `apply`'s
        per-call lookup."""
        fn = self._compiled.get((category, action))
        if fn is None:
            fn = self._compiled[(category, action)] = self.compile(category, action)
        return fn

    def compile(self, category: str, action: Action) -> Callable[[Any], Any]:
        """`apply` for one (category, action), as a function of the value alone.

        An enforcer that resolves its action table once per request can call the
        returned function per field and skip the lookup. Raises KeyError for an
        unknown category; the function raises MaskingError for BLOCK.
        """
        verb = action.verb
        if verb is Verb.BLOCK:
            return _raise_block
        if verb is Verb.DROP:
            return _dropped
        cat = self.taxonomy.category(category)  # alias, or KeyError
        if self.taxonomy.level(cat.level).never_clear:
            return _never_clear
        if verb is Verb.ALLOW:
            return _identity
        raw_string_fn = self._string_fn(cat, verb, action.style or "standard")
        number_fn = self._number_fn(cat, verb, raw_string_fn)
        string_fn = raw_string_fn if raw_string_fn is ops.fixed else _memoised(raw_string_fn)

        def fn(value: Any) -> Any:
            cls = value.__class__
            if cls is str:
                if not value:
                    return value
                if value[0] in "'\t" and (guard := formula_guard(value) or _masked_guard(value)):
                    return value[:guard] + string_fn(value[guard:])  # the guard stays
                return string_fn(value)
            if value is None:
                return None
            if cls is int or cls is float:
                return number_fn(value)
            if cls is dict:
                return {k: fn(v) for k, v in value.items()}
            if cls is list:
                return [fn(v) for v in value]
            if isinstance(value, str):
                return string_fn(str(value)) if value else ""
            if isinstance(value, int | float) and not isinstance(value, bool):
                return number_fn(value)
            return None  # booleans and anything else carry no safe partial form

        return fn

    def _string_fn(self, cat: Category, verb: Verb, style: str) -> Callable[[str], str]:
        if verb is Verb.REDACT:
            return ops.fixed
        if verb is Verb.PSEUDONYMISE:
            return lambda v: self.pseudonym(v, cat)
        if verb is Verb.GENERALISE:
            return ops.GENERALISERS.get(cat.kind) or ops.OPERATORS[cat.masks["strict"]]
        return ops.OPERATORS[cat.masks[style]]

    def _number_fn(self, cat: Category, verb: Verb, string_fn: Callable[[str], str]) -> ValueFn:
        as_string = cat.number_as_string
        redacted = ops.REDACTED if as_string else None
        if verb is Verb.REDACT or (verb is Verb.PSEUDONYMISE and not as_string):
            return lambda v: redacted
        if verb is not Verb.PSEUDONYMISE and cat.kind in _BANDED_KINDS:
            if string_fn is ops.fixed:
                return lambda v: redacted

            def band(value: float) -> Any:
                label, lower = ops.band_of(float(value))
                if as_string:
                    return label
                return lower if value.__class__ is int else float(lower)

            return band
        if not as_string:
            return lambda v: None
        return lambda v: string_fn(repr(v))

    def pseudonym(self, value: str, category: Category) -> str:
        """Keyed, stable token for `value` in `category`; tokens pass through unchanged."""
        if PSEUDONYM_RE.fullmatch(value):
            return value
        canon = compact(value) if category.kind in _COMPACT_KINDS else value.strip()
        if category.kind == "mobile":
            canon = strip_country_code(canon)
        mac = hmac.new(self._key, f"{category.name}\x1f{canon}".encode(), hashlib.sha256)
        return "pn_" + base64.b32encode(mac.digest()[:10]).decode("ascii").lower()

    def is_masked_placeholder(self, value: Any, category: str) -> bool:
        return is_masked_placeholder(value, category, self.taxonomy)

    def mask_text(self, text: str, hits: list[Hit], action_for: Callable[[Hit], Action]) -> str:
        """Mask only the spans of `hits` in `text`, from the ORIGINAL characters.

        A span whose action is DROP or REDACT becomes "***"; BLOCK raises
        MaskingError. Overlapping hits (not produced by `detect`) keep the first.
        """
        if not hits:
            return text
        out: list[str] = []
        pos = 0
        for hit in sorted(hits, key=lambda h: h.start):
            if hit.start < pos or hit.end > len(text) or hit.start >= hit.end:
                continue
            action = action_for(hit)
            if action.verb is Verb.DROP:
                new: Any = ops.REDACTED
            else:
                new = self.apply(text[hit.start : hit.end], hit.category, action)
                if not isinstance(new, str):
                    new = ops.REDACTED
            out.append(text[pos : hit.start])
            out.append(new)
            pos = hit.end
        out.append(text[pos:])
        return "".join(out)
