"""CPU cost per audit event on the request path: build + chain MAC + enqueue.

Run: .venv/bin/python -m pytest bench/micro/test_bench_audit.py -q --benchmark-only

Scenarios (one event each, realistic inputs: a 20-record page report from
EnforcementReport.to_audit()):
- build: build_access_event alone (allow-list copy, scrub, uuid7).
- chain: ChainWriter.append alone (orjson sorted serialisation + HMAC-SHA256 +
  key evolution) on an already built event.
- emit_prebuilt: AuditEmitter.emit alone on a built event.
- emit: build + AuditEmitter.emit (chain, seal every 1000 events with Ed25519,
  deque append): what the handler pays per request. The flusher is not running;
  the deque is emptied every 10k events so the queue never overflows to the spool.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.chain import ChainWriter
from gateway.audit.emitter import AuditEmitter
from gateway.audit.event import build_access_event
from gateway.audit.seal import SealedChain
from gateway.audit.spool import Spool
from gateway.core.model import Subject
from gateway.core.report import EnforcementReport

KEY = bytes(range(32))


def _report() -> dict[str, Any]:
    rep = EnforcementReport()
    for i in range(20):
        rep.add_record(f"C{100000 + i}", "AB"[i % 2], "VIP")
        for category, level, outcome in (
            ("name", "L1", "clear"),
            ("mobile", "L3", "masked"),
            ("id_number", "L4", "masked"),
            ("bank_card", "L5", "dropped"),
        ):
            rep.add_field(category, level, outcome)
    return rep.to_audit()


REPORT = _report()
SUBJECT = {
    **Subject(
        id="u-1029",
        roles=("sales", "east"),
        department="华东销售部",
        clearance="L2",
        mfa=True,
        auth_method="oidc",
    ).to_policy(),
    "ip": "10.20.30.40",
}
REQUEST = {
    "method": "GET",
    "route": "/api/contacts/",
    "purpose": "customer_service",
    "pii_categories": [],
}
DECISION = {
    "allow": True,
    "reason": "role sales, purpose customer_service",
    "revision": "2026.07.3",
    "cache_hit": True,
    "report_only": False,
    "audit_level": "detailed",
}


def _build() -> dict[str, Any]:
    return build_access_event(
        request_id="req-7f3c2a",
        subject_dict=SUBJECT,
        request_dict=REQUEST,
        decision_dict=DECISION,
        report_dict=REPORT,
        status=200,
        latency_ms=12.5,
        now=time.time(),
    )


def test_build(benchmark: Any) -> None:
    event = benchmark(_build)
    assert event["unmapped"]["crm"]["records"]["ids_total"] == 20


def test_chain(benchmark: Any) -> None:
    writer = ChainWriter(KEY, "bench:1:x")
    event = _build()
    line = benchmark(writer.append, event)
    assert len(line) > 1000


@pytest.fixture
def emitter() -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        chain = SealedChain(
            ChainWriter(KEY, "bench:1:y"), Ed25519PrivateKey.generate(), every=1000, interval=1e9
        )
        spool = Spool(Path(tmp), chain.writer)
        yield AuditEmitter(chain, spool, stream=None, sinks=[], queue_size=1_000_000)
        spool.close()


def test_emit(benchmark: Any, emitter: Any) -> None:
    queue = emitter._queue

    def one() -> None:
        emitter.emit(_build())
        if len(queue) >= 10_000:
            queue.clear()

    benchmark(one)
    assert emitter.stats.failed == 0
    assert emitter.stats.spooled == 0


def test_emit_prebuilt(benchmark: Any, emitter: Any) -> None:
    """emit() alone (chain + seal share + enqueue) on an already built event."""
    queue = emitter._queue
    event = _build()

    def one() -> None:
        emitter.emit(event)
        if len(queue) >= 10_000:
            queue.clear()

    benchmark(one)
    assert emitter.stats.failed == 0
