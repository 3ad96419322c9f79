"""The filter check of a request: no search oracle on fields above the caller's clearance.

After the decision, `FilterGuard.check` reads what the request filters, sorts or
searches by (`gateway.core.query_guard`) and

- refuses (403 `protected_field_filter`) any such term above the caller's clear
  level that the decision's `obligations.lookup` does not allow;
- counts an allowed lookup against its own per-subject rate limit (`lookup` scope
  of the shared limiter: Redis-backed across replicas), 429 beyond it;
- reports every protected value probed, refused or looked up, to `on_probe` as a
  keyed digest (the anomaly detector counts distinct values per subject), so
  guessing numbers one by one raises a `filter_probe` alert.

Report-only routes and decisions log what would be refused and pass.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.core.catalog import RouteSpec
from gateway.core.model import Decision
from gateway.core.query_guard import FilterTerm, QueryVerdict, check_request
from gateway.core.taxonomy import Taxonomy
from gateway.errors import RateLimited
from gateway.state.ratelimit import RateLimiter

LOOKUP_SCOPE = "lookup"
OnProbe = Callable[[str, Sequence[str]], None]  # (subject id, value digests)


class FilterGuard:
    def __init__(
        self,
        taxonomy: Taxonomy,
        limiter: RateLimiter,
        *,
        digest_key: bytes,
        on_probe: OnProbe | None = None,
    ) -> None:
        self._taxonomy = taxonomy
        self._limiter = limiter
        self._key = digest_key
        self._on_probe = on_probe

    def digest(self, term: FilterTerm) -> str:
        """A keyed digest of what was probed (the value, else the term): never the value."""
        what = term.value or f"\x00{term.param}\x00{term.use}\x00{term.category}"
        return hmac.new(self._key, what.encode(), hashlib.sha256).hexdigest()[:24]

    async def check(
        self,
        subject_id: str,
        path: str,
        query: str,
        decision: Decision,
        route: RouteSpec | None,
        *,
        report_only: bool = False,
        body: Mapping[str, Any] | None = None,
    ) -> QueryVerdict:
        """The path and query (and, for a route with `search_body`, the parsed JSON or
        form body: `check(..., query="", body=parsed)` once the body is read)."""
        verdict = check_request(path, query, decision, self._taxonomy, route=route, body=body)
        probed = verdict.refused + verdict.lookups
        if probed and self._on_probe is not None:
            self._on_probe(subject_id, sorted({self.digest(t) for t in probed}))
        if verdict.refused and not report_only:
            raise verdict.error()
        if verdict.lookups and not report_only:
            lookup = decision.obligations.lookup
            rate = await self._limiter.hit(
                LOOKUP_SCOPE, subject_id, limit=lookup.limit, period=lookup.period
            )
            if not rate.allowed:
                cats = ", ".join(sorted({t.category for t in verdict.lookups}))
                raise RateLimited(
                    f"lookup limit reached: {lookup.limit} lookups by {cats} per "
                    f"{lookup.period:g}s",
                    retry_after=rate.retry_after,
                )
        return verdict
