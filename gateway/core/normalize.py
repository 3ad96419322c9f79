"""Text normalisation for detection, with a map back to the original characters.

Identifiers reach the gateway as `１３８ １２３４ ５６７８`, `+86-138-1234-5678`,
`110105 19491231 002x`. Detectors match on a normalised copy (NFKC, so full-width
becomes half-width; one dash, one space, one middle dot; `x` after a digit
becomes `X`), but free-text masking must replace the *original* characters, so
`normalize()` also returns, for every normalised character, the index of the
original character it came from.

Most CRM text is ASCII or CJK without compatibility forms; both take a fast path
with an identity offset map (`offsets is None`). Only text NFKC would change
character by character pays for the per-character walk.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# One-to-one replacements: dash and space variants collapse to '-' and ' ',
# middle-dot variants to '·' (NFKC alone leaves most of these).
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_SPACES = "\u00a0\u1680\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
_DOTS = "\u00b7\u2022\u2027\u30fb\uff65\u2219"
_PUNCT = {**dict.fromkeys(_DASHES, "-"), **dict.fromkeys(_SPACES, " "), **dict.fromkeys(_DOTS, "·")}
_TABLE = str.maketrans(_PUNCT)


def _single_char_nfkc_table() -> dict[int, str]:
    """NFKC mappings that turn one character into one other character, in the ranges
    Chinese text uses (Latin-1, general punctuation, enclosed forms, CJK symbols,
    full-width forms). Applying them with `str.translate` keeps offsets 1:1, so
    full-width digits and punctuation, the common case, never need the slow walk."""
    table: dict[int, str] = {}
    for lo, hi in ((0x00A0, 0x0100), (0x2000, 0x2C00), (0x3000, 0x3400), (0xFE30, 0xFFF0)):
        for cp in range(lo, hi):
            ch = chr(cp)
            norm = unicodedata.normalize("NFKC", ch)
            if len(norm) == 1 and norm != ch:
                table[cp] = _PUNCT.get(norm, norm)
    for ch, target in _PUNCT.items():
        table[ord(ch)] = target
    return table


_FAST_TABLE = _single_char_nfkc_table()
# Most CJK text has none of these characters, which one C-level search finds out.
_NEEDS_TABLE = re.compile("[" + "".join(re.escape(chr(cp)) for cp in sorted(_FAST_TABLE)) + "]")


_FAST_CHARS = {chr(cp): target for cp, target in _FAST_TABLE.items()}


def _fast_char(m: re.Match[str]) -> str:
    return _FAST_CHARS[m.group()]


def _fast_map(text: str) -> str:
    # re.sub over the (few) matching characters beats str.translate's per-char lookups.
    return _NEEDS_TABLE.sub(_fast_char, text) if _NEEDS_TABLE.search(text) else text


SEPARATORS = " -·"
_DELETE_SEPARATORS = str.maketrans("", "", " \t\r\n\f\v-·()（）\u3000\u00a0")
_LOWER_X = re.compile(r"(?<=\d)x(?![0-9A-Za-z])")


@dataclass(frozen=True, slots=True)
class Normalized:
    """Normalised text and, per character, the index of its source character.

    `offsets is None` means the identity map (no character changed length).
    """

    text: str
    offsets: tuple[int, ...] | None
    original_length: int

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open span of `text` to the span of original characters it came from."""
        if self.offsets is None:
            return start, end
        if start >= end:
            pos = self.offsets[start] if start < len(self.offsets) else self.original_length
            return pos, pos
        return self.offsets[start], self.offsets[end - 1] + 1


def _upper_x(text: str) -> str:
    if "x" not in text:
        return text
    return _LOWER_X.sub("X", text)


def normalize(text: str) -> Normalized:
    """Normalise `text` for matching; see the module docstring for what changes."""
    if text.isascii():
        return Normalized(_upper_x(text), None, len(text))
    mapped = _fast_map(text)
    if unicodedata.is_normalized("NFKC", mapped):
        return Normalized(_upper_x(mapped), None, len(text))
    out: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(mapped):
        norm = unicodedata.normalize("NFKC", ch) if not ch.isascii() else ch
        # NFKC may turn a compatibility character into a space or dash variant.
        norm = norm.translate(_TABLE)
        out.append(norm)
        offsets.extend([i] * len(norm))
    joined = "".join(out)
    if len(joined) == len(text):
        return Normalized(_upper_x(joined), None, len(text))
    return Normalized(_upper_x(joined), tuple(offsets), len(text))


def normalize_str(text: str) -> str:
    """`normalize(text).text` without building the offset map (whole values)."""
    if text.isascii():
        return _upper_x(text)
    mapped = _fast_map(text)
    if unicodedata.is_normalized("NFKC", mapped):
        return _upper_x(mapped)
    return _upper_x(unicodedata.normalize("NFKC", mapped).translate(_TABLE))


def compact(value: str) -> str:
    """One value as a bare identifier: normalised, separators and brackets removed.

    `+86 138-1234-5678` -> `+8613812345678`; `110105 19491231 002x` -> `11010519491231002X`.
    Mask characters (`*`) survive, so masked values stay recognisable.
    """
    text = value if value.isascii() else normalize_str(value)
    if not text.isalnum():
        text = text.translate(_DELETE_SEPARATORS)
        if not text.isascii():
            # a removed separator can leave a combining mark next to a new base
            # (`R¸0` -> `R` + U+0327): compose again so compact() is idempotent
            text = unicodedata.normalize("NFKC", text)
        text = _upper_x(text)  # `0)x` -> `0x` now has its x after a digit
    return text[:-1] + "X" if text[-1:] == "x" else text


def strip_country_code(digits: str) -> str:
    """Drop a leading +86 / 0086 / 86 from a compacted Chinese phone number."""
    if digits.startswith("+86"):
        return digits[3:]
    if digits.startswith("0086"):
        return digits[4:]
    if digits.startswith("86") and len(digits) == 13:
        return digits[2:]
    return digits
