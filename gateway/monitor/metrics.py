"""Prometheus metrics at `/_gateway/metrics`.

One registry per app (not the global one) so several apps in one test process
do not collide. Labels are bounded: routes are catalog templates (anything else
is `unmatched`), categories and levels come from the taxonomy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from gateway.handler import Access
    from gateway.stages import Stages

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "crmgw_requests",
            "Requests by route template and status",
            ["route", "status"],
            registry=r,
        )
        self.decisions = Counter(
            "crmgw_decisions", "Policy decisions by outcome", ["outcome"], registry=r
        )
        self.fields = Counter(
            "crmgw_fields",
            "Fields seen in responses by category, level and outcome",
            ["category", "level", "outcome"],
            registry=r,
        )
        self.blocks = Counter(
            "crmgw_blocks", "Responses blocked, by error code", ["code"], registry=r
        )
        self.latency = Histogram(
            "crmgw_request_seconds", "Total request latency", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.cache_hits = Gauge("crmgw_decision_cache_hits", "Decision cache hits", registry=r)
        self.cache_misses = Gauge(
            "crmgw_decision_cache_misses", "Decision cache misses", registry=r
        )
        self.audit_queue = Gauge("crmgw_audit_queue_depth", "Audit events waiting", registry=r)
        self.audit_spool = Gauge("crmgw_audit_spool_bytes", "Audit spool size", registry=r)
        self.audit_delivered = Gauge("crmgw_audit_delivered", "Audit events delivered", registry=r)
        self.policy_up = Gauge("crmgw_policy_up", "1 when the policy engine answers", registry=r)
        self.report_only = Gauge("crmgw_report_only", "1 when report-only mode is on", registry=r)
        # labels() validates and locks on every call; the label sets are bounded, so
        # each child is looked up once and kept (a dict hit per request instead).
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_access(self, access: Access, latency_ms: float) -> None:
        route = access.route if access.decision is not None or access.status < 400 else "unmatched"
        child = self._child
        child(
            self.requests, route if route.startswith("/") else "unmatched", str(access.status)
        ).inc()
        self.latency.observe(latency_ms / 1000)
        if access.decision is not None:
            child(self.decisions, "allow" if access.decision.allow else "deny").inc()
        if access.error:
            child(self.blocks, access.error.split(":")[0][:40]).inc()
        fields = access.report.get("fields")  # {outcome: {level: {category: count}}}
        if isinstance(fields, dict):
            for outcome, levels in fields.items():
                for level, categories in levels.items():
                    for category, n in categories.items():
                        child(self.fields, category, level, outcome).inc(n)

    def render(self, stages: Stages) -> tuple[bytes, str]:
        """Refresh gauges from the stages' own counters, then render."""
        policy: Any = stages.policy
        self.cache_hits.set(getattr(policy, "cache_hits", 0))
        self.cache_misses.set(getattr(policy, "cache_misses", 0))
        self.policy_up.set(1 if getattr(policy, "healthy", True) else 0)
        self.report_only.set(1 if stages.settings.policy.report_only else 0)
        stats: Any = getattr(stages.audit, "stats", None)
        if stats is not None:
            self.audit_queue.set(getattr(stats, "queue_depth", 0))
            self.audit_spool.set(getattr(stats, "spool_bytes", 0))
            self.audit_delivered.set(getattr(stats, "delivered", 0))
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
