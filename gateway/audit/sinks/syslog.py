"""RFC 5424 syslog over TCP or TLS with RFC 5425 octet-counting framing.

Each message is `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] BOM MSG`, facility
13 (log audit), severity from the event, structured data with the pivot keys
(uid, seq, writer, decision, user, request id), and as MSG either the canonical
JSON line or its CEF projection. Frames are `LEN SP MSG`, so messages may hold
newlines and exceed 2 KiB. Syslog has no application acks: `send` returns once
the bytes are handed to the kernel (`drain`), and `close` shuts TLS down with
close_notify (asyncio's SSL transport unwraps before closing the socket), which
is what keeps a receiver from discarding the tail of the stream.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway import __version__
from gateway.audit.sinks.base import SinkError
from gateway.audit.sinks.cef import to_cef

FACILITY = 13  # log audit
_SEVERITY = {1: 6, 2: 5, 3: 4, 4: 3, 5: 2}  # OCSF severity_id -> syslog severity
BOM = b"\xef\xbb\xbf"


def sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(value: str, limit: int) -> str:
    token = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return token or "-"


def to_rfc5424(
    line: bytes,
    event: Mapping[str, Any],
    *,
    app_name: str,
    sd_id: str,
    hostname: str,
    message: bytes | None = None,
) -> bytes:
    """One RFC 5424 message (without framing); MSG defaults to the canonical line."""
    pri = FACILITY * 8 + _SEVERITY.get(event.get("severity_id") or 1, 6)
    ms = event.get("time")
    when = (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
        if isinstance(ms, int)
        else "-"
    )
    unmapped = event.get("unmapped") or {}
    integrity = unmapped.get("integrity") or {}
    crm = unmapped.get("crm") or {}
    params = {
        "uid": (event.get("metadata") or {}).get("uid"),
        "seq": integrity.get("seq"),
        "writer": integrity.get("writer"),
        "decision": (crm.get("decision") or {}).get("outcome"),
        "user": ((event.get("actor") or {}).get("user") or {}).get("uid"),
        "req": (event.get("metadata") or {}).get("correlation_uid"),
    }
    sd = " ".join(f'{k}="{sd_escape(str(v))}"' for k, v in params.items() if v is not None)
    msgid = "audit.seal" if "seal" in unmapped else "crm.access"
    head = (
        f"<{pri}>1 {when} {_header_token(hostname, 255)} {_header_token(app_name, 48)} "
        f"{os.getpid()} {msgid} [{sd_id} {sd}] "
    )
    return head.encode() + BOM + (line if message is None else message)


def frame(message: bytes) -> bytes:
    """RFC 5425 octet counting."""
    return str(len(message)).encode() + b" " + message


class SyslogSink:
    """Persistent TCP/TLS connection; reconnects on the next batch after an error."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        app_name: str = "crm-gateway",
        sd_id: str = "crmaudit@32473",
        cef: tuple[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.name = "cef" if cef else "syslog"
        self._host, self._port, self._ssl = host, port, ssl_context
        self._app, self._sd_id, self._cef = app_name, sd_id, cef
        self._timeout = timeout
        self._hostname = socket.gethostname()
        self._writer: asyncio.StreamWriter | None = None

    def render(self, line: bytes) -> bytes:
        event = orjson.loads(line)
        message = None
        if self._cef is not None:
            message = to_cef(
                event,
                vendor=self._cef[0],
                product=self._cef[1],
                version=__version__,
                host=self._hostname,
            ).encode()
        return frame(
            to_rfc5424(
                line,
                event,
                app_name=self._app,
                sd_id=self._sd_id,
                hostname=self._hostname,
                message=message,
            )
        )

    async def send(self, lines: Sequence[bytes]) -> None:
        data = b"".join(self.render(line) for line in lines)
        try:
            writer = self._writer or await self._connect()
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self._timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            await self._drop()
            raise SinkError(f"syslog {self._host}:{self._port}: {exc}") from exc

    async def _connect(self) -> asyncio.StreamWriter:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(self._host, self._port, ssl=self._ssl), self._timeout
        )
        self._writer = writer
        return writer

    async def _drop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), self._timeout)
            except (OSError, TimeoutError, ssl.SSLError):
                return

    async def close(self) -> None:
        """Graceful close: flush, TLS close_notify, FIN."""
        await self._drop()


def client_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx
