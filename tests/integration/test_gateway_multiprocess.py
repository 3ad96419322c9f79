"""Two real gateway processes sharing one redis-server (issue 5 acceptance).

Each replica is `crm-gateway serve --config ...` in its own process, both in front
of the demo CRM (its own process) with the static engine, both pointed at the
session's redis-server. What one replica (or the CLI) writes to Redis must hold
on the other: a revocation issued with `crm-gateway users revoke` refuses the
user on BOTH replicas (polled every 10 ms; how fast is measured by
`bench/propagation.py`, not asserted here),
and a per-subject rate limit is one budget across both (N allowed in total, the
rest 429 with Retry-After). Every process is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml

from gateway.state.revocation import RevocationList
from tests.conftest import free_port, start_serve, stop_process, wait_for_port
from tests.integration.gateway_harness import write_directory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "crm-gateway")
LIMIT = 25  # requests per subject per minute for the partner role
PATH = "/api/customers?page_size=1"


@dataclass
class Replicas:
    config: Path
    ports: list[int]
    redis_url: str

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}{PATH}"


def _write_config(tmp_path: Path, redis_url: str, crm_port: int) -> Path:
    cfg = tmp_path / "gateway.yaml"
    settings = {
        "base_dir": str(ROOT),
        "listen": {"host": "127.0.0.1", "port": 0, "workers": 1},
        "upstream": {"url": f"http://127.0.0.1:{crm_port}"},
        "redis": {"url": redis_url},
        "identity": {"directory": str(write_directory(tmp_path / "directory.yaml"))},
        "policy": {"engine": "static"},
        "guard": {
            "rate_limits": [
                {"name": "partner-minute", "per": "subject", "roles": ["partner"],
                 "limit": LIMIT, "period": 60},
            ]
        },
        "audit": {
            "sinks": ["file"],
            "file": str(tmp_path / "audit.jsonl"),
            "spool_dir": str(tmp_path / "spool"),
            "registry_dir": str(tmp_path / "writers"),
        },
    }  # fmt: skip
    cfg.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return cfg


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[Replicas]:
    """The demo CRM and two gateway processes on free ports, stopped by PID afterwards."""
    crm_port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c",
             f"from gateway.demo.crm import run_demo_crm; run_demo_crm('127.0.0.1', {crm_port})"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    config = _write_config(tmp_path, redis_url, crm_port)
    ports = [free_port(), free_port()]
    try:
        for i, port in enumerate(ports):
            procs.append(start_serve(config, port, tmp_path / f"gateway-{i}.log"))
        wait_for_port(crm_port, proc=procs[0])
        for port, proc in zip(ports, procs[1:], strict=True):
            wait_for_port(port, timeout=30, proc=proc)
        yield Replicas(config, ports, redis_url)
    finally:
        for proc in reversed(procs):
            stop_process(proc)


async def _status(s: aiohttp.ClientSession, url: str, key: str) -> tuple[int, str | None]:
    async with s.get(url, headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
        return r.status, r.headers.get("Retry-After")


async def _first_refusal(s: aiohttp.ClientSession, url: str, key: str, since: float) -> float:
    """Seconds from `since` until `url` first refuses `key` (polled every 10 ms)."""
    while time.monotonic() - since < 5:
        status, _ = await _status(s, url, key)
        if status != 200:
            assert status in (401, 403), status
            return time.monotonic() - since
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url} still serves the revoked user after 5 s")


async def test_cli_revocation_refuses_the_user_on_both_replicas(replicas: Replicas) -> None:
    key = "test-sales-key"
    async with aiohttp.ClientSession() as s:
        for i in range(2):
            assert (await _status(s, replicas.url(i), key))[0] == 200
        started = time.monotonic()
        revoke = await asyncio.create_subprocess_exec(
            CLI, "users", "revoke", "u-sales-01", "--reason", "left",
            "--config", str(replicas.config), cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        cli = asyncio.ensure_future(revoke.communicate())
        delays = await asyncio.gather(
            *(_first_refusal(s, replicas.url(i), key, started) for i in range(2))
        )
        _, err = await cli
        assert revoke.returncode == 0, err.decode()
        cli_done = time.monotonic() - started
        print(
            f"\nrevocation (CLI process, {cli_done * 1000:.0f} ms to exit): first refusal "
            + ", ".join(f"replica {i}: {d * 1000:.0f} ms" for i, d in enumerate(delays))
        )
        # Refused for good on both, and nobody else is affected.
        for i in range(2):
            assert (await _status(s, replicas.url(i), key))[0] in (401, 403)
            assert (await _status(s, replicas.url(i), "test-partner-key"))[0] == 200

        # The same without the CLI's start-up: from the Redis write to the first refusal.
        admin = await RevocationList.open(replicas.redis_url, subscribe=False)
        try:
            started = time.monotonic()
            await admin.revoke("u-partner-01", reason="incident", by="security-test")
            direct = await asyncio.gather(
                *(_first_refusal(s, replicas.url(i), "test-partner-key", started) for i in range(2))
            )
        finally:
            await admin.close()
        print(
            "revocation (RevocationList.revoke): first refusal "
            + ", ".join(f"replica {i}: {d * 1000:.0f} ms" for i, d in enumerate(direct))
        )
        assert (await _status(s, replicas.url(0), "test-admin-key"))[0] == 200


async def test_rate_limit_is_one_budget_across_replicas(replicas: Replicas) -> None:
    key = "test-partner-key"
    allowed = [0, 0]
    refused: list[str | None] = []
    async with aiohttp.ClientSession() as s:
        for n in range(2 * LIMIT + 10):
            i = n % 2
            status, retry_after = await _status(s, replicas.url(i), key)
            if status == 200:
                allowed[i] += 1
            else:
                assert status == 429, status
                refused.append(retry_after)
        # The limit is per subject: another caller still gets through.
        assert (await _status(s, replicas.url(0), "test-sales-key"))[0] == 200
    print(f"\nrate limit {LIMIT}/60s: allowed per replica {allowed}, refused {len(refused)}")
    assert sum(allowed) == LIMIT
    assert all(a > 0 for a in allowed)
    assert len(refused) == LIMIT + 10
    assert all(r is not None and 1 <= int(r) <= 60 for r in refused), refused[:3]
