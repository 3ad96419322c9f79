"""Drive a BodyRewriter the way the handler does."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.core.codecs import CodecLimits, make_body_rewriter
from gateway.core.rewrite import RecordEnforcer

LIMITS = CodecLimits(max_buffered=1 << 20, max_decompressed=64 << 20, max_ratio=200)
STREAM_NOW = CodecLimits(
    max_buffered=1 << 20, max_decompressed=64 << 20, max_ratio=200, stream_threshold=0
)


def run(
    body: bytes | Iterable[bytes],
    content_type: str | None,
    enforcer: RecordEnforcer,
    *,
    encoding: str | None = None,
    limits: CodecLimits = LIMITS,
    sensitive: bool = True,
) -> bytes:
    chunks = [body] if isinstance(body, bytes) else list(body)
    rw = make_body_rewriter(content_type, encoding, enforcer, limits=limits, sensitive=sensitive)
    out = [rw.feed(chunk) for chunk in chunks]
    out.append(rw.finish())
    return b"".join(out)


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces
