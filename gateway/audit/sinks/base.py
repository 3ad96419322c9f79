"""What every sink is: something that takes serialized canonical events and
returns only once the destination has them (or raises `SinkError`).

Sinks receive the canonical JSON lines exactly as chained; a sink that speaks
another format (CEF, RFC 5424, HEC) projects each line itself, so the evidence
of record (the canonical line) is never rewritten on its way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class SinkError(Exception):
    """The destination did not take (or acknowledge) the batch."""


class Sink(Protocol):
    name: str

    async def send(self, lines: Sequence[bytes]) -> None:
        """Deliver a batch; return only after the destination acknowledged it."""

    async def close(self) -> None:
        """Flush and release resources (for TLS: send close_notify)."""
