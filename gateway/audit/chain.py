"""Per-writer HMAC-SHA256 chain with a forward-evolving key (tamper evidence, layer 1).

Each writer (one process boot: `host:pid:uuid`) numbers its records 1, 2, 3, ...
and MACs record i with key K_i, where

    K_1     = HMAC-SHA256(master, "crm-audit-v1/k0/" + writer)
    K_{i+1} = SHA-256("fwd" + K_i)        (K_i is then forgotten)
    mac_i   = HMAC-SHA256(K_i, canonical(record_i without integrity.mac))

and the record carries `unmapped.integrity = {v, writer, seq, prev, mac}`, `prev`
being mac_{i-1} (a genesis value for i = 1). Editing, deleting, injecting or
re-numbering records breaks a MAC or a link, and someone who steals the process
memory at record t learns only K_t, so records before t cannot be re-forged.
Canonical bytes are orjson with sorted keys (JCS-equal for ASCII keys, integers
below 2^53 and no floats); the verifier recomputes them with the stdlib instead.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import uuid
from typing import Any

import orjson

INTEGRITY_VERSION = 1
_K0_LABEL = b"crm-audit-v1/k0/"
_MAC_ANCHOR = b'"integrity":{"prev":"'


def new_writer_id() -> str:
    """host:pid:boot-uuid, unique per process start (a fork must call this again)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


def initial_key(master: bytes, writer: str) -> bytes:
    return hmac.new(master, _K0_LABEL + writer.encode(), hashlib.sha256).digest()


def next_key(key: bytes) -> bytes:
    return hashlib.sha256(b"fwd" + key).digest()


def genesis(writer: str) -> str:
    return hashlib.sha256(b"genesis" + writer.encode()).hexdigest()


class ChainWriter:
    """Numbers, links and MACs records; holds only the current key.

    Not thread-safe: one writer per event loop (the emitter calls it synchronously).
    """

    __slots__ = ("_key", "last_mac", "seq", "writer")

    def __init__(self, master_key: bytes, writer: str | None = None) -> None:
        if len(master_key) < 32:
            raise ValueError("the audit HMAC key must be at least 32 bytes")
        self.writer = writer or new_writer_id()
        self._key = initial_key(master_key, self.writer)
        self.seq = 0
        self.last_mac = genesis(self.writer)

    def append(self, event: dict[str, Any]) -> bytes:
        """Stamp `event` (mutated in place) and return its serialized line (no newline)."""
        seq = self.seq + 1
        unmapped = event.get("unmapped")
        if not isinstance(unmapped, dict):
            unmapped = {}
            event["unmapped"] = unmapped
        unmapped["integrity"] = {
            "prev": self.last_mac,
            "seq": seq,
            "v": INTEGRITY_VERSION,
            "writer": self.writer,
        }
        body = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)  # may raise: state untouched
        self.seq = seq
        mac = hmac.new(self._key, body, hashlib.sha256).hexdigest()
        self._key = next_key(self._key)
        self.last_mac = mac
        unmapped["integrity"]["mac"] = mac
        # "mac" sorts first inside the integrity object, which is the last object
        # holding these keys in the sorted document: splice instead of re-serialising.
        at = body.rfind(_MAC_ANCHOR) + len(b'"integrity":{')
        return body[:at] + b'"mac":"' + mac.encode() + b'",' + body[at:]
