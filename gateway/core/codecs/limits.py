"""Size limits for body rewriting, and the one error-raising helper every codec shares."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.rewrite import RewriteError

#: Below this many bytes a JSON body is parsed whole; above it, if the enforcer
#: names record prefixes, it is streamed record by record.
DEFAULT_STREAM_THRESHOLD = 1 << 20


@dataclass(frozen=True)
class CodecLimits:
    """Bounds that keep one response from exhausting the gateway.

    max_buffered: bytes a buffered format (or one streamed record, CSV row,
        NDJSON line, SSE event) may occupy before the response is refused.
    max_decompressed: total bytes a Content-Encoding may expand to.
    max_ratio: decompressed/compressed ratio above which a body counts as a bomb.
    stream_threshold: JSON bodies larger than this stream instead of buffering
        (capped by max_buffered). An addition to the three agreed fields.
    """

    max_buffered: int
    max_decompressed: int
    max_ratio: int
    stream_threshold: int = DEFAULT_STREAM_THRESHOLD

    def __post_init__(self) -> None:
        for name in ("max_buffered", "max_decompressed", "max_ratio"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CodecLimits.{name} must be positive")
        if self.stream_threshold < 0:
            raise ValueError("CodecLimits.stream_threshold must not be negative")


class BodyTooLarge(RewriteError):
    """A RewriteError the handler may map to ResponseTooLarge (502 response_too_large)."""


def too_large(message: str = "response too large to rewrite") -> BodyTooLarge:
    """The single message the handler and audit see for an over-limit body."""
    return BodyTooLarge(message)
