"""The policy stage: one decision (action table) per request, cached.

`PolicyEngine.decide(subject, request)` normalises the request (inputs.py),
looks the normalised object up in the decision cache, and on a miss asks the
engine: OPA over REST (managed: a supervised local `opa run --watch`; external:
an OPA at `policy.url`) or the static table (`gateway.core.static_policy`).
Anything but a well-formed decision raises `PolicyUnavailable` (the handler
answers 503 and audits): the stage never invents an "allow". Identical misses
arriving together (a page firing ten API calls) share one OPA evaluation.

Report-only mode (global `policy.report_only`, or per route) still computes and
returns the full decision with `report_only` set; the handler enforces nothing
but audits what would have happened. It is logged loudly at start and exposed
as `engine.report_only` for health.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NotRequired, Protocol, TypedDict, Unpack
from zoneinfo import ZoneInfo

from gateway.core.model import Decision, Subject
from gateway.core.static_policy import RequestFacts, static_decision
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ConfigError, PolicyUnavailable
from gateway.policy.breaker import CircuitBreaker
from gateway.policy.cache import DecisionCache
from gateway.policy.client import OpaClient, load_output_validator
from gateway.policy.input_log import DecisionInputLog, input_log_dir
from gateway.policy.inputs import (
    NormalisedInput,
    PolicyRequest,
    build_opa_input,
    normalise,
    taxonomy_digest,
)
from gateway.policy.revision import RevisionTracker
from gateway.policy.supervisor import OpaSupervisor, find_opa_binary
from gateway.settings import Settings
from gateway.state.decision_inputs import open_decision_input_store
from gateway.state.grants import GrantStore, in_scope
from gateway.tls import client_context

log = logging.getLogger(__name__)

__all__ = ["DecisionOutcome", "PolicyEngine", "PolicyRequest"]


class RevocationCheck(Protocol):
    """Who has been revoked (gateway.state.revocation.RevocationList fits)."""

    def is_revoked(self, subject_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    decision: Decision
    cache_hit: bool
    elapsed_ms: float
    input_digest: str  # stable digest of the normalised input (audit correlation)
    report_only: bool
    # the lockdown profile was applied: enforced even on report-only routes
    locked_down: bool = False


class EngineParts(TypedDict):
    """What the engine is built from besides the settings."""

    taxonomy_policy: Mapping[str, Any]
    grants: GrantStore
    taxonomy: NotRequired[Taxonomy | None]
    revocations: NotRequired[RevocationCheck | None]


class PolicyEngine:
    """Build with `await PolicyEngine.open(...)`; close with `await engine.close()`."""

    def __init__(self, settings: Settings, **parts: Unpack[EngineParts]) -> None:
        self.settings = settings
        self.mode: Literal["static", "managed", "external"] = settings.policy.engine
        self._taxonomy_policy = dict(parts["taxonomy_policy"])
        self._taxonomy_digest = taxonomy_digest(self._taxonomy_policy)
        self._taxonomy = parts.get("taxonomy")
        self._grants = parts["grants"]
        self._revocations = parts.get("revocations")
        self._tz = ZoneInfo(settings.policy.timezone)
        self._global_report_only = settings.policy.report_only
        self.cache = DecisionCache(settings.policy.cache_size)
        self._inflight: dict[NormalisedInput, asyncio.Future[Decision]] = {}
        self.coalesced = 0  # misses answered by an identical in-flight evaluation
        self.uncached_revision_mismatch = 0
        self._mismatch_logged = float("-inf")
        self.client: OpaClient | None = None
        self.supervisor: OpaSupervisor | None = None
        self.tracker: RevisionTracker | None = None
        self.input_log: DecisionInputLog | None = None  # for `policy impact`

    @classmethod
    async def open(
        cls, settings: Settings, *, record_inputs: bool = False, **parts: Unpack[EngineParts]
    ) -> PolicyEngine:
        """Start what the configured engine needs; ConfigError if it cannot.

        `taxonomy` is required for the static engine; `revocations`, when given,
        marks revoked subjects in the policy input (as does `revoked` in the
        subject's attributes). `record_inputs` (the serving gateway, not the CLI's
        what-if tools) keeps the decision-input log (input_log.py) when
        `policy.input_log` is on."""
        engine = cls(settings, **parts)
        try:
            await engine._start()
        except BaseException:
            await engine.close()
            raise
        p = settings.policy
        if record_inputs and p.input_log and engine.mode != "static":
            store = open_decision_input_store(
                settings.redis.url, input_log_dir(settings), p.input_log_retention_days
            )
            engine.input_log = DecisionInputLog(
                store, flush=p.input_log_flush, max_distinct=p.input_log_max_distinct
            )
            engine.input_log.start()
        if engine.report_only:
            log.warning(
                "POLICY REPORT-ONLY MODE: decisions are computed and audited but NOT enforced"
            )
        return engine

    async def _start(self) -> None:
        p = self.settings.policy
        if self.mode == "static":
            if self._taxonomy is None:
                raise ConfigError("policy.engine is 'static' but no taxonomy was given")
            return
        rego_dir = self.settings.path(p.rego_dir)
        if self.mode == "managed":
            config_file = self.settings.path(p.opa_config_file) if p.opa_config_file else None
            self.supervisor = OpaSupervisor(
                find_opa_binary(self.settings), rego_dir, start_timeout=p.start_timeout,
                config_file=config_file,
            )  # fmt: skip
            await self.supervisor.start()
            base_url = self.supervisor.url
        else:
            base_url = p.url
        schema = self.settings.path(p.output_schema or rego_dir / "schema" / "output.json")
        self.client = OpaClient(
            base_url,
            p.decision_path,
            timeout=p.timeout,
            pool_size=p.pool_size,
            validator=load_output_validator(schema),
            breaker=CircuitBreaker(p.breaker_threshold, p.breaker_cooldown),
            ssl_context=opa_tls(self.settings) if self.mode == "external" else None,
        )
        self.tracker = RevisionTracker(
            self.client.session,
            base_url,
            p.revision_path,
            rego_dir=rego_dir if self._tracks_rego_dir() else None,
            interval=p.revision_poll,
            on_change=self._revision_changed,
        )
        await self.tracker.start()
        if not self.tracker.revision:
            log.warning("policy engine at %s is not answering yet; failing closed", base_url)

    def _tracks_rego_dir(self) -> bool:
        """Hash rego_dir into the revision when OPA reads it: managed mode watching the
        directory (not fed by a bundle server), or external mode told so."""
        p = self.settings.policy
        if self.mode == "managed":
            return p.opa_config_file is None
        return p.track_rego_dir

    def _revision_changed(self, revision: str) -> None:
        self.cache.purge()

    @property
    def revision(self) -> str:
        if self.mode == "static":
            return "static"
        return self.tracker.revision if self.tracker is not None else ""

    @property
    def report_only(self) -> bool:
        """Global report-only mode (routes may add their own)."""
        return self._global_report_only

    async def decide(self, subject: Subject, request: PolicyRequest) -> DecisionOutcome:
        """The action table for this request. Raises PolicyUnavailable (fail closed)."""
        started = time.perf_counter()
        _, grants = await self._grants.active_for(subject.id, request.now)
        grants = in_scope(grants, request.operation, request.route_template)
        revision = self.revision
        norm, piece_end = normalise(
            subject,
            request,
            revision=revision,
            taxonomy_digest=self._taxonomy_digest,
            grants=grants,
            tz=self._tz,
            revoked=self._revocations is not None and self._revocations.is_revoked(subject.id),
            report_only=self._global_report_only or request.report_only,
        )
        hit = self.cache.get(norm)
        if hit is not None:
            if self.input_log is not None:
                self.input_log.observe(norm, hit.digest)
            return DecisionOutcome(
                hit.decision,
                cache_hit=True,
                elapsed_ms=(time.perf_counter() - started) * 1000,
                input_digest=hit.digest,
                report_only=hit.decision.report_only,
            )
        digest = norm.digest()
        if self.input_log is not None:
            self.input_log.observe(norm, digest)
        pending = self._inflight.get(norm)
        if pending is not None:
            # The same question is already on its way to OPA: share the answer.
            self.coalesced += 1
            decision = await asyncio.shield(pending)
        else:
            decision = await self._evaluate_once(
                subject, request, norm, digest, revision, piece_end
            )
        return DecisionOutcome(
            decision,
            cache_hit=False,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            input_digest=digest,
            report_only=decision.report_only,
        )

    async def _evaluate_once(
        self,
        subject: Subject,
        request: PolicyRequest,
        norm: NormalisedInput,
        digest: str,
        revision: str,
        piece_end: datetime,
    ) -> Decision:
        """Evaluate and cache, letting identical concurrent misses wait for us."""
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._inflight[norm] = future
        try:
            decision, cacheable = await self._evaluate(subject, request, norm)
        except BaseException as exc:
            shared = (
                exc
                if isinstance(exc, Exception)
                else PolicyUnavailable("policy evaluation was cancelled", cause="cancelled")
            )
            future.set_exception(shared)
            future.exception()  # retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            self._inflight.pop(norm, None)
        future.set_result(decision)
        if cacheable and self.revision == revision:
            ttl = min(decision.obligations.cache_ttl, (piece_end - request.now).total_seconds())
            self.cache.put(norm, decision, digest, ttl)
        return decision

    async def _evaluate(
        self, subject: Subject, request: PolicyRequest, norm: NormalisedInput
    ) -> tuple[Decision, bool]:
        if self.client is None or self.tracker is None:
            assert self._taxonomy is not None  # checked in _start for static mode
            # The static table applies the policy's level rules and its hard gates
            # (revoked, disabled, disallowed network, expired partner).
            facts = RequestFacts(
                operation=request.operation,
                purpose=request.purpose,
                network_zone=request.network_zone,
                network_allowed=norm.network_allowed,
                revoked=norm.revoked,
                at=request.now.astimezone(self._tz),
            )
            decision = static_decision(
                self._taxonomy, subject, method=request.method, now=request.now, request=facts
            )
            return dataclasses.replace(decision, report_only=norm.report_only), True
        decision = await self.client.evaluate(build_opa_input(norm, self._taxonomy_policy))
        if decision.revision != self.tracker.data_revision:
            # OPA runs a policy the tracker has not seen yet: label it with what
            # OPA said, do not cache it, and have the tracker catch up now.
            self.tracker.poke()
            self.uncached_revision_mismatch += 1
            if time.monotonic() - self._mismatch_logged > 60:
                self._mismatch_logged = time.monotonic()
                log.warning(
                    "decision revision %r differs from %r at policy.revision_path; such "
                    "decisions are not cached (harmless during a reload, a misconfiguration "
                    "if it persists)",
                    decision.revision,
                    self.tracker.data_revision,
                )
            return decision, False
        return dataclasses.replace(decision, revision=self.tracker.revision), True

    @property
    def cache_hits(self) -> int:
        return self.cache.hits

    @property
    def cache_misses(self) -> int:
        return self.cache.misses

    @property
    def healthy(self) -> bool:
        """Cheap, synchronous view for metrics: revision known, breaker not open,
        managed OPA process running."""
        if self.mode == "static":
            return True
        if self.client is None or self.tracker is None or not self.tracker.revision:
            return False
        if self.client.breaker.state == "open":
            return False
        return self.supervisor is None or self.supervisor.running

    def stats(self) -> dict[str, int | float | str]:
        """Counters for metrics and the admin page."""
        out: dict[str, int | float | str] = {
            "mode": self.mode,
            "revision": self.revision,
            "report_only": int(self.report_only),
            "cache_entries": len(self.cache),
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "cache_evictions": self.cache.evictions,
            "cache_purges": self.cache.purges,
            "coalesced": self.coalesced,
            "uncached_revision_mismatch": self.uncached_revision_mismatch,
        }
        if self.client is not None:
            out |= {
                "opa_calls": self.client.calls,
                "opa_failures": self.client.failures,
                "breaker_state": self.client.breaker.state,
                "breaker_opened": self.client.breaker.opened_total,
            }
        if self.tracker is not None:
            out["revision_changes"] = self.tracker.changes
        if self.supervisor is not None:
            out["opa_restarts"] = self.supervisor.restarts
        return out

    async def ready(self) -> bool:
        """Can decisions be made right now (for /ready)? `healthy`, and a managed OPA
        answers its health check."""
        if not self.healthy:
            return False
        return self.supervisor is None or await self.supervisor.healthy()

    async def close(self) -> None:
        if self.input_log is not None:
            await self.input_log.close()
            self.input_log = None
        if self.tracker is not None:
            await self.tracker.close()
        if self.client is not None:
            await self.client.close()
        if self.supervisor is not None:
            await self.supervisor.stop()


def opa_tls(settings: Settings) -> ssl.SSLContext | None:
    """`policy.tls` for an https:// external OPA: its CA and the gateway's client
    certificate (OPA `--authentication=tls`); None keeps the default verification."""
    t = settings.policy.tls
    if t.ca is None and t.cert is None:
        return None
    if not settings.policy.url.startswith("https://"):
        raise ConfigError("policy.tls is set but policy.url is not an https:// URL")
    return client_context(t, settings.path, "policy.tls")
