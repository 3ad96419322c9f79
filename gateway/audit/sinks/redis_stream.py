"""Redis Stream sink: forwards canonical lines to a stream (e.g. a central one)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.audit.sinks.base import SinkError
from gateway.state.audit_stream import AuditStream, StreamUnavailable


class RedisStreamSink:
    name = "redis"

    def __init__(self, stream: AuditStream) -> None:
        self._stream = stream

    async def send(self, lines: Sequence[bytes]) -> None:
        try:
            await self._stream.add_batch(lines)
        except StreamUnavailable as exc:
            raise SinkError(f"redis stream: {exc}") from exc

    async def close(self) -> None:
        await self._stream.close()
