"""The writer registry: which audit writers existed, how far each got, whether it closed.

A chain proves its own records, not its own existence: delete a writer's whole
chain, or cut its tail off together with its last seal, and the chains that are
left still verify. So each emitter also keeps a registry record, outside its
chain, and refreshes it as a heartbeat (`audit.registry_heartbeat` seconds):

    {"writer", "trail", "host", "pid", "started_ms", "heartbeat_ms", "acked_seq", "closed"}

`trail` names the destination ("stream:<name>" or "file:<absolute path>"), so a
verifier compares a trail only with the writers that wrote to it.

`acked_seq` is the highest sequence number the destination (Redis Stream or
file sink) has acknowledged; `closed` is set once the closing seal itself was
acknowledged. The record goes to the Redis hash `<stream>:writers` (when Redis
is configured) and to a JSON file per writer in `audit.registry_dir` (always:
it survives a Redis that lost its data). `audit verify` compares the trail with
it: a registered writer with acknowledged records but no chain was deleted
whole; a chain ending before `acked_seq` (or without the closing seal a closed
writer acknowledged) lost its tail; an open chain whose heartbeat stopped is a
writer that vanished (crashed) without a closing seal.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from gateway.audit.spool import spool_name
from gateway.state.audit_stream import AuditStream, StreamUnavailable


@dataclass
class WriterRecord:
    writer: str
    trail: str = ""
    host: str = ""
    pid: int = 0
    started_ms: int = 0
    heartbeat_ms: int = 0
    acked_seq: int = 0
    closed: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> WriterRecord | None:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("writer"), str):
            return None
        try:
            return cls(
                writer=obj["writer"],
                trail=str(obj.get("trail", "")),
                host=str(obj.get("host", "")),
                pid=int(obj.get("pid", 0)),
                started_ms=int(obj.get("started_ms", 0)),
                heartbeat_ms=int(obj.get("heartbeat_ms", 0)),
                acked_seq=int(obj.get("acked_seq", 0)),
                closed=obj.get("closed") is True,
            )
        except (TypeError, ValueError):
            return None

    def merge(self, other: WriterRecord) -> WriterRecord:
        """Two copies (Redis, file) of one writer's record: the furthest of each."""
        return WriterRecord(
            writer=self.writer,
            trail=self.trail or other.trail,
            host=self.host or other.host,
            pid=self.pid or other.pid,
            started_ms=min(x for x in (self.started_ms, other.started_ms) if x)
            if self.started_ms or other.started_ms
            else 0,
            heartbeat_ms=max(self.heartbeat_ms, other.heartbeat_ms),
            acked_seq=max(self.acked_seq, other.acked_seq),
            closed=self.closed or other.closed,
        )


class WriterRegistry:
    """One emitter's registry record, refreshed by its flusher."""

    def __init__(
        self,
        directory: Path,
        writer: str,
        *,
        trail: str,
        stream: AuditStream | None,
        interval: float,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / (spool_name(writer)[: -len(".jsonl")] + ".json")
        self._stream = stream
        self._interval = interval
        now = int(time.time() * 1000)
        self.record = WriterRecord(
            writer=writer,
            trail=trail,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_ms=now,
            heartbeat_ms=now,
        )
        self._last = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._last >= self._interval

    async def beat(self, acked_seq: int, *, closed: bool = False) -> None:
        """Write the record (file, then Redis); a Redis failure is retried next beat."""
        self._last = time.monotonic()
        rec = self.record
        rec.heartbeat_ms = int(time.time() * 1000)
        rec.acked_seq = max(rec.acked_seq, acked_seq)
        rec.closed = rec.closed or closed
        data = rec.to_json()
        tmp = self._path.with_suffix(".tmp")
        with contextlib.suppress(OSError):  # the registry must never stop the audit trail
            tmp.write_bytes(data)
            os.replace(tmp, self._path)
        if self._stream is not None:
            with contextlib.suppress(StreamUnavailable):
                await self._stream.put_writer(rec.writer, data)


def read_registry_dir(directory: Path, trail: str) -> dict[str, WriterRecord]:
    """The records in `directory` of writers that wrote to `trail`."""
    out: dict[str, WriterRecord] = {}
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.json")):
        with contextlib.suppress(OSError):
            rec = WriterRecord.from_json(path.read_bytes())
            if rec is not None and rec.trail == trail:
                out[rec.writer] = out[rec.writer].merge(rec) if rec.writer in out else rec
    return out


def stream_trail(stream: str) -> str:
    return "stream:" + stream


def file_trail(path: Path) -> str:
    return "file:" + str(path.resolve())


def merge_registries(*parts: dict[str, WriterRecord]) -> dict[str, WriterRecord]:
    out: dict[str, WriterRecord] = {}
    for part in parts:
        for writer, rec in part.items():
            out[writer] = out[writer].merge(rec) if writer in out else rec
    return out


def parse_redis_registry(rows: dict[str, bytes], trail: str) -> dict[str, WriterRecord]:
    out: dict[str, WriterRecord] = {}
    for raw in rows.values():
        rec = WriterRecord.from_json(raw)
        if rec is not None and rec.trail == trail:
            out[rec.writer] = rec
    return out
