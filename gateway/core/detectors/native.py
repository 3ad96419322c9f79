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
from datetime import date
from types import ModuleType

from gateway.core.detectors import checks, numbers

Found = tuple[int, int, str, str, float]


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get("CRM_GATEWAY_PYTHON_DETECTORS") == "1":
        return None, "turned off by CRM_GATEWAY_PYTHON_DETECTORS=1"
    try:
        from gateway.core import _native
    except ImportError as exc:
        return None, f"the extension was not built ({exc}); install cargo and reinstall"
    return _native, f"compiled ({_native.VERSION})"


_NATIVE, _STATUS = _load()


def status() -> tuple[bool, str]:
    """Whether the compiled detectors run, and a sentence for the operator."""
    return _NATIVE is not None, _STATUS


def scan_numbers(text: str) -> list[Found]:
    """`numbers.scan_numbers(text)` as `Found` tuples (category, detector, confidence)."""
    if _NATIVE is not None:
        today = date.today()
        found: list[Found] | None = _NATIVE.scan_numbers(
            text, checks.IMPORT_YEAR, today.year, today.month, today.day
        )
        if found is not None:
            return found
    return python_scan_numbers(text)


def python_scan_numbers(text: str) -> list[Found]:
    """The specification, for the differential tests and the benchmark."""
    return [(h.start, h.end, *h.verdict[:3]) for h in numbers.scan_numbers(text)]
