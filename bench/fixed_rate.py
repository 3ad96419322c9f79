"""Open-loop load at a fixed arrival rate, for an honest p99 under load.

    .venv/bin/python bench/fixed_rate.py --url http://127.0.0.1:8080/api/customers?page_size=20 \
        --rate 500 --seconds 10 [--key demo-sales-key] [--max-inflight 256]

wrk2 is not packaged in Debian and plain wrk is closed-loop: a slow response
delays the next request, so the stall is never measured (coordinated omission).
Here request i is due at start + i/rate whatever happened before, and its
latency is measured from that due time, so queueing shows up in the figures.
Bounded in count (rate * seconds) and time (seconds + a drain timeout). Prints
one JSON line with achieved rate, errors and latency percentiles in
microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import uvloop


def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run(
    url: str, rate: float, seconds: float, key: str, max_inflight: int
) -> dict[str, object]:
    total = int(rate * seconds)
    headers = {"X-Api-Key": key} if key else {}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    late_starts = 0
    inflight = asyncio.Semaphore(max_inflight)
    connector = aiohttp.TCPConnector(limit=max_inflight)
    timeout = aiohttp.ClientTimeout(total=10)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(due: float) -> None:
            # Late (loop lag, in-flight cap): count from the due time, so the
            # wait is measured. Early (timers fire up to ~1 ms early): count
            # from the actual send, never less than the real round trip.
            since = min(due, time.perf_counter())
            try:
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                        return
                latencies.append(time.perf_counter() - since)
            except (aiohttp.ClientError, TimeoutError) as exc:
                name = type(exc).__name__
                errors[name] = errors.get(name, 0) + 1
            finally:
                inflight.release()

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.05
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.001:
                late_starts += 1
            await inflight.acquire()  # bounded; waiting here still counts from `due`
            task = asyncio.create_task(one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent_for = time.perf_counter() - start
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        elapsed = time.perf_counter() - start

    ordered = sorted(latencies)
    us = 1e6
    return {
        "target_rate": rate,
        "requests": total,
        "ok": len(ordered),
        "achieved_rate": round(len(ordered) / elapsed, 1) if elapsed else 0.0,
        "send_seconds": round(sent_for, 3),
        "late_starts": late_starts,
        "errors": errors,
        "latency_us": {
            "p50": round(percentile(ordered, 50) * us),
            "p90": round(percentile(ordered, 90) * us),
            "p99": round(percentile(ordered, 99) * us),
            "p99.9": round(percentile(ordered, 99.9) * us),
            "max": round((ordered[-1] if ordered else 0.0) * us),
        },
        "cdf_us": [
            [p, round(percentile(ordered, p) * us)]
            for p in (1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)
        ],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--key", default="")
    p.add_argument("--max-inflight", type=int, default=256)
    args = p.parse_args()
    result = uvloop.run(run(args.url, args.rate, args.seconds, args.key, args.max_inflight))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
