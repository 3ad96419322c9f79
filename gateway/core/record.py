"""The access record: what one request did, collected along the way for the audit event.

A leaf of typed values that travels down: `handler.py` fills it in as the stages
return, `stages.record` hands it to the audit event builder, the metrics and the
anomaly detector, which read it and never import the handler back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core.model import Decision, Subject
from gateway.core.report import ReportSummary
from gateway.core.request_pii import RequestHit


@dataclass(slots=True)
class Access:
    """What this request did; `report` is the enforcer's summary (None: nothing enforced)."""

    request_id: str
    started: float
    method: str
    path: str = ""
    route: str = ""
    purpose: str | None = None
    operation: str = ""
    justification: bool = False
    subject: Subject | None = None
    client_ip: str = ""
    decision: Decision | None = None
    cache_hit: bool = False
    status: int = 0
    error: str | None = None
    report: ReportSummary | None = None
    request_pii: list[RequestHit] = field(default_factory=list)
    report_only: bool = False
    reveal_handles: int = 0  # reveal handles offered in the response

    @property
    def pii_categories(self) -> list[str]:
        """The categories found in the request's path and query string, sorted."""
        return sorted({hit.category for hit in self.request_pii})
