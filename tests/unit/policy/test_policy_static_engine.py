"""The engine in static mode (no OPA): caching, report-only, explain."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.core.model import Subject, Verb
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ConfigError
from gateway.policy.engine import PolicyEngine, PolicyRequest
from gateway.policy.explain import explain_decision, operation_for
from gateway.settings import Settings
from gateway.state.grants import MemoryGrantStore

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
SUBJECT = Subject(id="u1", roles=("sales",), department="sales", clearance="L2")
REQUEST = PolicyRequest("GET", "view", "/api/customers/{id}", None, False, "internal", True, NOW)


def static_settings(**extra: object) -> Settings:
    return Settings().with_overrides(**{"policy.engine": "static", **extra})


@pytest.fixture
def taxonomy() -> Taxonomy:
    s = Settings()
    return Taxonomy.load(s.path(s.classification.taxonomy))


async def open_engine(settings: Settings, taxonomy: Taxonomy) -> PolicyEngine:
    return await PolicyEngine.open(
        settings, taxonomy_policy=taxonomy.to_policy(), grants=MemoryGrantStore(),
        taxonomy=taxonomy,
    )  # fmt: skip


async def test_static_decisions_are_cached_per_normalised_input(taxonomy: Taxonomy) -> None:
    engine = await open_engine(static_settings(), taxonomy)
    try:
        first = await engine.decide(SUBJECT, REQUEST)
        assert not first.cache_hit
        assert first.decision.allow
        assert first.decision.revision == "static"
        second = await engine.decide(
            SUBJECT, dataclasses.replace(REQUEST, now=NOW + timedelta(minutes=5))
        )
        assert second.cache_hit
        assert second.decision is first.decision
        assert second.input_digest == first.input_digest
        higher = await engine.decide(dataclasses.replace(SUBJECT, clearance="L4"), REQUEST)
        assert not higher.cache_hit
        assert higher.input_digest != first.input_digest
        assert (engine.cache.hits, engine.cache.misses) == (1, 2)
        assert await engine.ready()
        assert engine.healthy
        assert engine.revision == "static"
        assert (engine.cache_hits, engine.cache_misses) == (1, 2)
        stats = engine.stats()
        assert stats["mode"] == "static"
        assert stats["cache_entries"] == 2
    finally:
        await engine.close()


async def test_static_expired_partner_is_denied(taxonomy: Taxonomy) -> None:
    engine = await open_engine(static_settings(), taxonomy)
    try:
        partner = dataclasses.replace(
            SUBJECT, partner=True, partner_expires=NOW - timedelta(minutes=1)
        )
        out = await engine.decide(partner, REQUEST)
        assert not out.decision.allow
    finally:
        await engine.close()


async def test_static_keeps_the_hard_gates(taxonomy: Taxonomy) -> None:
    engine = await open_engine(static_settings(), taxonomy)
    try:
        revoked = dataclasses.replace(SUBJECT, attributes={"revoked": True})
        assert (await engine.decide(revoked, REQUEST)).decision.reason == "subject_revoked"
        outside = dataclasses.replace(REQUEST, network_allowed=False)
        assert (await engine.decide(SUBJECT, outside)).decision.reason == "network_not_allowed"
        assert not (await engine.decide(SUBJECT, outside)).decision.allow
    finally:
        await engine.close()


async def test_report_only_global_and_per_route(taxonomy: Taxonomy) -> None:
    engine = await open_engine(static_settings(), taxonomy)
    try:
        assert not engine.report_only
        assert not (await engine.decide(SUBJECT, REQUEST)).report_only
        out = await engine.decide(SUBJECT, dataclasses.replace(REQUEST, report_only=True))
        assert out.report_only
        assert out.decision.report_only
        assert not out.cache_hit  # report-only is part of the key
    finally:
        await engine.close()
    engine = await open_engine(static_settings(**{"policy.report_only": True}), taxonomy)
    try:
        assert engine.report_only
        assert (await engine.decide(SUBJECT, REQUEST)).decision.report_only
    finally:
        await engine.close()


async def test_static_needs_a_taxonomy(taxonomy: Taxonomy) -> None:
    with pytest.raises(ConfigError):
        await PolicyEngine.open(
            static_settings(), taxonomy_policy=taxonomy.to_policy(), grants=MemoryGrantStore()
        )


async def test_explain_prints_a_row_per_category(taxonomy: Taxonomy, tmp_path: Path) -> None:
    subject_file = tmp_path / "s.json"
    subject_file.write_text(json.dumps({"id": "x", "clearance": "L1", "roles": ["sales"]}))
    text = await explain_decision(
        static_settings(), None, str(subject_file), "/api/customers/{id}", "GET", now=NOW
    )
    assert "decision   ALLOW" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line[:1].islower()}
    for name, cat in taxonomy.categories.items():
        assert name in rows
        assert rows[name][1] == cat.level
    l5 = next(n for n, c in taxonomy.categories.items() if c.level == "L5")
    assert rows[l5][3] == Verb.DROP.value


async def test_explain_needs_a_subject() -> None:
    with pytest.raises(ConfigError):
        await explain_decision(static_settings(), None, None, "/x")
    with pytest.raises(ConfigError):
        await explain_decision(static_settings(), "someone", None, "/x")


def test_operation_for() -> None:
    assert operation_for("GET", "/api/customers/{id}") == "view"
    assert operation_for("GET", "/api/customers/export.csv") == "export"
    assert operation_for("PATCH", "/api/customers/{id}") == "modify"
    assert operation_for("DELETE", "/api/customers/{id}") == "delete"
