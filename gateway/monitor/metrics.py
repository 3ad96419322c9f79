"""Prometheus metrics at `/_gateway/metrics`.

One registry per app (not the global one) so several apps in one test process
do not collide. Labels are bounded: routes are catalog templates (anything else
is `unmatched`), categories and levels come from the taxonomy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from gateway.core.record import Access

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Tally:
    """A labelled counter kept as a plain dict and exposed as a Prometheus counter.

    prometheus_client's Counter takes a lock and validates labels on every inc(); a
    masked page bumps about twenty field counters, so on the event loop (one
    thread per worker process) a dict addition is all a count needs. Read at
    scrape time through `collect()`.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.counts: defaultdict[tuple[str, ...], float] = defaultdict(float)

    def inc(self, *values: str, amount: float = 1) -> None:
        self.counts[values] += amount

    def value(self, *values: str) -> float:
        return self.counts.get(values, 0.0)

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labels)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, count in list(self.counts.items()):
            family.add_metric(values, count)
        yield family


class Metrics:
    def __init__(self, templates: Iterable[str] = ()) -> None:
        # The catalog's route templates: the only route labels (anything else, such
        # as a raw path with ids or tokens in it, is counted as `unmatched`).
        self.templates = frozenset(templates)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Tally(
            "crmgw_requests", "Requests by route template and status", ("route", "status")
        )
        self.decisions = Tally("crmgw_decisions", "Policy decisions by outcome", ("outcome",))
        self.fields = Tally(
            "crmgw_fields",
            "Fields seen in responses by category, level and outcome",
            ("category", "level", "outcome"),
        )
        self.blocks = Tally("crmgw_blocks", "Responses blocked, by error code", ("code",))
        # Raised by this replica (each alert is raised by exactly one replica).
        self.alerts = Tally(
            "crmgw_anomaly_alerts", "Anomaly alerts raised, by kind and action", ("kind", "action")
        )
        for tally in (self.requests, self.decisions, self.fields, self.blocks, self.alerts):
            r.register(tally)
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

    def observe_access(self, access: Access, latency_ms: float) -> None:
        self.requests.inc(self.route_label(access.route), _status_label(access.status))
        self.latency.observe(latency_ms / 1000)
        if access.decision is not None:
            self.decisions.inc("allow" if access.decision.allow else "deny")
        if access.error:
            self.blocks.inc(_code_label(access.error))
        if access.report is None:
            return
        for outcome, levels in access.report.fields.items():  # {outcome: {level: {cat: n}}}
            for level, categories in levels.items():
                for category, n in categories.items():
                    self.fields.inc(category, level, outcome, amount=n)

    def route_label(self, route: str) -> str:
        return route if route in self.templates else "unmatched"

    def render(self, *, policy: object, audit: object, report_only: bool) -> tuple[bytes, str]:
        """Refresh gauges from the policy engine's and audit emitter's own counters
        (read by name: the metrics know no stage's type), then render."""
        self.cache_hits.set(getattr(policy, "cache_hits", 0))
        self.cache_misses.set(getattr(policy, "cache_misses", 0))
        self.policy_up.set(1 if getattr(policy, "healthy", True) else 0)
        self.report_only.set(1 if report_only else 0)
        stats: Any = getattr(audit, "stats", None)
        if stats is not None:
            self.audit_queue.set(getattr(stats, "queue_depth", 0))
            self.audit_spool.set(getattr(stats, "spool_bytes", 0))
            self.audit_delivered.set(getattr(stats, "delivered", 0))
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


def _code_label(error: str) -> str:
    """An error code (`forbidden`, `report_only_would_block`): never free text."""
    code = error.split(":")[0].strip()[:40]
    return code if code.replace("_", "").isalnum() and code.isascii() else "other"
