"""Grants across two real gateway processes sharing one redis-server (issue 17, item 3).

Each replica is `crm-gateway serve --config ...` in its own process, in front of the
demo CRM (its own process), deciding with a real OPA on the repository's policy
(copied with all-day hours). Grants are requested and approved through the admin
API of replica 0; what replica 1 then does is measured from outside:

- a revoked grant stops being honoured on replica 1 (how fast: `bench/propagation.py`);
- a single-use export grant is consumed by exactly one of two concurrent exports,
  one sent to each replica; a third export is refused too;
- `crm-gateway grants` from a third process is bound to the directory.

Every process is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import getpass
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

from gateway.audit.verify import verify_stream
from gateway.demo.data import generate_customers
from gateway.settings import load_settings
from tests.conftest import (
    OpaProcess,
    RedisProcess,
    free_port,
    start_serve,
    stop_process,
    wait_for_port,
)
from tests.integration.audit_load import stream_events
from tests.integration.console_harness import api, fetch, key_of, start_opa, write_people

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "crm-gateway")
COUNT = 400  # customers: an export of the visible ones is past the bulk limit (L2: 50)


@dataclass
class Replicas:
    config: Path
    urls: list[str]
    redis_url: str


def _config(tmp_path: Path, redis_url: str, crm_port: int, opa: OpaProcess, **access: Any) -> Path:
    cfg = tmp_path / "gateway.yaml"
    settings = {
        "base_dir": str(ROOT),
        "listen": {"host": "127.0.0.1", "port": 0, "workers": 1},
        "upstream": {"url": f"http://127.0.0.1:{crm_port}"},
        "redis": {"url": redis_url},
        "identity": {
            "directory": str(write_people(tmp_path / "people.yaml")),
            "directory_mfa": True,  # the test directory flags MFA for key users
        },
        "policy": {
            "engine": "external",
            "url": opa.url,
            "timeout": 2.0,
            "rego_dir": str(opa.bundle_dirs[0]),
            "output_schema": str(ROOT / "rego" / "schema" / "output.json"),
        },
        "access": access,
        "audit": {
            "sinks": ["file"],
            "file": str(tmp_path / "audit.jsonl"),
            "spool_dir": str(tmp_path / "spool"),
            "registry_dir": str(tmp_path / "writers"),
        },
    }
    cfg.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return cfg


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    server = start_opa(tmp_path_factory.mktemp("console-mp") / "rego")
    yield server
    server.stop()


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str, opa: OpaProcess) -> Iterator[Replicas]:
    crm_port = free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from gateway.demo.crm import run_demo_crm; "
                f"run_demo_crm('127.0.0.1', {crm_port}, count={COUNT})",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    config = _config(tmp_path, redis_url, crm_port, opa, cli_approvals=True)
    ports = [free_port(), free_port()]
    try:
        for i, port in enumerate(ports):
            procs.append(start_serve(config, port, tmp_path / f"gateway-{i}.log"))
        wait_for_port(crm_port, proc=procs[0])
        for port, proc in zip(ports, procs[1:], strict=True):
            wait_for_port(port, timeout=30, proc=proc)
        yield Replicas(config, [f"http://127.0.0.1:{p}" for p in ports], redis_url)
    finally:
        for proc in reversed(procs):
            stop_process(proc)


def _records() -> list[dict[str, Any]]:
    """The demo CRM's customers as it serves them (same seed and count)."""
    return [dict(c) for c in generate_customers(7, COUNT)]


def _grade_b() -> dict[str, Any]:
    return next(r for r in _records() if r["grade"] == "B" and r["tier"] == "一般")


async def _visible(url: str, rec: dict[str, Any], who: str) -> bool:
    status, body = await fetch(url, f"/api/customers/{rec['id']}", who)
    return status == 200 and rec["name"] in body


async def _first_hidden(url: str, rec: dict[str, Any], who: str, since: float) -> float:
    while time.monotonic() - since < 5:
        if not await _visible(url, rec, who):
            return time.monotonic() - since
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url} still honours the revoked grant after 5 s")


async def _approved(r: Replicas, who: str, body: dict[str, Any], *approvers: str) -> str:
    status, out = await api(r.urls[0], who, "POST", "/requests", body)
    assert status == 201, out
    for approver in approvers:
        status, out = await api(r.urls[0], approver, "POST", f"/requests/{out['id']}/approve", {})
        assert status == 200, out
    assert out["status"] == "active"
    return str(out["id"])


async def test_revoked_grant_refused_on_the_other_replica(
    replicas: Replicas,
) -> None:
    b = _grade_b()
    assert not await _visible(replicas.urls[1], b, "sales")
    gid = await _approved(
        replicas,
        "sales",
        {"purpose": "case 5", "justification": "complaint", "scope": {"grant_type": "grade_b"}},
        "sec1",
    )
    for url in replicas.urls:
        started = time.monotonic()
        while not await _visible(url, b, "sales"):
            assert time.monotonic() - started < 5, "grant never honoured"
            await asyncio.sleep(0.02)
    started = time.monotonic()
    revoke = asyncio.ensure_future(
        api(replicas.urls[0], "secadmin", "POST", f"/grants/{gid}/revoke", {"reason": "left"})
    )
    delays = await asyncio.gather(
        *(_first_hidden(url, b, "sales", started) for url in replicas.urls)
    )
    status, out = await revoke
    assert status == 200 and out["status"] == "revoked"
    print(
        "\ngrant revocation: "
        + ", ".join(f"replica {i}: {d * 1000:.0f} ms" for i, d in enumerate(delays))
    )
    for url in replicas.urls:
        assert not await _visible(url, b, "sales")


async def _mobile_clear(url: str, rec: dict[str, Any]) -> bool:
    status, body = await fetch(url, f"/api/customers/{rec['id']}", "rm", X_Purpose="advisory")
    assert status == 200, body
    return bool(orjson.loads(body)["customer"]["mobile"] == rec["mobile"])


async def _first(url: str, rec: dict[str, Any], clear: bool, since: float) -> float:
    while time.monotonic() - since < 5:
        if await _mobile_clear(url, rec) is clear:
            return time.monotonic() - since
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url}: lockdown not followed within 5 s")


async def test_lockdown_reaches_both_replicas(replicas: Replicas) -> None:
    rec = next(r for r in _records() if r["grade"] == "C" and r["tier"] == "一般")
    for url in replicas.urls:
        assert await _mobile_clear(url, rec)
    for on, path, clear in ((True, "/lockdown", False), (False, "/lockdown/lift", True)):
        started = time.monotonic()
        switch = asyncio.ensure_future(
            api(replicas.urls[0], "secadmin", "POST", path, {"reason": "drill"})
        )
        delays = await asyncio.gather(*(_first(u, rec, clear, started) for u in replicas.urls))
        status, out = await switch
        assert status == 200 and out["active"] is on
        print(
            f"\nlockdown {'on' if on else 'off'}: "
            + ", ".join(f"replica {i}: {d * 1000:.0f} ms" for i, d in enumerate(delays))
        )


async def _export(url: str) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url + "/api/customers/export.csv", headers={"X-API-Key": key_of("rm")}) as r,
    ):
        return r.status, await r.read()


async def test_single_use_export_grant_serves_exactly_one_of_two_concurrent_exports(
    replicas: Replicas,
) -> None:
    records = _records()
    for url in replicas.urls:  # without a grant, the export is past the bulk limit: refused
        status, body = await _export(url)
        assert status == 403 and not any(r["mobile"].encode() in body for r in records)
    gid = await _approved(
        replicas,
        "rm",
        {
            "purpose": "regulator file",
            "justification": "PBOC request 2026-44",
            "scope": {"grant_type": "bulk_export"},
        },
        "sec1",
    )
    await asyncio.sleep(1.0)  # both replicas' snapshots follow the store (pub/sub, 0.5 s poll)
    results = await asyncio.gather(*(_export(url) for url in replicas.urls))
    statuses = sorted(s for s, _ in results)
    assert statuses == [200, 403], [r[1][:400] for r in results]
    served = next(body for s, body in results if s == 200)
    assert sum(r["mobile"].encode() in served for r in records) > 50  # past the bulk limit
    refused = next(body for s, body in results if s == 403)
    assert not any(r["mobile"].encode() in refused for r in records)
    for url in replicas.urls:  # used up everywhere
        assert (await _export(url))[0] == 403
    status, out = await api(replicas.urls[1], "rm", "GET", f"/requests/{gid}")
    assert out["status"] == "consumed" and out["consumed_by_request"]
    started = time.monotonic()
    while not _consumed_events(replicas.redis_url):
        assert time.monotonic() - started < 5, "no grant_consumed event in the audit stream"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # a second one, if any, would have been flushed by now
    assert [c["grant_id"] for c in _consumed_events(replicas.redis_url)] == [gid]


def _consumed_events(redis_url: str) -> list[dict[str, Any]]:
    return [
        e["unmapped"]["governance"]
        for e in stream_events(redis_url, "crm-gateway:audit")
        if e.get("class_uid") == 3005 and e["unmapped"]["governance"]["action"] == "grant_consumed"
    ]


async def _cli(config: Path, *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "grants",
        *argv,
        "--config",
        str(config),
        "--json",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, [orjson.loads(x) for x in out.splitlines()], err.decode()


async def test_grants_cli_is_bound_to_the_directory(replicas: Replicas, tmp_path: Path) -> None:
    b = _grade_b()
    cfg = replicas.config
    code, out, err = await _cli(
        cfg,
        "request",
        "u-sales",
        "--type",
        "grade_b",
        "--justification",
        "complaint 12",
        "--by",
        "nobody-at-all",
    )
    assert code == 1 and "not_in_directory" in err
    code, out, err = await _cli(
        cfg,
        "request",
        "u-sales",
        "--type",
        "grade_b",
        "--justification",
        "complaint 12",
        "--by",
        "u-sales",
    )
    assert code == 0, err
    gid = out[0]["id"]
    assert out[0]["requested_via"] == "cli"
    # The two forgeries: a wealth manager "as security", a made-up user "as IT".
    code, _, err = await _cli(
        cfg, "approve", gid, "--by", "u-wealth-head", "--department", "security"
    )
    assert code == 1 and "wrong_department" in err
    code, _, err = await _cli(cfg, "approve", gid, "--by", "nobody-at-all", "--department", "it")
    assert code == 1 and "not_in_directory" in err
    code, _, err = await _cli(cfg, "approve", gid, "--by", "u-sales")
    assert code == 1 and "self_approval" in err
    code, out, err = await _cli(cfg, "approve", gid, "--by", "u-sec1")
    assert code == 0, err
    assert out[0]["status"] == "active"
    assert out[0]["approvals"][0]["via"] == "cli"
    assert out[0]["approvals"][0]["os_user"] == getpass.getuser()
    started = time.monotonic()
    while not await _visible(replicas.urls[1], b, "sales"):
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.05)
    code, _, err = await _cli(cfg, "revoke", gid, "--by", "u-sales-not-there", "--reason", "x")
    assert code == 1
    code, out, err = await _cli(cfg, "revoke", gid, "--by", "u-secadmin", "--reason", "done")
    assert code == 0 and out[0]["status"] == "revoked", err

    # Without access.cli_approvals the CLI records no approval at all.
    strict = tmp_path / "strict.yaml"
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    data["access"] = {}
    strict.write_text(yaml.safe_dump(data), encoding="utf-8")
    code, out, err = await _cli(
        strict,
        "request",
        "u-sales",
        "--type",
        "grade_b",
        "--justification",
        "complaint 13",
        "--by",
        "u-sales",
    )
    code, _, err = await _cli(strict, "approve", out[0]["id"], "--by", "u-sec1")
    assert code == 1 and "admin API" in err

    # The CLI's actions are governance events in the shared trail, and it verifies.
    events = [
        e["unmapped"]["governance"]
        for e in stream_events(replicas.redis_url, "crm-gateway:audit")
        if e.get("class_uid") == 3005
    ]
    cli_actions = [(e["action"], e["actor"]) for e in events if e["via"] == "cli"]
    assert ("request_approved", "u-sec1") in cli_actions
    assert ("grant_revoked", "u-secadmin") in cli_actions
    assert all(e["os_user"] == getpass.getuser() for e in events if e["via"] == "cli")
    report = await verify_stream(load_settings(cfg))
    assert report.exit_code == 0, report.summary()


def _state_cli(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *argv, "--config", str(config)], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


async def _until(check: Any, what: str) -> None:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < 5, what
        await asyncio.sleep(0.05)


async def test_restored_into_a_fresh_redis_a_gateway_serves_the_same_grants_and_revocations(
    replicas: Replicas, tmp_path: Path
) -> None:
    b = _grade_b()
    await _approved(
        replicas, "sales",
        {"purpose": "case 9", "justification": "complaint", "scope": {"grant_type": "grade_b"}},
        "sec1",
    )  # fmt: skip
    revoked = _state_cli(replicas.config, "users", "revoke", "u-rm", "--reason", "离职")
    assert revoked.returncode == 0, revoked.stderr
    await _until(lambda: _visible(replicas.urls[0], b, "sales"), "grant never honoured")
    backup = tmp_path / "state.json"
    taken = _state_cli(replicas.config, "state", "backup", "--out", str(backup))
    assert taken.returncode == 0, taken.stderr

    # A fresh Redis (the old one lost), and a gateway on it: nothing is granted or revoked.
    fresh = RedisProcess(tmp_path / "fresh")
    (tmp_path / "fresh").mkdir()
    fresh.start()
    config = tmp_path / "fresh.yaml"
    settings = yaml.safe_load(replicas.config.read_text(encoding="utf-8"))
    settings["redis"]["url"] = fresh.url
    settings["audit"]["registry_dir"] = str(tmp_path / "fresh-writers")
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    port = free_port()
    proc = start_serve(config, port, tmp_path / "fresh-gateway.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, timeout=30, proc=proc)
        assert not await _visible(url, b, "sales")
        status, _ = await fetch(url, f"/api/customers/{_records()[0]['id']}", "rm")
        assert status != 403
        # Restored while it runs: the gateway follows the announcement, no restart.
        restored = _state_cli(config, "state", "restore", str(backup))
        assert restored.returncode == 0, restored.stderr
        await _until(lambda: _visible(url, b, "sales"), "restored grant not honoured")

        async def refused() -> bool:
            status, body = await fetch(url, f"/api/customers/{b['id']}", "rm")
            return status == 403 and "subject_revoked" in body

        await _until(refused, "restored revocation not enforced")
        listed = _state_cli(config, "grants", "list", "--json")
        assert listed.returncode == 0 and '"u-sales"' in listed.stdout, listed.stderr
    finally:
        stop_process(proc)
        fresh.stop()
