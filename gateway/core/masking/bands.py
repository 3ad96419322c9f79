"""Generalisation operators: amount bands, birth year, age band (GB/T 37964 泛化).

Each recognises its own output (a band label, `1990-**-**`, `30–39`) and
returns it unchanged, so generalising twice is generalising once.
"""

from __future__ import annotations

import re
from datetime import date

from gateway.core.normalize import normalize_str

REDACTED = "***"


def _norm(s: str) -> str:
    return s.strip() if s.isascii() else normalize_str(s).strip()


_YEAR = re.compile(r"\s*((?:18|19|20)\d\d)(?:\D?(\d{1,2})\D?(\d{1,2}))?")
AGE_BAND_RE = re.compile(r"\d{1,3}–\d{1,3}")


def birth_year(s: str) -> str:
    """1990-**-**: only the year stays."""
    if AGE_BAND_RE.fullmatch(s):
        return s
    m = _YEAR.match(_norm(s))
    return f"{m.group(1)}-**-**" if m else "****-**-**"


def age_band(s: str, today: date | None = None) -> str:
    """30–39: ten-year age band computed from the birth date (or year)."""
    if AGE_BAND_RE.fullmatch(s):
        return s
    m = _YEAR.match(_norm(s))
    if m is None:
        return REDACTED
    today = today or date.today()
    age = today.year - int(m.group(1))
    if m.group(2) and m.group(3) and (today.month, today.day) < (int(m.group(2)), int(m.group(3))):
        age -= 1
    low = max(age, 0) // 10 * 10
    return f"{low}–{low + 9}"


# Amount bands (yuan): (upper bound exclusive, label, lower bound).
BANDS: tuple[tuple[float, str, int], ...] = (
    (100_000, "<10万", 0),
    (500_000, "10–50万", 100_000),
    (1_000_000, "50–100万", 500_000),
    (3_000_000, "100–300万", 1_000_000),
    (float("inf"), "≥300万", 3_000_000),
)
BAND_LABELS = frozenset(label for _, label, _ in BANDS)
_AMOUNT = re.compile(r"[-+]?\d+(?:\.\d+)?")


def band_of(amount: float) -> tuple[str, int]:
    for upper, label, lower in BANDS:
        if amount < upper:
            return label, lower
    return BANDS[-1][1], BANDS[-1][2]  # unreachable: the last bound is infinite


def parse_amount(s: str) -> float | None:
    t = _norm(s).replace(",", "").replace("¥", "").replace("元", "").replace(" ", "")
    scale = 1.0
    if t.endswith("万"):
        t, scale = t[:-1], 10_000.0
    return float(t) * scale if _AMOUNT.fullmatch(t) else None


def amount_band(s: str) -> str:
    if s in BAND_LABELS:
        return s
    amount = parse_amount(s)
    return band_of(amount)[0] if amount is not None else REDACTED
