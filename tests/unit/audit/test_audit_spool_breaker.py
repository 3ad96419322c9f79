"""Spool (append, replay by offset, truncate, orphan adoption) and circuit breaker."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from gateway.audit.breaker import CircuitBreaker
from gateway.audit.spool import Spool


def test_append_read_commit_truncates(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "h:1:a")
    spool.append([b"1", b"2", b"3"], sync=True)
    lines, offset = spool.read_batch(2)
    assert lines == [b"1", b"2"]
    spool.commit(offset)
    spool.append([b"4"], sync=False)  # arrives during replay
    lines, offset = spool.read_batch(10)
    assert lines == [b"3", b"4"]
    spool.commit(offset)
    assert spool.pending_bytes == 0
    assert spool.path.stat().st_size == 0
    spool.close()
    assert not spool.path.exists()


def test_partial_batch_keeps_rest(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "w")
    spool.append([b"a" * 10] * 5, sync=True)
    lines, offset = spool.read_batch(3)
    spool.commit(offset)
    assert len(lines) == 3
    assert spool.pending_bytes == 22
    spool.close()
    assert spool.path.exists()  # undelivered lines stay on disk


def test_adopts_dead_writers_spool_but_not_live_ones(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    dead.write_bytes(b"d1\nd2\npartial-without-newline")
    live = Spool(tmp_path, "live")
    live.append([b"l1"], sync=True)
    mine = Spool(tmp_path, "mine")
    assert mine.adopt_orphans() == 2
    assert not dead.exists()
    assert live.path.exists()
    lines, _ = mine.read_batch(10)
    assert lines == [b"d1", b"d2"]
    live.close()
    mine.close()


def test_lock_is_exclusive(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "x")
    fd = os.open(spool.path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = False
        except BlockingIOError:
            locked = True
        assert locked
    finally:
        os.close(fd)
        spool.close()


def test_breaker_opens_and_probes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(1.0, clock=lambda: now[0])
    assert breaker.allow()
    breaker.failure()
    assert not breaker.allow()
    now[0] = 1.5
    assert breaker.allow()
    assert breaker.state == "half_open"
    assert not breaker.allow()  # only one probe
    breaker.success()
    assert breaker.allow()
    assert breaker.state == "closed"
