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

async def main(url: str, hits: int, limit: int) -> None:
    limiter = await open_ratelimiter(url)
    print("ready", flush=True)
    sys.stdin.readline()
    allowed = 0
    for _ in range(hits):
        decision = await limiter.hit("subject", "u-sales-01", limit=limit, period=60)
        allowed += decision.allowed
    print(allowed, flush=True)
    await limiter.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def test_two_processes_share_one_budget(redis_url: str) -> None:
    limit, hits = 25, 40
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            redis_url,
            str(hits),
            str(limit),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert (await asyncio.wait_for(p.stdout.readline(), 15)).strip() == b"ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        counts = []
        for p in procs:
            assert p.stdout is not None
            counts.append(int(await asyncio.wait_for(p.stdout.readline(), 15)))
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
            await p.wait()
    print(f"allowed per process: {counts} (limit {limit}, {hits} attempts each)")
    assert sum(counts) == limit
    assert all(c > 0 for c in counts), "both processes raced for the same budget"


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
