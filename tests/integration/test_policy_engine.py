"""The policy stage against real OPA processes (and real Redis for grants).

Nothing is mocked: OPA runs the repository's rego/ (or a tiny throw-away policy
written to a temp dir for the failure cases), and is killed by PID to test the
breaker and the supervisor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.access.grants import GrantService
from gateway.core.model import Decision, RecordVerb, Subject
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ConfigError, PolicyUnavailable
from gateway.policy.engine import PolicyEngine, PolicyRequest
from gateway.settings import Settings
from gateway.state.client import connect
from gateway.state.grants import MemoryGrantStore, RedisGrantStore
from tests.conftest import (
    ROOT,
    OpaProcess,
    RedisProcess,
    find_opa,
    free_port,
    stop_process,
    wait_for_port,
)
from tests.contract.golden import GoldenCase, check_decision, load_cases

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai (business hours)
RM = Subject(
    id="rm1", roles=("relationship_manager",), department="wealth", clearance="L3", mfa=True,
    auth_method="jwt",
)  # fmt: skip
VIEW = PolicyRequest(
    method="GET", operation="view", route_template="/api/customers/{id}", purpose="advisory",
    justification=False, network_zone="internal", network_allowed=True, now=NOW,
)  # fmt: skip
DATA_REVISION = json.loads((ROOT / "rego" / "data.json").read_text())["crm"]["config"]["revision"]


def _replace_with(stored: dict[str, Any]) -> Callable[[Any], dict[str, Any]]:
    return lambda _: stored


def taxonomy() -> Taxonomy:
    s = Settings()
    return Taxonomy.load(s.path(s.classification.taxonomy))


# A generous deadline: a loaded CI box must not turn these tests into timeout tests
# (test_hard_deadline sets its own).
SLACK = {"policy.timeout": 2.0}


def external(url: str, **extra: Any) -> Settings:
    return Settings().with_overrides(
        **{"policy.engine": "external", "policy.url": url, **SLACK, **extra}
    )


async def open_engine(settings: Settings, grants: Any = None) -> PolicyEngine:
    tax = taxonomy()
    return await PolicyEngine.open(
        settings, taxonomy_policy=tax.to_policy(), grants=grants or MemoryGrantStore(),
        taxonomy=tax,
    )  # fmt: skip


def policy_copy(dest: Path) -> Path:
    """The repository's policy and data (not the schema dir, which is not data)."""
    dest.mkdir()
    for f in (ROOT / "rego").iterdir():
        if f.is_file() and (f.suffix == ".rego" or f.name == "data.json"):
            shutil.copy2(f, dest / f.name)
    return dest


@pytest.fixture(scope="module")
def policy_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    """An OPA serving rego/ for this module (external mode, as a sidecar would)."""
    server = OpaProcess([policy_copy(tmp_path_factory.mktemp("opa") / "rego")])
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def engine(policy_opa: OpaProcess) -> AsyncIterator[PolicyEngine]:
    eng = await open_engine(external(policy_opa.url))
    yield eng
    await eng.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


async def has_grants(store: RedisGrantStore) -> bool:
    return bool((await store.active_for(RM.id, NOW))[1])


async def has_no_grants(store: RedisGrantStore) -> bool:
    return not await has_grants(store)


def grade_rule(decision: Decision, grade: str) -> RecordVerb | None:
    for rule in decision.records:
        if rule.when.get("grade") == [grade]:
            return rule.record
    return None


async def test_decision_parses_and_second_call_hits_the_cache(engine: PolicyEngine) -> None:
    first = await engine.decide(RM, VIEW)
    assert not first.cache_hit
    d = first.decision
    assert d.allow, d.reason
    assert d.revision == DATA_REVISION == engine.revision
    assert d.fields
    assert d.levels
    assert first.elapsed_ms < 1000
    second = await engine.decide(RM, dataclasses.replace(VIEW, now=NOW + timedelta(minutes=10)))
    assert second.cache_hit
    assert second.decision == d
    assert second.input_digest == first.input_digest
    assert engine.cache.hits == 1
    assert await engine.ready()


@pytest.mark.parametrize(
    ("subject", "request_"),
    [
        (dataclasses.replace(RM, clearance="L2"), VIEW),
        (RM, dataclasses.replace(VIEW, route_template="/api/customers")),
        (RM, dataclasses.replace(VIEW, purpose="service")),
        (RM, dataclasses.replace(VIEW, now=NOW + timedelta(hours=1))),
    ],
)
async def test_relevant_changes_miss_the_cache(
    engine: PolicyEngine, subject: Subject, request_: PolicyRequest
) -> None:
    base = await engine.decide(RM, VIEW)
    other = await engine.decide(subject, request_)
    assert not other.cache_hit
    assert other.input_digest != base.input_digest
    assert engine.cache.misses == 2


async def test_identical_concurrent_misses_share_one_evaluation(engine: PolicyEngine) -> None:
    assert engine.client is not None
    calls = engine.client.calls
    outs = await asyncio.gather(*(engine.decide(RM, VIEW) for _ in range(10)))
    assert engine.client.calls == calls + 1
    assert engine.coalesced == 9
    assert all(o.decision == outs[0].decision for o in outs)
    assert len({o.input_digest for o in outs}) == 1


async def test_lower_clearance_gets_a_stricter_table(engine: PolicyEngine) -> None:
    l3 = (await engine.decide(RM, VIEW)).decision
    l1 = (await engine.decide(dataclasses.replace(RM, clearance="L1"), VIEW)).decision
    assert l3.levels["L3"].rank < l1.levels["L3"].rank


async def test_denied_subject_gets_a_reason(engine: PolicyEngine) -> None:
    out = await engine.decide(dataclasses.replace(RM, disabled=True), VIEW)
    assert not out.decision.allow
    assert "disabled" in out.decision.reason


async def test_grants_in_redis_reach_the_policy(policy_opa: OpaProcess, redis_url: str) -> None:
    store = await RedisGrantStore.open(connect(redis_url), owns_client=True)
    replica = await RedisGrantStore.open(connect(redis_url), poll_interval=5.0, owns_client=True)
    eng = await open_engine(external(policy_opa.url), grants=replica)
    try:
        before = await eng.decide(RM, VIEW)
        assert grade_rule(before.decision, "A") is RecordVerb.DROP
        svc = GrantService(store)
        g = await svc.create(
            subject_id=RM.id, subject_department=RM.department, grant_type="grade_a",
            justification="complaint 17", requested_by="lead1", now=NOW,
        )  # fmt: skip
        await svc.approve(str(g["id"]), approver_id="sec1", approver_department="security", now=NOW)
        half = await eng.decide(RM, VIEW)  # chain A incomplete: still dropped
        assert grade_rule(half.decision, "A") is RecordVerb.DROP
        await svc.approve(str(g["id"]), approver_id="it1", approver_department="it", now=NOW)
        # The replica learns through pub/sub, long before its 5 s poll.
        await eventually(lambda: has_grants(replica), within=2.0)
        after = await eng.decide(RM, VIEW)
        assert not after.cache_hit
        assert after.input_digest != before.input_digest
        assert grade_rule(after.decision, "A") is None
        await svc.revoke(str(g["id"]), by="sec1", reason="case closed", now=NOW)
        await eventually(lambda: has_no_grants(replica), within=2.0)
        revoked = await eng.decide(RM, VIEW)
        assert revoked.cache_hit  # same input as `before`, within its TTL
        assert grade_rule(revoked.decision, "A") is RecordVerb.DROP
    finally:
        await eng.close()
        await replica.close()
        await store.close()


async def test_undefined_decision_fails_closed(policy_opa: OpaProcess) -> None:
    eng = await open_engine(external(policy_opa.url, **{"policy.decision_path": "crm/nope/x"}))
    try:
        with pytest.raises(PolicyUnavailable) as info:
            await eng.decide(RM, VIEW)
        assert info.value.details["cause"] == "undefined"
        assert len(eng.cache) == 0
    finally:
        await eng.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


@pytest.fixture
def bad_policy(tmp_path: Path, silent_port: int) -> Iterator[OpaProcess]:
    """OPA serving deliberately broken decisions under package crm.bad."""
    (tmp_path / "bad.rego").write_text(
        "package crm.bad\n\n"
        'wrong_type := {"allow": "yes", "fields": []}\n\n'
        'unknown_action := {"allow": true, "reason": "", "revision": "x",\n'
        '  "fields": {"name": {"action": "shred"}}, "levels": {}}\n\n'
        "not_an_object := 42\n\n"
        "slow := r.body if {\n"
        '  r := http.send({"method": "GET", "timeout": "3s",\n'
        '    "url": sprintf("http://127.0.0.1:%d/", [data.crm.config.port])})\n'
        "}\n"
        "\nconflict := 1 if input.subject.id\n\nconflict := 2 if input.subject.id\n"
    )
    (tmp_path / "data.json").write_text(
        json.dumps({"crm": {"config": {"revision": "bad-1", "port": silent_port}}})
    )
    server = OpaProcess([tmp_path])
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("path", "cause"),
    [
        ("crm/bad/wrong_type", "schema"),
        ("crm/bad/unknown_action", "schema"),
        ("crm/bad/not_an_object", "malformed"),
        ("crm/bad/conflict", "http_status"),
    ],
)
async def test_malformed_results_fail_closed(bad_policy: OpaProcess, path: str, cause: str) -> None:
    eng = await open_engine(external(bad_policy.url, **{"policy.decision_path": path}))
    try:
        for _ in range(6):  # more than the breaker threshold
            with pytest.raises(PolicyUnavailable) as info:
                await eng.decide(RM, VIEW)
            assert info.value.details["cause"] == cause
        assert len(eng.cache) == 0
        assert eng.client is not None
        assert eng.client.breaker.state == "closed"  # OPA is up: a policy bug, not an outage
    finally:
        await eng.close()


async def test_hard_deadline(bad_policy: OpaProcess) -> None:
    eng = await open_engine(
        external(bad_policy.url, **{"policy.decision_path": "crm/bad/slow", "policy.timeout": 0.05})
    )
    try:
        started = time.monotonic()
        with pytest.raises(PolicyUnavailable) as info:
            await eng.decide(RM, VIEW)
        elapsed = time.monotonic() - started
        assert info.value.details["cause"] == "timeout"
        assert elapsed < 0.5
    finally:
        await eng.close()


async def test_killed_opa_trips_the_breaker_and_recovers(tmp_path: Path) -> None:
    server = OpaProcess([policy_copy(tmp_path / "rego")])
    server.start()
    settings = external(
        server.url, **{"policy.breaker_threshold": 3, "policy.breaker_cooldown": 0.5}
    )
    eng = await open_engine(settings)
    try:
        assert (await eng.decide(RM, VIEW)).decision.allow
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=5)
        together = await asyncio.gather(
            *(eng.decide(RM, dataclasses.replace(VIEW, purpose="same")) for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, PolicyUnavailable) for r in together)
        for i in range(3):  # distinct inputs: a cached decision would still be served
            started = time.monotonic()
            with pytest.raises(PolicyUnavailable):
                await eng.decide(RM, dataclasses.replace(VIEW, purpose=f"p{i}"))
            assert time.monotonic() - started < 0.2
        assert eng.client is not None
        assert eng.client.breaker.state == "open"
        assert not await eng.ready()
        assert not eng.healthy
        assert eng.stats()["breaker_opened"] == 1
        assert eng.coalesced == 2
        started = time.monotonic()
        with pytest.raises(PolicyUnavailable) as info:
            await eng.decide(RM, dataclasses.replace(VIEW, purpose="p9"))
        assert info.value.details["cause"] == "circuit_open"
        assert time.monotonic() - started < 0.01
        # Cached decisions made before the outage are still served.
        assert (await eng.decide(RM, VIEW)).cache_hit

        restarted = OpaProcess([tmp_path / "rego"])
        restarted.port, restarted.url = server.port, server.url
        restarted.start()
        try:
            await asyncio.sleep(0.6)  # the cooldown
            out = await eng.decide(RM, dataclasses.replace(VIEW, purpose="service"))
            assert out.decision.allow
            assert eng.client.breaker.state == "closed"
        finally:
            restarted.stop()
    finally:
        await eng.close()
        server.stop()


async def test_managed_supervisor_restarts_a_killed_opa() -> None:
    settings = Settings().with_overrides(**{"policy.engine": "managed", **SLACK})
    eng = await open_engine(settings)
    try:
        sup = eng.supervisor
        assert sup is not None
        assert eng.revision.startswith(DATA_REVISION + "+")
        first_pid = sup.pid
        assert first_pid is not None
        assert (await eng.decide(RM, VIEW)).decision.revision == eng.revision
        os.kill(first_pid, signal.SIGKILL)

        async def replaced() -> bool:
            return sup.pid != first_pid and await sup.healthy()

        await eventually(replaced, within=10.0)
        assert sup.pid != first_pid
        assert sup.restarts == 1
        assert eng.stats()["opa_restarts"] == 1
        await asyncio.sleep(0.6)  # let a breaker opened by the outage (if any) cool down
        out = await eng.decide(RM, dataclasses.replace(VIEW, purpose="service"))
        assert out.decision.allow
        last_pid = sup.pid
    finally:
        await eng.close()
    assert last_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(last_pid, 0)


async def test_managed_without_binary_is_a_config_error() -> None:
    settings = Settings().with_overrides(
        **{"policy.engine": "managed", "policy.opa_binary": "/nonexistent/opa"}
    )
    with pytest.raises(ConfigError):
        await open_engine(settings)


GOLDEN = load_cases()


def _subject_from_case(raw: dict[str, Any]) -> Subject:
    expires = raw["partner_expires"]
    return Subject(
        id=raw["id"], roles=tuple(raw["roles"]), department=raw["department"],
        clearance=raw["clearance"], mfa=raw["mfa"], auth_method=raw["auth_method"],
        partner=raw["partner"],
        partner_expires=datetime.fromisoformat(expires) if expires else None,
        disabled=raw["disabled"],
        attributes={
            "revoked": raw["revoked"], "assigned_customers_only": raw["assigned_customers_only"]
        },
    )  # fmt: skip


def _request_from_case(raw: dict[str, Any], zone: str, allowed: bool) -> PolicyRequest:
    return PolicyRequest(
        method=raw["method"], operation=raw["operation"], route_template=raw["route"],
        purpose=raw["purpose"], justification=raw["justification"], network_zone=zone,
        network_allowed=allowed, now=datetime.fromisoformat(raw["time"]["rfc3339"]),
        report_only=raw["report_only"],
    )  # fmt: skip


@pytest.mark.parametrize("case", GOLDEN, ids=[c.name for c in GOLDEN])
async def test_golden_cases_through_the_client_and_the_engine(
    policy_opa: OpaProcess, case: GoldenCase
) -> None:
    """The golden input through OPA meets the case; the client parses that very
    answer; and the engine, rebuilding the input from Subject + PolicyRequest
    (hour piece, own grants store), reaches the same decision."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{policy_opa.url}/v1/data/crm/gateway/decision", json={"input": case.input}
        ) as resp,
    ):
        raw = (await resp.json())["result"]
    assert check_decision(case, raw) == []
    grants = MemoryGrantStore()
    subject_id = case.input["subject"]["id"]
    for g in case.input["grants"]:
        stored = {**g, "subject": subject_id, "status": "active"}
        await grants.update(g["id"], _replace_with(stored))
    eng = await PolicyEngine.open(
        external(policy_opa.url), taxonomy_policy=case.input["taxonomy"], grants=grants
    )
    try:
        assert eng.client is not None
        direct = await eng.client.evaluate(case.input)
        assert direct == Decision.from_json(raw)
        s = case.input["subject"]
        out = await eng.decide(
            _subject_from_case(s),
            _request_from_case(case.input["request"], s["network_zone"], s["network_allowed"]),
        )
        assert dataclasses.replace(out.decision, revision=direct.revision) == direct
    finally:
        await eng.close()


async def test_racing_approvals_on_two_replicas_are_both_kept(redis_url: str) -> None:
    a = await RedisGrantStore.open(connect(redis_url), owns_client=True)
    b = await RedisGrantStore.open(connect(redis_url), owns_client=True)
    try:
        g = await GrantService(a).create(
            subject_id=RM.id, subject_department=RM.department, grant_type="grade_a",
            justification="audit 3", requested_by="lead1", now=NOW,
        )  # fmt: skip
        gid = str(g["id"])
        await asyncio.gather(
            GrantService(a).approve(gid, approver_id="s1", approver_department="security", now=NOW),
            GrantService(b).approve(gid, approver_id="i1", approver_department="it", now=NOW),
        )
        final = await a.get(gid)
        assert final is not None
        assert final["status"] == "active"
        assert sorted(x["by"] for x in final["approvals"]) == ["i1", "s1"]
        assert await a.version() == 3  # create + two approvals
    finally:
        await a.close()
        await b.close()


async def test_grants_fail_closed_when_redis_is_gone(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path)
    server.start()
    store = await RedisGrantStore.open(
        connect(server.url), poll_interval=0.1, max_staleness=0.5, owns_client=True
    )
    try:
        await GrantService(store).create(
            subject_id=RM.id, subject_department=RM.department, grant_type="break_glass",
            justification="incident 9", requested_by="lead1", now=NOW,
        )  # fmt: skip
        assert await has_grants(store)
        server.stop()
        await eventually(lambda: has_no_grants(store), within=3.0)
    finally:
        await store.close()
        server.stop()


@pytest.fixture
def bundle_opa(tmp_path: Path) -> Iterator[str]:
    """A sidecar OPA fed a bundle whose .manifest names a revision; yields its URL."""
    bundle = policy_copy(tmp_path / "bundle")
    for test_file in bundle.glob("*_test.rego"):
        test_file.unlink()
    (bundle / ".manifest").write_text(json.dumps({"revision": "git-abc123", "roots": ["crm"]}))
    port = free_port()
    proc = subprocess.Popen(
        [find_opa(), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error",
         "--skip-version-check", "--bundle", str(bundle)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


async def test_external_bundle_revision_is_tracked(bundle_opa: str) -> None:
    """The bundle's .manifest revision joins the data revision."""
    eng = await open_engine(external(bundle_opa))
    try:
        assert eng.revision.startswith(DATA_REVISION + "+")
        assert eng.revision.endswith("@git-abc123")
        out = await eng.decide(RM, VIEW)
        assert out.decision.revision == eng.revision
    finally:
        await eng.close()
