"""Copying allowed values into the audit event: typed, length-capped, scrubbed.

Small helpers the event builder runs for every event, kept apart so the builder
reads as the event's shape. Also the event's ids and timestamps (UUIDv7,
RFC 3339), which must be cheap: they run on the request path.
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Mapping
from typing import Any

from gateway.audit.scrub import scrub

# UUID randomness needs uniqueness, not secrecy: a fast generator seeded from the OS,
# reseeded in forked children so two workers never share a sequence.
_rng = random.Random(os.urandom(32))  # noqa: S311 (ids, not secrets)
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))
_second: list[Any] = [-1, ""]  # cache of the RFC 3339 prefix for the current second


def uuid7() -> str:
    """A time-ordered UUIDv7 (RFC 9562): sortable dedup key for at-least-once delivery."""
    ms = time.time_ns() // 1_000_000
    rand = _rng.getrandbits(80)
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & 0x3FFFFFFFFFFFFFFF)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def text(value: Any, max_len: int = 256) -> str | None:
    """An allowed scalar rendered as a scrubbed string (None stays None)."""
    if type(value) is str:
        return value if len(value) < 11 else scrub(value, max_len)
    if value is None:
        return None
    if isinstance(value, (bool, int, float)):
        return str(value)
    return scrub(str(value), max_len)


def flag(value: Any) -> bool:
    """Only a real True counts (a truthy string from a bad input does not)."""
    return value is True


def count(value: Any) -> int:
    """An int (not a bool), else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@functools.lru_cache(maxsize=2048)
def _token(key: str) -> str:
    """Count-map keys are taxonomy tokens (outcomes, levels, categories, grades) that
    repeat on every event: scrub each distinct one once."""
    return scrub(key, 64)


def rfc3339(now: float) -> str:
    sec = int(now)
    if _second[0] != sec:
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second[1]}.{int(now * 1000) % 1000:03d}Z"


FieldCounts = dict[str, dict[str, dict[str, int]]]


def field_counts(value: Any) -> FieldCounts:
    """{outcome: {level: {category: n}}} with scrubbed keys and int leaves only (the
    shape `EnforcementReport.to_audit()["fields"]` has); a flat loop, it runs per event."""
    out: FieldCounts = {}
    if not isinstance(value, dict):
        return out
    for outcome, levels in value.items():
        if not isinstance(levels, dict):
            continue
        by_level: dict[str, dict[str, int]] = {}
        for level, cats in levels.items():
            if not isinstance(cats, dict):
                continue
            kept = {_token(str(c)): n for c, n in cats.items() if type(n) is int}
            if kept:
                by_level[_token(str(level))] = kept
        if by_level:
            out[_token(str(outcome))] = by_level
    return out


def token_counts(value: Mapping[str, int]) -> dict[str, int]:
    """A typed {token: n} map with scrubbed keys (grades, tiers, levels, detectors)."""
    return {_token(k): n for k, n in value.items() if type(n) is int}


def outcome_counts(value: Mapping[str, Mapping[str, Mapping[str, int]]]) -> FieldCounts:
    """A typed {outcome: {level: {category: n}}} map with scrubbed keys, empties left out."""
    out: FieldCounts = {}
    for outcome, levels in value.items():
        by_level = {
            _token(level): kept for level, cats in levels.items() if (kept := token_counts(cats))
        }
        if by_level:
            out[_token(outcome)] = by_level
    return out


def counts(value: Any, depth: int) -> dict[str, Any]:
    """Nested {token: ... {token: int}} maps (field outcomes, grades): keys scrubbed,
    leaves must be ints; anything else is dropped."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {}
    for k, v in value.items():
        key = _token(k) if type(k) is str else scrub(str(k), 64)
        if depth > 1:
            inner = counts(v, depth - 1)
            if inner:
                out[key] = inner
        elif isinstance(v, int) and not isinstance(v, bool):
            out[key] = v
    return out


def tokens(value: Any, max_items: int = 64) -> list[str]:
    """A short list of scrubbed names (roles, PII categories)."""
    if not isinstance(value, (list, tuple, set, frozenset)):
        return []
    return [scrub(str(v), 64) for v in list(value)[:max_items]]
