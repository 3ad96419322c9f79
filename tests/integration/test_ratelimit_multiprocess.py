"""Rate limits hold across replicas: two processes, one redis-server, one budget."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from gateway.state.ratelimit import MemoryRateLimiter, RedisRateLimiter, open_ratelimiter

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import asyncio, sys
from gateway.state.ratelimit import open_ratelimiter

async def main(url: str, limit: int) -> None:
    limiter = await open_ratelimiter(url)
    print("ready", flush=True)
    # One hit per line from the parent: the parent alternates between the
    # processes, so each hit draws on the budget while the other process is live.
    for line in sys.stdin:
        if line.strip() != "hit":
            break
        decision = await limiter.hit("subject", "u-sales-01", limit=limit, period=60)
        print(int(decision.allowed), flush=True)
    await limiter.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def _ask(proc: asyncio.subprocess.Process, line: bytes) -> bytes:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line)
    await proc.stdin.drain()
    return (await asyncio.wait_for(proc.stdout.readline(), 15)).strip()


async def test_two_processes_share_one_budget(redis_url: str) -> None:
    """Two processes, each with its own Redis connection, hit one key in strict
    alternation. A per-process budget would allow `limit` hits in each (sum 2 x
    limit); one shared budget allows `limit` in all, split between both."""
    limit, hits = 25, 40
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            redis_url,
            str(limit),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    counts = [0, 0]
    try:
        # Start barrier: both are connected before either draws on the budget.
        for p in procs:
            assert p.stdout is not None
            assert (await asyncio.wait_for(p.stdout.readline(), 15)).strip() == b"ready"
        for _ in range(hits):
            for i, p in enumerate(procs):
                counts[i] += int(await _ask(p, b"hit\n"))
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"stop\n")
            await p.stdin.drain()
    finally:
        for p in procs:
            if p.returncode is None:
                try:
                    await asyncio.wait_for(p.wait(), 15)
                except TimeoutError:
                    p.terminate()
            await p.wait()
    print(f"allowed per process: {counts} (limit {limit}, {hits} attempts each)")
    assert sum(counts) == limit, "the budget is not shared across processes"
    # Strict alternation from a fresh key: the first 2 x 12 hits split evenly,
    # the 25th goes to the first process.
    assert counts == [(limit + 1) // 2, limit // 2]


async def test_redis_limiter_reports_retry_after_and_separates_keys(redis_url: str) -> None:
    limiter = await open_ratelimiter(redis_url)
    assert isinstance(limiter, RedisRateLimiter)
    try:
        first = await limiter.hit("route", "GET /api/customers", limit=2, period=10)
        assert first.allowed
        assert first.remaining == 1
        assert (await limiter.hit("route", "GET /api/customers", limit=2, period=10)).allowed
        refused = await limiter.hit("route", "GET /api/customers", limit=2, period=10)
        assert not refused.allowed
        assert 9.0 < refused.retry_after <= 10.0
        assert (await limiter.hit("route", "GET /api/other", limit=2, period=10)).allowed
    finally:
        await limiter.close()


async def test_peek_counts_nothing(redis_url: str) -> None:
    limiter = await open_ratelimiter(redis_url)
    try:
        for _ in range(3):
            assert (await limiter.peek("p", "k", limit=1, period=10)).allowed
        assert (await limiter.hit("p", "k", limit=1, period=10)).allowed
        refused = await limiter.peek("p", "k", limit=1, period=10)
        assert not refused.allowed
        assert 9.0 < refused.retry_after <= 10.0
    finally:
        await limiter.close()


async def test_redis_limiter_window_slides(redis_url: str) -> None:
    limiter = await open_ratelimiter(redis_url)
    try:
        assert (await limiter.hit("s", "k", limit=1, period=0.2)).allowed
        assert not (await limiter.hit("s", "k", limit=1, period=0.2)).allowed
        await asyncio.sleep(0.25)
        assert (await limiter.hit("s", "k", limit=1, period=0.2)).allowed
    finally:
        await limiter.close()


def test_memory_twin_slides_and_sweeps() -> None:
    limiter = MemoryRateLimiter(max_keys=2)
    assert limiter.hit_now("s", "a", limit=2, period=10, now=0).allowed
    assert limiter.hit_now("s", "a", limit=2, period=10, now=1).allowed
    refused = limiter.hit_now("s", "a", limit=2, period=10, now=2)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(8)
    assert limiter.hit_now("s", "a", limit=2, period=10, now=10.5).allowed
    limiter.hit_now("s", "b", limit=2, period=10, now=11)
    # A third key sweeps the ones idle for a whole period.
    limiter.hit_now("s", "c", limit=2, period=1, now=30)
    assert len(limiter._logs) <= 2
    assert limiter.peek_now("s", "c", limit=1, period=1, now=30.5).allowed is False
    assert limiter.peek_now("s", "c", limit=1, period=1, now=31.5).allowed is True


async def test_without_url_the_limiter_is_in_memory() -> None:
    limiter = await open_ratelimiter(None)
    assert isinstance(limiter, MemoryRateLimiter)
    await limiter.close()
