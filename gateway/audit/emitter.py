"""The audit emitter: chain in the request, deliver in the background, never lose.

`emit()` runs in the handler: it numbers and MACs the event (so an event lost
later shows up as a gap), appends the line to an in-memory deque and returns;
it never awaits and never raises. One flusher task sends batches to the Redis
Stream (pipelined XADD) or, without Redis, to the configured sinks. When the
destination fails, a circuit breaker opens and batches go to the fsynced local
spool; the spool is replayed in order when the destination answers again, and
while it holds anything new batches queue behind it. A full queue overflows
into the spool too. `emit_durable()` is for A-level data: it returns only once
the event is in Redis or fsynced in the spool, else raises `AuditUnavailable`.
`close()` seals the chain and drains everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway.audit.breaker import CircuitBreaker
from gateway.audit.chain import ChainWriter
from gateway.audit.keys import load_hmac_key, load_seal_key
from gateway.audit.oplog import get_logger
from gateway.audit.registry import WriterRegistry, file_trail, stream_trail
from gateway.audit.seal import SealedChain
from gateway.audit.sinks.base import Sink, SinkError
from gateway.audit.sinks.factory import build_sink
from gateway.audit.spool import Spool
from gateway.errors import AuditUnavailable
from gateway.settings import Settings
from gateway.state.audit_stream import AuditStream, StreamUnavailable

log = get_logger("gateway.audit.emitter")
_TICK = 0.2  # default seconds between flusher passes (`audit.flush_interval_ms`)


@dataclass(slots=True)
class EmitterStats:
    """Counters for metrics; read `AuditEmitter.stats`."""

    queue_depth: int = 0
    spool_bytes: int = 0
    emitted: int = 0
    delivered: int = 0
    spooled: int = 0
    replayed: int = 0
    failed: int = 0
    last_lag_ms: float = 0.0
    breaker: str = "closed"


class AuditEmitter:
    def __init__(
        self,
        chain: SealedChain,
        spool: Spool,
        *,
        stream: AuditStream | None,
        sinks: list[Sink],
        queue_size: int = 50_000,
        batch_size: int = 500,
        breaker_cooldown: float = 1.0,
        durable_timeout: float = 0.5,
        seal_every: int = 1000,
        waitaof: bool = False,
        registry: WriterRegistry | None = None,
        flush_interval: float = _TICK,
    ) -> None:
        self._tick = flush_interval
        self._chain = chain
        self._spool = spool
        self._stream = stream
        self._sinks = sinks
        # (line, enqueued at, durable waiter, chain seq)
        self._queue: deque[tuple[bytes, float, asyncio.Future[None] | None, int]] = deque()
        self._waiting = 0  # durable callers whose line is still queued
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._breaker = CircuitBreaker(breaker_cooldown)
        self._durable_timeout = durable_timeout
        self._seal_every = seal_every
        self._waitaof = waitaof
        self._wake = asyncio.Event()
        self._closing = False
        self._counts = EmitterStats()
        self._task: asyncio.Task[None] | None = None
        self._registry = registry
        self._acked_seq = 0  # highest seq the destination acknowledged
        self._closing_seq = 0  # seq of the closing seal, once appended

    @classmethod
    async def open(cls, settings: Settings) -> AuditEmitter:
        """Keys, chain, spool (adopting dead writers' spools), destination, flusher task."""
        cfg = settings.audit
        chain = SealedChain(
            ChainWriter(load_hmac_key(settings)),
            load_seal_key(settings),
            every=cfg.seal_every,
            interval=cfg.seal_interval,
            heartbeat=cfg.seal_heartbeat,
        )
        spool = Spool(settings.path(cfg.spool_dir), chain.writer)
        adopted = spool.adopt_orphans()
        if adopted:
            log.warning("audit_spool_adopted", count=adopted, path=str(spool.path))
        stream = None
        sinks: list[Sink] = []
        if settings.redis.url:
            stream = AuditStream.open(settings.redis.url, cfg.stream, maxlen=cfg.stream_maxlen)
            # Create the shippers' group up front (reading from the first entry), so
            # nothing is trimmed before a shipper first connects. Redis may be down
            # now; the shipper creates it too.
            with contextlib.suppress(StreamUnavailable):
                await stream.ensure_group(cfg.shipper_group)
        else:
            sinks = [build_sink(settings, name) for name in cfg.sinks if name != "redis"]
        self = cls(
            chain,
            spool,
            stream=stream,
            sinks=sinks,
            queue_size=cfg.queue_size,
            batch_size=cfg.batch_size,
            breaker_cooldown=cfg.breaker_cooldown,
            durable_timeout=cfg.durable_timeout,
            seal_every=cfg.seal_every,
            waitaof=cfg.durable_waitaof,
            flush_interval=cfg.flush_interval_ms / 1000,
            registry=WriterRegistry(
                settings.path(cfg.registry_dir),
                chain.writer,
                trail=_trail(settings, stream),
                stream=stream,
                interval=cfg.registry_heartbeat,
            ),
        )
        if self._registry is not None:
            await self._registry.beat(0)  # registered before its first event
        self.start()
        return self

    @property
    def writer(self) -> str:
        return self._chain.writer

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-flusher")

    @property
    def stats(self) -> EmitterStats:
        s = self._counts
        s.queue_depth = len(self._queue)
        s.spool_bytes = self._spool.pending_bytes
        s.breaker = self._breaker.state
        return s

    # -- request path -----------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        """Chain and enqueue; O(1), never blocks, never raises into the request."""
        try:
            self._enqueue(self._chain.append(event))
            if self._chain.unsealed >= self._seal_every:
                self._enqueue(self._chain.seal())
        except Exception as exc:
            self._counts.failed += 1
            with contextlib.suppress(Exception):  # not even logging may raise here
                log.critical("audit_emit_failed", error_type=type(exc).__name__)

    async def emit_durable(self, event: dict[str, Any]) -> None:
        """Return once this event, and every event emitted before it, is in Redis or
        fsynced in the spool; else raise AuditUnavailable (the handler fails closed).

        The event joins the queue like any other and wakes the flusher, so concurrent
        durable calls share one pipelined write (group commit) and the queue's order
        makes the call a barrier: a crash afterwards cannot lose anything before it.
        """
        try:
            line = self._chain.append(event)
        except Exception as exc:
            self._counts.failed += 1
            raise AuditUnavailable("audit chain unavailable") from exc
        self._counts.emitted += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # may exceed the bound by waiters
        self._queue.append((line, time.monotonic(), done, self._chain.chain.seq))
        self._waiting += 1
        self._wake.set()
        if self._task is None or self._task.done():
            await self._flush()  # no flusher (closing or crashed): write it ourselves
        try:
            await asyncio.wait_for(asyncio.shield(done), self._durable_timeout * 4 + 2.0)
        except TimeoutError as exc:
            raise AuditUnavailable("audit trail did not confirm the write in time") from exc

    async def emit_all(self, events: list[dict[str, Any]], *, durable: bool) -> None:
        """Emit a request's events (a split export); with `durable`, the last one is a
        durable write, which (being a barrier) makes all of them durable."""
        if not events:
            return
        for event in events[:-1] if durable else events:
            self.emit(event)
        if durable:
            await self.emit_durable(events[-1])

    def _enqueue(self, line: bytes) -> None:
        self._counts.emitted += 1
        if len(self._queue) < self._queue_size:
            self._queue.append((line, time.monotonic(), None, self._chain.chain.seq))
            if len(self._queue) >= self._batch_size:
                self._wake.set()
            return
        self._spool.append([line], sync=False)  # fsynced by the flusher's next pass
        self._counts.spooled += 1
        self._wake.set()

    # -- background -------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._tick)
                self._wake.clear()
                try:
                    await self._flush()
                except Exception as exc:  # a bug here must not stop delivery for good
                    log.critical("audit_flusher_error", error_type=type(exc).__name__)
                    await asyncio.sleep(self._tick)
        except asyncio.CancelledError:
            self._spool_queue()
            raise

    async def _flush(self) -> None:
        if self._chain.seal_due():
            self._enqueue(self._chain.seal())
        self._spool.sync()
        while self._queue:
            n = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            waiters = [fut for _, _, fut, _ in batch if fut is not None]
            self._waiting -= len(waiters)
            try:
                acked = await self._deliver(
                    [line for line, _, _, _ in batch], batch[0][1], bool(waiters)
                )
            except OSError as exc:
                # Destination and spool both failed: durable callers get 503, the lines
                # go back to the head of the queue and are retried on the next pass.
                _settle(waiters, AuditUnavailable("audit trail unavailable (redis and spool)"))
                self._queue.extendleft((line, t, None, seq) for line, t, _, seq in reversed(batch))
                log.critical("audit_spool_failed", error_type=type(exc).__name__, count=n)
                return
            _settle(waiters, None)
            if acked:
                self._acked_seq = max(self._acked_seq, batch[-1][3])
        if self._spool.pending_bytes and self._breaker.allow():
            await self._replay()
        if self._registry is not None and self._registry.due():
            await self._beat()

    async def _beat(self) -> None:
        assert self._registry is not None
        closed = 0 < self._closing_seq <= self._acked_seq
        await self._registry.beat(self._acked_seq, closed=closed)

    async def _deliver(self, lines: list[bytes], enqueued_at: float, durable: bool) -> bool:
        """Send to the destination (True), or fsync to the spool (False); raises
        OSError only if both fail."""
        if self._spool.pending_bytes or not self._breaker.allow():
            self._spool_lines(lines)  # keep order: new events wait behind the spool
            return False
        try:
            if durable:
                await asyncio.wait_for(self._send(lines), self._durable_timeout)
                if self._waitaof and self._stream is not None:
                    on_disk = await self._stream.wait_aof(int(self._durable_timeout * 1000))
                    if not on_disk:  # in Redis memory only: keep a local fsynced copy
                        self._spool_lines(lines)  # (replayed later: a harmless duplicate)
            else:
                await self._send(lines)
        except (StreamUnavailable, SinkError, OSError, TimeoutError) as exc:
            self._trip(exc)
            self._spool_lines(lines)
            return False
        self._breaker.success()
        self._counts.delivered += len(lines)
        self._counts.last_lag_ms = (time.monotonic() - enqueued_at) * 1000
        return True

    async def _replay(self) -> None:
        # A long replay yields to durable callers: their batch is spooled (fsync) and
        # confirmed at once instead of waiting for the whole backlog.
        while self._spool.pending_bytes and not self._waiting:
            lines, offset = self._spool.read_batch(self._batch_size)
            if not lines and offset == self._spool.offset:
                return  # only an unterminated tail: nothing complete to send
            if lines:
                try:
                    await self._send(lines)
                except (StreamUnavailable, SinkError, OSError) as exc:
                    self._trip(exc)
                    return
                self._breaker.success()
                self._counts.replayed += len(lines)
                self._counts.delivered += len(lines)
            self._spool.commit(offset)

    async def _send(self, lines: list[bytes]) -> None:
        if self._stream is not None:
            await self._stream.add_batch(lines)
            return
        for sink in self._sinks:
            await sink.send(lines)

    def _trip(self, exc: Exception) -> None:
        first = self._breaker.state == "closed"
        self._breaker.failure()
        if first:
            log.warning(
                "audit_destination_down",
                error_type=type(exc).__name__,
                spool_bytes=self._spool.pending_bytes,
            )

    def _spool_lines(self, lines: list[bytes]) -> None:
        self._spool.append(lines, sync=True)
        self._counts.spooled += len(lines)

    def _spool_queue(self) -> None:
        """Shutdown or cancellation: everything still queued goes to the spool."""
        batch = list(self._queue)
        self._queue.clear()
        waiters = [fut for _, _, fut, _ in batch if fut is not None]
        self._waiting = 0
        if not batch:
            return
        try:
            self._spool_lines([line for line, _, _, _ in batch])
        except OSError as exc:
            self._counts.failed += len(batch)
            log.critical("audit_spool_failed", error_type=type(exc).__name__, count=len(batch))
            _settle(waiters, AuditUnavailable("audit trail unavailable (spool)"))
            return
        _settle(waiters, None)

    async def close(self) -> None:
        """Seal the chain (closing seal), deliver or spool everything, release resources."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if not self._chain.closed:
            self._enqueue(self._chain.seal(closing=True))
            self._closing_seq = self._chain.chain.seq
        try:
            await self._flush()
            if self._spool.pending_bytes:
                await self._replay()  # one last attempt even if the breaker is open
            if self._registry is not None:
                await self._beat()
        finally:
            self._spool_queue()
            self._spool.close()
            if self._stream is not None:
                await self._stream.close()
            for sink in self._sinks:
                with contextlib.suppress(SinkError, OSError):
                    await sink.close()


def _trail(settings: Settings, stream: AuditStream | None) -> str:
    """Where this writer's chain goes, as the registry names it."""
    if stream is not None:
        return stream_trail(settings.audit.stream)
    if "file" in settings.audit.sinks:
        return file_trail(settings.path(settings.audit.file))
    return "sinks:" + ",".join(settings.audit.sinks)


def _settle(waiters: list[asyncio.Future[None]], error: Exception | None) -> None:
    for fut in waiters:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
