"""Issue 6 acceptance at the gateway level, with real processes.

`crm-gateway serve` runs as a subprocess in front of the demo CRM, with the audit
trail in a Redis Stream and a local spool. Under bounded concurrent load the
gateway is SIGKILLed, restarted on the same spool directory, and then every
response a client received in full must have its audit event (correlation uid
== X-Request-Id) and `crm-gateway audit verify --stream` must pass (the killed
writer's chain stays open and is reported as vanished, exit 22). Audit before
release (`audit.durable_from`, default L2; `audit.strict_levels` adds levels) is
what makes this a guarantee: the event is durable before the body is released.
With it turned off the events still queued in memory at the kill may be lost;
that count is printed, not asserted.

Also: strict mode with no Redis and no writable spool answers 503 without data,
and `/_gateway/metrics` reports the audit queue, spool and delivered counters.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.conftest import RedisProcess, free_port, stop_process
from tests.integration import audit_load as al

pytestmark = pytest.mark.integration

STRICT = ("L1", "L2", "L3", "L4")
LOAD_SECONDS = 2.5
KILL_AT = 1.8


@pytest.fixture(scope="module")
def crm_port() -> Iterator[int]:
    port = free_port()
    proc = al.start_crm(port)
    yield port
    stop_process(proc)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server this test may stop and start (not the session's)."""
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


async def _metrics(url: str) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url + "/_gateway/metrics") as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("crmgw_audit_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _spool_empty(spool: Path) -> bool:
    return all(p.stat().st_size == 0 for p in spool.glob("*.jsonl"))


async def _kill_and_restart(
    cfg: al.GatewayConfig, redis: RedisProcess, *, redis_down: bool
) -> tuple[al.LoadResult, dict[str, float], dict[str, float]]:
    """Load + SIGKILL mid-load, (Redis back up,) restart, wait for the replay.

    Returns the load result and the metrics seen before the kill and after replay."""
    gw = al.start_gateway(cfg)
    if redis_down:
        redis.stop()  # the emitter opened its stream; from now on every write fails
    before: dict[str, float] = {}

    async def sample() -> None:
        await asyncio.sleep(KILL_AT - 0.4)
        before.update(await _metrics(cfg.url))

    try:
        result, _ = await asyncio.gather(
            al.drive(cfg.url, seconds=LOAD_SECONDS, at=KILL_AT, action=lambda: al.kill_9(gw)),
            sample(),
        )
    finally:
        if gw.poll() is None:
            al.kill_9(gw)
    if redis_down:
        dead_spool = al.spooled_events(cfg.spool)
        assert dead_spool, "with Redis down the dead gateway's events are in its spool"
        redis.start()  # same port, empty: everything must come from the spool
    gw2 = al.start_gateway(cfg)
    try:
        assert await al.wait_until(lambda: _spool_empty(cfg.spool), 20), "spool not replayed"
        after = await _metrics(cfg.url)
    finally:
        al.stop_gateway(gw2)  # clean stop: the new writer's chain closes
    return result, before, after


def _check_and_report(
    label: str, cfg: al.GatewayConfig, redis_url: str, result: al.LoadResult
) -> tuple[int, dict[str, object]]:
    events = al.stream_events(redis_url) + al.spooled_events(cfg.spool)
    served = result.ids()
    lost = served - al.correlation_ids(events)
    if cfg.strict_levels:  # what strict mode kept durable before release says so
        released = [
            e for e in events if e.get("unmapped", {}).get("crm", {}).get("phase") == "release"
        ]
        assert served <= al.correlation_ids(released)
    time.sleep(0.6)  # past the heartbeat grace: the killed writer has vanished
    code, report = al.run_verify(cfg, "--allow-open", "120", "--heartbeat-grace", "0.5")
    chains = report.get("chains", [])
    print(
        f"\n[{label}] served {len(served)} (non-200 {len(result.served) - len(served)}, "
        f"failed/cut {result.failed}) in {result.elapsed:.1f}s; events {len(events)}; "
        f"lost {len(lost)}; verify exit {code}; chains "
        + ", ".join(
            f"{c['writer']}: {c['records']} rec, missing {c['missing']}, "
            f"{'closed' if c['closed'] else 'open'}"
            for c in chains
            if isinstance(c, dict)
        )
    )
    return len(lost), report | {"exit_code": code}


@pytest.mark.parametrize("redis_down", [False, True], ids=["redis-up", "redis-down-spool"])
async def test_kill_9_under_load_loses_no_served_event(
    tmp_path: Path, crm_port: int, own_redis: RedisProcess, redis_down: bool
) -> None:
    cfg = al.GatewayConfig(tmp_path, crm_port, own_redis.url, strict_levels=STRICT)
    result, before, after = await _kill_and_restart(cfg, own_redis, redis_down=redis_down)
    assert len(result.ids()) > 30, "the load must have been served before the kill"
    assert result.failed > 0, "the kill must have happened mid-load"
    lost, report = _check_and_report(
        "strict, " + ("redis down" if redis_down else "redis up"), cfg, own_redis.url, result
    )
    assert lost == 0
    assert report["exit_code"] == 22, report  # the killed writer, and nothing worse
    assert len(report["vanished"]) == 1  # type: ignore[arg-type]
    chains = [c for c in report["chains"] if isinstance(c, dict)]  # type: ignore[attr-defined]
    assert len(chains) == 2  # the killed writer and the restarted one
    assert all(c["ok"] for c in chains)
    assert [c["closed"] for c in chains].count(False) == 1  # only the killed one is open
    # Metrics: counters from the live process, with the names EmitterStats exposes.
    assert before["crmgw_audit_queue_depth"] >= 0
    if redis_down:
        assert before["crmgw_audit_spool_bytes"] > 0
        assert before["crmgw_audit_delivered"] == 0
    else:
        assert before["crmgw_audit_delivered"] > 0
    assert after["crmgw_audit_spool_bytes"] == 0
    assert after["crmgw_audit_queue_depth"] == 0
    if redis_down:  # the restarted gateway replayed the dead one's spool
        assert after["crmgw_audit_delivered"] >= len(result.ids())


async def test_kill_9_with_durable_audit_off_reports_loss(
    tmp_path: Path, crm_port: int, own_redis: RedisProcess
) -> None:
    """`audit.durable_from: null` (audit before release off): informational loss count,
    the control for the zero-loss tests. The chain must still verify apart from the
    vanished writer (a lost in-memory tail is a truncated chain, never a gap or a bad
    MAC, and it was never acknowledged, so it is no cut tail either)."""
    cfg = al.GatewayConfig(tmp_path, crm_port, own_redis.url, no_durable=True)
    result, _, _ = await _kill_and_restart(cfg, own_redis, redis_down=False)
    lost, report = _check_and_report("durable off, redis up", cfg, own_redis.url, result)
    # the load is time-bound: on a busy machine fewer requests are served before the kill
    assert len(result.ids()) > 10, "vacuous: hardly any traffic before the kill"
    assert report["exit_code"] == 22, report
    assert lost <= len(result.ids())


async def _strict_request(url: str) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as s,
        s.get(
            url + "/api/customers/C000001", headers={"Authorization": "Bearer test-admin-key"}
        ) as resp,
    ):
        return resp.status, await resp.read()


async def _crm_name(crm_port: int) -> str:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{crm_port}/api/customers/C000001") as resp,
    ):
        body = orjson.loads(await resp.read())
    return str(body["customer"]["name"])


async def test_strict_mode_without_redis_or_spool_is_503_without_data(
    tmp_path: Path, crm_port: int, own_redis: RedisProcess
) -> None:
    name = await _crm_name(crm_port)
    cfg = al.GatewayConfig(tmp_path, crm_port, own_redis.url, strict_levels=STRICT)
    gw = al.start_gateway(cfg)
    try:
        status, body = await _strict_request(cfg.url)
        assert status == 200 and name.encode() in body  # the baseline serves the record
        own_redis.stop()
        # The spool file is open and empty; a zero file-size limit makes every write
        # to it fail (EFBIG), also for root, which a chmod would not.
        resource.prlimit(gw.pid, resource.RLIMIT_FSIZE, (0, 0))
        t0 = time.monotonic()
        status, body = await _strict_request(cfg.url)
        waited = time.monotonic() - t0
        print(f"\n[strict, no redis, no spool] status {status} after {waited:.2f}s: {body[:120]!r}")
        assert status == 503
        assert orjson.loads(body)["error"] == "audit_unavailable"
        assert name.encode() not in body
        assert b"C000001" not in body
    finally:
        al.stop_gateway(gw)


def test_unusable_spool_directory_refuses_to_start(
    tmp_path: Path, crm_port: int, own_redis: RedisProcess
) -> None:
    """A spool path under a regular file (fails for root too): the gateway does not
    start at all, so it can never serve strict-level data without a spool."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    cfg = al.GatewayConfig(
        tmp_path, crm_port, own_redis.url, strict_levels=STRICT, spool_dir=blocker / "spool"
    )
    gw = al.start_gateway(cfg, wait=False)
    try:
        assert gw.wait(timeout=30) != 0
    finally:
        al.stop_gateway(gw)
    assert "NotADirectoryError" in (tmp_path / "gateway.log").read_text(encoding="utf-8")
