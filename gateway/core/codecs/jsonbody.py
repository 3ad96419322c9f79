"""JSON bodies: buffered below a threshold, streamed record by record above it.

The size is usually unknown up front (chunked responses), so the stage buffers
until the body crosses `stream_threshold`; if the document is an object or
array, it switches to `JsonStream` and replays what it holds. Objects that are
not on the way to a declared record prefix are parsed whole there (up to
`max_buffered` each), arrays stream element by element.
"""

from __future__ import annotations

from gateway.core.codecs.jsonstream import JsonStream
from gateway.core.codecs.limits import CodecLimits, too_large
from gateway.core.codecs.structured import rewrite_as_text, rewrite_json_like
from gateway.core.rewrite import RecordEnforcer, RewriteError

_WHITESPACE = b" \t\r\n"


class JsonStage:
    def __init__(
        self,
        enforcer: RecordEnforcer,
        limits: CodecLimits,
        *,
        sensitive: bool,
        expected_size: int | None = None,
    ) -> None:
        self._enforcer = enforcer
        self._limits = limits
        self._sensitive = sensitive
        # records are recognised in any shape, so any object or array may stream
        self._stream_at: int | None = min(limits.stream_threshold, limits.max_buffered)
        if expected_size is not None and expected_size > self._stream_at:
            self._stream_at = 0  # known to be large: stream from the first byte
        self._chunks: list[bytes] = []
        self._size = 0
        self._stream: JsonStream | None = None

    def feed(self, data: bytes) -> bytes:
        if self._stream is not None:
            return self._stream.feed(data)
        self._chunks.append(data)
        self._size += len(data)
        if self._stream_at is not None and self._size > self._stream_at:
            held = b"".join(self._chunks)
            first = held.lstrip(_WHITESPACE)[:1]
            if first in (b"{", b"["):
                self._chunks.clear()
                self._stream = JsonStream(self._enforcer, self._limits)
                return self._stream.feed(held)
            if first:
                self._stream_at = None  # a scalar or JSONP: buffered, with the cap
            self._chunks = [held]
        if self._size > self._limits.max_buffered:
            raise too_large()
        return b""

    def finish(self) -> bytes:
        if self._stream is not None:
            return self._stream.finish()
        raw = b"".join(self._chunks)
        self._chunks.clear()
        if not raw.strip():
            return raw  # an empty body has nothing to mask
        out = rewrite_json_like(raw, self._enforcer)
        if out is not None:
            return out
        if self._sensitive:
            raise RewriteError("body is not valid JSON")
        return rewrite_as_text(raw, self._enforcer)
