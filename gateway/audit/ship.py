"""The shipper: a consumer-group reader that forwards the audit stream to a sink.

`crm-gateway audit ship --to SINK` runs this beside the gateway. It reads with
XREADGROUP, hands each batch to the sink, and XACKs only after the sink
acknowledged (HEC: indexed; file: fsynced; syslog: written to the socket). On
start and on every loop it first takes over entries other consumers read but
left unacked for `audit.claim_idle_ms` (XAUTOCLAIM), and its own pending entries
from a previous run, so a crashed shipper loses nothing. Entries that are not
JSON go to a dead-letter stream and are acked. Delivery is at-least-once:
downstream deduplicates on `metadata.uid`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass

import orjson

from gateway.audit.oplog import get_logger
from gateway.audit.sinks.base import Sink, SinkError
from gateway.audit.sinks.factory import build_sink
from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.state.audit_stream import AuditStream, Entry
from gateway.state.keys import audit_dead_letter

log = get_logger("gateway.audit.ship")


@dataclass
class ShipStats:
    read: int = 0
    shipped: int = 0
    claimed: int = 0
    malformed: int = 0
    batches: int = 0
    sink_failures: int = 0


async def ship(
    settings: Settings,
    sink_name: str,
    *,
    once: bool = False,
    max_events: int | None = None,
    consumer: str | None = None,
    sink: Sink | None = None,
) -> ShipStats:
    """Forward the stream to `sink_name` until cancelled (or, with `once`, until the
    stream has nothing more for this group; `max_events` caps the total)."""
    if not settings.redis.url:
        raise ConfigError("audit ship needs redis.url (the audit stream)")
    cfg = settings.audit
    stream = AuditStream.open(settings.redis.url, cfg.stream, timeout=5.0)
    target = sink if sink is not None else build_sink(settings, sink_name)
    name = consumer or f"{socket.gethostname()}:{os.getpid()}"
    stats = ShipStats()
    try:
        await stream.ensure_group(cfg.shipper_group)
        own_pending = True
        while max_events is None or stats.shipped + stats.malformed < max_events:
            want = cfg.shipper_batch
            if max_events is not None:
                want = min(want, max_events - stats.shipped - stats.malformed)
            entries = await stream.autoclaim(
                cfg.shipper_group, name, min_idle_ms=cfg.claim_idle_ms, count=want
            )
            stats.claimed += len(entries)
            if not entries and own_pending:
                entries = await stream.read_group(
                    cfg.shipper_group, name, count=want, block_ms=None, pending=True
                )
                own_pending = bool(entries)
            if not entries:
                entries = await stream.read_group(
                    cfg.shipper_group, name, count=want, block_ms=None if once else 1000
                )
            if not entries:
                if once:
                    break
                continue
            stats.read += len(entries)
            if not await _forward(stream, target, cfg.shipper_group, entries, stats):
                if once:
                    break
                await asyncio.sleep(1.0)
                own_pending = True
    finally:
        await target.close()
        await stream.close()
    return stats


async def _forward(
    stream: AuditStream, sink: Sink, group: str, entries: list[Entry], stats: ShipStats
) -> bool:
    good: list[Entry] = []
    bad: list[Entry] = []
    for entry in entries:
        try:
            ok = isinstance(orjson.loads(entry[1]), dict)
        except orjson.JSONDecodeError:
            ok = False
        (good if ok else bad).append(entry)
    if bad:
        await stream.dead_letter(audit_dead_letter(stream.stream), bad)
        await stream.ack(group, [entry_id for entry_id, _ in bad])
        stats.malformed += len(bad)
        log.warning("audit_ship_dead_letter", count=len(bad), stream=stream.stream)
    if not good:
        return True
    try:
        await sink.send([payload for _, payload in good])
    except SinkError as exc:
        stats.sink_failures += 1
        log.warning("audit_ship_sink_failed", sink=sink.name, error=str(exc)[:200])
        return False
    await stream.ack(group, [entry_id for entry_id, _ in good])
    stats.shipped += len(good)
    stats.batches += 1
    return True
