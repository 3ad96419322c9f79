"""Masked values in every style a person or another system writes them, after NFKC.

A caller who saved a masked page back would overwrite the CRM's real values with
`185＊＊＊＊0203`, `210102••••••••9473`, `徐某`, `[已脱敏]` or one of the
gateway's own outputs (a pseudonym, a band label, `***`). The write guard asks
two questions, and this module answers both without a taxonomy:

* `masked_value(value, kind)`: is a *field value* (a phone, a name, an e-mail)
  masked? Fields hold one value each, so any mask glyph, placeholder token,
  ellipsis or (for identifiers) a character no identifier carries counts.
* `masked_span(text)`: does *free text* (notes, unknown keys) carry a masked
  span? Prose has `...`, `#3` and `XX公司`, so only unambiguous marks count:
  runs of mask glyphs, runs of `x` inside digits, tokens, pseudonyms.

Everything is judged on `fold(value)`: NFKC (full-width to half-width) with every
mask glyph (`＊ • ● ○ × ■ …`) folded to `*`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["IDENTIFIER_KINDS", "fold", "generalised", "masked_span", "masked_value"]

# Glyphs people and systems use in place of hidden characters (after NFKC, which
# already turns ＊ into *, ＃ into #, ？ into ?, Ｘ into X).
_MASK_GLYPHS = (
    "*\u2217\u204e\u2051\u066d\u22c6\u2731\u2732\u2733\u273a\u273b\u273c\u273d\u2743\u2749"  # stars
    "\u2022\u2219\u25cf\u25cb\u25ef\u26ab\u26aa\u2b24\u25e6\u2981\u2b58"  # bullets, circles
    "\u00d7\u2715\u2716\u2717\u2718\u2573\u292b\u292c"  # crosses
    "\u25a0\u25a1\u25aa\u25ab\u25fc\u25fb\u25fe\u25fd\u2588\u2591\u2592\u2593\u2589"  # blocks
    "\u25c6\u25c7\u2666\u2605\u2606\u25b2\u25b3"  # diamonds, stars, triangles
)
_FOLD = str.maketrans(dict.fromkeys(_MASK_GLYPHS, "*"))

# Kinds whose values are identifiers: digits and letters with a few separators.
IDENTIFIER_KINDS = frozenset(
    {"id", "passport", "mobile", "landline", "postal_code", "uscc", "card", "account", "plate"}
)
_IDENT_OK = re.compile(r"[0-9A-Za-z +\-()./\u4e00-\u9fff]*")  # plates start with 京/沪...

# Placeholder tokens, searched case-insensitively in the folded value.
_TOKENS = re.compile(
    r"[\[\(<{【（《〈「『]\s*(?:已?脱敏|已?隐藏|已?屏蔽|已?删除|已?遮蔽|保密|敏感信息|"
    r"masked|redacted|hidden|removed|withheld|censored|confidential|private|protected|"
    r"sensitive|suppressed|omitted|anonymi[sz]ed|pii)\s*[\]\)>}】）》〉」』]"
    r"|^\s*(?:已?脱敏|已?隐藏|已?屏蔽|已?遮蔽|保密|已?加密|脱敏数据|敏感信息|"
    r"masked|redacted|hidden|removed|withheld|censored|anonymi[sz]ed|"
    r"\*+\s*(?:masked|redacted|hidden)\s*\*+)\s*$",
    re.IGNORECASE,
)
PSEUDONYM = re.compile(r"(?<![A-Za-z0-9])pn_[a-z2-7]{16}(?![A-Za-z0-9])")
# In a field value: any star; `#`/`?`/`_` runs; `x` runs touching digits; ellipses.
_FIELD_MARKS = re.compile(
    r"\*|#{2,}|\?{2,}|_{3,}|\.{3,}|(?<=\d)[xX]{2,}|[xX]{2,}(?=\d)|(?<=\d)[xX]+(?=\d)"
)
# In free text: only runs no prose has.
_TEXT_MARKS = re.compile(r"\*{2,}|(?<=\d\.)\*|(?<=\d)[xX]{2,}|[xX]{2,}(?=\d)")
# 张某 / 王某某 / 某某 / 欧阳某: a surname (1-2 characters) and only 某 after it;
# 张先生 / 李女士: a surname and an honorific, no given name.
_NAME_MOU = re.compile(r"[\u4e00-\u9fff]{0,2}某{1,3}")
_NAME_HONORIFIC = re.compile(r"[\u4e00-\u9fff]{1,2}(?:先生|女士|小姐|太太|夫人)")
# 姓名 in Latin: "Z. S." / "Z*** S***" (stars are caught above) / "Mr. Z".
_NAME_INITIALS = re.compile(r"(?:[A-Z]\.\s*){1,3}|(?:Mr|Mrs|Ms|Miss)\.?\s+[A-Z]\.?", re.IGNORECASE)


@lru_cache(maxsize=8192)
def fold(value: str) -> str:
    """NFKC, then every mask glyph as `*` (so `185＊＊＊＊0203` is `185****0203`)."""
    text = value if value.isascii() else unicodedata.normalize("NFKC", value)
    return text.translate(_FOLD).replace("\u2026", "...")


def masked_value(value: str, kind: str | None = None) -> bool:
    """Is this field value masked (in any style), a placeholder token or a pseudonym?

    `kind` is the taxonomy kind of the field's category (None when unknown):
    identifiers also refuse characters no identifier has (`185--?0203`), names
    recognise `张某`/`张先生`.
    """
    if not value:
        return False
    t = fold(value).strip()
    if not t:
        return False
    if _TOKENS.search(t) or PSEUDONYM.search(t) or _FIELD_MARKS.search(t):
        return True
    if kind in IDENTIFIER_KINDS and not _IDENT_OK.fullmatch(t):
        return True
    if kind == "name":
        return bool(
            _NAME_MOU.fullmatch(t) or _NAME_HONORIFIC.fullmatch(t) or _NAME_INITIALS.fullmatch(t)
        )
    return False


def masked_span(text: str) -> bool:
    """Does free text carry a masked span (a saved-back note would erase the real one)?"""
    if not text:
        return False
    t = fold(text)
    return bool(_TEXT_MARKS.search(t) or PSEUDONYM.search(t) or _TOKENS.search(t.strip()))


_NUM = r"\d+(?:\.\d+)?\s*(?:万|千|百万|千万|亿|[kKwWmM])?\s*(?:元|圆|rmb|cny)?"
# 10–50万, 10-50万, 10万~50万, <10万, ≥300万, 50万以上, 100万以内 (a band, not an amount).
_AMOUNT_BAND = re.compile(
    rf"(?:[<>≤≥＜＞]=?|不足|低于|高于|超过|大于|小于)\s*{_NUM}"
    rf"|{_NUM}\s*(?:[-–—~～至到]|to)\s*{_NUM}"
    rf"|{_NUM}\s*(?:以上|以下|以内|及以上|及以下|左右|\+)",
    re.IGNORECASE,
)
# 30–39 / 30-39岁 / 30多岁 (an age band); 1990 / 1990年 (a birth year only).
_AGE_BAND = re.compile(r"\d{1,3}\s*(?:[-–—~～至到]\s*\d{1,3}\s*岁?|多岁|岁以上|岁以下|\+)")
_YEAR_ONLY = re.compile(r"(?:18|19|20)\d\d\s*年?(?:[-/.]\s*\*+.*)?")


def generalised(value: str, kind: str | None) -> bool:
    """A generalised value of an amount (a band) or a birth date (an age band, a year)."""
    t = fold(value).strip()
    if kind == "amount":
        return _AMOUNT_BAND.fullmatch(t) is not None
    if kind == "birth_date":
        return _AGE_BAND.fullmatch(t) is not None or _YEAR_ONLY.fullmatch(t) is not None
    return False
