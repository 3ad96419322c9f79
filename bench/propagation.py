"""How fast a change made on one replica holds on every replica (issue 17, item 3 and 7).

    .venv/bin/python bench/propagation.py [--trials N]

Starts a redis-server, the demo CRM and two gateway replicas (`crm-gateway serve`,
static engine, one worker each) sharing that Redis, all on free loopback ports, and
measures from outside, polling both replicas every 5 ms:

- subject revocation written to Redis (`RevocationList.revoke`, what the admin API
  and the CLI call) until each replica refuses the user; restored likewise;
- the same issued with `crm-gateway users revoke` (the CLI's start-up included);
- lockdown switched on and off through replica 0's admin API until each replica's
  answer for the same customer changes.

Prints a table and writes `bench/results/propagation.json`. Every process is stopped
by its PID; each wait gives up after 10 s. The tests check that every replica follows
(`tests/integration/test_*multiprocess.py`); this file says how fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import Proc, free_port, start
from gateway.state.revocation import RevocationList

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
CLI = str(Path(PY).parent / "crm-gateway")
CUSTOMER = "/api/customers/C000026"
SALES = {"Authorization": "Bearer demo-sales-key"}
ADMIN = {"Authorization": "Bearer demo-admin-key", "X-Requested-With": "bench"}
GIVE_UP = 10.0
POLL = 0.005


def _settings(work: Path, redis_url: str, crm_port: int) -> Path:
    doc = {
        "environment": "development",
        "base_dir": str(ROOT),
        "listen": {"host": "127.0.0.1", "port": 0, "workers": 1},
        "upstream": {"url": f"http://127.0.0.1:{crm_port}"},
        "redis": {"url": redis_url},
        "identity": {"directory": str(ROOT / "config" / "directory.yaml")},
        "policy": {"engine": "static"},
        "audit": {
            "sinks": ["file"],
            "file": str(work / "audit.jsonl"),
            "spool_dir": str(work / "spool"),
            "dev_key_file": str(work / "dev-hmac.key"),
            "seal_key_file": str(work / "seal.pem"),
        },
        "logging": {"level": "warning", "format": "json"},
    }
    path = work / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


async def _answer(s: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with s.get(url + CUSTOMER, headers=SALES) as r:
        return r.status, await r.read()


async def _until(
    s: aiohttp.ClientSession, url: str, since: float, done: Callable[[int, bytes], bool]
) -> float:
    while time.monotonic() - since < GIVE_UP:
        if done(*await _answer(s, url)):
            return time.monotonic() - since
        await asyncio.sleep(POLL)
    raise RuntimeError(f"{url}: no change within {GIVE_UP:g} s")


async def _both(
    s: aiohttp.ClientSession,
    urls: list[str],
    change: Callable[[], Awaitable[Any]],
    done: Callable[[int, bytes], bool],
) -> list[float]:
    started = time.monotonic()
    act = asyncio.ensure_future(change())
    delays = await asyncio.gather(*(_until(s, u, started, done) for u in urls))
    await act
    return list(delays)


def _refused(status: int, _body: bytes) -> bool:
    return status in (401, 403)


def _served(status: int, _body: bytes) -> bool:
    return status == 200


def _locked(status: int, body: bytes) -> bool:
    """The lockdown profile masks everything above L1: the L2 caller's mobile too."""
    return status == 200 and "*" in json.loads(body)["customer"]["mobile"]


async def _measure(urls: list[str], redis_url: str, config: Path, trials: int) -> dict[str, Any]:
    out: dict[str, list[float]] = {
        "revoke (Redis write)": [],
        "restore (Redis write)": [],
        "revoke (CLI, start-up included)": [],
        "lockdown on (admin API)": [],
        "lockdown off (admin API)": [],
    }
    admin = await RevocationList.open(redis_url, subscribe=False)
    async with aiohttp.ClientSession() as s:
        try:
            for url in urls:
                assert await _until(s, url, time.monotonic(), _served) >= 0
            for _ in range(trials):
                out["revoke (Redis write)"] += await _both(
                    s, urls, lambda: admin.revoke("u-sales-01", reason="bench", by="bench"),
                    _refused,
                )  # fmt: skip
                out["restore (Redis write)"] += await _both(
                    s, urls, lambda: admin.restore("u-sales-01", by="bench"), _served
                )
            for _ in range(max(1, trials // 4)):
                out["revoke (CLI, start-up included)"] += await _both(
                    s, urls, lambda: _cli_revoke(config), _refused
                )
                await _both(s, urls, lambda: admin.restore("u-sales-01", by="bench"), _served)
            assert not _locked(*await _answer(s, urls[0])), "the L2 caller sees the mobile"
            for _ in range(trials):
                out["lockdown on (admin API)"] += await _both(
                    s, urls, lambda: _admin(s, urls[0], "/lockdown"), _locked
                )
                out["lockdown off (admin API)"] += await _both(
                    s, urls, lambda: _admin(s, urls[0], "/lockdown/lift"),
                    lambda st, b: st == 200 and not _locked(st, b),
                )  # fmt: skip
        finally:
            await admin.restore("u-sales-01", by="bench")
            await admin.close()
    return {k: _summary(v) for k, v in out.items()}


async def _cli_revoke(config: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        CLI, "users", "revoke", "u-sales-01", "--reason", "bench", "--config", str(config),
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"crm-gateway users revoke failed: {err.decode()[-500:]}")


async def _admin(s: aiohttp.ClientSession, url: str, path: str) -> None:
    async with s.post(f"{url}/_gateway/admin{path}", headers=ADMIN, json={"reason": "bench"}) as r:
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {(await r.read())[:300]!r}")


def _summary(delays: list[float]) -> dict[str, Any]:
    ms = sorted(d * 1000 for d in delays)
    return {
        "samples": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 1),
        "max_ms": round(ms[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="changes per kind (default 20)")
    args = parser.parse_args()
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        sys.exit("redis-server is needed: make deps")
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="propagation-") as tmp:
        work = Path(tmp)
        try:
            rport = free_port()
            procs.append(start("redis", [redis_server, "--port", str(rport), "--bind",
                                         "127.0.0.1", "--save", "", "--appendonly", "no"],
                               rport, work))  # fmt: skip
            redis_url = f"redis://127.0.0.1:{rport}/0"
            cport = free_port()
            crm = f"from gateway.demo.crm import run_demo_crm; run_demo_crm('127.0.0.1', {cport})"
            procs.append(start("crm", [PY, "-c", crm], cport, work))
            config = _settings(work, redis_url, cport)
            urls = []
            for i in range(2):
                port = free_port()
                argv = [CLI, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
                procs.append(start(f"gateway-{i}", argv, port, work, timeout=60))
                urls.append(f"http://127.0.0.1:{port}")
            results = asyncio.run(_measure(urls, redis_url, config, args.trials))
        finally:
            for proc in reversed(procs):
                proc.stop()
    (BENCH / "results").mkdir(exist_ok=True)
    (BENCH / "results" / "propagation.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| change | samples (x2 replicas) | median | p95 | max |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['samples']} | {r['median_ms']} ms | {r['p95_ms']} ms | "
              f"{r['max_ms']} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
