"""Audit cost inside a running gateway: process CPU per request, by audit mode.

Why: the micro benchmarks (bench/micro/test_bench_audit.py) time emit() alone;
this measures what a real `crm-gateway serve` process spends, including the
flusher's Redis writes and, in strict mode, the awaited durable write. The same
fixed number of customer reads (4 concurrent clients) runs against:

- `async`:   audit to the Redis Stream with audit before release turned off
             (`audit.durable_from: null`; one event per request, queued),
- `durable`: the default settings (`audit.durable_from: L2`): every customer read
             carries L2+ data, so its release waits for a durable event (two events
             per request: the durable one and the final one),
- `file`:    the default settings without Redis: the durable event is fsynced
             by the file sink (group commit across concurrent requests),
- `none`:    no Redis and no sink, durable off (chain + MAC + queue only, nothing
             delivered; the rest of the gateway then also runs on in-memory state).

`durable - async` is the durable-audit cost per request, in CPU and in client
latency (median wall time per request, 4 concurrent clients).

CPU = utime + stime of the gateway process (/proc/PID/stat) across the load.
`none` also drops Redis for the other stages (rate limits, revocations), so
`redis - none` is an upper bound on audit delivery. The second part isolates the
audit path in this process: an `AuditEmitter` on the same Redis, CPU per event
for emit() (build + chain + enqueue), for delivery (the flusher's pipelined
XADDs), and for `emit_durable` (4 concurrent callers, group commit).
Run: .venv/bin/python bench/audit_cost.py [--requests 3000] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from gateway.audit.emitter import AuditEmitter  # noqa: E402
from gateway.audit.event import build_access_event  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from tests.conftest import RedisProcess, free_port, stop_process  # noqa: E402
from tests.integration import audit_load as al  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fixed_load(
    url: str, requests: int, workers: int = 4, latencies: list[float] | None = None
) -> int:
    """Exactly `requests` customer reads; returns how many answered 200."""
    todo = iter(range(requests))
    ok = 0
    walls = latencies if latencies is not None else []

    async def worker() -> None:
        nonlocal ok
        async with aiohttp.ClientSession() as s:
            for i in todo:
                key = al.KEYS[i % len(al.KEYS)]
                path = f"/api/customers/{al.CUSTOMER_IDS[i % len(al.CUSTOMER_IDS)]}"
                t0 = time.perf_counter()
                async with s.get(url + path, headers={"Authorization": f"Bearer {key}"}) as r:
                    await r.read()
                    ok += r.status == 200
                walls.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return ok


async def measure(
    mode: str, tmp: Path, crm_port: int, redis_url: str, n: int
) -> tuple[float, float]:
    """(CPU us per request, median client latency in ms) for one audit mode."""
    cfg = al.GatewayConfig(
        tmp / mode,
        crm_port,
        redis_url if mode in ("async", "durable") else "",
        trail="file" if mode == "file" else "none" if mode == "none" else "redis",
        no_durable=mode in ("none", "async"),
    )
    cfg.tmp.mkdir()
    # Without redis.url the emitter sends to the configured sinks other than "redis":
    # none here, so "none" pays for the chain and the queue but delivers nothing.
    gw = al.start_gateway(cfg)
    try:
        await fixed_load(cfg.url, 200)  # warm-up (imports, caches, connections)
        await asyncio.sleep(0.5)
        c0, t0 = cpu_seconds(gw.pid), time.monotonic()
        walls: list[float] = []
        ok = await fixed_load(cfg.url, n, latencies=walls)
        await asyncio.sleep(1.0)  # let the flusher finish this load's events
        c1, t1 = cpu_seconds(gw.pid), time.monotonic()
    finally:
        al.stop_gateway(gw)
    us = (c1 - c0) / n * 1e6
    p50 = statistics.median(walls) * 1000
    print(
        f"{mode:7s} {ok}/{n} ok in {t1 - t0 - 1.0:.2f}s: {us:7.1f} CPU us/request, p50 {p50:.2f} ms"
    )
    return us, p50


def _event(i: int) -> dict[str, object]:
    """An event shaped like the gateway's for one customer read."""
    return build_access_event(
        request_id=f"{i:032x}",
        subject_dict={"id": "u-sales-01", "roles": ["sales"], "clearance": "L2", "ip": "::1"},
        request_dict={"method": "GET", "route": "/api/customers/{id}", "operation": "view"},
        decision_dict={"allow": True, "revision": "static", "audit_level": "basic"},
        report_dict={
            "records": {"seen": 1, "ids": [f"C{i:06d}"]},
            "fields": {"clear": {"L1": {"name": 1}}, "masked": {"L3": {"mobile": 1}}},
        },
        status=200,
        latency_ms=3.0,
        now=time.time(),
    )


async def emitter_cost(tmp: Path, redis_url: str, n: int) -> None:
    os.environ[al.KEY_ENV] = al.KEY_HEX
    settings = Settings().with_overrides(
        **{"redis.url": redis_url, "base_dir": str(tmp), "audit.stream": "bench:audit"}
    )
    emitter = await AuditEmitter.open(settings)
    try:
        events = [_event(i) for i in range(n)]
        c0 = time.process_time()
        for i, event in enumerate(events):
            emitter.emit(event)
            if i % 200 == 199:
                await asyncio.sleep(0)  # requests interleave with the flusher
        c1 = time.process_time()
        await al.wait_until(lambda: emitter.stats.delivered >= n, 60)
        c2 = time.process_time()
        durable = [_event(i) for i in range(n // 4 * 4)]

        async def caller(k: int) -> None:
            for event in durable[k::4]:
                await emitter.emit_durable(event)

        c3 = time.process_time()
        await asyncio.gather(*(caller(k) for k in range(4)))
        c4 = time.process_time()
    finally:
        await emitter.close()
    build = time.process_time()
    for i in range(2000):
        _event(i)
    build = (time.process_time() - build) / 2000 * 1e6
    print(
        f"emitter: build {build:.1f} us/event (not in emit); emit {(c1 - c0) / n * 1e6:.1f}, "
        f"delivery {(c2 - c1) / n * 1e6:.1f}, emit_durable {(c4 - c3) / len(durable) * 1e6:.1f}"
        " CPU us/event"
    )


async def main(n: int, json_out: Path | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        redis = RedisProcess(tmp)
        redis.start()
        crm_port = free_port()
        crm = al.start_crm(crm_port)
        try:
            cost: dict[str, tuple[float, float]] = {}
            for mode in ("none", "async", "durable", "file"):
                cost[mode] = await measure(mode, tmp, crm_port, redis.url, n)
            await emitter_cost(tmp, redis.url, 10 * n)
        finally:
            stop_process(crm)
            redis.stop()
    summary = {
        "requests": n,
        "modes": {m: {"cpu_us": round(c, 1), "p50_ms": round(p, 3)} for m, (c, p) in cost.items()},
        "delivery_cpu_us": round(cost["async"][0] - cost["none"][0], 1),
        "durable_cpu_us": round(cost["durable"][0] - cost["async"][0], 1),
        "durable_p50_ms": round(cost["durable"][1] - cost["async"][1], 3),
    }
    print(
        f"delivery to Redis: {summary['delivery_cpu_us']:+.1f} CPU us/request (1 event each); "
        f"durable audit (default) adds {summary['durable_cpu_us']:+.1f} CPU us/request and "
        f"{summary['durable_p50_ms']:+.3f} ms p50 latency (2 events, 1 awaited)"
    )
    if json_out is not None:
        await asyncio.to_thread(
            json_out.write_text, json.dumps(summary, indent=2) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.json))
