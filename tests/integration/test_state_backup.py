"""`state backup` and `state restore` against real redis-servers (docs/backup.md).

The stores write their records as the gateway does (grants and requests through the
access service's store, revocations, reviews, lockdown, the published directory);
the backup is restored into a second, empty redis-server and read back by the same
stores. The end-to-end run (a gateway serving the restored grants and revocations)
is in test_access_multiprocess.py.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from gateway.state.backup import (
    BackupInvalid,
    RestoreRefused,
    backup_key,
    check_backup,
    restore_backup,
    take_backup,
)
from gateway.state.client import connect
from gateway.state.grants import RedisGrantStore
from gateway.state.keys import (
    GRANTS_CHANNEL,
    GRANTS_VERSION,
    LOCKDOWN,
    REVIEWS,
    REVIEWS_CHANNEL,
    REVIEWS_VERSION,
    REVOKED,
)
from gateway.state.lockdown import LockdownState
from gateway.state.revocation import RevocationList
from tests.conftest import RedisProcess
from tests.integration.audit_load import stream_events

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
AUDIT_KEY = "ab" * 32
KEY = backup_key(bytes.fromhex(AUDIT_KEY))
CLI = str(Path(sys.executable).parent / "crm-gateway")


@pytest.fixture
def second_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "second")
    (tmp_path / "second").mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def source(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_url)
    yield client
    await client.aclose()


def _grant(gid: str, subject: str, status: str = "active") -> dict[str, Any]:
    expires = (datetime.now(UTC) + timedelta(hours=4)).isoformat()
    return {"id": gid, "subject": subject, "status": status, "expires": expires,
            "scope": {"grant_type": "grade_b"}, "justification": "客户投诉 12 号"}  # fmt: skip


async def _seed(url: str) -> None:
    grants = await RedisGrantStore.open(connect(url), owns_client=True)
    try:
        await grants.update("g-1", lambda _: _grant("g-1", "u-sales"))
        await grants.update("r-2", lambda _: _grant("r-2", "u-rm", status="pending"))
    finally:
        await grants.close()
    reviews = await RedisGrantStore.open(
        connect(url), owns_client=True, keys=(REVIEWS, REVIEWS_VERSION, REVIEWS_CHANNEL)
    )
    try:
        await reviews.update("bg-1", lambda _: _grant("bg-1", "u-rm", status="open"))
    finally:
        await reviews.close()
    revoked = await RevocationList.open(url)
    try:
        await revoked.revoke("u-departed", reason="离职", by="u-admin")
    finally:
        await revoked.close()
    lockdown = await LockdownState.open(url)
    try:
        await lockdown.switch_on({"profile": "breach", "by": "u-admin"})
    finally:
        await lockdown.close()


async def test_a_backup_restored_into_an_empty_redis_reads_back_the_same(
    redis_url: str, source: aioredis.Redis, second_redis: RedisProcess
) -> None:
    await _seed(redis_url)
    doc = await take_backup(source, KEY)
    assert doc["parts"]["grants"]["version"] >= 2
    assert set(doc["parts"]["grants"]["value"]) == {"g-1", "r-2"}
    assert list(doc["parts"]["reviews"]["value"]) == ["bg-1"]
    assert doc["parts"]["directory"]["value"] is None
    target = connect(second_redis.url)
    pubsub = target.pubsub()
    await pubsub.subscribe(GRANTS_CHANNEL)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    try:
        done = await restore_backup(target, orjson.loads(orjson.dumps(doc)), [KEY])
        assert done.counts == {"revocations": 1, "grants": 2, "reviews": 1, "lockdown": 1,
                               "directory": 0}  # fmt: skip
        announced = await pubsub.get_message(timeout=2)
        assert announced is not None and int(announced["data"]) == done.versions["grants"]
        assert int(await target.get(GRANTS_VERSION) or 0) > doc["parts"]["grants"]["version"]
        assert await target.hgetall(REVOKED) == await source.hgetall(REVOKED)
        assert await target.get(LOCKDOWN) == await source.get(LOCKDOWN)
        grants = await RedisGrantStore.open(connect(second_redis.url), owns_client=True)
        try:
            _, active = await grants.active_for("u-sales", datetime.now(UTC))
            assert [g["id"] for g in active] == ["g-1"]
        finally:
            await grants.close()
        # A second backup of the restored store holds the same decisions.
        again = await take_backup(target, KEY)
        assert {n: p["value"] for n, p in again["parts"].items()} == {
            n: p["value"] for n, p in doc["parts"].items()
        }
    finally:
        await pubsub.aclose()
        await target.aclose()


async def test_a_store_that_holds_decisions_is_not_overwritten_unless_asked(
    redis_url: str, source: aioredis.Redis
) -> None:
    await _seed(redis_url)
    doc = await take_backup(source, KEY)
    await source.hdel(REVOKED, "u-departed")
    with pytest.raises(RestoreRefused, match=r"already holds .*grants"):
        await restore_backup(source, doc, [KEY])
    assert await source.hget(REVOKED, "u-departed") is None
    await restore_backup(source, doc, [KEY], replace=True)
    assert await source.hget(REVOKED, "u-departed") is not None


async def test_a_changed_cut_or_foreign_document_is_refused_with_every_reason(
    redis_url: str, source: aioredis.Redis
) -> None:
    await _seed(redis_url)
    doc = await take_backup(source, KEY)
    check_backup(doc, [KEY])
    edited = orjson.loads(orjson.dumps(doc))
    edited["parts"]["revocations"]["value"] = {}
    with pytest.raises(BackupInvalid, match="sha256: the document was changed"):
        await restore_backup(source, edited, [KEY], replace=True)
    assert await source.hget(REVOKED, "u-departed") is not None  # nothing written
    # A grant slipped in, with the checksum recomputed: the seal still refuses it.
    forged = orjson.loads(orjson.dumps(doc))
    forged["parts"]["grants"]["value"]["g-evil"] = orjson.dumps(_grant("g-evil", "u-x")).decode()
    forged["sha256"] = hashlib.sha256(orjson.dumps(
        {k: v for k, v in forged.items() if k not in ("sha256", "mac")},
        option=orjson.OPT_SORT_KEYS)).hexdigest()  # fmt: skip
    with pytest.raises(BackupInvalid) as caught:
        check_backup(forged, [KEY])
    assert caught.value.problems == [
        "mac: not sealed with this deployment's audit key (or a retired one): written "
        "elsewhere, or changed"
    ]
    other = backup_key(b"\x01" * 32)
    with pytest.raises(BackupInvalid, match="mac: not sealed"):
        check_backup(doc, [other])
    check_backup(doc, [other, KEY])  # written before a rotation: the retired key opens it
    foreign = {**doc, "format": "other", "prefix": "x", "parts": {"grants": {"version": -1,
               "value": [1]}, "extra": {}}}  # fmt: skip
    with pytest.raises(BackupInvalid) as caught:
        check_backup(foreign, [KEY])
    problems = caught.value.problems
    assert "format: not a crm-gateway-state backup" in problems
    assert "prefix: 'x' is not this gateway's 'crmgw'" in problems
    assert "parts.extra: not a part of the gateway's state" in problems
    assert "parts.grants.version: not a count" in problems
    assert "parts.grants.value: not a hash of text" in problems
    assert "parts.revocations: missing" in problems
    with pytest.raises(BackupInvalid, match="not a JSON object"):
        check_backup([doc], [KEY])


def _cli(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "state", *argv, "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_the_cli_writes_a_private_file_and_restores_it(
    redis_url: str, second_redis: RedisProcess, tmp_path: Path
) -> None:
    await _seed(redis_url)
    src, dst = tmp_path / "src.yaml", tmp_path / "dst.yaml"
    for cfg, url in ((src, redis_url), (dst, second_redis.url)):
        cfg.write_text(f"upstream: {{url: 'http://127.0.0.1:9'}}\nredis: {{url: '{url}'}}\n")
    out = tmp_path / "state.json"
    taken = _cli(src, "backup", "--out", str(out))
    assert taken.returncode == 0, taken.stderr
    assert "revocations 1, grants 2, reviews 1, lockdown 1, directory 0" in taken.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    stdout = _cli(src, "backup")
    assert orjson.loads(stdout.stdout)["parts"] == orjson.loads(out.read_bytes())["parts"]
    restored = _cli(dst, "restore", str(out))
    assert restored.returncode == 0, restored.stderr
    assert "restored from" in restored.stderr and "grants 2" in restored.stderr
    refused = _cli(dst, "restore", str(out))
    assert refused.returncode == 1 and "--replace" in refused.stderr
    assert _cli(dst, "restore", str(out), "--replace").returncode == 0
    (tmp_path / "cut.json").write_bytes(out.read_bytes()[:-40])
    for bad, says in ((tmp_path / "cut.json", "not JSON"), (tmp_path / "none.json", "cannot read")):
        failed = _cli(dst, "restore", str(bad))
        assert failed.returncode == 1 and says in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr

    # Each backup and each restore that wrote is a governance event in the audit trail.
    def actions(url: str) -> list[str]:
        return [e["unmapped"]["governance"]["action"]
                for e in stream_events(url, "crm-gateway:audit")
                if e.get("class_uid") == 3005]  # fmt: skip

    assert actions(redis_url) == ["state_backup", "state_backup"]
    assert actions(second_redis.url) == ["state_restored", "state_restored"]
    event = next(e for e in stream_events(second_redis.url, "crm-gateway:audit")
                 if e.get("class_uid") == 3005)  # fmt: skip
    details = event["unmapped"]["governance"]["details"]
    assert details["grants"] == 2 and details["replace"] is False
    assert event["unmapped"]["governance"]["via"] == "cli"
    no_redis = tmp_path / "none.yaml"
    no_redis.write_text("upstream: {url: 'http://127.0.0.1:9'}\n")
    failed = _cli(no_redis, "backup")
    assert failed.returncode == 2 and "redis.url: not set" in failed.stderr
