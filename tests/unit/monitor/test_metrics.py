"""Prometheus text at /_gateway/metrics: what one access adds to each counter."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway.core.model import Subject
from gateway.core.record import Access
from gateway.core.report import ReportSummary
from gateway.core.static_policy import static_decision
from gateway.core.taxonomy import Taxonomy
from gateway.monitor.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]
TAXONOMY = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _access(status: int = 200, error: str | None = None) -> Access:
    decision = static_decision(TAXONOMY, Subject(id="u", clearance="L2"), method="GET")
    return Access(
        request_id="r1",
        started=0.0,
        method="GET",
        route="/api/customers/{id}",
        decision=decision,
        status=status,
        error=error,
        report=ReportSummary(
            fields={"masked": {"L3": {"income": 2, "assets": 1}}, "clear": {"L2": {"name": 1}}}
        ),
    )


def test_counts_requests_decisions_fields_and_blocks() -> None:
    m = Metrics(templates=["/api/customers/{id}"])
    m.observe_access(_access(), 1.5)
    m.observe_access(_access(), 2.5)
    m.observe_access(_access(403, "blocked: bulk"), 0.7)
    s = _samples(m)
    route = ("route", "/api/customers/{id}")
    assert s[("crmgw_requests_total", (route, ("status", "200")))] == 2
    assert s[("crmgw_requests_total", (route, ("status", "403")))] == 1
    assert s[("crmgw_decisions_total", (("outcome", "allow"),))] == 3
    assert s[("crmgw_blocks_total", (("code", "blocked"),))] == 1
    income = (("category", "income"), ("level", "L3"), ("outcome", "masked"))
    assert s[("crmgw_fields_total", income)] == 6
    name = (("category", "name"), ("level", "L2"), ("outcome", "clear"))
    assert s[("crmgw_fields_total", name)] == 3
    assert s[("crmgw_request_seconds_count", ())] == 3


def test_unmatched_routes_share_one_label() -> None:
    m = Metrics(templates=["/api/customers/{id}"])
    m.observe_access(Access(request_id="r", started=0.0, method="GET", route="x", status=404), 1)
    s = _samples(m)
    assert s[("crmgw_requests_total", (("route", "unmatched"), ("status", "404")))] == 1
