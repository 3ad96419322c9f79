"""Value detectors: find customer identifiers in values and free text, with validation.

Field names decide most fields (`category_for_key`); these detectors are the
safety net for free text (notes, remarks) and for fields the catalog does not
know. A regex only proposes a candidate; checksums (MOD 11-2, GB 32100, Luhn),
real dates, allocated number segments and context keywords decide.

Where candidates overlap, priority decides: credential > ID (checksum) > USCC
(checksum) > bank card (Luhn) > phone > the rest; then the longer span. The one
exception is a legal entity's USCC (public, L0), ranked below phones so that a
checksum collision can only make a value *more* protected.

Public API:
    Hit                        one finding; start/end index the ORIGINAL text
    detect(text)               free-text scan: non-overlapping hits, sorted by start
    classify_value(value, key_hint=None)   is the whole value one identifier?
    category_for_key(key)      field-name rules (memoised)
    is_free_text_key(key)      does the key name prose to be scanned?
"""

from __future__ import annotations

import base64
import bisect
import functools
import ipaddress
import re
from dataclasses import dataclass

from gateway.core.detectors import checks, native, patterns, prose, urls
from gateway.core.detectors.keys import category_for_key, is_free_text_key
from gateway.core.detectors.numbers import classify_compact
from gateway.core.normalize import compact, formula_guard, normalize, normalize_str

__all__ = [
    "SHAPED_CATEGORIES",
    "USCC_CATEGORIES",
    "Hit",
    "category_for_key",
    "classify_value",
    "detect",
    "is_free_text_key",
    "message_shaped",
    "uscc_category",
]

PRIORITY = {
    "credentials": 100,
    "id_number": 90,
    "uscc_person": 80,
    "bank_card": 70,
    "mobile": 60,
    "landline": 60,
    # A legal entity's code is public (L0): if a checksum collision makes it overlap a
    # personal identifier, the personal reading wins, so a collision never unmasks.
    "uscc_org": 58,
    "email": 55,
    "passport": 52,
    "securities_account": 52,
    "ip_address": 50,
    "bank_account": 45,
    "licence_plate": 45,
    "postal_code": 40,
    "name": 35,
    "risk_assessment": 34,
    "balance": 33,
    "assets": 32,
    "income": 32,
    "address": 30,
}


@dataclass(frozen=True, slots=True)
class Hit:
    category: str
    start: int
    end: int
    detector: str
    confidence: float


Found = patterns.Found


_FIVE_DIGITS = re.compile(r"\d(?:\D*\d){4}")
_UPPER_ASCII = re.compile(r"[A-Z]")
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_IP_CHARS = re.compile(r"[0-9A-Fa-f:.]{3,45}")


def _has_cjk(text: str) -> bool:
    return not text.isascii() and patterns.CJK_RE.search(text) is not None


# Encoded runs (base64, base64url, hex) long enough to hold an identifier: decoded,
# and scanned as text when they decode to text.
_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{8,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){5,}(?![0-9A-Fa-f])")
_HEX_DIGITS = re.compile(r"(?:3[0-9])+")  # hex of ASCII digits is all digits itself
_LETTER = re.compile(r"[A-Za-z]")
_MAX_ENCODED = 4096


def _decoded_text(data: bytes) -> str | None:
    """`data` as text if it is printable UTF-8 holding digits or an @, else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.isprintable() or (_FIVE_DIGITS.search(text) is None and "@" not in text):
        return None
    return text


def decode_run(run: str) -> str | None:
    """The text a base64, base64url or hex run stands for, or None."""
    if len(run) > _MAX_ENCODED:
        return None
    if _HEX_RUN.fullmatch(run) and (not run.isdigit() or _HEX_DIGITS.fullmatch(run)):
        text = _decoded_text(bytes.fromhex(run))
        if text is not None:
            return text
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    padded = body + "=" * (-len(body) % 4)
    alphabet = b"-_" if ("-" in body or "_" in body) else b"+/"
    try:
        data = base64.b64decode(padded, altchars=alphabet, validate=True)
    except ValueError:
        return None
    return _decoded_text(data)


def _encoded(t: str) -> list[Found]:
    """Encoded runs whose text holds an identifier: the whole run is that identifier."""
    found: list[Found] = []
    for m in _B64_RUN.finditer(t):
        run = m.group()
        if _LETTER.search(run) is None and _HEX_DIGITS.fullmatch(run) is None:
            continue  # numbers, dates, phone numbers: read as they are
        text = decode_run(run)
        if text is None:
            continue
        inner = _resolve(_candidates(normalize(text).text, encoded=False))
        if inner:
            best = max(inner, key=lambda f: PRIORITY.get(f[2], 0))
            found.append((m.start(), m.end(), best[2], f"encoded:{best[3]}", best[4]))
    return found


def _candidates(t: str, *, encoded: bool = True) -> list[Found]:
    found: list[Found] = patterns.credentials(t)
    if encoded and len(t) >= 8 and _B64_RUN.search(t) is not None:
        found.extend(_encoded(t))
    if "=" in t or "/" in t:  # bearer secrets in links (token=, /portal/<token>)
        found.extend(urls.token_urls(t))
    if _FIVE_DIGITS.search(t) is not None:
        found.extend(native.scan_numbers(t))
        if _UPPER_ASCII.search(t) is not None:  # letter-bearing codes
            found.extend(patterns.keyword_codes(t))
            found.extend(patterns.usccs(t))
    if "@" in t:
        found.extend(patterns.emails(t))
    if "." in t or ":" in t:
        found.extend(patterns.ips(t))
    if _has_cjk(t):
        found.extend(patterns.plates(t))
        found.extend(patterns.names(t))
        found.extend(patterns.addresses(t))
        found.extend(prose.estate_addresses(t))
        found.extend(prose.amounts(t))
        found.extend(prose.risk_grades(t))
    return found


def _resolve(found: list[Found]) -> list[Found]:
    """Keep the highest-priority, then longest, candidate wherever spans overlap."""
    if len(found) < 2:
        return found
    ranked = sorted(found, key=lambda f: (-PRIORITY.get(f[2], 0), f[0] - f[1], f[0]))
    starts: list[int] = []  # kept spans, sorted by start (they never overlap)
    kept: list[Found] = []
    for cand in ranked:
        i = bisect.bisect_right(starts, cand[0])
        if i and kept[i - 1][1] > cand[0]:
            continue  # overlaps the kept span starting at or before it
        if i < len(kept) and kept[i][0] < cand[1]:
            continue  # overlaps the kept span starting after it
        starts.insert(i, cand[0])
        kept.insert(i, cand)
    return kept


# Free text repeats (templated notes, remarks copied across records, the same
# record on every page); detection is pure, so short texts are memoised.
_MEMO_MAX_LEN = 256
_MEMO_SIZE = 4096


def detect(text: str) -> list[Hit]:
    """Scan free text. Spans index the original `text`, so masking replaces its characters."""
    n = len(text)
    if n < 5:
        return []
    if n <= _MEMO_MAX_LEN:
        return list(_detect_memo(text))
    return _detect(text)


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _detect_memo(text: str) -> tuple[Hit, ...]:
    return tuple(_detect(text))


def _detect(text: str) -> list[Hit]:
    found = native.detect(text)
    if found is not None:
        return [Hit(cat, s, e, det, conf) for s, e, cat, det, conf in found]
    return python_detect(text)


def python_detect(text: str) -> list[Hit]:
    """The free-text scan in Python: the specification of the compiled one."""
    norm = normalize(text)
    hits = []
    for start, end, cat, det, conf in _resolve(_candidates(norm.text)):
        s, e = norm.to_original(start, end)
        hits.append(Hit(cat, s, e, det, conf))
    return hits


def classify_value(value: str, key_hint: str | None = None) -> Hit | None:
    """The category of `value` if the whole value is one identifier, else None.

    `key_hint` (the field name) serves as the context keyword that detectors
    without a checksum (legacy IDs, passports, postal codes, accounts) require.
    Memoised (values repeat: enums, statuses, the same customer on every page);
    a Hit is immutable, so callers may share it.
    """
    if len(value) > 256:
        return None
    return _classify_memo(value, key_hint)


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _classify_memo(value: str, key_hint: str | None) -> Hit | None:
    return _classify_value(value, key_hint)


def _classify_value(value: str, key_hint: str | None = None) -> Hit | None:
    done, found = native.classify_value(value, key_hint.lower() if key_hint else "")
    if done:
        return None if found is None else Hit(*found)
    return python_classify_value(value, key_hint)


def python_classify_value(value: str, key_hint: str | None = None) -> Hit | None:
    """Value classification in Python: the specification of the compiled one."""
    n = len(value)
    ctx = key_hint.lower() if key_hint else ""
    if n < 5 or n > 256:
        return _cjk_value(value, ctx, n) if 2 <= n < 5 and _has_cjk(value) else None
    v = value.strip()
    if v[:1] == "'" and formula_guard(v):  # `'+8613812345678` is the cell it guards
        v = v[1:]
    if v.startswith("eyJ") and patterns.JWT_RE.fullmatch(v):
        return Hit("credentials", 0, n, "jwt", 0.95)
    if "=" in v and patterns.TRACK2_RE.fullmatch(v):
        return Hit("credentials", 0, n, "track2", 0.9)
    if "@" in v:
        m = patterns.EMAIL_RE.fullmatch(normalize_str(v))
        return Hit("email", 0, n, "email", 0.95) if m else None
    ascii_value = v.isascii()
    if ascii_value and _DATETIME.fullmatch(v):  # timestamps: the commonest long digit run
        return None
    # every number identifier has 5+ digits (numerals and other scripts' digits count)
    if _FIVE_DIGITS.search(v if ascii_value else normalize_str(v)) is not None:
        c = compact(v)
        body = c[1:] if c[:1] == "+" else c
        if body.isdigit() or (body[:-1].isdigit() and body[-1:] == "X"):
            verdict = classify_compact(c, ctx)
            if verdict is not None:
                return Hit(verdict.category, 0, n, verdict.detector, verdict.confidence)
        elif c.isascii():
            hit = _ascii_code(c, ctx, n)
            if hit is not None:
                return hit
    if (
        ascii_value
        and len(v) >= 8
        and _B64_RUN.fullmatch(v)
        and (_LETTER.search(v) is not None or _HEX_DIGITS.fullmatch(v))
    ):
        text = decode_run(v)
        hits = detect(text) if text is not None else []
        if hits:
            best = max(hits, key=lambda h: PRIORITY.get(h.category, 0))
            return Hit(best.category, 0, n, f"encoded:{best.detector}", best.confidence)
    if ascii_value:
        return _ip(v, n)
    return _cjk_value(normalize_str(v).strip(), ctx, n) if _has_cjk(v) else None


USCC_CATEGORIES = frozenset(("uscc_person", "uscc_org"))

# Categories whose values have a shape of their own (a number, a code, a short name):
# a sentence under such a key (`errors.phone: ["Enter a valid phone number ..."]`,
# `first_name: "该字段不能为空。"`) is a message about the field, not its value.
SHAPED_CATEGORIES = frozenset(
    (
        "name",
        "mobile",
        "landline",
        "email",
        "id_number",
        "passport",
        "bank_card",
        "bank_account",
        "securities_account",
        "postal_code",
        "licence_plate",
        "ip_address",
        "uscc_person",
        "uscc_org",
    )
)
_LOWER_WORD = re.compile(r"[a-z]{2,}[,.;:!?)]*")
_CJK_SENTENCE_MARKS = frozenset("，。！？；：")


def message_shaped(value: str) -> bool:
    """Is `value` a sentence (a validation or error message) rather than a value?

    By shape alone: four or more words of which three are lower-case words
    (`Enter a valid phone number`; a Latin name is capitalised words), or CJK
    text of eight or more characters with sentence punctuation (a Chinese name is
    two to four characters). Such a value is scanned as free text, so an
    identifier inside it is still found and masked."""
    if len(value) < 8:
        return False
    words = value.split()
    if len(words) >= 4 and sum(1 for w in words if _LOWER_WORD.fullmatch(w)) >= 3:
        return True
    return _has_cjk(value) and any(ch in _CJK_SENTENCE_MARKS for ch in value)


def uscc_category(value: str, declared: str) -> str:
    """The category of a unified social credit code held where `declared` is expected.

    The code says whose it is (GB 32100): the `92` prefix is an individual business
    (a person, L2); any other valid code is an organisation's public registration
    (L0). A value that starts with `92` is personal whatever its checksum; one that
    is no valid code keeps the declared category."""
    c = compact(value)
    if c.startswith("92"):
        return "uscc_person"
    if len(c) == 18 and patterns.USCC_RE.fullmatch(c) and checks.uscc_ok(c):
        return "uscc_org"
    return declared


def _ip(v: str, n: int) -> Hit | None:
    if ("." not in v and ":" not in v) or _IP_CHARS.fullmatch(v) is None:
        return None
    try:
        addr = ipaddress.ip_address(v.strip())
    except ValueError:
        return None
    return Hit("ip_address", 0, n, f"ipv{addr.version}", 0.8)


def _ascii_code(c: str, ctx: str, n: int) -> Hit | None:
    if len(c) == 18 and patterns.USCC_RE.fullmatch(c) and checks.uscc_ok(c):
        return Hit("uscc_person" if c.startswith("92") else "uscc_org", 0, n, "uscc", 0.8)
    if not ctx:
        return None
    if patterns.KW_PASSPORT.search(ctx) and patterns.PASSPORT_RE.fullmatch(c):
        return Hit("passport", 0, n, "passport", 0.7)
    if patterns.KW_SECURITIES.search(ctx) and patterns.SECURITIES_RE.fullmatch(c):
        return Hit("securities_account", 0, n, "securities_account", 0.7)
    return None


def _cjk_value(t: str, ctx: str, n: int) -> Hit | None:
    if n >= 7 and patterns.PLATE_RE.fullmatch(t):
        return Hit("licence_plate", 0, n, "licence_plate", 0.8)
    if n >= 5 and patterns.ADDRESS_RE.fullmatch(t) and len(patterns.UNIT_RE.findall(t)) >= 2:
        return Hit("address", 0, n, "address", 0.7)
    if ctx and patterns.NAME_KEYS.search(ctx):
        m = patterns.NAME_VALUE_RE.fullmatch(t)
        if m:
            return Hit("name", 0, n, "name_value", 0.6)
    return None
