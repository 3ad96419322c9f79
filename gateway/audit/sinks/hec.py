"""Splunk HTTP Event Collector sink with indexer acknowledgement.

A batch is one POST of concatenated event objects to /services/collector/event
with `Authorization: Splunk <token>` and a per-sink channel
(`X-Splunk-Request-Channel`). A 200 only means "valid"; with `ack` on, the sink
polls /services/collector/ack with the returned `ackId` until Splunk says the
batch is indexed, and only then reports success (so the shipper acks Redis only
for indexed events). The canonical line is embedded verbatim as `event`.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from gateway.audit.sinks.base import SinkError


class HecSink:
    name = "hec"

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ack: bool = True,
        ack_timeout: float = 30.0,
        sourcetype: str = "crm:audit:ocsf",
        index: str = "",
        verify_tls: bool = True,
        timeout: float = 10.0,
        poll_interval: float = 0.2,
        max_request_bytes: int = 512 * 1024,
    ) -> None:
        self._url = url.rstrip("/")
        self._ack = ack
        self._ack_timeout = ack_timeout
        self._poll = poll_interval
        self._max_bytes = max_request_bytes
        self._meta = {
            "host": socket.gethostname(),
            "source": "crm-gateway",
            "sourcetype": sourcetype,
        }
        if index:
            self._meta["index"] = index
        self.channel = str(uuid.uuid4())
        self._headers = {
            "Authorization": f"Splunk {token}",
            "X-Splunk-Request-Channel": self.channel,
            "Content-Type": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._verify = verify_tls
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(ssl=self._verify or False)
            )
        return self._session

    def render(self, line: bytes) -> bytes:
        event: dict[str, Any] = orjson.loads(line)
        integrity = (event.get("unmapped") or {}).get("integrity") or {}
        crm = (event.get("unmapped") or {}).get("crm") or {}
        wrapper: dict[str, Any] = dict(self._meta)
        wrapper["time"] = f"{int(event.get('time') or 0) / 1000:.3f}"
        wrapper["fields"] = {
            "audit_seq": integrity.get("seq"),
            "audit_writer": integrity.get("writer"),
            "decision": (crm.get("decision") or {}).get("outcome"),
            "severity": event.get("severity_id"),
        }
        head = orjson.dumps(wrapper)
        return head[:-1] + b',"event":' + line + b"}"

    async def send(self, lines: Sequence[bytes]) -> None:
        """POST in requests of at most `max_request_bytes` (HEC's content-length limit
        is 1 MB on older Splunk versions), each acknowledged before the next."""
        group: list[bytes] = []
        size = 0
        for rendered in (self.render(line) for line in lines):
            if group and size + len(rendered) > self._max_bytes:
                await self._post(b"\n".join(group))
                group, size = [], 0
            group.append(rendered)
            size += len(rendered) + 1
        if group:
            await self._post(b"\n".join(group))

    async def _post(self, body: bytes) -> None:
        try:
            async with self._client().post(
                f"{self._url}/services/collector/event", data=body, headers=self._headers
            ) as resp:
                reply: Any = await resp.json(content_type=None)
                if resp.status != 200:
                    raise SinkError(f"HEC refused the batch: {resp.status} {reply}")
            if self._ack:
                ack_id = reply.get("ackId") if isinstance(reply, dict) else None
                if not isinstance(ack_id, int):
                    raise SinkError("HEC returned no ackId (indexer acknowledgement off?)")
                await self._wait_ack(ack_id)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SinkError(f"HEC: {type(exc).__name__}: {exc}") from exc

    async def _wait_ack(self, ack_id: int) -> None:
        deadline = time.monotonic() + self._ack_timeout
        payload = orjson.dumps({"acks": [ack_id]})
        while time.monotonic() < deadline:
            async with self._client().post(
                f"{self._url}/services/collector/ack", data=payload, headers=self._headers
            ) as resp:
                reply: Any = await resp.json(content_type=None)
                if resp.status != 200:
                    raise SinkError(f"HEC ack poll failed: {resp.status}")
            if isinstance(reply, dict) and (reply.get("acks") or {}).get(str(ack_id)) is True:
                return
            await asyncio.sleep(self._poll)
        raise SinkError(f"HEC did not acknowledge ackId {ack_id} in {self._ack_timeout}s")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
