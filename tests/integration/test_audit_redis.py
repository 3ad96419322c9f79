"""Audit emitter and shipper against real redis-server processes.

Redis up: every event lands in the stream and the chain verifies. Redis down
(closed port, or the server stopped mid-run): events go to the fsynced spool and
are replayed in order when Redis is back, with zero loss.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis as redis_sync

from gateway.audit.emitter import AuditEmitter
from gateway.audit.event import build_access_event
from gateway.audit.ship import ship
from gateway.audit.sinks.base import SinkError
from gateway.audit.verify import verify_file, verify_stream
from gateway.settings import Settings
from gateway.state.audit_stream import AuditStream
from tests.conftest import find_redis_server, free_port, stop_process, wait_for_port

pytestmark = pytest.mark.integration

KEY_HEX = "ab" * 32


Entries = list[tuple[bytes, dict[bytes, bytes]]]


def _entries(client: redis_sync.Redis, stream: str) -> Entries:
    """XRANGE of a stream (the sync client types its replies loosely)."""
    return cast(Entries, client.xrange(stream))


def _settings(tmp_path: Path, redis_url: str, **over: Any) -> Settings:
    base = {
        "redis.url": redis_url,
        "base_dir": str(tmp_path),
        "audit.breaker_cooldown": 0.05,
        "audit.seal_every": 250,
        "audit.stream": "test:audit",
    }
    base.update(over)
    return Settings().with_overrides(**base)


@pytest.fixture(autouse=True)
def _audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_GATEWAY_AUDIT_KEY", KEY_HEX)


def _event(i: int) -> dict[str, Any]:
    return build_access_event(
        request_id=f"req-{i}",
        subject_dict={"id": f"u{i % 7}", "ip": "10.0.0.9"},
        request_dict={"method": "GET", "route": "/api/contacts/{id}", "purpose": "service"},
        decision_dict={"allow": True, "reason": "ok", "revision": "r1"},
        report_dict={
            "records": {"ids": [f"C{i}"], "seen": 1},
            "fields": {"masked": {"L3": {"mobile": 1}}},
        },
        status=200,
        latency_ms=2,
        now=time.time(),
    )


def _stream_events(url: str, stream: str) -> list[dict[str, Any]]:
    client = redis_sync.Redis.from_url(url)
    try:
        return [orjson.loads(fields[b"e"]) for _, fields in _entries(client, stream)]
    finally:
        client.close()


def _seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["unmapped"]["integrity"]["seq"] for e in events]


async def _until(cond: Any) -> None:
    """Poll the emitter's counters (it has no event to wait on) for up to 10 s."""
    for _ in range(500):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in 10 s")


async def test_redis_up_every_event_in_stream_and_chain_verifies(
    tmp_path: Path, redis_url: str
) -> None:
    settings = _settings(tmp_path, redis_url)
    emitter = await AuditEmitter.open(settings)
    for i in range(2000):
        emitter.emit(_event(i))
    await emitter.close()
    stats = emitter.stats
    assert stats.failed == 0
    assert stats.spooled == 0
    assert stats.delivered == stats.emitted == 2000 + 8 + 1  # 8 periodic seals + closing
    events = _stream_events(redis_url, "test:audit")
    assert len(events) == stats.emitted
    report = await verify_stream(settings, require_closed=True)
    assert report.ok, report.summary()
    (chain,) = report.chains.values()
    assert chain.records == stats.emitted
    assert chain.closed


async def test_closed_port_spools_then_replays_in_order(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    settings = _settings(tmp_path, url)
    emitter = await AuditEmitter.open(settings)
    t0 = time.perf_counter()
    for i in range(1000):
        emitter.emit(_event(i))
    emit_cost = (time.perf_counter() - t0) / 1000
    await _until(lambda: emitter.stats.spooled >= 1000)
    assert emitter.stats.delivered == 0
    assert emitter.stats.breaker != "closed"
    assert emit_cost < 0.001  # a dead Redis costs nothing per request
    proc = _start_redis(port, tmp_path, persistent=False)
    try:
        await _until(lambda: emitter.stats.delivered >= 1000 and emitter.stats.spool_bytes == 0)
        emitter.emit(_event(1000))
        await emitter.close()
        events = _stream_events(url, "test:audit")
        seqs = _seqs(events)
        assert seqs == sorted(seqs)  # the spool replays in order, new events queue behind it
        assert len(seqs) == len(set(seqs)) == emitter.stats.emitted
        report = await verify_stream(settings, require_closed=True)
        assert report.ok, report.summary()
        assert not list((tmp_path / "var/audit/spool").glob("*.jsonl"))  # spool emptied
    finally:
        stop_process(proc)


def _start_redis(port: int, data: Path, *, persistent: bool) -> subprocess.Popen[bytes]:
    aof = (
        ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]
    )
    proc = subprocess.Popen(
        [
            find_redis_server(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            *aof,
            "--dir",
            str(data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc=proc)
    return proc


async def test_redis_stopped_mid_run_zero_lost(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    data = tmp_path / "redis"
    data.mkdir()
    proc = _start_redis(port, data, persistent=True)
    settings = _settings(tmp_path, url)
    emitter = await AuditEmitter.open(settings)
    try:
        for i in range(600):
            emitter.emit(_event(i))
            if i % 100 == 0:
                await asyncio.sleep(0)
        await _until(lambda: emitter.stats.delivered >= 600)
        stop_process(proc)  # SIGTERM: Redis flushes its AOF and exits
        for i in range(600, 1500):
            emitter.emit(_event(i))
            if i % 100 == 0:
                await asyncio.sleep(0.01)
        await _until(lambda: emitter.stats.spooled >= 900)
        proc = _start_redis(port, data, persistent=True)
        await _until(lambda: emitter.stats.spool_bytes == 0 and emitter.stats.queue_depth == 0)
        await emitter.close()
        events = _stream_events(url, "test:audit")
        seqs = sorted(set(_seqs(events)))
        assert seqs == list(range(1, emitter.stats.emitted + 1))  # zero lost
        report = await verify_stream(settings, require_closed=True)
        assert report.ok, report.summary()
    finally:
        stop_process(proc)


async def test_durable_emit_goes_to_spool_when_redis_is_down(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    emitter = await AuditEmitter.open(settings)
    await emitter.emit_durable(_event(1))
    assert emitter.stats.spooled == 1
    spool = next((tmp_path / "var/audit/spool").glob("*.jsonl"))
    assert b'"req-1"' in spool.read_bytes()  # fsynced before emit_durable returned
    await emitter.close()


async def test_shipper_moves_stream_to_file_and_acks(tmp_path: Path, redis_url: str) -> None:
    settings = _settings(tmp_path, redis_url, **{"audit.file": str(tmp_path / "out.jsonl")})
    emitter = await AuditEmitter.open(settings)
    for i in range(700):
        emitter.emit(_event(i))
    await emitter.close()
    # A consumer that read 100 entries and died without acking: they get claimed.
    stream = AuditStream.open(redis_url, "test:audit")
    await stream.ensure_group("shippers")
    dead = await stream.read_group("shippers", "dead", count=100, block_ms=None)
    assert len(dead) == 100
    await asyncio.sleep(0.05)
    stats = await ship(settings.with_overrides(**{"audit.claim_idle_ms": 20}), "file", once=True)
    assert stats.claimed == 100
    assert stats.shipped == emitter.stats.emitted
    assert await stream.pending_count("shippers") == 0
    await stream.close()
    report = verify_file(settings, tmp_path / "out.jsonl", require_closed=True)
    assert report.ok, report.summary()


class _FailingSink:
    name = "failing"

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, lines: Any) -> None:
        self.calls += 1
        raise SinkError("downstream refused")

    async def close(self) -> None:
        return None


async def test_shipper_does_not_ack_what_the_sink_refused(tmp_path: Path, redis_url: str) -> None:
    settings = _settings(tmp_path, redis_url)
    emitter = await AuditEmitter.open(settings)
    for i in range(50):
        emitter.emit(_event(i))
    await emitter.close()
    sink = _FailingSink()
    stats = await ship(settings, "failing", once=True, sink=sink)
    assert stats.shipped == 0
    assert stats.sink_failures == 1
    stream = AuditStream.open(redis_url, "test:audit")
    assert await stream.pending_count("shippers") == emitter.stats.emitted
    await stream.close()
    # A later run (same consumer name) delivers the held entries first.
    ok = await ship(
        settings.with_overrides(**{"audit.file": str(tmp_path / "o.jsonl")}),
        "file",
        once=True,
        consumer=_consumer_name(),
    )
    assert ok.shipped == emitter.stats.emitted


def _consumer_name() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


async def test_two_writers_share_the_stream_as_two_chains(tmp_path: Path, redis_url: str) -> None:
    settings = _settings(tmp_path, redis_url)
    first, second = await AuditEmitter.open(settings), await AuditEmitter.open(settings)
    for i in range(300):
        (first if i % 2 else second).emit(_event(i))
    await first.close()
    await second.close()
    report = await verify_stream(settings, require_closed=True)
    assert report.ok, report.summary()
    assert set(report.chains) == {first.writer, second.writer}


async def test_shipper_max_events_stops_without_holding_more(
    tmp_path: Path, redis_url: str
) -> None:
    settings = _settings(tmp_path, redis_url, **{"audit.file": str(tmp_path / "part.jsonl")})
    emitter = await AuditEmitter.open(settings)
    for i in range(250):
        emitter.emit(_event(i))
    await emitter.close()
    stats = await ship(settings, "file", once=True, max_events=100)
    assert stats.shipped == 100
    stream = AuditStream.open(redis_url, "test:audit")
    assert await stream.pending_count("shippers") == 0  # nothing read beyond the cap
    await stream.close()
    rest = await ship(settings, "file", once=True)
    assert rest.shipped == emitter.stats.emitted - 100


async def test_stream_maxlen_trims_approximately(tmp_path: Path, redis_url: str) -> None:
    settings = _settings(tmp_path, redis_url, **{"audit.stream_maxlen": 200})
    emitter = await AuditEmitter.open(settings)
    for i in range(3000):
        emitter.emit(_event(i))
    await emitter.close()
    stream = AuditStream.open(redis_url, "test:audit")
    length = await stream.length()
    await stream.close()
    assert 200 <= length < 1000  # whole radix-tree nodes are trimmed, never below MAXLEN


async def test_verify_stream_detects_deleted_and_edited_entries(
    tmp_path: Path, redis_url: str
) -> None:
    settings = _settings(tmp_path, redis_url)
    emitter = await AuditEmitter.open(settings)
    for i in range(100):
        emitter.emit(_event(i))
    await emitter.close()
    client = redis_sync.Redis.from_url(redis_url)
    try:
        entries = _entries(client, "test:audit")
        client.xdel("test:audit", entries[10][0])  # delete seq 11
        edited = orjson.loads(entries[20][1][b"e"])  # rewrite seq 21
        edited["unmapped"]["crm"]["decision"]["outcome"] = "deny"
        client.xdel("test:audit", entries[20][0])
        client.xadd("test:audit", {b"e": orjson.dumps(edited)})
    finally:
        client.close()
    report = await verify_stream(settings)
    (chain,) = report.chains.values()
    assert chain.missing == [(11, 11)]
    assert chain.mac_bad == [21]
    assert report.exit_code == 10
