"""Object keys that may themselves carry data (`{"13812345678": {...}}`)."""

from __future__ import annotations

import re
from functools import lru_cache

_SUSPECT_KEY = re.compile(r"\d(?:[ -]?\d){5,}|@")


@lru_cache(maxsize=8192)
def suspect_key(key: str) -> bool:
    """Whether an object key, CSV header or XML name may hold an identifier (a run of
    six or more digits, or an "@"): such keys are scanned like free text. Memoised:
    keys repeat far more than values, so the pattern runs once per distinct key."""
    return _SUSPECT_KEY.search(key) is not None
