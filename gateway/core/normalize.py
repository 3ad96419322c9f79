"""Text normalisation for detection, with a map back to the original characters.

Identifiers reach the gateway as `１３８ １２３４ ５６７８`, `+86-138-1234-5678`,
`110105 19491231 002x`, `6217\u200b0034...` or `一三九一二三四五六七八`. Detectors
match on a normalised copy (NFKC, so full-width becomes half-width; one dash, one
space, one middle dot; `x` after a digit becomes `X`; characters a reader does
not see, such as zero-width spaces, joiners, soft hyphens, bidi marks, variation
selectors and keycaps, dropped; every decimal digit of any script made ASCII;
Chinese and financial numerals made digits inside runs of five or more, so
`张三` and `一般` stay words), but free-text masking must replace the *original*
characters, so `normalize()` also returns, for every normalised character, the
index of the original character it came from.

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


# The zero of every run of decimal digits (Unicode category Nd) outside ASCII.
DIGIT_ZEROS = (
    0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
    0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0,
    0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0,
    0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50,
    0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC,
    0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
)  # fmt: skip


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
    for zero in DIGIT_ZEROS:  # decimal digits of other scripts (Arabic-Indic, Devanagari, ...)
        if zero < 0x10000:  # supplementary ones take the slow path (a class of them is slow)
            for d in range(10):
                table[zero + d] = str(d)
    return table


_FAST_TABLE = _single_char_nfkc_table()
# Most CJK text has none of these characters, which one C-level search finds out.


def _char_class(points: list[int]) -> str:
    """A regex character class of `points`, as ranges (a long list of single
    characters, supplementary ones among them, makes a slow class)."""
    parts: list[str] = []
    i = 0
    while i < len(points):
        j = i
        while j + 1 < len(points) and points[j + 1] == points[j] + 1:
            j += 1
        lo, hi = re.escape(chr(points[i])), re.escape(chr(points[j]))
        parts.append(lo if i == j else f"{lo}-{hi}")
        i = j + 1
    return "[" + "".join(parts) + "]"


_NEEDS_TABLE = re.compile(_char_class(sorted(_FAST_TABLE)))


_FAST_CHARS = {chr(cp): target for cp, target in _FAST_TABLE.items()}


def fast_chars() -> dict[str, str]:
    """The one-to-one normalisation table (a copy): character -> normalised character."""
    return dict(_FAST_CHARS)


def _fast_char(m: re.Match[str]) -> str:
    return _FAST_CHARS[m.group()]


def _fast_map(text: str) -> str:
    # re.sub over the (few) matching characters beats str.translate's per-char lookups.
    return _NEEDS_TABLE.sub(_fast_char, text) if _NEEDS_TABLE.search(text) else text


# What a reader does not see: format controls (zero-width space, non-joiner, joiner,
# word joiner, soft hyphen, bidi marks and isolates, BOM, tags), variation selectors,
# the combining grapheme joiner and the combining keycap, Hangul fillers.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2),
    (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F),
    (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0x20E3, 0x20E3),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0),
    (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
    (0xE0100, 0xE01EF),
)  # fmt: skip
INVISIBLE = frozenset(chr(c) for lo, hi in _INVISIBLE_RANGES for c in range(lo, hi + 1))
# BMP ones as one class (fast: a bitmap); supplementary ones (tags, variation
# selectors supplement) are looked for only in text that has supplementary characters.
_INVISIBLE_RE = re.compile(_char_class(sorted(ord(c) for c in INVISIBLE if ord(c) < 0x10000)))
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# Numbers written with numerals, as on cheques or read aloud (幺 for 1 in phone numbers).
_NUMERALS = "〇零一二三四五六七八九幺壹贰叁肆伍陆柒捌玖"
NUMERALS = frozenset(_NUMERALS)
_NUMERAL_CHAR = re.compile(f"[{_NUMERALS}]")
_NUMERAL_TABLE = str.maketrans(_NUMERALS, "00" + "123456789" + "1" + "123456789")
_RUN_GAP = "(?:[ \\-·\u3000]|" + _INVISIBLE_RE.pattern + ")*"
_NUMERAL_RUN = re.compile(f"[{_NUMERALS}0-9](?:{_RUN_GAP}[{_NUMERALS}0-9]){{4,}}")


def _numeral_run(m: re.Match[str]) -> str:
    return m.group().translate(_NUMERAL_TABLE)


def _astral_digit(m: re.Match[str]) -> str:
    d = unicodedata.decimal(m.group(), None)
    return m.group() if d is None else str(d)


def _digits(text: str) -> str:
    """Numerals inside runs of five or more digits made digits (1:1; other scripts'
    digits are in the fast table already)."""
    if _NUMERAL_CHAR.search(text) is None or _NUMERAL_RUN.search(text) is None:
        return text
    return _NUMERAL_RUN.sub(_numeral_run, text)


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
    mapped = _digits(_fast_map(text))
    astral = _ASTRAL.search(mapped) is not None
    if astral:  # rare (emoji, math digits): digits mapped 1:1, invisible ones looked for below
        mapped = _ASTRAL.sub(_astral_digit, mapped)
    invisible = astral or _INVISIBLE_RE.search(mapped) is not None
    if not invisible and unicodedata.is_normalized("NFKC", mapped):
        return Normalized(_upper_x(mapped), None, len(text))
    out: list[str] = []
    offsets: list[int] = []
    dropped = False
    for i, ch in enumerate(mapped):
        if invisible and ch in INVISIBLE:
            dropped = True
            continue
        norm = unicodedata.normalize("NFKC", ch) if not ch.isascii() else ch
        # NFKC may turn a compatibility character into a space or dash variant.
        norm = norm.translate(_TABLE)
        out.append(norm)
        offsets.extend([i] * len(norm))
    joined = "".join(out)
    if not dropped and len(joined) == len(text):
        return Normalized(_upper_x(joined), None, len(text))
    return Normalized(_upper_x(joined), tuple(offsets), len(text))


def normalize_str(text: str) -> str:
    """`normalize(text).text` without building the offset map (whole values)."""
    if text.isascii():
        return _upper_x(text)
    mapped = _digits(_fast_map(text))
    if _ASTRAL.search(mapped) is not None:
        mapped = "".join(c for c in _ASTRAL.sub(_astral_digit, mapped) if c not in INVISIBLE)
    if _INVISIBLE_RE.search(mapped) is not None:
        mapped = _INVISIBLE_RE.sub("", mapped)
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


# Spreadsheet exports put an apostrophe (or a tab) before a cell that starts with `+`,
# `-`, `=` or `@` so that Excel reads it as text, not a formula (`'+8613812345678`).
_FORMULA_GUARDED = "+-=@0123456789"


def formula_guard(value: str) -> int:
    """Length of a spreadsheet formula-guard prefix on `value` (0 or 1).

    Detection and masking read the cell without it, so `'+8613812345678` is the
    mobile it guards and its mask is the standard one (`'138****5678`)."""
    if len(value) > 1 and value[0] in "'\t" and value[1] in _FORMULA_GUARDED:
        return 1
    return 0
