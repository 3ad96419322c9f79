"""Sinks against real receivers on loopback: RFC 5425 syslog over TLS, Splunk HEC.

The TLS receiver is an asyncio server with a self-signed certificate made here;
it parses octet-counted frames and counts complete messages. The HEC receiver is
an aiohttp server that checks the token and channel, hands out ackIds and
reports them indexed only on the second poll. Both are fed through the shipper
from a real Redis Stream, so "acked in Redis" means "the receiver has it".
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.audit.chain import ChainWriter
from gateway.audit.emitter import AuditEmitter
from gateway.audit.event import build_access_event
from gateway.audit.ship import ship
from gateway.audit.sinks.hec import HecSink
from gateway.audit.sinks.syslog import BOM, SyslogSink, client_context
from gateway.audit.verify import verify_events
from gateway.settings import Settings
from gateway.state.audit_stream import AuditStream

pytestmark = pytest.mark.integration

KEY_HEX = "ef" * 32


@pytest.fixture(autouse=True)
def _audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_GATEWAY_AUDIT_KEY", KEY_HEX)
    monkeypatch.setenv("CRM_GATEWAY_HEC_TOKEN", "hec-token-1")


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class SyslogReceiver:
    """Counts complete RFC 5425 frames; a truncated frame at EOF is not counted."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.clean_closes = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = await reader.readuntil(b" ")
                self.messages.append(await reader.readexactly(int(length[:-1])))
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                self.clean_closes += 1  # EOF after close_notify, between frames
        finally:
            writer.close()


@pytest.fixture
async def tls_receiver(tmp_path: Path) -> AsyncIterator[tuple[SyslogReceiver, int, Path]]:
    cert, key = _self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    receiver = SyslogReceiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield receiver, port, cert
    server.close()


def _event(i: int) -> dict[str, Any]:
    return build_access_event(
        request_id=f"req-{i}",
        subject_dict={"id": "u1", "ip": "10.0.0.1"},
        request_dict={"method": "GET", "route": "/api/contacts/{id}"},
        decision_dict={"allow": True, "revision": "r1"},
        report_dict={"records": {"ids": [f"C{i}"]}, "fields": {"masked": {"L3": {"mobile": 1}}}},
        status=200,
        latency_ms=1,
        now=time.time(),
    )


async def _fill_stream(settings: Settings, n: int) -> int:
    emitter = await AuditEmitter.open(settings)
    for i in range(n):
        emitter.emit(_event(i))
    await emitter.close()
    return emitter.stats.emitted


async def test_syslog_tls_sink_delivers_every_message(
    tls_receiver: tuple[SyslogReceiver, int, Path],
) -> None:
    receiver, port, cert = tls_receiver
    chain = ChainWriter(bytes.fromhex(KEY_HEX), "h:1:tls")
    lines = [chain.append(_event(i)) for i in range(2000)]
    sink = SyslogSink("localhost", port, ssl_context=client_context(str(cert), None, None))
    for start in range(0, 2000, 100):
        await sink.send(lines[start : start + 100])
    await sink.close()  # close_notify, then FIN
    for _ in range(100):
        if len(receiver.messages) == 2000 and receiver.clean_closes:
            break
        await asyncio.sleep(0.02)
    assert len(receiver.messages) == 2000
    assert receiver.clean_closes == 1
    payloads = [m.split(b"] " + BOM, 1)[1] for m in receiver.messages]
    assert payloads == lines  # the canonical line travels verbatim
    report = verify_events([orjson.loads(p) for p in payloads], bytes.fromhex(KEY_HEX), None)
    assert report.ok


async def test_shipper_to_cef_over_tls(
    tmp_path: Path, redis_url: str, tls_receiver: tuple[SyslogReceiver, int, Path]
) -> None:
    receiver, port, cert = tls_receiver
    settings = Settings().with_overrides(
        **{
            "redis.url": redis_url,
            "base_dir": str(tmp_path),
            "audit.stream": "rx:audit",
            "audit.syslog_host": "localhost",
            "audit.syslog_port": port,
            "audit.syslog_ca_file": str(cert),
        }
    )
    total = await _fill_stream(settings, 300)
    stats = await ship(settings, "cef", once=True)
    assert stats.shipped == total
    for _ in range(100):
        if len(receiver.messages) == total:
            break
        await asyncio.sleep(0.02)
    assert len(receiver.messages) == total
    assert all(BOM + b"CEF:0|crm-gateway|CRM Access Gateway|" in m for m in receiver.messages)
    seqs = sorted(int(m.split(b" cn1=")[1].split(b" ")[0]) for m in receiver.messages)
    assert seqs == list(range(1, total + 1))


class HecReceiver:
    def __init__(self, token: str, fail_first: int = 0) -> None:
        self.token = token
        self.events: list[dict[str, Any]] = []
        self.channels: set[str] = set()
        self.polls: dict[int, int] = {}
        self.fail_first = fail_first
        self._next = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/services/collector/event", self.event)
        app.router.add_post("/services/collector/ack", self.ack)
        return app

    def _check(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Splunk {self.token}":
            raise web.HTTPUnauthorized(text='{"text":"Invalid token","code":4}')
        channel = request.headers.get("X-Splunk-Request-Channel")
        if not channel:
            raise web.HTTPBadRequest(text='{"text":"Data channel is missing","code":10}')
        self.channels.add(channel)

    async def event(self, request: web.Request) -> web.Response:
        self._check(request)
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.json_response({"text": "Server is busy", "code": 9}, status=503)
        body = await request.read()
        for chunk in body.split(b"\n"):
            self.events.append(orjson.loads(chunk))
        self._next += 1
        self.polls[self._next] = 0
        return web.json_response({"text": "Success", "code": 0, "ackId": self._next})

    async def ack(self, request: web.Request) -> web.Response:
        self._check(request)
        wanted = (await request.json())["acks"]
        out = {}
        for ack_id in wanted:
            self.polls[ack_id] += 1
            out[str(ack_id)] = self.polls[ack_id] >= 2  # indexed on the second poll
        return web.json_response({"acks": out})


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def test_hec_shipper_acks_redis_only_after_indexer_ack(
    tmp_path: Path, redis_url: str
) -> None:
    receiver = HecReceiver("hec-token-1", fail_first=1)
    runner, port = await _serve(receiver.app())
    try:
        settings = Settings().with_overrides(
            **{
                "redis.url": redis_url,
                "base_dir": str(tmp_path),
                "audit.stream": "hec:audit",
                "audit.hec_url": f"http://127.0.0.1:{port}",
                "audit.shipper_batch": 200,
            }
        )
        total = await _fill_stream(settings, 900)
        first = await ship(settings, "hec", once=True)
        assert first.shipped == 0  # the 503 left everything pending
        assert first.sink_failures == 1
        stream = AuditStream.open(redis_url, "hec:audit")
        assert await stream.pending_count("shippers") == 200
        stats = await ship(settings, "hec", once=True)
        assert stats.shipped == total
        assert await stream.pending_count("shippers") == 0
        await stream.close()
        assert len(receiver.events) == total
        assert all(n >= 2 for n in receiver.polls.values())
        assert len(receiver.channels) == 2  # one channel per sink instance
        canonical = [e["event"] for e in receiver.events]
        assert receiver.events[0]["sourcetype"] == "crm:audit:ocsf"
        assert (
            receiver.events[0]["fields"]["audit_seq"]
            == canonical[0]["unmapped"]["integrity"]["seq"]
        )
        report = verify_events(canonical, bytes.fromhex(KEY_HEX), None, require_closed=True)
        assert report.ok, report.summary()
    finally:
        await runner.cleanup()


async def test_hec_sink_splits_large_batches_and_waits_for_each_ack() -> None:
    receiver = HecReceiver("t")
    runner, port = await _serve(receiver.app())
    try:
        chain = ChainWriter(bytes.fromhex(KEY_HEX), "h:1:hec")
        lines = [chain.append(_event(i)) for i in range(50)]
        sink = HecSink(f"http://127.0.0.1:{port}", "t", max_request_bytes=8192, poll_interval=0.01)
        await sink.send(lines)
        await sink.close()
        assert len(receiver.events) == 50
        assert len(receiver.polls) > 5  # several requests, each with its own ackId
        assert all(n >= 2 for n in receiver.polls.values())
    finally:
        await runner.cleanup()
