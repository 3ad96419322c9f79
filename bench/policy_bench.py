"""Policy stage latency and throughput through a real OPA.

    .venv/bin/python bench/policy_bench.py [--misses 2000] [--hits 100000] [--json OUT]

Starts the managed engine (the gateway's own `opa run` on rego/) and measures:

- miss: `PolicyEngine.decide` when the decision cache cannot help (every call
  has a different subject id): normalise + HTTP to OPA + evaluation, with the
  answer recognised from recent ones; p50/p99 at concurrency 1 and 16;
- miss_cold: the same, but every answer is also parsed and schema-checked anew
  (the worst case: a never-seen answer);
- hit: the cost of a cached decision (normalise + grants lookup + LRU), in us;
- warm: decisions/s with a warm cache over 200 distinct inputs, concurrency 1 and 16.

Numbers depend on the machine; the report prints its CPU count next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.core.model import Subject  # noqa: E402
from gateway.core.taxonomy import Taxonomy  # noqa: E402
from gateway.policy.engine import PolicyEngine, PolicyRequest  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.state.grants import MemoryGrantStore  # noqa: E402

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai
BASE = Subject(
    id="u", roles=("relationship_manager",), department="wealth", clearance="L3", mfa=True
)
REQ = PolicyRequest("GET", "view", "/api/customers/{id}", "advisory", False, "internal", True, NOW)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def misses(
    engine: PolicyEngine, n: int, concurrency: int, tag: str, *, cold: bool = False
) -> dict[str, float]:
    """Every call a decision-cache miss; `cold` also forgets parsed results, so each
    answer is JSON-parsed, schema-checked and turned into a Decision again."""
    counter = iter(range(n))
    assert engine.client is not None
    lat: list[float] = []

    async def worker() -> None:
        for i in counter:
            subject = dataclasses.replace(BASE, id=f"miss-{tag}-{i}")
            if cold:
                engine.client.result_memo.clear()
            t0 = time.perf_counter()
            out = await engine.decide(subject, REQ)
            lat.append((time.perf_counter() - t0) * 1000)
            assert not out.cache_hit

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {
        "n": n,
        "concurrency": concurrency,
        "p50_ms": round(statistics.median(lat), 3),
        "p99_ms": round(pct(lat, 99), 3),
        "max_ms": round(max(lat), 3),
        "per_s": round(n / wall),
    }


async def hit_cost(engine: PolicyEngine, n: int) -> dict[str, float]:
    await engine.decide(BASE, REQ)
    t0 = time.perf_counter()
    for _ in range(n):
        await engine.decide(BASE, REQ)
    per = (time.perf_counter() - t0) / n
    return {"n": n, "us_per_hit": round(per * 1e6, 2)}


async def warm(engine: PolicyEngine, n: int, concurrency: int) -> dict[str, float]:
    subjects = [dataclasses.replace(BASE, id=f"warm-{i}") for i in range(200)]
    for s in subjects:
        await engine.decide(s, REQ)
    hits_before = engine.cache.hits
    rng = random.Random(7)
    picks = [rng.choice(subjects) for _ in range(n)]
    per_worker = n // concurrency

    async def worker(k: int) -> None:
        for s in picks[k * per_worker : (k + 1) * per_worker]:
            await engine.decide(s, REQ)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    wall = time.perf_counter() - t0
    done = per_worker * concurrency
    assert engine.cache.hits - hits_before == done
    return {"n": done, "concurrency": concurrency, "per_s": round(done / wall)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--misses", type=int, default=2000)
    ap.add_argument("--hits", type=int, default=100_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = Settings().with_overrides(
        **{"policy.engine": "managed", "policy.cache_size": 50_000, "policy.timeout": 1.0}
    )
    tax = Taxonomy.load(settings.path(settings.classification.taxonomy))
    engine = await PolicyEngine.open(
        settings, taxonomy_policy=tax.to_policy(), grants=MemoryGrantStore(), taxonomy=tax
    )
    try:
        await misses(engine, 200, 1, "warmup")  # warm-up: connections, OPA's query cache
        report = {
            "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "revision": engine.revision,
            "miss_c1": await misses(engine, args.misses, 1, "c1"),
            "miss_c16": await misses(engine, args.misses * 2, 16, "c16"),
            "miss_cold_c1": await misses(engine, args.misses, 1, "cold1", cold=True),
            "miss_cold_c16": await misses(engine, args.misses * 2, 16, "cold16", cold=True),
            "hit": await hit_cost(engine, args.hits),
            "warm_c1": await warm(engine, args.hits, 1),
            "warm_c16": await warm(engine, args.hits, 16),
        }
    finally:
        await engine.close()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
