"""Two gateway replicas, each with a managed OPA fed by signed bundles from a bundle
server, sharing one Redis (issue 14, item 6).

Every piece is a real process: the demo CRM, a bundle server (`python -m
http.server` over a directory), `crm-gateway serve` twice with
`policy.opa_config_file` (the shipped deploy/opa/opa-config.yaml with the server
URL, public key, persistence directory and polling made local), each supervising
its own OPA 1.22.3. The test then

1. waits until both replicas are ready on bundle A (`/_gateway/ready` names it);
2. publishes bundle B and measures how long until both replicas decide with it,
   in `/_gateway/ready` and in the audit events of their answers;
3. publishes a bundle signed with another key: both keep B and keep answering;
4. SIGKILLs one replica under load: every request the killed replica did not
   answer is retried on the other and succeeds, and every answered request has
   its audit event (in the Redis stream, or in the killed replica's fsynced spool).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from gateway.demo.data import generate_customers
from tests.conftest import find_opa, free_port, stop_process, wait_for_port
from tests.integration import audit_load as al
from tests.integration.console_harness import POLICY_CONFIG, key_of, write_people
from tests.integration.policy_http_harness import policy_copy
from tests.tls_certs import bundle_keypair

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "crm-gateway")
STREAM = "bundles:audit"
# Customers the sales user (L2) may read without a grant: grade C, tier 一般.
VISIBLE = [c["id"] for c in generate_customers(7, 200) if c["grade"] == "C" and c["tier"] == "一般"]


def _publish(tmp: Path, revision: str, key: Path, served: Path) -> None:
    """Build and sign a bundle as deploy/opa/build-bundle.sh does (same `opa build`
    flags, a policy copy whose data revision is `revision`), then swap it in
    atomically on the bundle server."""
    source = policy_copy(tmp / f"rego-{revision}", ROOT, **POLICY_CONFIG, revision=revision)
    out = tmp / f"{revision}.tar.gz"
    subprocess.run(
        [find_opa(), "build", "--bundle", str(source), "--ignore", "*_test.rego",
         "--revision", revision, "--signing-key", str(key), "--signing-alg", "RS256",
         "--output", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    os.replace(out, served)


@dataclass
class Replica:
    name: str
    port: int
    spool: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _opa_config(tmp: Path, name: str, server_port: int, public_key: str) -> Path:
    config = yaml.safe_load((ROOT / "deploy" / "opa" / "opa-config.yaml").read_text())
    config["services"]["bundles"]["url"] = f"http://127.0.0.1:{server_port}"
    config["keys"]["crm"]["key"] = public_key
    config["persistence_directory"] = str(tmp / f"persist-{name}")
    config["bundles"]["crm"]["polling"] = {"min_delay_seconds": 1, "max_delay_seconds": 2}
    path = tmp / f"opa-{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _start_replica(
    tmp: Path, name: str, crm_port: int, redis_url: str, opa_config: Path
) -> Replica:
    port = free_port()
    spool = tmp / f"spool-{name}"
    settings = {
        "base_dir": str(ROOT),
        "listen": {"host": "127.0.0.1", "port": port},
        "upstream": {"url": f"http://127.0.0.1:{crm_port}"},
        "redis": {"url": redis_url},
        "identity": {"directory": str(write_people(tmp / "people.yaml"))},
        "policy": {
            "engine": "managed",
            "opa_config_file": str(opa_config),
            "timeout": 2.0,
            "start_timeout": 30.0,
            "revision_poll": 0.2,
        },
        "audit": {
            "sinks": ["redis"],
            "stream": STREAM,
            "spool_dir": str(spool),
            "registry_dir": str(tmp / "writers"),
            "hmac_key_env": al.KEY_ENV,
            "seal_key_file": str(tmp / "keys" / "seal.pem"),
            "seal_interval": 0.5,
        },
        "logging": {"level": "warning"},
    }
    config = tmp / f"gateway-{name}.yaml"
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    with (tmp / f"gateway-{name}.log").open("wb") as log:
        proc = subprocess.Popen(
            [CLI, "serve", "--config", str(config)], cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT, env={**os.environ, al.KEY_ENV: al.KEY_HEX},
        )  # fmt: skip
    return Replica(name, port, spool, proc)


async def _ready(session: aiohttp.ClientSession, replica: Replica) -> dict[str, Any]:
    try:
        async with session.get(f"{replica.url}/_gateway/ready") as resp:
            body: dict[str, Any] = orjson.loads(await resp.read())
            body["http_status"] = resp.status
            return body
    except (aiohttp.ClientError, TimeoutError):
        return {"http_status": 0}


async def _on_revision(
    session: aiohttp.ClientSession, replicas: list[Replica], revision: str, within: float
) -> float:
    """Seconds until every replica is ready and names `crm@revision`."""
    started = time.monotonic()
    while True:
        states = [await _ready(session, r) for r in replicas]
        if all(
            s["http_status"] == 200 and f"crm@{revision}" in s.get("policy_revision", "")
            for s in states
        ):
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"not all on {revision}: {states}"
        await asyncio.sleep(0.1)


async def _read(session: aiohttp.ClientSession, replica: Replica, n: int) -> str:
    headers = {"X-API-Key": key_of("sales")}
    path = f"/api/customers/{VISIBLE[n % len(VISIBLE)]}"
    async with session.get(replica.url + path, headers=headers) as resp:
        body = await resp.read()
        assert resp.status == 200, body
        return resp.headers["X-Request-Id"]


def _decided_with(request_ids: set[str], redis_url: str) -> dict[str, str]:
    return {
        e["metadata"]["correlation_uid"]: e["unmapped"]["crm"]["decision"]["revision"]
        for e in al.stream_events(redis_url, STREAM)
        if e.get("metadata", {}).get("correlation_uid") in request_ids
    }


@pytest.fixture
def crm() -> Iterator[int]:
    port = free_port()
    proc = al.start_crm(port)
    yield port
    stop_process(proc)


async def test_bundles_roll_out_to_both_replicas_and_a_killed_one_loses_nothing(
    tmp_path: Path, redis_url: str, crm: int
) -> None:
    key, public = bundle_keypair(tmp_path, "bundle")
    other_key, _ = bundle_keypair(tmp_path, "other")
    served = tmp_path / "srv" / "crm" / "bundle.tar.gz"
    served.parent.mkdir(parents=True)
    _publish(tmp_path, "rollout-a", key, served)
    server_port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(server_port), "--bind", "127.0.0.1"],
        cwd=tmp_path / "srv", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    replicas: list[Replica] = []
    try:
        wait_for_port(server_port, proc=server)
        for name in ("r0", "r1"):
            opa_config = _opa_config(tmp_path, name, server_port, public)
            replicas.append(_start_replica(tmp_path, name, crm, redis_url, opa_config))
        for r in replicas:
            wait_for_port(r.port, timeout=60, proc=r.proc)
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await _on_revision(session, replicas, "rollout-a", within=30)
            first = {await _read(session, r, i) for i, r in enumerate(replicas)}

            # 2. A new bundle reaches both replicas: /ready, then the audit events.
            _publish(tmp_path, "rollout-b", key, served)
            published = time.monotonic()
            rollout = await _on_revision(session, replicas, "rollout-b", within=30)
            after = {await _read(session, r, i) for i, r in enumerate(replicas)}
            assert await al.wait_until(
                lambda: len(_decided_with(first | after, redis_url)) == 4, 10
            )
            decided = _decided_with(first | after, redis_url)
            # The event's revision: the data revision and the active bundle's.
            assert {decided[rid] for rid in first} == {"rollout-a+crm@rollout-a"}
            assert {decided[rid] for rid in after} == {"rollout-b+crm@rollout-b"}

            # 3. A bundle signed with another key is refused; both keep B and serve.
            _publish(tmp_path, "rollout-evil", other_key, served)
            await asyncio.sleep(6)  # three polling intervals at most 2 s apart
            for r in replicas:
                state = await _ready(session, r)
                assert state["http_status"] == 200, state
                assert "crm@rollout-b" in state["policy_revision"], state
            refused_window = {await _read(session, r, i) for i, r in enumerate(replicas)}

        # 4. kill -9 one replica under load; clients retry on the other.
        result = await _load_with_failover(replicas, kill=replicas[0], seconds=4.0, at=1.5)
        assert replicas[0].proc.poll() is not None, "the replica was not killed"
        events = al.stream_events(redis_url, STREAM) + al.spooled_events(replicas[0].spool)
        lost = result.answered - al.correlation_ids(events)
        print(
            f"\n[bundles, 2 replicas] rollout A->B {rollout * 1000:.0f} ms after publishing "
            f"(polling 1-2 s; {time.monotonic() - published:.1f} s since); bad bundle kept B; "
            f"kill -9 under load: answered {len(result.answered)}, retried "
            f"{result.retried}, failed {result.failed}, audit events lost {len(lost)}"
        )
        kept = set(_decided_with(refused_window, redis_url).values())
        assert kept == {"rollout-b+crm@rollout-b"}, kept
        assert result.retried > 0, "the kill must have cut requests off"
        assert result.failed == 0, "a retry on the surviving replica failed"
        assert len(result.answered) > 50, "vacuous: hardly any traffic"
        assert lost == set(), f"{len(lost)} answered requests have no audit event"
    finally:
        for r in replicas:
            if r.proc.poll() is None:
                stop_process(r.proc)
        stop_process(server)


@dataclass
class Failover:
    answered: set[str]
    retried: int = 0
    failed: int = 0


async def _load_with_failover(
    replicas: list[Replica], *, kill: Replica, seconds: float, at: float, workers: int = 4
) -> Failover:
    """`workers` clients read customers from alternating replicas for `seconds`; the
    `kill` replica gets SIGKILL at `at` s. A request cut off (connection error) is
    sent once more to the other replica; only a completed 200 counts as answered."""
    result = Failover(set())
    end = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=5)

    async def worker(n: int) -> None:
        i = n
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < end:
                i += workers
                first = replicas[i % len(replicas)]
                other = replicas[(i + 1) % len(replicas)]
                try:
                    result.answered.add(await _read(session, first, i))
                    continue
                except (aiohttp.ClientError, TimeoutError):
                    result.retried += 1
                try:
                    result.answered.add(await _read(session, other, i))
                except (aiohttp.ClientError, TimeoutError, AssertionError):
                    result.failed += 1

    async def trigger() -> None:
        await asyncio.sleep(at)
        al.kill_9(kill.proc)

    await asyncio.gather(trigger(), *(worker(n) for n in range(workers)))
    return result
