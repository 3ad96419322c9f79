"""The emitter without Redis: events go to the configured sinks, still chained;
overflow and sink failures go to the spool and are replayed; close drains."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.audit.chain import ChainWriter
from gateway.audit.emitter import AuditEmitter
from gateway.audit.seal import SealedChain
from gateway.audit.sinks.base import SinkError
from gateway.audit.sinks.jsonl import FileSink
from gateway.audit.spool import Spool
from gateway.audit.verify import parse_lines, verify_events, verify_file
from gateway.errors import AuditUnavailable
from gateway.settings import Settings

KEY = b"k" * 32


class FlakySink:
    """Collects lines; refuses batches while `down`."""

    name = "flaky"

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.down = False

    async def send(self, lines: Any) -> None:
        if self.down:
            raise SinkError("down")
        self.lines.extend(lines)

    async def close(self) -> None:
        return None


def _emitter(tmp_path: Path, sink: FlakySink, **kw: Any) -> AuditEmitter:
    chain = SealedChain(ChainWriter(KEY, "h:1:t"), None, every=1000, interval=1e9)
    emitter = AuditEmitter(
        chain,
        Spool(tmp_path / "spool", chain.writer),
        stream=None,
        sinks=[sink],
        breaker_cooldown=0.01,
        **kw,
    )
    emitter.start()
    return emitter


def _ev(i: int) -> dict[str, Any]:
    return {"time": i, "message": f"e{i}", "unmapped": {"crm": {"record_ids": [f"C{i}"]}}}


async def test_open_with_file_sink_writes_a_verifiable_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRM_GATEWAY_AUDIT_KEY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    settings = Settings().with_overrides(**{"base_dir": str(tmp_path), "audit.sinks": ["file"]})
    emitter = await AuditEmitter.open(settings)
    for i in range(300):
        emitter.emit(_ev(i))
    await emitter.close()
    keys = tmp_path / "state" / "crm-gateway"
    assert (keys / "dev-hmac.key").stat().st_mode & 0o777 == 0o600
    assert (keys / "seal-ed25519.pem.pub").exists()
    report = verify_file(settings, tmp_path / "var/audit/audit.jsonl", require_closed=True)
    assert report.ok, report.summary()
    assert report.chains[emitter.writer].seals == 1  # the closing seal, signed


async def test_sink_outage_spools_and_replays_in_order(tmp_path: Path) -> None:
    sink = FlakySink()
    emitter = _emitter(tmp_path, sink)
    sink.down = True
    for i in range(50):
        emitter.emit(_ev(i))
    await asyncio.sleep(0.3)
    assert emitter.stats.spooled == 50
    assert sink.lines == []
    sink.down = False
    emitter.emit(_ev(50))
    await emitter.close()
    seqs = [orjson.loads(ln)["unmapped"]["integrity"]["seq"] for ln in sink.lines]
    assert seqs == list(range(1, 53))  # 51 events + closing seal, in order, once each
    events, bad = parse_lines(sink.lines)
    assert verify_events(events, KEY, None, malformed=bad, require_closed=True).ok


async def test_queue_overflow_goes_to_spool_not_lost(tmp_path: Path) -> None:
    sink = FlakySink()
    emitter = _emitter(tmp_path, sink, queue_size=10, batch_size=5)
    for i in range(100):
        emitter.emit(_ev(i))  # no await: the flusher cannot run, the queue overflows
    assert emitter.stats.queue_depth == 10
    assert emitter.stats.spooled == 90
    await emitter.close()
    seqs = sorted(orjson.loads(ln)["unmapped"]["integrity"]["seq"] for ln in sink.lines)
    assert seqs == list(range(1, 102))


async def test_emit_never_raises_and_durable_fails_closed_after_close(tmp_path: Path) -> None:
    sink = FlakySink()
    emitter = _emitter(tmp_path, sink)
    await emitter.close()
    emitter.emit(_ev(1))  # swallowed, counted
    assert emitter.stats.failed == 1
    with pytest.raises(AuditUnavailable):
        await emitter.emit_durable(_ev(2))


async def test_emit_durable_is_a_barrier(tmp_path: Path) -> None:
    sink = FlakySink()
    emitter = _emitter(tmp_path, sink)
    for i in range(20):
        emitter.emit(_ev(i))
    await emitter.emit_durable(_ev(20))
    # Everything before the durable event has reached the destination with it.
    assert len(sink.lines) == 21
    sink.down = True
    await emitter.emit_durable(_ev(21))  # destination down: fsynced in the spool
    assert emitter.stats.spool_bytes > 0
    sink.down = False
    await emitter.close()
    assert len(sink.lines) == 23


async def test_file_sink_rotates_by_size(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "a.jsonl", max_bytes=1024, backups=2)
    for i in range(40):
        await sink.send([orjson.dumps({"i": i, "pad": "x" * 80})])
    await sink.close()
    sizes = _sizes(tmp_path)
    assert sorted(sizes) == ["a.jsonl", "a.jsonl.1", "a.jsonl.2"]
    assert all(size <= 1024 for size in sizes.values())
    last = (tmp_path / "a.jsonl").read_bytes().splitlines()[-1]
    assert orjson.loads(last)["i"] == 39


def _sizes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in directory.iterdir()}


class SlowSink(FlakySink):
    async def send(self, lines: Any) -> None:
        await asyncio.sleep(0.02)
        await super().send(lines)


async def test_durable_write_does_not_wait_for_a_long_replay(tmp_path: Path) -> None:
    sink = SlowSink()
    emitter = _emitter(tmp_path, sink, batch_size=50)
    sink.down = True
    for i in range(3000):
        emitter.emit(_ev(i))
    for _ in range(100):
        if emitter.stats.spooled >= 3000:
            break
        await asyncio.sleep(0.02)
    sink.down = False  # replay starts: 60 batches x 20 ms
    await asyncio.sleep(0.3)
    started = asyncio.get_running_loop().time()
    await emitter.emit_durable(_ev(3000))
    assert asyncio.get_running_loop().time() - started < 0.5
    assert emitter.stats.spool_bytes > 0  # the backlog was still being replayed
    await emitter.close()
    seqs = sorted({orjson.loads(ln)["unmapped"]["integrity"]["seq"] for ln in sink.lines})
    assert seqs == list(range(1, emitter.stats.emitted + 1))


async def test_file_sink_follows_rotation_by_another_writer(tmp_path: Path) -> None:
    first = FileSink(tmp_path / "a.jsonl", max_bytes=300, backups=3)
    second = FileSink(tmp_path / "a.jsonl", max_bytes=300, backups=3)
    for i in range(12):
        await (first if i % 2 else second).send([orjson.dumps({"i": i, "pad": "y" * 40})])
    await first.close()
    await second.close()
    seen = sorted(orjson.loads(line)["i"] for line in _all_lines(tmp_path))
    assert seen == list(range(12))


def _all_lines(directory: Path) -> list[bytes]:
    return [ln for p in directory.iterdir() for ln in p.read_bytes().splitlines()]
