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
from gateway.core.normalize import compact, strip_country_code
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
    """Is `value` something the gateway produced (a mask, band, token), not real data?

    The write guard uses it to refuse a client that writes a masked value back
    over the real one. With a taxonomy, the category's own operators decide;
    without, any operator whose fixed point `value` is counts.
    """
    if not isinstance(value, str) or not value:
        return False
    if value in (ops.REDACTED, NEVER_CLEAR, "****") or PSEUDONYM_RE.fullmatch(value):
        return True
    if value in ops.BAND_LABELS or ops.AGE_BAND_RE.fullmatch(value):
        return True
    if "*" not in value:
        return False
    if taxonomy is not None:
        try:
            cat = taxonomy.category(category)
        except KeyError:
            cat = None
        if cat is not None:
            names = {*cat.masks.values()}
            candidates = [ops.OPERATORS[n] for n in names]
            gen = ops.GENERALISERS.get(cat.kind)
            if gen is not None:
                candidates.append(gen)
            return any(op(value) == value for op in candidates)
    return any(op(value) == value for op in ops.OPERATORS.values())


class Masker:
    """Applies actions to values under one taxonomy and one pseudonym key."""

    __slots__ = ("_key", "_plans", "taxonomy")

    def __init__(self, taxonomy: Taxonomy, pseudonym_key: bytes) -> None:
        if len(pseudonym_key) < 16:
            raise ValueError("pseudonym_key must be at least 16 bytes")
        self.taxonomy = taxonomy
        self._key = pseudonym_key
        # category -> (category, never_clear, mask ops per style, generaliser)
        self._plans: dict[str, tuple[Category, bool, dict[str, ops.Operator], ops.Operator]] = {}
        for name, cat in taxonomy.categories.items():
            masks = {style: ops.OPERATORS[op] for style, op in cat.masks.items()}
            gen = ops.GENERALISERS.get(cat.kind, masks["strict"])
            never = taxonomy.level(cat.level).never_clear
            self._plans[name] = (cat, never, masks, gen)

    def _plan(self, category: str) -> tuple[Category, bool, dict[str, ops.Operator], ops.Operator]:
        plan = self._plans.get(category)
        if plan is None:
            plan = self._plans[self.taxonomy.category(category).name]  # alias, or KeyError
        return plan

    def apply(self, value: Any, category: str, action: Action) -> Any:
        """The value to emit for `category` under `action`, or DROPPED.

        Unknown categories raise KeyError and BLOCK raises MaskingError; both
        must block the response (fail closed).
        """
        verb = action.verb
        if verb is Verb.BLOCK:
            raise MaskingError("BLOCK refuses the whole response; it cannot be applied to a value")
        if verb is Verb.DROP:
            return DROPPED
        plan = self._plan(category)
        if plan[1]:
            return NEVER_CLEAR if isinstance(value, str) else None
        if verb is Verb.ALLOW or value is None:
            return value
        return self._value(value, plan, verb, action.style or "standard")

    def _value(
        self,
        value: Any,
        plan: tuple[Category, bool, dict[str, ops.Operator], ops.Operator],
        verb: Verb,
        style: str,
    ) -> Any:
        if isinstance(value, str):
            return self._string(value, plan, verb, style)
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return self._number(value, plan, verb, style)
        if isinstance(value, dict):
            return {k: self._value(v, plan, verb, style) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v, plan, verb, style) for v in value]
        return None

    def _string(
        self,
        value: str,
        plan: tuple[Category, bool, dict[str, ops.Operator], ops.Operator],
        verb: Verb,
        style: str,
    ) -> str:
        if not value:
            return value
        if verb is Verb.REDACT:
            return ops.REDACTED
        if verb is Verb.PSEUDONYMISE:
            return self.pseudonym(value, plan[0])
        if verb is Verb.GENERALISE:
            return plan[3](value)
        return plan[2][style](value)

    def _number(
        self,
        value: float,
        plan: tuple[Category, bool, dict[str, ops.Operator], ops.Operator],
        verb: Verb,
        style: str,
    ) -> Any:
        cat = plan[0]
        as_string = cat.number_as_string
        if verb is Verb.REDACT:
            return ops.REDACTED if as_string else None
        if verb is Verb.PSEUDONYMISE:
            return self.pseudonym(repr(value), cat) if as_string else None
        if cat.kind in _BANDED_KINDS:
            op = ops.amount_band if verb is Verb.GENERALISE else plan[2][style]
            if op is ops.fixed:
                return ops.REDACTED if as_string else None
            label, lower = ops.band_of(float(value))
            if as_string:
                return label
            return lower if isinstance(value, int) else float(lower)
        if not as_string:
            return None
        return self._string(repr(value), plan, verb, style)

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
