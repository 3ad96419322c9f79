"""Formats that must be seen whole (XML, forms, free text): collect up to the cap, then rewrite."""

from __future__ import annotations

from collections.abc import Callable

from gateway.core.codecs.limits import CodecLimits, too_large


class BufferedStage:
    def __init__(self, rewrite: Callable[[bytes], bytes], limits: CodecLimits) -> None:
        self._rewrite = rewrite
        self._limit = limits.max_buffered
        self._chunks: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> bytes:
        self._size += len(data)
        if self._size > self._limit:
            raise too_large()
        self._chunks.append(data)
        return b""

    def finish(self) -> bytes:
        raw = b"".join(self._chunks)
        self._chunks.clear()
        return self._rewrite(raw)
