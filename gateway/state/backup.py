"""Backup and restore of the gateway's own shared state (docs/backup.md).

What the security team decided lives in Redis beside caches and counters; a backup
holds only the decisions, one part per followed record:

- `revocations`  departed or suspended staff (`users revoke`),
- `grants`       grant requests, their approvals and the grants they became,
- `reviews`      break-glass review tasks,
- `lockdown`     the active lockdown profile, if any,
- `directory`    the subject directory, when it is published through Redis.

Rate-limit and anomaly counters, console sessions, observed coverage and the audit
stream are left out: they are rebuilt by traffic or shipped to the SIEM. Keys are
secrets and are backed up with the other secrets, never here.

`take_backup` reads every part in one MULTI, so the document is one moment of the
store, and seals it: `mac` is an HMAC-SHA256 over the document with a key derived
from the deployment's audit key (`backup_key`), so a restore takes only a document
this deployment wrote, unchanged (a grant slipped into a backup file is refused).
`restore_backup` writes every part in one MULTI with a version above both the
document's and the target's, and announces it on each part's channel: running
replicas reload at once, as after any change. A restore into a store that already
holds decisions is refused unless asked to replace them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis

from gateway.state.errors import translates_store_errors
from gateway.state.keys import (
    DIRECTORY,
    DIRECTORY_CHANNEL,
    DIRECTORY_VERSION,
    GRANTS,
    GRANTS_CHANNEL,
    GRANTS_VERSION,
    LOCKDOWN,
    LOCKDOWN_CHANNEL,
    LOCKDOWN_VERSION,
    PREFIX,
    REVIEWS,
    REVIEWS_CHANNEL,
    REVIEWS_VERSION,
    REVOCATION_CHANNEL,
    REVOCATION_VERSION,
    REVOKED,
)

__all__ = [
    "FORMAT",
    "PARTS",
    "BackupInvalid",
    "RestoreRefused",
    "backup_key",
    "check_backup",
    "entries",
    "restore_backup",
    "take_backup",
]

FORMAT = "crm-gateway-state"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Part:
    value: str
    version: str
    channel: str
    kind: Literal["hash", "string"]


PARTS: dict[str, Part] = {
    "revocations": Part(REVOKED, REVOCATION_VERSION, REVOCATION_CHANNEL, "hash"),
    "grants": Part(GRANTS, GRANTS_VERSION, GRANTS_CHANNEL, "hash"),
    "reviews": Part(REVIEWS, REVIEWS_VERSION, REVIEWS_CHANNEL, "hash"),
    "lockdown": Part(LOCKDOWN, LOCKDOWN_VERSION, LOCKDOWN_CHANNEL, "string"),
    "directory": Part(DIRECTORY, DIRECTORY_VERSION, DIRECTORY_CHANNEL, "string"),
}

Value = dict[str, str] | str | None


class BackupInvalid(ValueError):
    """The document is not a backup this version can restore; `problems` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class RestoreRefused(Exception):
    """The target store already holds decisions (restore with replace=True)."""


def entries(value: object) -> int:
    """How many entries a part's value holds (a hash: its fields; a string: 1)."""
    return len(value) if isinstance(value, dict) else int(value is not None)


def _canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k not in ("sha256", "mac")}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _digest(doc: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(doc)).hexdigest()


def backup_key(master: bytes) -> bytes:
    """The key that seals backups, derived from an audit HMAC master key under its own
    label: a backup MAC is never an audit-chain MAC."""
    return hmac.new(master, b"crm-gateway state backup v1", hashlib.sha256).digest()


def _mac(doc: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, _canonical(doc), hashlib.sha256).hexdigest()


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BackupInvalid([f"{where}: the store holds a value that is not UTF-8"]) from exc


async def _read(client: aioredis.Redis) -> dict[str, tuple[int, Value]]:
    async with client.pipeline(transaction=True) as pipe:
        for part in PARTS.values():
            if part.kind == "hash":
                pipe.hgetall(part.value)
            else:
                pipe.get(part.value)
            pipe.get(part.version)
        raw = await pipe.execute()
    out: dict[str, tuple[int, Value]] = {}
    for n, (name, part) in enumerate(PARTS.items()):
        value, version = raw[2 * n], raw[2 * n + 1]
        if part.kind == "hash":
            decoded: Value = {
                _text(f, name): _text(v, f"{name}.{f!r}") for f, v in sorted(value.items())
            } or None
        else:
            decoded = None if value is None else _text(value, name)
        out[name] = (int(version or 0), decoded)
    return out


@translates_store_errors
async def take_backup(client: aioredis.Redis, key: bytes) -> dict[str, Any]:
    """The shared decisions as one JSON-ready document, sealed with `key`."""
    parts = await _read(client)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "prefix": PREFIX,
        "parts": {name: {"version": v, "value": value} for name, (v, value) in parts.items()},
    }
    doc["sha256"] = _digest(doc)
    doc["mac"] = _mac(doc, key)
    return doc


def check_backup(doc: object, keys: Sequence[bytes]) -> dict[str, dict[str, Any]]:
    """The parts of a valid backup document sealed with one of `keys` (the current
    backup key, then retired ones); BackupInvalid listing every problem."""
    if not isinstance(doc, dict):
        raise BackupInvalid(["not a JSON object"])
    problems: list[str] = []
    if doc.get("format") != FORMAT:
        problems.append(f"format: not a {FORMAT} backup")
    elif doc.get("format_version") != FORMAT_VERSION:
        problems.append(f"format_version: {doc.get('format_version')!r}, "
                        f"this gateway restores {FORMAT_VERSION}")  # fmt: skip
    if doc.get("prefix") != PREFIX:
        problems.append(f"prefix: {doc.get('prefix')!r} is not this gateway's {PREFIX!r}")
    if doc.get("sha256") != _digest(doc):
        problems.append("sha256: the document was changed or cut after it was written")
    mac = doc.get("mac")
    if not isinstance(mac, str) or not any(hmac.compare_digest(mac, _mac(doc, k)) for k in keys):
        problems.append("mac: not sealed with this deployment's audit key (or a retired "
                        "one): written elsewhere, or changed")  # fmt: skip
    parts = doc.get("parts")
    if not isinstance(parts, dict):
        raise BackupInvalid([*problems, "parts: missing"])
    for name in sorted(set(parts) - set(PARTS)):
        problems.append(f"parts.{name}: not a part of the gateway's state")
    for name, part in PARTS.items():
        problems += _part_problems(name, part, parts.get(name))
    if problems:
        raise BackupInvalid(problems)
    return {name: parts[name] for name in PARTS}


def _part_problems(name: str, part: Part, entry: object) -> list[str]:
    if not isinstance(entry, dict):
        return [f"parts.{name}: missing"]
    version, value = entry.get("version"), entry.get("value")
    problems = []
    if type(version) is not int or version < 0:
        problems.append(f"parts.{name}.version: not a count")
    if part.kind == "hash":
        fine = value is None or (
            isinstance(value, dict)
            and all(isinstance(v, str) for v in value.values())
        )  # fmt: skip
    else:
        fine = value is None or isinstance(value, str)
    if not fine:
        problems.append(f"parts.{name}.value: not a {part.kind} of text")
    return problems


@dataclass(frozen=True)
class Restored:
    """What a restore wrote: entries per part (a string part counts 1) and versions."""

    counts: dict[str, int]
    versions: dict[str, int]


@translates_store_errors
async def restore_backup(
    client: aioredis.Redis,
    doc: object,
    keys: Sequence[bytes],
    *,
    replace: bool = False,
    before_write: Callable[[dict[str, int]], Awaitable[None]] | None = None,
) -> Restored:
    """Write a backup into the store and announce it (see the module doc).
    `before_write` gets the entry counts once the document is checked and the store
    found writable, before anything is written (the CLI audits the restore there)."""
    parts = check_backup(doc, keys)
    current = await _read(client)
    held = [name for name, (_, value) in current.items() if value is not None]
    if held and not replace:
        raise RestoreRefused(
            f"the store already holds {', '.join(held)}: restore into an empty store, "
            "or replace what it holds (--replace)"
        )
    versions = {name: max(int(parts[name]["version"]), current[name][0]) + 1 for name in PARTS}
    counts = {name: entries(parts[name]["value"]) for name in PARTS}
    if before_write is not None:
        await before_write(counts)
    async with client.pipeline(transaction=True) as pipe:
        for name, part in PARTS.items():
            value = parts[name]["value"]
            pipe.delete(part.value)
            if isinstance(value, dict) and value:
                pipe.hset(part.value, mapping=value)
            elif isinstance(value, str):
                pipe.set(part.value, value)
            pipe.set(part.version, versions[name])
            pipe.publish(part.channel, versions[name])
        await pipe.execute()
    return Restored(counts, versions)
