"""`crm-gateway audit verify --json` on each way a trail can be damaged, with real writers.

Writers are real `AuditEmitter`s against a real redis-server (and, for the file
trail, the fsyncing file sink); one writer is a separate process killed with
SIGKILL. The trail is then damaged the way an intruder or an accident would, and
the verifier (the CLI, as a subprocess) must name the case with its exit code:
0 intact, 10 edited record, 20 deleted record, 24 cut tail, 23 chain deleted
whole, 22 writer vanished without a closing seal. `--json` must print JSON only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis as redis_sync
import yaml

from gateway.audit.emitter import AuditEmitter
from gateway.audit.event import build_access_event
from gateway.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "CRM_GATEWAY_AUDIT_KEY"
KEY_HEX = "ab" * 32
STREAM = "verdict:audit"
CLI = str(Path(sys.executable).parent / "crm-gateway")


def _config(tmp: Path, redis_url: str | None) -> Path:
    audit: dict[str, Any] = {
        "stream": STREAM,
        "spool_dir": str(tmp / "spool"),
        "registry_dir": str(tmp / "writers"),
        "hmac_key_env": KEY_ENV,
        "seal_key_file": str(tmp / "keys" / "seal.pem"),
        "dev_key_file": str(tmp / "keys" / "dev-hmac.key"),
        "registry_heartbeat": 0.2,
        "breaker_cooldown": 0.05,
    }
    doc: dict[str, Any] = {"base_dir": str(ROOT), "audit": audit}
    if redis_url:
        doc["redis"] = {"url": redis_url}
        audit["sinks"] = ["redis"]
    else:
        audit["sinks"] = ["file"]
        audit["file"] = str(tmp / "audit.jsonl")
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _settings(config: Path) -> Settings:
    from gateway.settings import load_settings

    return load_settings(config)


def _event(i: int) -> dict[str, Any]:
    return build_access_event(
        request_id=f"r{i}",
        subject_dict={"id": "u1"},
        request_dict={"method": "GET", "route": "/c/{id}"},
        decision_dict={"allow": True, "revision": "r"},
        report_dict={"records": {"ids": [f"C{i}"]}},
        status=200,
        latency_ms=1,
        now=time.time(),
    )


async def _write(settings: Settings, n: int, *, close: bool = True) -> AuditEmitter:
    emitter = await AuditEmitter.open(settings)
    for i in range(n):
        emitter.emit(_event(i))
    await emitter.emit_durable(_event(n))
    if close:
        await emitter.close()
    return emitter


def _verify(config: Path, *target: str) -> tuple[int, dict[str, Any]]:
    out = subprocess.run(
        [
            CLI,
            "audit",
            "verify",
            *target,
            "--json",
            "--heartbeat-grace",
            "1",
            "--config",
            str(config),
        ],
        cwd=ROOT,
        env={**os.environ, KEY_ENV: KEY_HEX, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    report = orjson.loads(out.stdout)  # JSON only: anything else fails here
    assert isinstance(report, dict)
    return out.returncode, report


def _entries(url: str) -> list[tuple[bytes, dict[str, Any]]]:
    client = redis_sync.Redis.from_url(url)
    try:
        rows: Any = client.xrange(STREAM)
        return [(eid, orjson.loads(f[b"e"])) for eid, f in rows]
    finally:
        client.close()


def _writer_of(event: dict[str, Any]) -> str:
    return str(event["unmapped"]["integrity"]["writer"])


def _xdel(url: str, ids: list[bytes]) -> None:
    client = redis_sync.Redis.from_url(url)
    try:
        client.xdel(STREAM, *ids)
    finally:
        client.close()


KILLED_WRITER = """
import asyncio, sys
from gateway.audit.emitter import AuditEmitter
from gateway.settings import load_settings
from tests.integration.test_audit_verify_verdicts import _event

async def main() -> None:
    emitter = await AuditEmitter.open(load_settings(sys.argv[1]))
    for i in range(50):
        await emitter.emit_durable(_event(i))
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY_HEX)


async def test_stream_verdicts(tmp_path: Path, redis_url: str, env_key: None) -> None:
    config = _config(tmp_path, redis_url)
    settings = _settings(config)
    await _write(settings, 30)
    await _write(settings, 30)
    verdicts: dict[str, int] = {}

    code, report = _verify(config, "--stream")
    verdicts["intact"] = code
    assert code == 0, report
    assert report["registry_writers"] == 2

    entries = _entries(redis_url)
    first, second = sorted({_writer_of(e) for _, e in entries})

    # An edited record: same id and seq, another customer.
    eid, event = next((eid, e) for eid, e in entries if _writer_of(e) == first)
    edited = dict(event)
    edited["message"] = "edited"
    client = redis_sync.Redis.from_url(redis_url)
    try:
        client.xadd(STREAM, {b"e": orjson.dumps(edited)})
        client.xdel(STREAM, eid)
        code, report = _verify(config, "--stream")
        verdicts["edited record"] = code
        assert code == 10, report
        # restore: delete the edit, put the original back (arrival order does not matter)
        newest: Any = client.xrevrange(STREAM, count=1)
        last = newest[0][0]
        client.xdel(STREAM, last)
        client.xadd(STREAM, {b"e": orjson.dumps(event)})
    finally:
        client.close()
    assert _verify(config, "--stream")[0] == 0

    # A record deleted in the middle of the second chain: a gap.
    mine = [(eid, e) for eid, e in _entries(redis_url) if _writer_of(e) == second]
    _xdel(redis_url, [mine[5][0]])
    code, report = _verify(config, "--stream")
    verdicts["deleted record"] = code
    assert code == 20, report

    # The second writer's chain deleted whole: only the registry remembers it.
    _xdel(redis_url, [eid for eid, e in _entries(redis_url) if _writer_of(e) == second])
    code, report = _verify(config, "--stream")
    verdicts["deleted chain"] = code
    assert code == 23, report
    assert report["missing_chains"] == [second]

    # The first writer's tail cut off, closing seal and all (no gap is left behind).
    mine = [(eid, e) for eid, e in _entries(redis_url) if _writer_of(e) == first]
    mine.sort(key=lambda row: int(row[1]["unmapped"]["integrity"]["seq"]))
    _xdel(redis_url, [eid for eid, _ in mine[-4:]])
    code, report = _verify(config, "--stream")
    verdicts["cut tail"] = code
    assert code == 24, report
    assert first in report["cut"]
    print(f"\n[verify verdicts, stream] {verdicts}")


async def test_vanished_writer(tmp_path: Path, redis_url: str, env_key: None) -> None:
    """A writer SIGKILLed (no closing seal, heartbeat stops) is reported as vanished,
    not as intact and not as a cut tail: everything it acknowledged is there."""
    config = _config(tmp_path, redis_url)
    await _write(_settings(config), 10)  # a clean writer next to it
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(config)],
        cwd=ROOT,
        env={**os.environ, KEY_ENV: KEY_HEX, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.5)  # a heartbeat or two after the last write
        code, report = _verify(config, "--stream")
        assert code == 0, report  # live and beating: an open chain is fine
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    time.sleep(1.5)  # past --heartbeat-grace 1
    code, report = _verify(config, "--stream")
    print(f"\n[verify verdicts] vanished writer: exit {code}, vanished {report['vanished']}")
    assert code == 22, report
    assert len(report["vanished"]) == 1
    assert report["cut"] == [] and report["missing_chains"] == []


async def test_file_trail_verdicts(tmp_path: Path, env_key: None) -> None:
    config = _config(tmp_path, None)
    settings = _settings(config)
    await _write(settings, 20)
    await _write(settings, 20)
    trail = tmp_path / "audit.jsonl"
    code, report = _verify(config, str(trail))
    assert code == 0, report
    lines = trail.read_bytes().splitlines(keepends=True)
    writers = sorted({_writer_of(orjson.loads(ln)) for ln in lines})
    # a cut tail: the last three lines (the second writer's closing seal among them)
    trail.write_bytes(b"".join(lines[:-3]))
    code, report = _verify(config, str(trail))
    assert code == 24, report
    # a writer's lines removed from the file: a deleted chain
    trail.write_bytes(b"".join(ln for ln in lines if _writer_of(orjson.loads(ln)) != writers[0]))
    code, report = _verify(config, str(trail))
    assert code == 23, report
    assert report["missing_chains"] == [writers[0]]
    print(f"\n[verify verdicts, file] cut tail 24, deleted chain 23 (got {code})")
