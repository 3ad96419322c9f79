"""Content-Encoding decoding with bomb defences: the masker never sees (or passes) encoded bytes.

Each layer decompresses incrementally in bounded pieces and counts what it
produces, so a zip bomb is stopped after at most one piece past the limit,
not after it has filled memory. A stream that ends before its trailer is an
error: a truncated body cannot be shown as if it were complete.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli

from gateway.core.codecs.limits import CodecLimits, too_large
from gateway.core.rewrite import RewriteError

_PIECE = 64 * 1024
#: The ratio check starts once a layer has produced this much: tiny, highly
#: repetitive bodies (a page of blanks) legitimately compress very well.
RATIO_FLOOR = 1 << 20


class _Budget:
    """Counts one layer's input and output against the limits."""

    def __init__(self, limits: CodecLimits, name: str) -> None:
        self._limits = limits
        self._name = name
        self.consumed = 0
        self.produced = 0

    def take_input(self, data: bytes) -> None:
        self.consumed += len(data)

    def produce(self, piece: bytes) -> bytes:
        self.produced += len(piece)
        if self.produced > self._limits.max_decompressed:
            raise too_large(f"{self._name} body decompresses beyond the size limit")
        if self.produced > RATIO_FLOOR and self.produced > self._limits.max_ratio * max(
            self.consumed, 1
        ):
            raise RewriteError(f"{self._name} body exceeds the decompression ratio limit")
        return piece


class Layer(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _ZlibLayer:
    """gzip (multi-member), zlib-wrapped deflate or raw deflate (detected from the header)."""

    def __init__(self, name: str, limits: CodecLimits) -> None:
        self._name = name
        self._budget = _Budget(limits, name)
        self._wbits: int | None = 31 if name == "gzip" else None
        self._head = b""
        self._d: zlib._Decompress | None = None

    def feed(self, data: bytes) -> bytes:
        self._budget.take_input(data)
        if self._d is None:
            self._head += data
            if self._wbits is None and len(self._head) < 2:
                return b""
            self._d = zlib.decompressobj(self._wbits or _deflate_wbits(self._head))
            data, self._head = self._head, b""
        return self._drain(data)

    def _drain(self, data: bytes) -> bytes:
        assert self._d is not None
        out: list[bytes] = []
        try:
            while True:
                piece = self._d.decompress(data, _PIECE)
                out.append(self._budget.produce(piece))
                data = self._d.unconsumed_tail
                if self._d.eof:
                    rest = self._d.unused_data
                    if not rest:
                        break
                    if self._name != "gzip":
                        raise RewriteError(f"{self._name} body has data after its end")
                    self._d = zlib.decompressobj(31)  # the next gzip member
                    data = rest
                elif not data and len(piece) < _PIECE:
                    break
        except zlib.error as exc:
            raise RewriteError(f"corrupt {self._name} body: {exc}") from exc
        return b"".join(out)

    def finish(self) -> bytes:
        if self._budget.consumed == 0:
            return b""  # no body at all (a 204 or HEAD answer labelled with its encoding)
        if self._d is None:
            raise RewriteError(f"truncated {self._name} body")
        out = self._drain(b"")
        if not self._d.eof:
            raise RewriteError(f"truncated {self._name} body")
        return out


def _deflate_wbits(head: bytes) -> int:
    """HTTP 'deflate' is meant to be zlib-wrapped, but servers often send raw deflate."""
    cmf, flg = head[0], head[1]
    if cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0:
        return 15
    return -15


class _BrotliLayer:
    def __init__(self, limits: CodecLimits) -> None:
        self._budget = _Budget(limits, "br")
        self._d = brotli.Decompressor()
        self._started = False

    def feed(self, data: bytes) -> bytes:
        self._budget.take_input(data)
        if data:
            self._started = True
        out: list[bytes] = []
        try:
            if self._d.is_finished():
                if data:
                    raise RewriteError("br body has data after its end")
                return b""
            out.append(self._budget.produce(self._d.process(data, output_buffer_limit=_PIECE)))
            while not self._d.can_accept_more_data():
                out.append(self._budget.produce(self._d.process(b"", output_buffer_limit=_PIECE)))
        except brotli.error as exc:
            raise RewriteError(f"corrupt br body: {exc}") from exc
        return b"".join(out)

    def finish(self) -> bytes:
        if self._started and not self._d.is_finished():
            raise RewriteError("truncated br body")
        return b""


def content_decoders(header: str | None, limits: CodecLimits) -> list[Layer]:
    """Decoders in the order to apply them: the reverse of the listed encodings."""
    if not header:
        return []
    layers: list[Layer] = []
    for token in header.split(","):
        name = token.strip().lower()
        if name in ("", "identity"):
            continue
        if name in ("gzip", "x-gzip"):
            layers.append(_ZlibLayer("gzip", limits))
        elif name == "deflate":
            layers.append(_ZlibLayer("deflate", limits))
        elif name == "br":
            layers.append(_BrotliLayer(limits))
        else:
            raise RewriteError(f"unsupported Content-Encoding {name!r}")
    layers.reverse()
    return layers
