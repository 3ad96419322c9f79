"""Revocation reaches every replica, with pub/sub and by the poll alone (real
redis-server, real processes). How fast is a benchmark figure (`bench/propagation.py`).

Two separate Python processes each open a `RevocationList` on the same Redis, as two
gateway replicas would. The test revokes from a third client and each worker reports
the wall-clock moment its local `is_revoked` flipped.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.state.errors import StoreUnavailable
from gateway.state.revocation import RevocationList

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import asyncio, sys, time
from gateway.state.revocation import RevocationList

async def main(url: str, subscribe: bool) -> None:
    revocations = await RevocationList.open(url, subscribe=subscribe)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while line := await reader.readline():
        cmd, arg = line.decode().split()
        if cmd == "watch":
            while not revocations.is_revoked(arg):
                await asyncio.sleep(0.001)
            print(f"revoked {time.time()}", flush=True)
        elif cmd == "unwatch":
            while revocations.is_revoked(arg):
                await asyncio.sleep(0.001)
            print(f"restored {time.time()}", flush=True)
        elif cmd == "check":
            print("yes" if revocations.is_revoked(arg) else "no", flush=True)
    await revocations.close()

asyncio.run(main(sys.argv[1], sys.argv[2] == "1"))
"""


class Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def read(self, wait: float = 5.0) -> str:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), wait)
        if not line:
            raise RuntimeError(f"worker exited with {await self.proc.wait()}")
        return line.decode().strip()


async def _workers(url: str, subscribe: bool, count: int = 2) -> list[Worker]:
    workers = []
    for _ in range(count):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            url,
            "1" if subscribe else "0",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        workers.append(Worker(proc))
    for w in workers:
        assert await w.read(wait=15) == "ready"
    return workers


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[RevocationList]:
    revocations = await RevocationList.open(redis_url)
    yield revocations
    await revocations.close()


async def _stop(workers: list[Worker]) -> None:
    for w in workers:
        if w.proc.returncode is None:
            w.proc.terminate()
            await w.proc.wait()


async def _measure(workers: list[Worker], admin: RevocationList, subject: str) -> list[float]:
    for w in workers:
        await w.send(f"check {subject}")
        assert await w.read() == "no"
        await w.send(f"watch {subject}")
    await asyncio.sleep(0.2)  # let the watchers start polling
    started = time.time()
    await admin.revoke(subject, reason="离职 (left the company)", by="security-test")
    delays = []
    for w in workers:
        word, stamp = (await w.read(wait=5)).split()
        assert word == "revoked"
        delays.append(float(stamp) - started)
    return delays


@pytest.mark.parametrize("subscribe", [True, False], ids=["pubsub", "poll-only"])
async def test_revocation_reaches_two_processes(
    redis_url: str, admin: RevocationList, subscribe: bool
) -> None:
    workers = await _workers(redis_url, subscribe)
    try:
        delays = await _measure(workers, admin, "u-departed")
        mode = "pub/sub" if subscribe else "poll only"
        print(f"revocation delay ({mode}): " + ", ".join(f"{d * 1000:.1f} ms" for d in delays))

        assert await admin.restore("u-departed", by="security-test")
        for w in workers:
            await w.send("unwatch u-departed")
        for w in workers:
            word, _ = (await w.read(wait=5)).split()
            assert word == "restored"
    finally:
        await _stop(workers)


async def test_revocations_listed_and_versioned(redis_url: str, admin: RevocationList) -> None:
    before = admin.version
    await admin.revoke("u-a", reason="left", by="sec")
    await admin.revoke("u-b", reason="incident", by="sec")
    assert admin.version == before + 2
    listed = await admin.list()
    assert [(r.subject_id, r.reason, r.by) for r in listed] == [
        ("u-a", "left", "sec"),
        ("u-b", "incident", "sec"),
    ]
    assert admin.is_revoked("u-a")
    assert not admin.is_revoked("u-c")
    assert not await admin.restore("u-c", by="sec")


async def test_open_refuses_unreachable_redis() -> None:
    from tests.conftest import free_port

    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
        await RevocationList.open(f"redis://127.0.0.1:{free_port()}/0")


async def test_memory_twin() -> None:
    revocations = await RevocationList.open(None)
    await revocations.revoke("u-x", reason="r", by="b")
    assert revocations.is_revoked("u-x")
    assert revocations.version == 1
    assert await revocations.restore("u-x", by="b")
    assert not revocations.is_revoked("u-x")
    assert revocations.version == 2
    await revocations.close()
