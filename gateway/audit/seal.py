"""Signed seals over the chain (tamper evidence, layer 2).

Every `every` records, every `interval` seconds with activity, and once at close,
the writer appends a seal record to its own chain. The seal says "writer W wrote
records from_seq..upto_seq, the last of which had MAC m", links to the previous
seal's signature and is signed with Ed25519, so

- anyone holding only the public key can check that a seal is genuine;
- a chain whose last record is not a `closing` seal was cut short (or its writer
  is still running / crashed): the verifier reports the unsealed tail and the
  time of the last seal; since idle writers still seal every `heartbeat`
  seconds, a last seal older than that means the writer died or the tail is gone;
- the seal is itself an HMAC-chained record, so removing it leaves a gap.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gateway.audit.chain import ChainWriter
from gateway.audit.event import OCSF_VERSION, PRODUCT
from gateway.audit.values import uuid7


def seal_body_bytes(body: dict[str, Any]) -> bytes:
    """What the Ed25519 signature covers: the seal object without `sig`, sorted keys."""
    return orjson.dumps({k: v for k, v in body.items() if k != "sig"}, option=orjson.OPT_SORT_KEYS)


def sign(key: Ed25519PrivateKey, body: dict[str, Any]) -> str:
    return base64.b64encode(key.sign(seal_body_bytes(body))).decode()


def signature_ok(public_key: Ed25519PublicKey, body: dict[str, Any]) -> bool:
    from cryptography.exceptions import InvalidSignature

    sig = body.get("sig")
    if not isinstance(sig, str):
        return False
    try:
        public_key.verify(base64.b64decode(sig), seal_body_bytes(body))
    except (InvalidSignature, ValueError):
        return False
    return True


def is_seal(event: dict[str, Any]) -> bool:
    unmapped = event.get("unmapped")
    return isinstance(unmapped, dict) and isinstance(unmapped.get("seal"), dict)


class SealedChain:
    """A ChainWriter that also appends seal records when they are due."""

    def __init__(
        self,
        chain: ChainWriter,
        signer: Ed25519PrivateKey | None,
        *,
        every: int = 1000,
        interval: float = 10.0,
        heartbeat: float = 60.0,
    ) -> None:
        self.chain = chain
        self._signer = signer
        self._every = every
        self._interval = interval
        self._heartbeat = heartbeat
        self._since = 0
        self._from_seq = 1
        self._prev_sig: str | None = None
        self._last_seal = time.monotonic()
        self.closed = False

    @property
    def writer(self) -> str:
        return self.chain.writer

    @property
    def unsealed(self) -> int:
        """Records appended since the last seal."""
        return self._since

    def append(self, event: dict[str, Any]) -> bytes:
        if self.closed:
            raise RuntimeError("audit chain already closed")
        line = self.chain.append(event)
        self._since += 1
        return line

    def seal_due(self, now_monotonic: float | None = None) -> bool:
        """Every `every` records, `interval` seconds after activity, or a heartbeat."""
        if self.closed:
            return False
        if self._since >= self._every:
            return True
        now = time.monotonic() if now_monotonic is None else now_monotonic
        if self._since == 0:
            return now - self._last_seal >= self._heartbeat
        return now - self._last_seal >= self._interval

    def seal(self, *, closing: bool = False) -> bytes:
        """Append a seal record covering the records since the previous seal."""
        if self.closed:
            raise RuntimeError("audit chain already closed")
        now = time.time()
        body: dict[str, Any] = {
            "writer": self.chain.writer,
            "from_seq": self._from_seq,
            "upto_seq": self.chain.seq,
            "count": self.chain.seq - self._from_seq + 1,
            "last_mac": self.chain.last_mac,
            "prev_sig": self._prev_sig,
            "closing": closing,
            "time": int(now * 1000),
        }
        body["sig"] = sign(self._signer, body) if self._signer is not None else None
        record = {
            "time": body["time"],
            "type": "audit.seal",
            "message": "audit chain closed" if closing else "audit chain seal",
            "metadata": {
                "version": OCSF_VERSION,
                "product": PRODUCT,
                "uid": uuid7(),
                "log_name": "crm-audit",
            },
            "unmapped": {"seal": body},
        }
        line = self.chain.append(record)
        self._prev_sig = body["sig"]
        self._from_seq = self.chain.seq + 1
        self._since = 0
        self._last_seal = time.monotonic()
        self.closed = closing
        return line
