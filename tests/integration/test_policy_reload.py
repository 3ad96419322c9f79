"""Hot reload: editing rego/ changes decisions and the revision without a restart.

Runs the managed engine (the gateway's own `opa run --watch`) on a temp copy of
the repository's policy, edits it, and watches the revision and the cache.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.core.model import Subject
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ConfigError
from gateway.policy.engine import PolicyEngine, PolicyRequest
from gateway.policy.supervisor import OpaSupervisor, find_opa_binary
from gateway.settings import Settings
from gateway.state.grants import MemoryGrantStore
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai
RM = Subject(
    id="rm1", roles=("relationship_manager",), department="wealth", clearance="L3", mfa=True
)
VIEW = PolicyRequest(
    method="GET", operation="view", route_template="/api/customers/{id}", purpose="advisory",
    justification=False, network_zone="internal", network_allowed=True, now=NOW,
)  # fmt: skip


def copy_policy(dest: Path) -> Path:
    """Policy and data only (schemas are not data and stay in the repository)."""
    dest.mkdir()
    for f in (ROOT / "rego").iterdir():
        if f.is_file() and (f.suffix == ".rego" or f.name == "data.json"):
            shutil.copy2(f, dest / f.name)
    return dest


@pytest.fixture
async def managed(tmp_path: Path) -> AsyncIterator[tuple[PolicyEngine, Path]]:
    rego = copy_policy(tmp_path / "rego")
    settings = Settings().with_overrides(
        **{
            "policy.engine": "managed",
            "policy.rego_dir": str(rego),
            "policy.revision_poll": 0.25,
            "policy.timeout": 2.0,  # a loaded CI box must not make this a timeout test
            "policy.output_schema": str(ROOT / "rego" / "schema" / "output.json"),
        }
    )
    tax = Taxonomy.load(settings.path(settings.classification.taxonomy))
    engine = await PolicyEngine.open(
        settings, taxonomy_policy=tax.to_policy(), grants=MemoryGrantStore(), taxonomy=tax
    )
    yield engine, rego
    await engine.close()


async def wait_for(predicate: Callable[[], bool], within: float) -> float:
    """Seconds until predicate() holds (AssertionError after `within`)."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


def edit_data(rego: Path, **config: object) -> None:
    path = rego / "data.json"
    data = json.loads(path.read_text())
    data["crm"]["config"].update(config)
    path.write_text(json.dumps(data, ensure_ascii=False))


async def test_data_edit_with_new_revision_reaches_decisions(
    managed: tuple[PolicyEngine, Path],
) -> None:
    engine, rego = managed
    old_revision = engine.revision
    before = await engine.decide(RM, VIEW)
    assert before.decision.revision == old_revision
    assert (await engine.decide(RM, VIEW)).cache_hit
    assert before.decision.levels["L3"].verb.value == "allow"

    roles = json.loads((rego / "data.json").read_text())["crm"]["config"]["roles"]
    roles["relationship_manager"]["view"] = "L2"
    edit_data(rego, revision="reload-test-2", roles=roles)
    took = await wait_for(lambda: engine.revision.startswith("reload-test-2+"), within=3.0)
    assert took < 2.5
    assert len(engine.cache) == 0
    after = await engine.decide(RM, VIEW)
    assert not after.cache_hit
    assert after.decision.revision == engine.revision
    assert after.decision.levels["L3"].rank > before.decision.levels["L3"].rank


async def test_edit_without_revision_bump_still_changes_the_revision(
    managed: tuple[PolicyEngine, Path],
) -> None:
    engine, rego = managed
    data_revision, _, old_hash = engine.revision.partition("+")
    await engine.decide(RM, VIEW)
    purges = engine.cache.purges
    policy = rego / "decision.rego"
    policy.write_text(policy.read_text() + "\n# reviewed\n")
    await wait_for(lambda: not engine.revision.endswith(old_hash), within=3.0)
    assert engine.revision.startswith(data_revision + "+")
    assert engine.cache.purges > purges
    out = await engine.decide(RM, dataclasses.replace(VIEW))
    assert not out.cache_hit
    assert out.decision.revision == engine.revision


async def test_broken_edit_keeps_the_last_good_policy(
    managed: tuple[PolicyEngine, Path],
) -> None:
    engine, rego = managed
    good = await engine.decide(RM, VIEW)
    (rego / "broken.rego").write_text("package crm.gateway\n\nthis is not rego\n")
    await asyncio.sleep(1.0)
    out = await engine.decide(RM, dataclasses.replace(VIEW, purpose="service"))
    assert out.decision.allow
    assert out.decision.revision.split("+")[0] == good.decision.revision.split("+")[0]


async def test_broken_policy_at_start_is_a_config_error_with_opas_words(tmp_path: Path) -> None:
    rego = copy_policy(tmp_path / "rego")
    (rego / "broken.rego").write_text("package crm.gateway\n\nthis is not rego\n")
    settings = Settings().with_overrides(
        **{"policy.engine": "managed", "policy.rego_dir": str(rego), "policy.start_timeout": 5}
    )
    tax = Taxonomy.load(settings.path(settings.classification.taxonomy))
    with pytest.raises(ConfigError) as info:
        await PolicyEngine.open(
            settings, taxonomy_policy=tax.to_policy(), grants=MemoryGrantStore(), taxonomy=tax
        )
    assert "broken.rego" in info.value.message


async def test_workers_of_a_shared_supervisor_track_the_directory(tmp_path: Path) -> None:
    """The multi-worker layout: the parent supervises OPA, workers run external mode
    with `track_rego_dir`, and still see an edit that did not bump the revision."""
    rego = copy_policy(tmp_path / "rego")
    base = Settings().with_overrides(**{"policy.rego_dir": str(rego)})
    supervisor = OpaSupervisor(find_opa_binary(base), rego)
    await supervisor.start()
    try:
        worker = base.with_overrides(
            **{
                "policy.engine": "external",
                "policy.url": supervisor.url,
                "policy.track_rego_dir": True,
                "policy.revision_poll": 0.25,
                "policy.timeout": 2.0,
            }
        )
        tax = Taxonomy.load(worker.path(worker.classification.taxonomy))
        engine = await PolicyEngine.open(
            worker, taxonomy_policy=tax.to_policy(), grants=MemoryGrantStore(), taxonomy=tax
        )
        try:
            before = engine.revision
            assert "+" in before
            policy = rego / "levels.rego"
            policy.write_text(policy.read_text() + "\n# reviewed\n")
            await wait_for(lambda: engine.revision != before, within=3.0)
            assert engine.revision.split("+")[0] == before.split("+")[0]
        finally:
            await engine.close()
    finally:
        await supervisor.stop()
