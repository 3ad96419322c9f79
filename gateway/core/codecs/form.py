"""application/x-www-form-urlencoded bodies, rewritten as flat fields (`rewrite_fields`).

Percent-escapes carry bytes of the declared charset (a GBK form stays GBK), so
decoding and re-encoding use that codec. Repeated keys are kept, in order:
they are sent to the enforcer in batches with unique keys. A key the enforcer
leaves out of its answer is dropped from the body.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from gateway.core.codecs.structured import MalformedBody
from gateway.core.rewrite import RecordEnforcer, RewriteError


def rewrite_form(raw: bytes, enforcer: RecordEnforcer, codec: str) -> bytes:
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, encoding=codec, errors="strict")
    except (UnicodeError, ValueError) as exc:
        raise MalformedBody(f"malformed form body: {exc}") from exc
    out: list[tuple[str, str]] = []
    for group in _unique_key_batches(pairs):
        rewritten = enforcer.rewrite_fields(dict(group))
        out.extend((key, rewritten[key]) for key, _ in group if key in rewritten)
    try:
        return urlencode(out, encoding=codec, errors="strict").encode("ascii")
    except UnicodeError as exc:
        raise RewriteError(f"rewritten form cannot be encoded as {codec}") from exc


def _unique_key_batches(pairs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    batches: list[list[tuple[str, str]]] = [[]]
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen:
            batches.append([])
            seen = set()
        seen.add(key)
        batches[-1].append((key, value))
    return [batch for batch in batches if batch]
