"""Helpers for the gateway-level audit tests: real processes, bounded load, event reads.

The demo CRM and `crm-gateway serve` run as subprocesses (so SIGKILL is a real
crash, not a cancelled task); the load driver counts only responses whose body
was read to the end, because only those were "served" to a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis as redis_sync
import yaml

from tests.conftest import free_port, stop_process, wait_for_port
from tests.integration.gateway_harness import write_directory

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "CRM_GATEWAY_AUDIT_KEY"
KEY_HEX = "5a" * 32
STREAM = "gwkill:audit"
# The admin (L4, MFA) sees up to L4 data, so every customer record it reads carries
# strict-level fields; the sales user (L2) gets masked ones, which still count.
KEYS = ("test-admin-key", "test-sales-key")
CUSTOMER_IDS = [f"C{n:06d}" for n in range(1, 40)]


def start_crm(port: int) -> subprocess.Popen[bytes]:
    code = f"from gateway.demo.crm import run_demo_crm; run_demo_crm('127.0.0.1', {port})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc=proc)
    return proc


@dataclass
class GatewayConfig:
    """One `crm-gateway serve` configuration, reused across a kill and a restart."""

    tmp: Path
    crm_port: int
    redis_url: str
    strict_levels: tuple[str, ...] = ()
    spool_dir: Path | None = None
    port: int = field(default_factory=free_port)
    # "redis": the Redis Stream (redis_url); "file": no Redis, the fsyncing file sink;
    # "none": no Redis and no sink (the chain and the queue only; bench/audit_cost.py).
    trail: str = "redis"
    # None: leave `audit.durable_from` at the gateway's default (L2).
    durable_from: str | None = None
    no_durable: bool = False  # durable_from: null (audit before release off)

    @property
    def audit_file(self) -> Path:
        return self.tmp / "audit.jsonl"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spool(self) -> Path:
        return self.spool_dir or self.tmp / "spool"

    def write(self) -> Path:
        cfg = self.tmp / "gateway.yaml"
        doc = {
            "base_dir": str(ROOT),
            "listen": {"host": "127.0.0.1", "port": self.port},
            "upstream": {"url": f"http://127.0.0.1:{self.crm_port}"},
            "identity": {"directory": str(write_directory(self.tmp / "directory.yaml"))},
            "policy": {"engine": "static"},
            "redis": {"url": self.redis_url if self.trail == "redis" else ""},
            "audit": {
                "sinks": {"redis": ["redis"], "file": ["file"]}.get(self.trail, []),
                "file": str(self.audit_file),
                "stream": STREAM,
                "spool_dir": str(self.spool),
                "registry_dir": str(self.tmp / "writers"),
                "hmac_key_env": KEY_ENV,
                "seal_key_file": str(self.tmp / "keys" / "seal.pem"),
                "dev_key_file": str(self.tmp / "keys" / "dev-hmac.key"),
                "strict_levels": list(self.strict_levels),
                "breaker_cooldown": 0.2,
                "seal_interval": 0.5,
            },
            "logging": {"level": "warning"},
        }
        audit = doc["audit"]
        assert isinstance(audit, dict)
        if self.durable_from is not None:
            audit["durable_from"] = self.durable_from
        if self.no_durable:
            audit["durable_from"] = None
        cfg.write_text(yaml.safe_dump(doc), encoding="utf-8")
        return cfg


def start_gateway(cfg: GatewayConfig, *, wait: bool = True) -> subprocess.Popen[bytes]:
    env = {**os.environ, KEY_ENV: KEY_HEX}
    with (cfg.tmp / "gateway.log").open("ab") as log:  # a pipe nobody reads could fill up
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "crm-gateway"),
                "serve",
                "--config",
                str(cfg.write()),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if wait:
        wait_for_port(cfg.port, timeout=30, proc=proc)
    return proc


def stop_gateway(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (clean shutdown: the emitter seals and drains), then close the pipe."""
    stop_process(proc)


def kill_9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@dataclass
class LoadResult:
    served: dict[str, int] = field(default_factory=dict)  # request id -> status
    failed: int = 0  # connection errors / cut-off bodies (not served)
    elapsed: float = 0.0

    def ids(self, status: int = 200) -> set[str]:
        return {rid for rid, st in self.served.items() if st == status}


async def drive(
    url: str,
    *,
    seconds: float,
    workers: int = 4,
    at: float | None = None,
    action: Callable[[], None] | None = None,
) -> LoadResult:
    """`workers` clients loop over customer reads for `seconds`; `action` runs once at
    `at` seconds (the kill). A response counts as served only if its body completed."""
    result = LoadResult()
    start = time.monotonic()
    end = start + seconds
    timeout = aiohttp.ClientTimeout(total=5)

    async def worker(n: int) -> None:
        i = n
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < end:
                i += workers
                key = KEYS[i % len(KEYS)]
                path = f"/api/customers/{CUSTOMER_IDS[i % len(CUSTOMER_IDS)]}"
                try:
                    async with session.get(
                        url + path, headers={"Authorization": f"Bearer {key}"}
                    ) as resp:
                        await resp.read()
                        result.served[resp.headers["X-Request-Id"]] = resp.status
                except (aiohttp.ClientError, TimeoutError, KeyError):
                    result.failed += 1
                    await asyncio.sleep(0.02)

    async def trigger() -> None:
        if at is not None and action is not None:
            await asyncio.sleep(at)
            action()

    await asyncio.gather(trigger(), *(worker(n) for n in range(workers)))
    result.elapsed = time.monotonic() - start
    return result


def stream_events(redis_url: str, stream: str = STREAM) -> list[dict[str, Any]]:
    client = redis_sync.Redis.from_url(redis_url)
    try:
        rows: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(stream)  # type: ignore[assignment]
        return [orjson.loads(fields[b"e"]) for _, fields in rows]
    finally:
        client.close()


def spooled_events(spool: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(spool.glob("*.jsonl")):
        data = path.read_bytes()
        out += [orjson.loads(ln) for ln in data[: data.rfind(b"\n") + 1].split(b"\n") if ln]
    return out


def correlation_ids(events: list[dict[str, Any]]) -> set[str]:
    return {
        str(e["metadata"]["correlation_uid"])
        for e in events
        if isinstance(e.get("metadata"), dict) and e["metadata"].get("correlation_uid")
    }


def writers(events: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for e in events:
        seen[e["unmapped"]["integrity"]["writer"]] = None
    return list(seen)


async def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.1)
    return check()


def file_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return [orjson.loads(ln) for ln in data[: data.rfind(b"\n") + 1].split(b"\n") if ln]


def run_verify(cfg: GatewayConfig, *extra: str) -> tuple[int, dict[str, Any]]:
    """`crm-gateway audit verify --stream --json` (or FILE, for a file trail) against the
    gateway's own config."""
    env = {**os.environ, KEY_ENV: KEY_HEX}
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "crm-gateway"),
            "audit",
            "verify",
            *(["--stream"] if cfg.trail == "redis" else [str(cfg.audit_file)]),
            "--json",
            "--config",
            str(cfg.tmp / "gateway.yaml"),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    report: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        report = orjson.loads(out.stdout)
    return out.returncode, report
