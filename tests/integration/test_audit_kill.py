"""kill -9 of a writer process under load: nothing it reported durable is lost.

A separate Python process opens an emitter and calls `emit_durable` in a loop
(with plain `emit()` calls in between, as a busy gateway would), printing each
durable sequence number after the call returned. The test SIGKILLs it mid-run;
then every printed sequence number must be in Redis or in the spool, the chain
must verify up to the last durable one, and a new emitter must adopt the dead
writer's spool and deliver it. Run twice: Redis up, and Redis unreachable (every
durable event must then be in the fsynced spool).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis as redis_sync

from gateway.audit.emitter import AuditEmitter
from gateway.audit.verify import verify_events
from gateway.settings import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY_HEX = "cd" * 32

WRITER = """
import asyncio, sys, time
from gateway.audit.emitter import AuditEmitter
from gateway.audit.event import build_access_event
from gateway.settings import Settings

async def main(redis_url: str, base: str) -> None:
    settings = Settings().with_overrides(**{"redis.url": redis_url, "base_dir": base,
        "audit.stream": "kill:audit", "audit.breaker_cooldown": 0.05})
    emitter = await AuditEmitter.open(settings)
    print("writer", emitter.writer, flush=True)
    i = 0
    while True:
        i += 1
        event = build_access_event(request_id=f"r{i}", subject_dict={"id": "u1"},
            request_dict={"method": "GET", "route": "/c/{id}"},
            decision_dict={"allow": True, "revision": "r"},
            report_dict={"records": {"ids": [f"C{i}"]}}, status=200, latency_ms=1,
            now=time.time())
        if i % 3:
            emitter.emit(event)
        else:
            await emitter.emit_durable(event)
            print("durable", event["unmapped"]["integrity"]["seq"], flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


Entries = list[tuple[bytes, dict[bytes, bytes]]]


def _entries(client: redis_sync.Redis, stream: str) -> Entries:
    """XRANGE of a stream (the sync client types its replies loosely)."""
    return cast(Entries, client.xrange(stream))


def _run_and_kill(redis_url: str, base: Path, durable_wanted: int) -> tuple[str, list[int]]:
    env = {**os.environ, "CRM_GATEWAY_AUDIT_KEY": KEY_HEX, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, redis_url, str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    writer = ""
    durable: list[int] = []
    deadline = time.monotonic() + 60
    try:
        while len(durable) < durable_wanted and time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            if not line:
                break
            kind, _, value = line.strip().partition(" ")
            if kind == "writer":
                writer = value
            elif kind == "durable":
                durable.append(int(value))
        os.kill(proc.pid, signal.SIGKILL)
        # Lines printed before the kill are acknowledgements too.
        rest = proc.stdout.read().decode().split("\n")
        durable += [int(ln.split()[1]) for ln in rest if ln.startswith("durable ")]
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    assert writer
    assert len(durable) >= durable_wanted
    return writer, durable


def _stream(url: str) -> list[dict[str, Any]]:
    client = redis_sync.Redis.from_url(url)
    try:
        return [orjson.loads(f[b"e"]) for _, f in _entries(client, "kill:audit")]
    finally:
        client.close()


def _spooled(base: Path) -> list[dict[str, Any]]:
    out = []
    for path in (base / "var/audit/spool").glob("*.jsonl"):
        out += [orjson.loads(ln) for ln in path.read_bytes().split(b"\n") if ln.strip()]
    return out


def _check(events: list[dict[str, Any]], writer: str, durable: list[int]) -> None:
    mine = [e for e in events if e["unmapped"]["integrity"]["writer"] == writer]
    seqs = {e["unmapped"]["integrity"]["seq"] for e in mine}
    lost = sorted(set(durable) - seqs)
    assert lost == [], f"{len(lost)} durable events lost"
    last = max(durable)
    upto = [e for e in mine if e["unmapped"]["integrity"]["seq"] <= last]
    report = verify_events(upto, bytes.fromhex(KEY_HEX), None)
    chain = report.chains[writer]
    assert chain.mac_bad == []
    assert chain.link_bad == []
    assert chain.conflicts == []
    assert chain.missing == [], "every event up to the last durable one is present"


@pytest.mark.parametrize("redis_up", [True, False], ids=["redis-up", "redis-down"])
async def test_kill_9_loses_nothing_reported_durable(
    tmp_path: Path, redis_url: str, redis_up: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_url if redis_up else f"redis://127.0.0.1:{free_port()}/0"
    writer, durable = _run_and_kill(url, tmp_path, durable_wanted=300)
    on_disk = _spooled(tmp_path)
    if redis_up:
        _check(_stream(redis_url) + on_disk, writer, durable)
    else:
        _check(on_disk, writer, durable)
        assert on_disk  # with Redis unreachable the spool holds them
    # A new emitter on the same spool directory adopts the dead writer's spool and,
    # with Redis reachable, delivers it.
    monkeypatch.setenv("CRM_GATEWAY_AUDIT_KEY", KEY_HEX)
    settings = Settings().with_overrides(
        **{"redis.url": redis_url, "base_dir": str(tmp_path), "audit.stream": "kill:audit"}
    )
    emitter = await AuditEmitter.open(settings)
    await emitter.close()
    assert not list((tmp_path / "var/audit/spool").glob("*.jsonl"))
    _check(_stream(redis_url), writer, durable)


# --- `crm-gateway serve` SIGKILLed under load, N times, with the default settings ---
#
# No strict levels are configured: `audit.durable_from` keeps its default (L2), so
# every response carrying a category above L1 is released only after its event is
# durable. Each run starts a gateway on the same spool directory (adopting the
# previous one's spool), drives customer reads, SIGKILLs it mid-load; a last gateway
# replays everything and stops cleanly. Every request a client got in full must
# have its audit event, and the verifier must name each killed writer as vanished
# (exit 22), with no cut tail and no missing chain.

KILL_RUNS = int(os.environ.get("CRM_GW_KILL_RUNS", "3"))


class AofRedis:
    """A redis-server with AOF (appendfsync always) that keeps its data across a
    stop/start on the same port, as a production Redis would."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tmp / "redis-aof"
        self._dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from tests.conftest import find_redis_server, wait_for_port

        self.proc = subprocess.Popen(
            [
                find_redis_server(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self._dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        from tests.conftest import stop_process

        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@pytest.fixture(scope="module")
def crm_port() -> Any:
    from tests.conftest import stop_process
    from tests.integration import audit_load as al

    port = free_port()
    proc = al.start_crm(port)
    yield port
    stop_process(proc)


async def _kill_runs(cfg: Any, redis: AofRedis | None, *, redis_down: bool) -> Any:
    from tests.integration import audit_load as al

    served: set[str] = set()
    failed = 0
    for _ in range(KILL_RUNS):
        gw = al.start_gateway(cfg)
        if redis_down and redis is not None:
            redis.stop()  # every write from now on fails: durable means the fsynced spool
        try:
            result = await al.drive(
                cfg.url, seconds=2.5, at=1.8, action=functools.partial(al.kill_9, gw)
            )
        finally:
            if gw.poll() is None:
                al.kill_9(gw)
        served |= result.ids()
        failed += result.failed
        if redis_down and redis is not None:
            redis.start()
    gw = al.start_gateway(cfg)  # replays what the killed ones left in the spool
    try:
        assert await al.wait_until(
            lambda: all(p.stat().st_size == 0 for p in cfg.spool.glob("*.jsonl")), 30
        ), "spool not replayed"
    finally:
        al.stop_gateway(gw)
    return served, failed


@pytest.mark.parametrize("mode", ["redis", "file", "redis-down"])
async def test_gateway_kill_9_default_settings_loses_nothing(
    tmp_path: Path, crm_port: int, mode: str
) -> None:
    from tests.integration import audit_load as al

    redis = None if mode == "file" else AofRedis(tmp_path)
    if redis is not None:
        redis.start()
    try:
        cfg = al.GatewayConfig(
            tmp_path,
            crm_port,
            redis.url if redis is not None else "",
            trail="file" if mode == "file" else "redis",
        )
        served, failed = await _kill_runs(cfg, redis, redis_down=mode == "redis-down")
        if mode == "file":
            events = al.file_events(cfg.audit_file) + al.spooled_events(cfg.spool)
        else:
            assert redis is not None
            events = al.stream_events(redis.url) + al.spooled_events(cfg.spool)
        lost = served - al.correlation_ids(events)
        time.sleep(0.6)  # past the verifier's heartbeat grace below
        code, report = al.run_verify(cfg, "--heartbeat-grace", "0.5")
    finally:
        if redis is not None:
            redis.stop()
    print(
        f"\n[kill -9 x{KILL_RUNS}, default settings, {mode}] answered {len(served)} "
        f"(cut/failed {failed}); events lost {len(lost)}; verify exit {code}, "
        f"vanished {len(report.get('vanished', []))}, cut {report.get('cut')}, "
        f"missing chains {report.get('missing_chains')}"
    )
    assert len(served) > 10 * KILL_RUNS, "vacuous: hardly any traffic before the kills"
    assert failed > 0, "the kills must have happened mid-load"
    assert lost == set(), f"{len(lost)} answered requests have no audit event"
    assert code == 22, report  # the killed writers vanished without closing seals
    assert len(report["vanished"]) == KILL_RUNS
    assert report["cut"] == [] and report["missing_chains"] == []
    chains = report["chains"]
    assert all(c["ok"] for c in chains)  # no gap, MAC, link or seal failure
