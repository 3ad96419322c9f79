"""Buffered JSON, JSONP and NDJSON: the shapes a JSON body may take, whatever its label.

`rewrite_json_like` is the content-type confusion rule in one place: a body
that parses as JSON, JSONP or NDJSON is masked as such, so relabelling a JSON
API response as text/html or text/plain does not route it around the masker.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.core.rewrite import RecordEnforcer, RewriteError

_JSONP = re.compile(
    rb"\A(?P<lead>\s*(?:/\*\*/\s*)?)(?P<callback>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)"
    rb"\s*\((?P<body>.*)\)\s*;?\s*\Z",
    re.DOTALL,
)


class MalformedBody(RewriteError):
    """The body is not its declared structured type.

    Sensitive routes block it; other routes fall back to free-text masking.
    """


def rewrite_json(raw: bytes, enforcer: RecordEnforcer) -> bytes | None:
    """A whole JSON document, or None if `raw` is not one."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return orjson.dumps(enforcer.rewrite_document(doc))


def rewrite_jsonp(raw: bytes, enforcer: RecordEnforcer) -> bytes | None:
    """`callback({...});` with a JSON argument, or None."""
    m = _JSONP.match(raw)
    if m is None:
        return None
    body = rewrite_json(m.group("body"), enforcer)
    if body is None:
        return None
    lead = b"/**/" if b"/**/" in m.group("lead") else b""
    return lead + m.group("callback") + b"(" + body + b");"


def rewrite_ndjson_line(line: bytes, enforcer: RecordEnforcer) -> bytes | None:
    """One NDJSON line, a document of its own: an object at a declared prefix ("") or
    carrying record facts is a record (None drops the line), anything else is walked.

    Raises orjson.JSONDecodeError if the line is not JSON; callers decide what that means.
    """
    return _rewrite_line_value(orjson.loads(line), enforcer)


def _rewrite_line_value(value: Any, enforcer: RecordEnforcer) -> bytes | None:
    out = enforcer.rewrite_document(value)
    if out is None and isinstance(value, dict):
        return None  # a dropped record: the line vanishes
    return orjson.dumps(out)


def rewrite_ndjson(raw: bytes, enforcer: RecordEnforcer) -> bytes | None:
    """Every non-blank line is JSON (at least one): rewrite line by line, else None."""
    lines = [line for line in raw.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        values = [orjson.loads(line) for line in lines]
    except orjson.JSONDecodeError:
        return None
    out: list[bytes] = []
    for value in values:
        line_out = _rewrite_line_value(value, enforcer)
        if line_out is not None:
            out.append(line_out + b"\n")
    return b"".join(out)


def rewrite_json_like(raw: bytes, enforcer: RecordEnforcer) -> bytes | None:
    """JSON, then JSONP, then NDJSON; None if the body is none of them."""
    for attempt in (rewrite_json, rewrite_jsonp, rewrite_ndjson):
        out = attempt(raw, enforcer)
        if out is not None:
            return out
    return None


def rewrite_as_text(raw: bytes, enforcer: RecordEnforcer) -> bytes:
    """Free text: only the spans the detectors find are masked."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RewriteError(f"body is not valid text: {exc.reason}") from exc
    return enforcer.rewrite_text(text).encode("utf-8")
