"""The BodyRewriter the handler holds: decode, transcode, rewrite, re-encode; fail closed.

Every stage is a sans-IO object with `feed(bytes) -> bytes` and `finish() -> bytes`.
`Pipeline` chains them and owns the h11-style error discipline: the first
exception poisons it, so a half-rewritten body can never be continued, and
anything unexpected (an enforcer bug, a decoder error) becomes a RewriteError
so the response path blocks instead of passing bytes through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.core.rewrite import BlockResponse, RewriteError


class Stage(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class Pipeline:
    """Runs bytes through `stages` in order; poisoned after the first error."""

    def __init__(self, stages: Sequence[Stage], content_type: str) -> None:
        self.content_type = content_type
        self._stages = list(stages)
        self._failed: BaseException | None = None
        self._finished = False

    def feed(self, data: bytes) -> bytes:
        self._check_usable()
        try:
            for stage in self._stages:
                data = stage.feed(data)
                if not data:
                    return b""
        except BaseException as exc:
            self._failed = exc
            if _passes_through(exc):
                raise
            raise _as_rewrite_error(exc) from exc
        return data

    def finish(self) -> bytes:
        self._check_usable()
        self._finished = True
        try:
            out = b""
            for stage in self._stages:
                out = stage.feed(out) if out else b""
                out += stage.finish()
        except BaseException as exc:
            self._failed = exc
            if _passes_through(exc):
                raise
            raise _as_rewrite_error(exc) from exc
        return out

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise RewriteError("body rewriter is poisoned by an earlier error") from self._failed
        if self._finished:
            raise RewriteError("body rewriter already finished")


class Refused:
    """The rewriter for a body that cannot be rewritten at all (binary type, unknown
    encoding or charset, declared size over the limit): every call raises.

    Deciding this up front but raising on first use keeps one error path in the
    caller: whatever goes wrong, it surfaces from feed() or finish().
    """

    def __init__(self, error: RewriteError, content_type: str) -> None:
        self.content_type = content_type
        self._error = error

    def feed(self, data: bytes) -> bytes:
        raise type(self._error)(str(self._error)) from self._error

    def finish(self) -> bytes:
        raise type(self._error)(str(self._error)) from self._error


def _passes_through(exc: BaseException) -> bool:
    """Our own signals, and non-Exceptions (cancellation, interrupts), are re-raised as they are."""
    return isinstance(exc, BlockResponse | RewriteError) or not isinstance(exc, Exception)


def _as_rewrite_error(exc: BaseException) -> RewriteError:
    """Only the type: an arbitrary message may quote body content, and this one reaches the
    audit trail and the error response. The original stays chained for server-side logs."""
    return RewriteError(f"body rewrite failed: {type(exc).__name__}")
