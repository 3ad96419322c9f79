"""Validation of Chinese identifiers: checksums, dates, prefixes, number plans.

A regex alone flags every long number; these checks are what turn a digit run
into an identifier. All functions take a compacted value (no separators,
upper-case `X`) and are pure.
"""

from __future__ import annotations

from datetime import date
from operator import mul

# GB 11643 resident ID: province prefixes in use (71 Taiwan, 81/82 HK/Macau).
ID_PROVINCES = frozenset(
    [f"{p}" for p in (11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37)]
    + [f"{p}" for p in (41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65)]
    + ["71", "81", "82"]
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
IMPORT_YEAR = date.today().year

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_INDEX = {c: i for i, c in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))

# Mobile segments allocated by MIIT (reference §3.2; 142/143/154/161/164/194 and
# 123 are not). 140/141/144/146/148 are data-only IoT/M2M segments and excluded.
MOBILE_SEGMENTS = frozenset(
    [f"13{d}" for d in range(10)]
    + ["145", "147", "149"]
    + ["150", "151", "152", "153", "155", "156", "157", "158", "159"]
    + ["162", "165", "166", "167"]
    + ["170", "171", "172", "173", "175", "176", "177", "178"]
    + [f"18{d}" for d in range(10)]
    + ["190", "191", "192", "193", "195", "196", "197", "198", "199"]
)


def mod11_2_ok(s: str) -> bool:
    """ISO 7064 MOD 11-2 over an 18-character ID (17 digits + check digit or X)."""
    if len(s) != 18 or not s[:17].isdigit():
        return False
    return _ID_CHECK[sum(map(mul, map(int, s[:17]), _ID_WEIGHTS)) % 11] == s[17]


def date_ok(year: int, month: int, day: int, today: date | None = None) -> bool:
    """A real calendar date, not in the future and not before 1880."""
    if year < 1880 or not 1 <= month <= 12 or not 1 <= day <= 31:
        return False
    try:
        d = date(year, month, day)
    except ValueError:
        return False
    if today is None and year < IMPORT_YEAR:
        return True  # before this process's start year: certainly not in the future
    return d <= (today or date.today())


def resident_id_ok(s: str) -> bool:
    """18-digit resident ID: province prefix, real birth date <= today, MOD 11-2."""
    return (
        len(s) == 18
        and s[:2] in ID_PROVINCES
        and s[:17].isdigit()
        and date_ok(int(s[6:10]), int(s[10:12]), int(s[12:14]))
        and mod11_2_ok(s)
    )


def residence_permit_ok(s: str) -> bool:
    """港澳台居民居住证: 810000 / 820000 / 830000 + birth date + MOD 11-2."""
    return (
        len(s) == 18
        and s[:6] in ("810000", "820000", "830000")
        and s[:17].isdigit()
        and date_ok(int(s[6:10]), int(s[10:12]), int(s[12:14]))
        and mod11_2_ok(s)
    )


def permanent_residence_ok(s: str) -> bool:
    """外国人永久居留身份证 (2023): 9-prefix, same layout, MOD 11-2."""
    return (
        len(s) == 18
        and s[0] == "9"
        and s[:17].isdigit()
        and date_ok(int(s[6:10]), int(s[10:12]), int(s[12:14]))
        and mod11_2_ok(s)
    )


def legacy_id_ok(s: str) -> bool:
    """15-digit pre-1999 ID: province prefix and a 19YYMMDD date. No checksum exists."""
    return (
        len(s) == 15
        and s.isdigit()
        and s[:2] in ID_PROVINCES
        and date_ok(1900 + int(s[6:8]), int(s[8:10]), int(s[10:12]))
    )


def uscc_ok(s: str) -> bool:
    """GB 32100 unified social credit code: charset, digit region code, mod-31 check."""
    if len(s) != 18 or not s[2:8].isdigit():
        return False
    try:
        total = sum(_USCC_INDEX[c] * w for c, w in zip(s, _USCC_WEIGHTS, strict=False))
        check = _USCC_INDEX[s[17]]
    except KeyError:
        return False
    return (31 - total % 31) % 31 == check


_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_ok(digits: str) -> bool:
    rev = digits[::-1]
    total = sum(map(int, rev[0::2])) + sum(map(_LUHN_DOUBLE.__getitem__, map(int, rev[1::2])))
    return total % 10 == 0


def card_iin_ok(d: str) -> bool:
    """Issuer prefix and length plausible for a payment card number."""
    n = len(d)
    if d.startswith(("62", "60", "955")):
        return 16 <= n <= 19  # UnionPay and domestic issuers
    if d[0] == "4":
        return n in (16, 19)  # Visa
    if "51" <= d[:2] <= "55" or "2221" <= d[:4] <= "2720":
        return n == 16  # Mastercard
    if d[:2] in ("34", "37"):
        return n == 15  # Amex
    if "3528" <= d[:4] <= "3589":
        return 16 <= n <= 19  # JCB
    return False


def mobile_ok(d: str) -> bool:
    """An 11-digit PRC mobile number in an allocated segment."""
    return len(d) == 11 and d.isdigit() and d[:3] in MOBILE_SEGMENTS


def landline_area(d: str) -> int:
    """Length of the area code of a compacted landline with trunk prefix, or 0."""
    if len(d) < 10 or d[0] != "0" or not d.isdigit():
        return 0
    if d[1] == "1":
        area = 3 if d[2] == "0" else 0
    elif d[1] == "2":
        area = 3
    elif d[1] in "3456789":
        area = 4
    else:
        area = 0
    if not area:
        return 0
    subscriber = d[area:]
    if 7 <= len(subscriber) <= 8 and subscriber[0] in "2345678":
        return area
    return 0


def corporate_number(d: str) -> bool:
    """400/800 numbers (and 95xxx service lines) belong to companies, not customers."""
    return (len(d) == 10 and d[:3] in ("400", "800")) or (5 <= len(d) <= 8 and d[:2] == "95")
