"""What the anomaly detector found: a typed record the audit trail renders as an alert.

A finding says who, what kind, how many against which threshold in which window,
and what the gateway did about it. It never holds a customer value: the only
record ids it may name are the decoys (honeytokens), which belong to nobody.
`gateway.audit.alerts.build_alert` turns one into the canonical alert event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AlertKind = Literal[
    "distinct_customers", "blocked_burst", "off_hours", "honeytoken", "filter_probe"
]
AlertAction = Literal["alert", "throttle", "revoke"]


@dataclass(frozen=True, slots=True)
class Finding:
    """What the detector found; `build_alert` turns it into the canonical event."""

    kind: AlertKind
    subject_id: str
    at: float  # epoch seconds of the observation that tripped it
    window_start: float  # epoch seconds; the bucket the count belongs to
    window_seconds: int
    count: int
    threshold: int
    action: AlertAction = "alert"
    level: str | None = None
    decoy_ids: tuple[str, ...] = ()

    @property
    def severity(self) -> Literal["high", "critical"]:
        # A decoy is touched only by someone browsing where no task leads.
        return "critical" if self.kind == "honeytoken" else "high"

    @property
    def uid(self) -> str:
        """Stable across replicas: the same breach has the same finding id."""
        level = f".{self.level}" if self.level else ""
        return f"{self.kind}{level}:{self.subject_id}:{int(self.window_start)}"
