"""Verifying audit chains: what `crm-gateway audit verify FILE|--stream` runs.

Records are grouped by writer and checked in sequence order (arrival order does
not matter: the spool replays late). Per chain it reports

- `mac_bad`    records whose MAC does not verify (edited or forged),
- `link_bad`   records whose `prev` is not the MAC of the record before,
- `conflicts`  sequence numbers seen with different content (replayed/injected),
- `missing`    sequence gaps (deleted records),
- `seal_bad`   seals with a bad signature, range, last MAC or seal link,
- `closed` / `unsealed_tail`  whether the chain ends with its closing seal
  (if not: the writer is still running, crashed, or the tail was cut off).

Byte-identical duplicates (at-least-once delivery) are counted, not flagged.
After a key rotation (docs/backup.md) older chains verify with the retired keys:
a chain whose first record verifies under a retired HMAC key is checked with that
key throughout (a writer keeps one key for its lifetime), and a seal signed by a
retired seal key is good; the report names the retired key a chain used.
The canonical bytes are recomputed with the standard library's `json`,
deliberately not with the emitter's orjson path, so one bug cannot hide itself.

With the writer registry (`gateway.audit.registry`) it also knows which writers
existed and how far each got, and reports

- `missing_chains`  registered writers with acknowledged records but no chain,
- `cut`             chains ending before what their writer had acknowledged (or
                    without the closing seal their writer acknowledged),
- `vanished`        open chains whose writer's heartbeat stopped (a crash: the
                    writer never wrote its closing seal),
- `unregistered`    chains whose writer is not in a non-empty registry.

Exit codes (`VerifyReport.exit_code`, the first that applies, in this order):
10 MAC mismatch, 11 link mismatch, 12 sequence conflict, 13 malformed records,
30 bad seal, 20 gap, 24 cut tail, 23 missing writer chain, 22 vanished writer,
21 open chain when closing is required (or whose last seal is older than
`allow_open` seconds), 25 unregistered writer; 0 when none applies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.chain import genesis, initial_key, next_key
from gateway.audit.keys import (
    load_hmac_key,
    load_retired_hmac_keys,
    load_retired_seal_public_keys,
    load_seal_public_key,
)
from gateway.audit.registry import (
    WriterRecord,
    file_trail,
    merge_registries,
    parse_redis_registry,
    read_registry_dir,
    stream_trail,
)
from gateway.audit.seal import signature_ok
from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.state.audit_stream import AuditStream


@dataclass
class ChainReport:
    writer: str
    records: int = 0
    first_seq: int = 0
    last_seq: int = 0
    duplicates: int = 0
    reordered: int = 0
    missing: list[tuple[int, int]] = field(default_factory=list)
    mac_bad: list[int] = field(default_factory=list)
    link_bad: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)
    seals: int = 0
    seal_bad: list[int] = field(default_factory=list)
    last_sealed_seq: int = 0
    last_seal_ms: int = 0
    closed: bool = False
    # Which retired HMAC key (1-based, in `audit.hmac_retired_keys_env` order) the
    # chain was written with; None: the current key.
    retired_key: int | None = None

    @property
    def unsealed_tail(self) -> int:
        return self.last_seq - self.last_sealed_seq

    @property
    def ok(self) -> bool:
        return not (
            self.missing or self.mac_bad or self.link_bad or self.conflicts or self.seal_bad
        )


@dataclass
class VerifyReport:
    chains: dict[str, ChainReport] = field(default_factory=dict)
    malformed: int = 0
    require_closed: bool = False
    # Open chains are tolerated (live writers) unless their last seal is older than
    # this many seconds: writers seal at least every `audit.seal_heartbeat` seconds.
    allow_open: float | None = None
    now_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    # False when no seal public key was found: seal links were checked, their
    # Ed25519 signatures were not (said loudly in the summary and the JSON).
    signatures_checked: bool = True
    # The writer registry (empty: none found) and how old a heartbeat may be (s).
    registry: dict[str, WriterRecord] = field(default_factory=dict)
    heartbeat_grace: float = 10.0

    def _beat_stale(self, rec: WriterRecord) -> bool:
        return rec.heartbeat_ms < self.now_ms - int(self.heartbeat_grace * 1000)

    @property
    def missing_chains(self) -> list[str]:
        """Registered writers that acknowledged records, none of which is in the trail."""
        return sorted(
            w for w, rec in self.registry.items() if rec.acked_seq > 0 and w not in self.chains
        )

    @property
    def cut(self) -> list[str]:
        """Chains shorter than their writer acknowledged, or missing an acknowledged close."""
        out = []
        for w, chain in self.chains.items():
            rec = self.registry.get(w)
            if rec is None:
                continue
            if chain.last_seq < rec.acked_seq or (rec.closed and not chain.closed):
                out.append(w)
        return sorted(out)

    @property
    def vanished(self) -> list[str]:
        """Open chains whose writer stopped its heartbeat without a closing seal."""
        cut = set(self.cut)
        return sorted(
            w
            for w, chain in self.chains.items()
            if not chain.closed
            and w not in cut
            and w in self.registry
            and not self.registry[w].closed
            and self._beat_stale(self.registry[w])
        )

    @property
    def unregistered(self) -> list[str]:
        if not self.registry:
            return []
        return sorted(w for w in self.chains if w not in self.registry)

    def stale(self, chain: ChainReport) -> bool:
        if chain.closed:
            return False
        if self.require_closed:
            return True
        if self.allow_open is None:
            return False
        return chain.last_seal_ms < self.now_ms - int(self.allow_open * 1000)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        chains = list(self.chains.values())
        checks = [
            (10, any(c.mac_bad for c in chains)),
            (11, any(c.link_bad for c in chains)),
            (12, any(c.conflicts for c in chains)),
            (13, self.malformed > 0),
            (30, any(c.seal_bad for c in chains)),
            (20, any(c.missing for c in chains)),
            (24, bool(self.cut)),
            (23, bool(self.missing_chains)),
            (22, bool(self.vanished)),
            (21, any(self.stale(c) for c in chains)),
            (25, bool(self.unregistered)),
        ]
        return next((code for code, failed in checks if failed), 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "malformed": self.malformed,
            "signatures_checked": self.signatures_checked,
            "registry_writers": len(self.registry),
            "missing_chains": self.missing_chains,
            "cut": self.cut,
            "vanished": self.vanished,
            "unregistered": self.unregistered,
            "chains": [
                {
                    **asdict(c),
                    "unsealed_tail": c.unsealed_tail,
                    "ok": c.ok,
                    "registered": asdict(self.registry[c.writer])
                    if c.writer in self.registry
                    else None,
                }
                for c in self.chains.values()
            ],
        }

    def summary(self) -> str:
        lines = [
            f"{'OK' if self.ok else 'FAILED'} (exit {self.exit_code}): "
            f"{len(self.chains)} chain(s), {self.malformed} malformed record(s)"
        ]
        if not self.signatures_checked:
            lines.append(
                "  WARNING: no seal public key (audit.seal_key_file + .pub): seal "
                "signatures were NOT checked, only the HMAC chain and seal links"
            )
        if not self.registry:
            lines.append(
                "  WARNING: no writer registry found: deleted chains and cut tails "
                "cannot be told from writers that never existed"
            )
        for w in self.missing_chains:
            rec = self.registry[w]
            lines.append(f"  {w}: MISSING CHAIN (registered, acknowledged {rec.acked_seq})")
        for w in self.cut:
            rec = self.registry[w]
            lines.append(
                f"  {w}: TAIL CUT (acknowledged up to {rec.acked_seq}"
                f"{', closed' if rec.closed else ''}; trail ends at {self.chains[w].last_seq})"
            )
        for w in self.vanished:
            lines.append(f"  {w}: VANISHED (no heartbeat, no closing seal)")
        for w in self.unregistered:
            lines.append(f"  {w}: UNREGISTERED writer")
        for c in self.chains.values():
            lines.append(
                f"  {c.writer}: seq {c.first_seq}..{c.last_seq}, {c.records} records, "
                f"{c.duplicates} duplicates, missing {c.missing or '-'}, "
                f"mac_bad {c.mac_bad or '-'}, link_bad {c.link_bad or '-'}, "
                f"conflicts {c.conflicts or '-'}, seals {c.seals} (bad {c.seal_bad or '-'}), "
                f"{'closed' if c.closed else f'open, {c.unsealed_tail} unsealed'}"
                f"{f', retired key {c.retired_key}' if c.retired_key else ''}"
                f"{', STALE (writer gone or tail cut)' if self.stale(c) else ''}"
            )
        return "\n".join(lines)


def canonical_without_mac(event: dict[str, Any]) -> bytes:
    """RFC 8785-equivalent bytes for our records (ASCII keys, ints), via the stdlib."""
    unmapped = dict(event["unmapped"])
    integrity = dict(unmapped["integrity"])
    integrity.pop("mac", None)
    unmapped["integrity"] = integrity
    body = {**event, "unmapped": unmapped}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class _Variant:
    body: bytes
    mac: str
    event: dict[str, Any]


def _integrity(event: Any) -> dict[str, Any] | None:
    if not isinstance(event, dict) or not isinstance(event.get("unmapped"), dict):
        return None
    integ = event["unmapped"].get("integrity")
    if not isinstance(integ, dict):
        return None
    seq, writer, mac = integ.get("seq"), integ.get("writer"), integ.get("mac")
    if type(seq) is not int or seq < 1 or not isinstance(writer, str) or not isinstance(mac, str):
        return None
    return integ


def verify_events(
    events: Iterable[dict[str, Any]],
    key: bytes,
    public_key: Ed25519PublicKey | None,
    *,
    retired_keys: Sequence[bytes] = (),
    retired_public_keys: Sequence[Ed25519PublicKey] = (),
    malformed: int = 0,
    require_closed: bool = False,
    allow_open: float | None = None,
    registry: dict[str, WriterRecord] | None = None,
    heartbeat_grace: float = 10.0,
) -> VerifyReport:
    report = VerifyReport(
        malformed=malformed,
        require_closed=require_closed,
        allow_open=allow_open,
        signatures_checked=public_key is not None,
        registry=registry or {},
        heartbeat_grace=heartbeat_grace,
    )
    variants: dict[str, dict[int, list[_Variant]]] = {}
    last_arrival: dict[str, int] = {}
    for event in events:
        integ = _integrity(event)
        if integ is None:
            report.malformed += 1
            continue
        writer, seq = integ["writer"], integ["seq"]
        chain = report.chains.setdefault(writer, ChainReport(writer))
        if seq < last_arrival.get(writer, 0):
            chain.reordered += 1
        last_arrival[writer] = seq
        candidate = _Variant(canonical_without_mac(event), integ["mac"], event)
        seen = variants.setdefault(writer, {}).setdefault(seq, [])
        if any(v.body == candidate.body and v.mac == candidate.mac for v in seen):
            chain.duplicates += 1
        else:
            seen.append(candidate)
    masters = [key, *retired_keys]
    public_keys = [public_key, *retired_public_keys] if public_key is not None else []
    for writer, by_seq in variants.items():
        _check_chain(report.chains[writer], by_seq, masters, public_keys)
    return report


def _mac_ok(key: bytes, variant: _Variant) -> bool:
    return hmac.compare_digest(hmac.new(key, variant.body, hashlib.sha256).hexdigest(), variant.mac)


def _key_at(master: bytes, writer: str, seq: int) -> bytes:
    key = initial_key(master, writer)
    for _ in range(seq - 1):
        key = next_key(key)
    return key


def _chain_master(writer: str, by_seq: dict[int, list[_Variant]], masters: list[bytes]) -> int:
    """Which master key (0: current, n: the n-th retired) the chain was written with:
    a writer keeps one key for its lifetime, so its first record decides."""
    first = min(by_seq)
    for index, master in enumerate(masters):
        key = _key_at(master, writer, first)
        if any(_mac_ok(key, v) for v in by_seq[first]):
            return index
    return 0


def _check_chain(
    chain: ChainReport,
    by_seq: dict[int, list[_Variant]],
    masters: list[bytes],
    public_keys: list[Ed25519PublicKey],
) -> None:
    seqs = sorted(by_seq)
    chain.records, chain.first_seq, chain.last_seq = len(seqs), seqs[0], seqs[-1]
    index = _chain_master(chain.writer, by_seq, masters)
    chain.retired_key = index or None
    key, key_seq, expected = initial_key(masters[index], chain.writer), 1, 1
    macs: dict[int, str] = {}
    last_seal: dict[str, Any] | None = None
    for seq in seqs:
        if seq > expected:
            chain.missing.append((expected, seq - 1))
        expected = seq + 1
        while key_seq < seq:
            key, key_seq = next_key(key), key_seq + 1
        options = by_seq[seq]
        if len(options) > 1:
            chain.conflicts.append(seq)
        good = [v for v in options if _mac_ok(key, v)]
        if not good:
            chain.mac_bad.append(seq)
        chosen = (good or options)[0]
        macs[seq] = chosen.mac
        integ = chosen.event["unmapped"]["integrity"]
        want_prev = genesis(chain.writer) if seq == 1 else macs.get(seq - 1)
        if want_prev is not None and integ.get("prev") != want_prev:
            chain.link_bad.append(seq)
        seal = chosen.event["unmapped"].get("seal")
        if isinstance(seal, dict):
            chain.seals += 1
            if not _seal_ok(seal, seq, chain.writer, macs, last_seal, public_keys):
                chain.seal_bad.append(seq)
            last_seal = seal
            chain.last_sealed_seq = seq
            sealed_at = seal.get("time")
            chain.last_seal_ms = sealed_at if isinstance(sealed_at, int) else 0
            chain.closed = seal.get("closing") is True
    chain.closed = chain.closed and chain.last_sealed_seq == chain.last_seq


def _seal_ok(
    seal: dict[str, Any],
    seq: int,
    writer: str,
    macs: dict[int, str],
    previous: dict[str, Any] | None,
    public_keys: list[Ed25519PublicKey],
) -> bool:
    """The seal's links, and its signature by the current or a retired seal key
    (none given: signatures are not checked, as the report says)."""
    checks = [
        seal.get("writer") == writer,
        seal.get("upto_seq") == seq - 1,
        seal.get("from_seq") == (previous["upto_seq"] + 2 if previous else 1),
        seal.get("prev_sig") == (previous.get("sig") if previous else None),
        seq - 1 not in macs or seal.get("last_mac") == macs[seq - 1],
        not public_keys or any(signature_ok(k, seal) for k in public_keys),
    ]
    return all(checks)


def parse_lines(lines: Iterable[bytes]) -> tuple[list[dict[str, Any]], int]:
    """JSON lines to events; returns (events, number of unparseable lines)."""
    events: list[dict[str, Any]] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if isinstance(obj, dict):
            events.append(obj)
        else:
            bad += 1
    return events, bad


def verify_file(
    settings: Settings,
    path: Path,
    *,
    require_closed: bool = False,
    allow_open: float | None = None,
    heartbeat_grace: float = 10.0,
) -> VerifyReport:
    with path.open("rb") as fh:
        events, bad = parse_lines(fh)
    registry = read_registry_dir(settings.path(settings.audit.registry_dir), file_trail(path))
    return _verify_with_keys(
        settings, events, bad, require_closed, allow_open, registry, heartbeat_grace
    )


def _verify_with_keys(
    settings: Settings,
    events: list[dict[str, Any]],
    bad: int,
    require_closed: bool,
    allow_open: float | None,
    registry: dict[str, WriterRecord],
    heartbeat_grace: float,
) -> VerifyReport:
    """`verify_events` with the keys the settings name."""
    return verify_events(
        events,
        load_hmac_key(settings),
        load_seal_public_key(settings),
        retired_keys=load_retired_hmac_keys(settings),
        retired_public_keys=load_retired_seal_public_keys(settings),
        malformed=bad,
        require_closed=require_closed,
        allow_open=allow_open,
        registry=registry,
        heartbeat_grace=heartbeat_grace,
    )


async def verify_stream(
    settings: Settings,
    *,
    require_closed: bool = False,
    allow_open: float | None = None,
    heartbeat_grace: float = 10.0,
) -> VerifyReport:
    """Read the whole audit stream (XRANGE pages) and verify every chain in it, against
    the registry in Redis merged with the local registry directory."""
    if not settings.redis.url:
        raise ConfigError("audit verify --stream needs redis.url")
    stream = AuditStream.open(settings.redis.url, settings.audit.stream, timeout=10.0)
    try:
        events, bad = parse_lines([payload async for _, payload in stream.read_all()])
        trail = stream_trail(settings.audit.stream)
        in_redis = parse_redis_registry(await stream.read_writers(), trail)
    finally:
        await stream.close()
    registry = merge_registries(
        in_redis, read_registry_dir(settings.path(settings.audit.registry_dir), trail)
    )
    return _verify_with_keys(
        settings, events, bad, require_closed, allow_open, registry, heartbeat_grace
    )
