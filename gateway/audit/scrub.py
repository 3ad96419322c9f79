"""Last-line PII guard for the few free-text strings an audit event may carry.

The event builder copies only allow-listed keys, but some allow-listed values are
strings that come from outside the gateway (policy reasons, purposes, route
templates, record ids). Those strings are checked for the shapes of the three
identifiers that most often leak into logs: mainland mobile numbers, resident
identity numbers (with their check digit) and payment card numbers (Luhn). A match
is replaced by a marker, so an investigator sees that something was removed.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

# Runs of 11+ digits (an identity number may end in X). Short runs never match,
# so the common case costs one failed regex search.
_DIGIT_RUN = re.compile(r"\d{11,}[Xx]?")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _resident_id_ok(value: str) -> bool:
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17].upper()


def looks_like_pii(run: str) -> bool:
    """True if a digit run has the shape of a mobile, identity or card number."""
    if len(run) == 18 and _resident_id_ok(run):
        return True
    digits = run.rstrip("Xx")
    if len(digits) != len(run):
        return False
    if len(digits) == 11 and _MOBILE.fullmatch(digits):
        return True
    # Mobile numbers hidden in a longer run (e.g. "86" country prefix) are still mobiles.
    if len(digits) in (13, 14) and digits.startswith(("86", "086")) and _MOBILE.search(digits):
        return True
    return 13 <= len(digits) <= 19 and _luhn_ok(digits)


def _replace(match: re.Match[str]) -> str:
    run = match.group(0)
    return REDACTED if looks_like_pii(run) else run


def scrub(value: str, max_len: int = 256) -> str:
    """Redact identifier-shaped digit runs, then cap the length (never leaving the
    head of a cut digit run behind)."""
    if len(value) < 11:  # too short to hold a run the patterns below could match
        return value
    if len(value) > 4 * max_len:
        value = value[: 4 * max_len]
    if _DIGIT_RUN.search(value) is not None:
        value = _DIGIT_RUN.sub(_replace, value)
    if len(value) > max_len:
        cut = value[:max_len]
        if value[max_len].isdigit():
            cut = cut.rstrip("0123456789")
        value = cut
    return value


def scrub_many(values: list[str], max_len: int = 128) -> list[str]:
    """Scrub a list of ids with one regex pass over the joined text in the common case."""
    if not values or max(map(len, values)) < 11:  # no room for an identifier-sized run
        return values
    joined = "\x00".join(values)
    if len(joined) <= max_len * len(values) and _DIGIT_RUN.search(joined) is None:
        return values
    return [scrub(v, max_len) for v in values]
