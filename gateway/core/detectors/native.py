"""The compiled detectors where they were built, else the Python ones.

`pip install` builds `gateway.core._native` from native/ (Rust, PyO3) when cargo is
there. The Python modules beside this one stay the specification: each compiled
function returns what its Python counterpart returns (tests/unit/core/test_native.py
proves it on generated text) and hands text outside the domain it was proven on back
to Python (it returns None). Without the extension, or with
`CRM_GATEWAY_PYTHON_DETECTORS=1`, the Python code runs alone; the server says so
when it starts (`status()`).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from datetime import date
from types import ModuleType
from typing import TypeVar

from gateway.core import normalize as _normalize
from gateway.core.detectors import checks, numbers

Found = tuple[int, int, str, str, float]
T = TypeVar("T")


def _cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def scan_domain() -> dict[str, str]:
    """The characters beyond ASCII and CJK ideographs the compiled scan may read, each
    with what `normalize` makes of it, from this interpreter's Unicode database:
    punctuation and symbols NFKC leaves alone (no case, no digit, no space, visible)
    and the one-to-one mappings of the normalisation table that land on ASCII, CJK or
    such punctuation (full-width forms, dash, space and dot variants, other scripts'
    digits). Anything else (combining marks, letters of other scripts, numerals,
    invisible characters) makes the compiled scan hand the text back."""
    fast = _normalize.fast_chars()
    stable: set[str] = set()
    for lo, hi in ((0x00A0, 0x0100), (0x2000, 0x2C00), (0x3000, 0x3040), (0xFE30, 0xFFF0)):
        for cp in range(lo, hi):
            ch = chr(cp)
            if (
                ch not in fast
                and unicodedata.category(ch)[0] in "PS"
                and unicodedata.normalize("NFKC", ch) == ch
                and ch.lower() == ch == ch.upper()
                and not (ch.isnumeric() or ch.isspace() or ch.isalnum())
                and ch not in _normalize.INVISIBLE
                and ch not in _normalize.NUMERALS
            ):
                stable.add(ch)
    domain = {ch: ch for ch in stable}

    def lands(target: str) -> bool:
        return target.isascii() or _cjk(target) or target in stable or fast.get(target) == target

    for ch, target in fast.items():
        if len(target) == 1 and lands(target) and target not in _normalize.NUMERALS:
            domain[ch] = target
    return domain


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get("CRM_GATEWAY_PYTHON_DETECTORS") == "1":
        return None, "turned off by CRM_GATEWAY_PYTHON_DETECTORS=1"
    try:
        from gateway.core import _native
    except ImportError as exc:
        return None, f"the extension was not built ({exc}); install cargo and reinstall"
    _native.set_domain(scan_domain())
    return _native, f"compiled ({_native.VERSION})"


_NATIVE, _STATUS = _load()


def status() -> tuple[bool, str]:
    """Whether the compiled detectors run, and a sentence for the operator."""
    return _NATIVE is not None, _STATUS


class NativeFault(RuntimeError):
    """The compiled detectors failed (a Rust panic): the response they were reading
    is refused like any other failure of the rewrite, never passed through."""


def _call(fn: Callable[..., T], *args: object) -> T:
    """A compiled function, its panic made an ordinary error. PyO3 raises a panic as
    `PanicException`, a BaseException, which the response path would otherwise take
    for a cancellation and let escape instead of refusing the body."""
    try:
        return fn(*args)
    except BaseException as exc:
        if isinstance(exc, Exception) or type(exc).__name__ != "PanicException":
            raise
        raise NativeFault(f"the compiled detectors failed in {fn.__name__}") from exc


def _today() -> tuple[int, int, int, int]:
    """The dates a birth date is checked against, as `checks.date_ok` reads them."""
    today = date.today()
    return checks.IMPORT_YEAR, today.year, today.month, today.day


def scan_numbers(text: str) -> list[Found]:
    """`numbers.scan_numbers(text)` as `Found` tuples (category, detector, confidence)."""
    if _NATIVE is not None:
        found: list[Found] | None = _call(_NATIVE.scan_numbers, text, _today())
        if found is not None:
            return found
    return python_scan_numbers(text)


def detect(text: str) -> list[tuple[int, int, str, str, float]] | None:
    """`detectors._detect(text)` as tuples, or None: no extension, or text outside the
    domain the compiled scan was proven on (the caller then runs the Python scan)."""
    if _NATIVE is None:
        return None
    found: list[tuple[int, int, str, str, float]] | None = _call(_NATIVE.detect, text, _today())
    return found


def classify_value(value: str, ctx: str) -> tuple[bool, tuple[str, int, int, str, float] | None]:
    """`detectors._classify_value(value, key_hint)` with `ctx = key_hint.lower()`:
    `(True, hit fields or None)`, or `(False, None)` when Python must classify it."""
    if _NATIVE is None:
        return False, None
    found: tuple[bool, tuple[str, int, int, str, float] | None] = _call(
        _NATIVE.classify_value, value, ctx, _today()
    )
    return found


def python_scan_numbers(text: str) -> list[Found]:
    """The specification, for the differential tests and the benchmark."""
    return [(h.start, h.end, *h.verdict[:3]) for h in numbers.scan_numbers(text)]
