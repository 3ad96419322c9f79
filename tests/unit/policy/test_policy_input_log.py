"""The decision-input log: value-free documents, bounded counts, the file store."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from gateway.core.model import Subject
from gateway.policy.input_log import (
    FREE_TEXT,
    GIVEN,
    DecisionInputLog,
    document_digest,
    input_document,
    normalised_from_document,
    reduce_purpose,
    reduce_route,
)
from gateway.policy.inputs import PolicyRequest, build_opa_input, normalise
from gateway.state.decision_inputs import (
    FileDecisionInputStore,
    InputLogUnavailable,
    MemoryDecisionInputStore,
    current_hour,
)

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 2, 30, 15, tzinfo=UTC)
TAXONOMY = {"levels": ["L0", "L1", "L2"], "categories": {"name": {"level": "L2", "spi": False}}}
SUBJECT = Subject(id="u1", roles=("sales",), department="retail", clearance="L2", mfa=True)
REQUEST = PolicyRequest(
    method="GET", operation="view", route_template="/api/customers/{id}", purpose="sales",
    justification=False, network_zone="internal", network_allowed=True, now=NOW,
)  # fmt: skip
GRANT: dict[str, object] = {
    "id": "g-1", "type": "grade_b", "level": None, "approved_by": ["security"],
    "expires": "2026-11-26T00:00:00Z", "justification": "customer 张三 13812345678 complaint",
}  # fmt: skip


def norm(request: PolicyRequest = REQUEST, grants: list[dict[str, object]] | None = None):  # type: ignore[no-untyped-def]
    n, _ = normalise(
        SUBJECT, request, revision="r1", taxonomy_digest="t", grants=grants or [],
        tz=TZ, report_only=False,
    )  # fmt: skip
    return n


@pytest.mark.parametrize(
    ("purpose", "kept"),
    [("sales", "sales"), ("risk_review", "risk_review"), ("v2.audit", "v2.audit"),
     ("callback 13812345678", FREE_TEXT), ("13812345678", FREE_TEXT), ("客户张三", FREE_TEXT),
     ("case-20261125", FREE_TEXT), ("x" * 80, FREE_TEXT), (None, None)],
)  # fmt: skip
def test_purpose_is_kept_only_when_token_shaped(purpose: str | None, kept: str | None) -> None:
    assert reduce_purpose(purpose) == kept


@pytest.mark.parametrize(
    ("route", "kept"),
    [("/api/customers/{id}", "/api/customers/{id}"),
     ("/api/v1/customers/export.csv", "/api/v1/customers/export.csv"),
     ("/api/customers/C000123", "/api/customers/{?}"),
     ("/api/search/张三", "/api/search/{?}"),
     ("/api/phone/13812345678/calls", "/api/phone/{?}/calls"),
     ("/api/x?mobile=13812345678", "/api/x"),
     ("/api/a%20b", "/api/{?}")],
)  # fmt: skip
def test_route_keeps_only_token_segments(route: str, kept: str) -> None:
    assert reduce_route(route) == kept


def test_document_is_value_free_and_replays_to_the_same_policy_input() -> None:
    n = norm(grants=[GRANT])
    doc = input_document(n)
    raw = orjson.dumps(doc)
    assert b"13812345678" not in raw and "张三".encode() not in raw
    assert doc["grants"][0]["justification"] == GIVEN
    back = normalised_from_document(orjson.loads(raw))
    want = build_opa_input(n, TAXONOMY)
    got = build_opa_input(back, TAXONOMY)
    want["grants"][0]["justification"] = GIVEN  # the only reduced field here
    assert got == want


def test_reduced_inputs_merge_into_one_document() -> None:
    a = norm(dataclasses.replace(REQUEST, purpose="call 13812345678"))
    b = norm(dataclasses.replace(REQUEST, purpose="call 13912345678"))
    assert a != b and a.digest() != b.digest()
    assert document_digest(input_document(a)) == document_digest(input_document(b))


async def test_counts_per_hour_and_overflow_beyond_max_distinct() -> None:
    store = MemoryDecisionInputStore()
    log = DecisionInputLog(store, flush=60, max_distinct=2)
    hour = 1_000_000 * 3600.0
    inputs = [norm(dataclasses.replace(REQUEST, route_template=f"/r{c}")) for c in "abc"]
    for _ in range(3):
        log.observe(inputs[0], inputs[0].digest(), now=hour)
    log.observe(inputs[1], inputs[1].digest(), now=hour)
    log.observe(inputs[2], inputs[2].digest(), now=hour)  # third distinct: over the bound
    log.observe(inputs[2], inputs[2].digest(), now=hour + 3600)  # next hour: room again
    await log.flush()
    assert log.overflow == 1
    counts, docs = await store.read(1_000_000, 1_000_000)
    assert sorted(counts.values()) == [1, 3]
    assert {d["request"]["route"] for d in docs.values()} == {"/ra", "/rb"}
    later, _ = await store.read(1_000_001, 1_000_001)
    assert list(later.values()) == [1]
    await log.flush()  # nothing new: nothing written
    assert sum((await store.read(0, 2_000_000))[0].values()) == 5


async def test_file_store_round_trip_window_and_retention(tmp_path: Path) -> None:
    store = FileDecisionInputStore(tmp_path, retention_days=2)
    now = current_hour()
    doc = input_document(norm())
    d = document_digest(doc)
    old = now - 24 * 10
    await store.add({(old, d): 4}, {d: doc})
    await store.add({(now - 1, d): 2, (now, d): 1}, {d: doc})
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) in (1, 2) and all(f >= "inputs-" for f in files)  # the old day is pruned
    counts, docs = await store.read(now - 1, now)
    assert counts == {d: 3} and docs[d] == doc
    counts, _ = await store.read(now, now)
    assert counts == {d: 1}
    # A torn last line (a crash mid-write) is skipped, not fatal.
    with sorted(tmp_path.iterdir())[-1].open("ab") as fh:
        fh.write(b'{"h": 1, "d": "x", "n"')
    assert (await store.read(now - 1, now))[0] == {d: 3}


async def test_file_store_write_failure_is_typed(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = FileDecisionInputStore(blocker, retention_days=1)
    with pytest.raises(InputLogUnavailable):
        await store.add({(current_hour(), "d"): 1}, {})
    log = DecisionInputLog(store, flush=60, max_distinct=10)
    n = norm()
    log.observe(n, n.digest())
    await log.flush()  # logged and dropped, never raised
    assert log.write_failures == 1


def test_impact_compare_kinds() -> None:
    from gateway.core.model import Action, Decision, Verb
    from gateway.policy.impact import ImpactReport, compare

    def dec(allow: bool = True, **fields: Action) -> Decision:
        return Decision(
            allow=allow, reason="r", revision="x", fields=fields, levels={},
            write={"name": fields.get("name") == Action(Verb.ALLOW)},
        )  # fmt: skip

    allow, mask, drop = Action(Verb.ALLOW), Action(Verb.MASK, "standard"), Action(Verb.DROP)
    cats = {"name": "L2", "income": "L3"}
    r = ImpactReport(since=NOW, until=NOW, candidate_dir="c")
    assert not compare(
        r, dec(name=mask, income=mask), dec(name=mask, income=mask), cats, "s", "GET /a", 1
    )
    assert compare(
        r, dec(name=mask, income=allow), dec(name=allow, income=drop), cats, "s", "GET /a", 2
    )
    assert compare(r, dec(name=mask), dec(False), cats, "t", "GET /b", 3)
    assert compare(r, dec(name=mask), dec(name=allow), cats, "u", "PUT /a", 4, "modify")
    got = {(c.kind, c.category): (c.requests, c.subjects) for c in r.changes.values()}
    assert got == {
        ("unmasked", "name"): (6, {"s": 2, "u": 4}),
        ("newly_masked", "income"): (2, {"s": 2}),
        ("newly_blocked", "*"): (3, {"t": 3}),
        ("write_allowed", "name"): (4, {"u": 4}),
    }
    # The request's own changes are counted once per input, not per category.
    assert r.to_dict()["subjects"]["t"] == {"newly_blocked": 3}


async def test_background_flush_and_close_write_everything() -> None:
    import asyncio

    store = MemoryDecisionInputStore()
    log = DecisionInputLog(store, flush=0.05, max_distinct=10)
    log.start()
    n = norm()
    log.observe(n, n.digest())
    for _ in range(100):
        if store.counts:
            break
        await asyncio.sleep(0.02)
    assert sum(store.counts.values()) == 1  # written by the task, before close
    log.observe(n, n.digest())
    await log.close()
    assert sum(store.counts.values()) == 2
