"""NDJSON / JSON Lines, streamed line by line: each line is a record (or a document)."""

from __future__ import annotations

import orjson

from gateway.core.codecs.limits import CodecLimits, too_large
from gateway.core.codecs.structured import rewrite_as_text, rewrite_ndjson_line
from gateway.core.rewrite import RecordEnforcer, RewriteError


class NdjsonStage:
    def __init__(self, enforcer: RecordEnforcer, limits: CodecLimits, *, sensitive: bool) -> None:
        self._enforcer = enforcer
        self._limit = limits.max_buffered
        self._sensitive = sensitive
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        buf = self._tail + data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._tail = buf
            if len(buf) > self._limit:
                raise too_large()
            return b""
        self._tail = buf[cut + 1 :]
        if len(self._tail) > self._limit:
            raise too_large()
        return self._lines(buf[:cut].split(b"\n"))

    def finish(self) -> bytes:
        tail, self._tail = self._tail, b""
        return self._lines([tail])

    def _lines(self, lines: list[bytes]) -> bytes:
        out: list[bytes] = []
        for line in lines:
            if len(line) > self._limit:
                raise too_large()
            if not line.strip():
                continue
            try:
                rewritten = rewrite_ndjson_line(line, self._enforcer)
            except orjson.JSONDecodeError as exc:
                if self._sensitive:
                    raise RewriteError(f"NDJSON line is not JSON: {exc}") from exc
                rewritten = rewrite_as_text(line, self._enforcer)
            if rewritten is not None:
                out.append(rewritten + b"\n")
        return b"".join(out)
