"""The filter stage: refusals, lookups under their own rate limit, probe digests."""

from __future__ import annotations

import pytest

from gateway.core.model import ALLOW, Action, Decision, Lookup, Obligations, Verb
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ProtectedFilter, RateLimited
from gateway.policy.filters import FilterGuard
from gateway.settings import Settings
from gateway.state.ratelimit import MemoryRateLimiter

MOBILE = "15129806175"


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    s = Settings()
    return Taxonomy.load(s.path(s.classification.taxonomy))


def decision(taxonomy: Taxonomy, limit: int = 2) -> Decision:
    masked = Action(Verb.MASK, "strict")
    return Decision(
        allow=True, reason="allowed", revision="t",
        fields={n: ALLOW if n in ("customer_no", "internal") else masked
                for n in taxonomy.categories},
        levels={}, obligations=Obligations(lookup=Lookup(frozenset({"mobile"}), limit, 60.0)),
    )  # fmt: skip


class Probes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, list[str]]] = []

    def __call__(self, subject: str, digests: object) -> None:
        self.seen.append((subject, list(digests)))  # type: ignore[call-overload]


async def test_refusal_lookup_and_limit(taxonomy: Taxonomy) -> None:
    probes = Probes()
    guard = FilterGuard(taxonomy, MemoryRateLimiter(), digest_key=b"k" * 32, on_probe=probes)
    d = decision(taxonomy)
    with pytest.raises(ProtectedFilter) as refused:
        await guard.check("u1", "/api/customers", "mobile__startswith=151", d, None)
    assert "151" not in str(refused.value.to_body())
    for _ in range(2):
        verdict = await guard.check("u1", "/api/customers", f"mobile={MOBILE}", d, None)
        assert verdict.allowed and verdict.lookups
    with pytest.raises(RateLimited) as limited:
        await guard.check("u1", "/api/customers", f"mobile={MOBILE}", d, None)
    assert limited.value.retry_after > 0 and MOBILE not in limited.value.message
    # Another subject has its own limit; queries without protected terms count nothing.
    assert (await guard.check("u2", "/api/customers", f"mobile={MOBILE}", d, None)).lookups
    assert (await guard.check("u1", "/api/customers", "page=2", d, None)).terms == ()
    assert [s for s, _ in probes.seen] == ["u1", "u1", "u1", "u1", "u2"]
    digests = [dg for _, ds in probes.seen for dg in ds]
    assert all(MOBILE not in dg and "151" not in dg for dg in digests)
    assert len({dg for _, ds in probes.seen[1:] for dg in ds}) == 1  # same value, same digest


async def test_report_only_passes_and_counts_nothing(taxonomy: Taxonomy) -> None:
    limiter = MemoryRateLimiter()
    guard = FilterGuard(taxonomy, limiter, digest_key=b"k" * 32)
    d = decision(taxonomy, limit=1)
    verdict = await guard.check("u1", "/x", "sort=-bank_card", d, None, report_only=True)
    assert not verdict.allowed  # what would be refused is still reported
    for _ in range(3):
        await guard.check("u1", "/x", f"mobile={MOBILE}", d, None, report_only=True)
    assert (await limiter.peek("lookup", "u1", limit=1, period=60)).allowed


async def test_search_bodies_get_the_same_check(taxonomy: Taxonomy) -> None:
    guard = FilterGuard(taxonomy, MemoryRateLimiter(), digest_key=b"k" * 32)
    d = decision(taxonomy)
    with pytest.raises(ProtectedFilter) as refused:
        await guard.check("u1", "/api/customers/search", "", d, None,
                          body={"mobile": {"startswith": "151"}})  # fmt: skip
    assert refused.value.details["parameters"][0]["parameter"] == "body.mobile"
    verdict = await guard.check("u1", "/s", "", d, None, body={"mobile": MOBILE})
    assert verdict.lookups
