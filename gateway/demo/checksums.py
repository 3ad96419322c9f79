"""Check digits for the identifiers the demo CRM invents.

The gateway's detectors validate check digits to avoid flagging random digit
runs as ID numbers or bank cards, so synthetic data must carry correct ones or
the demo would exercise only the "looks like, but is not" path.
"""

from __future__ import annotations

# GB 11643-1999: weights 2^(17-i) mod 11 for the first 17 digits.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"


def resident_id_check_char(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError(f"expected 17 digits, got {first17!r}")
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def is_valid_resident_id(value: str) -> bool:
    """True when `value` is 18 characters with a correct MOD 11-2 check character."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    return resident_id_check_char(value[:17]) == value[17].upper()


def luhn_check_digit(payload: str) -> str:
    """Return the Luhn digit that completes `payload` (all digits, check digit absent)."""
    if not payload.isdigit():
        raise ValueError(f"expected digits, got {payload!r}")
    total = 0
    # Walking from the right, the payload's last digit is doubled (it sits left of the check).
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when `number` is all digits and its last digit is the Luhn check digit."""
    if len(number) < 2 or not number.isdigit():
        return False
    return luhn_check_digit(number[:-1]) == number[-1]
