"""Operational logs (structlog), kept apart from audit events.

Ops logs say what the gateway is doing (started, Redis down, spool replayed);
audit events say who saw which customer data, and travel through the emitter
and its chain, never through here. Two processors keep customer data out:

- `drop_unlisted_keys`: deny by default, so a `phone=...` keyword passed by
  mistake never reaches the output;
- `redact_digit_runs`: any allowed string value with a run of 7+ digits is
  replaced (mobile, identity and card numbers all have one), except on keys
  that are ids the gateway generates itself.

`configure_logging()` is called once at start-up (the CLI or app does it).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson
import structlog

ALLOWED_KEYS = frozenset(
    {
        # structlog's own
        "event", "level", "timestamp", "logger", "exception", "exc_info", "stack_info",
        # request context (bound by middleware)
        "request_id", "subject", "route", "method", "status", "duration_ms", "client_ip",
        # gateway operations
        "component", "reason", "error", "error_type", "detail", "path", "url", "sink",
        "stream", "writer", "seq", "count", "events", "spooled", "delivered", "failed",
        "queue_depth", "spool_bytes", "lag_ms", "attempt", "retry_in", "revision",
        "port", "host", "pid", "workers", "version", "elapsed_ms", "state",
    }
)  # fmt: skip

# Keys whose values the gateway makes up itself (no customer data possible).
_ID_KEYS = frozenset({"timestamp", "request_id", "writer", "seq", "pid", "port", "revision"})
# Counters may be large; other big integers might be identifiers and are redacted.
_COUNTER_KEYS = frozenset(
    {"count", "events", "delivered", "failed", "spooled", "queue_depth", "spool_bytes",
     "lag_ms", "elapsed_ms", "duration_ms"}
)  # fmt: skip
_DIGITS = re.compile(r"\d{7,}")
REDACTED = "[redacted]"


def drop_unlisted_keys(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in [k for k in event_dict if k not in ALLOWED_KEYS]:
        del event_dict[key]
    return event_dict


def redact_digit_runs(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if key in _ID_KEYS:
            continue
        if isinstance(value, str):
            if _DIGITS.search(value):
                event_dict[key] = _DIGITS.sub(REDACTED, value)
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and abs(value) >= 10**6
            and key not in _COUNTER_KEYS
        ):
            event_dict[key] = REDACTED
    return event_dict


def _level_number(level: str) -> int:
    return int(logging.getLevelNamesMapping()[level.upper()])


def processors() -> list[Any]:
    """The shared chain (also used by tests with `capture_logs`)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        drop_unlisted_keys,
        redact_digit_runs,
    ]


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Configure structlog once: JSON lines on stdout (or a console renderer for humans)."""
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        factory: Any = structlog.PrintLoggerFactory(sys.stdout)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(sys.stdout.buffer)
    structlog.configure(
        processors=[*processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_level_number(level)),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )


class _Stderr:
    """Whatever sys.stderr is when a line is written (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextlib.contextmanager
def command_logging() -> Iterator[None]:
    """For a command other than `serve`: warnings to stderr, as readable lines, since
    its stdout is its output (JSON, a backup, a table); the previous set-up after."""
    previous = structlog.get_config()
    structlog.configure(
        processors=[*processors(), structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**previous)


def get_logger(name: str) -> Any:
    """A lazy logger: safe at import time, picks up `configure_logging` when first used."""
    return structlog.get_logger(name, component=name.rsplit(".", 1)[-1])


def bind_request(request_id: str) -> None:
    """Per-request context: clear whatever a previous task left, then bind the id."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
