"""Operational logs: allow-listed keys only, digit runs redacted, request id merged."""

from __future__ import annotations

import orjson
import pytest
import structlog
from structlog.testing import capture_logs

from gateway.audit.oplog import bind_request, configure_logging, get_logger, processors


def test_unlisted_keys_dropped_and_digits_redacted() -> None:
    log = structlog.get_logger("t")
    with capture_logs(processors=processors()) as logs:
        bind_request("req-1234567890")
        log.warning(
            "upstream_slow",
            phone="13812345678",
            id_card="x",
            reason="card 6222020200",
            elapsed_ms=12_000_000,
            subject=98765432101,
        )
    structlog.contextvars.clear_contextvars()
    (entry,) = logs
    assert "phone" not in entry
    assert "id_card" not in entry
    assert entry["reason"] == "card [redacted]"
    assert entry["subject"] == "[redacted]"
    assert entry["elapsed_ms"] == 12_000_000
    assert entry["request_id"] == "req-1234567890"  # gateway-made ids are not redacted
    assert entry["level"] == "warning"
    assert entry["timestamp"].endswith("Z")


def test_context_cleared_between_requests() -> None:
    log = structlog.get_logger("t")
    with capture_logs(processors=processors()) as logs:
        bind_request("a")
        log.info("one")
        bind_request("b")
        log.info("two")
    structlog.contextvars.clear_contextvars()
    assert [e["request_id"] for e in logs] == ["a", "b"]


def test_configured_output_is_json_lines(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    configure_logging("info", "json")
    try:
        log = get_logger("gateway.audit.test")
        log.info("spool_replayed", count=3, card="6222020200112233446")
        log.debug("hidden")
    finally:
        structlog.reset_defaults()
    lines = capsysbinary.readouterr().out.splitlines()
    assert len(lines) == 1
    entry = orjson.loads(lines[0])
    assert entry["event"] == "spool_replayed"
    assert entry["count"] == 3
    assert entry["component"] == "test"
    assert "card" not in entry
