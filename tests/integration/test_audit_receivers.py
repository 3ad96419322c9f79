"""Sinks against real receivers on loopback: rsyslog over RFC 5425 TLS, Splunk HEC.

Syslog and CEF go into a real rsyslogd running the shipped deploy/siem/rsyslog-tls.conf
(tests/integration/rsyslog_receiver.py); the fields rsyslog's own RFC 5424 parser
extracted are checked, and CEF lines are parsed with pycef. HEC goes to
tests/integration/hec_receiver.py, an implementation of Splunk's documented indexer
acknowledgement protocol (no HEC server is installable here). All but the direct sink
tests are fed through the shipper from a real Redis Stream, so "acked in Redis" means
"the receiver has it".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pycef
import pytest
from aiohttp import web

from gateway.audit.chain import ChainWriter
from gateway.audit.emitter import AuditEmitter
from gateway.audit.event import build_access_event
from gateway.audit.ship import ship
from gateway.audit.sinks.base import SinkError
from gateway.audit.sinks.hec import HecSink
from gateway.audit.sinks.syslog import BOM, SyslogSink, client_context
from gateway.audit.verify import verify_events
from gateway.settings import Settings
from gateway.state.audit_stream import FIELD, AuditStream
from tests.integration.rsyslog_receiver import Rsyslog, run_rsyslog

pytestmark = pytest.mark.integration

KEY_HEX = "ef" * 32


@pytest.fixture(autouse=True)
def _audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_GATEWAY_AUDIT_KEY", KEY_HEX)
    monkeypatch.setenv("CRM_GATEWAY_HEC_TOKEN", "hec-token-1")


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    yield from run_rsyslog(tmp_path)


def _client_tls(rx: Rsyslog) -> ssl.SSLContext:
    return client_context(str(rx.tls.ca), str(rx.tls.client_cert), str(rx.tls.client_key))


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


async def test_syslog_tls_into_rsyslog_parsed_by_rsyslog(rsyslog: Rsyslog) -> None:
    chain = ChainWriter(bytes.fromhex(KEY_HEX), "h:1:tls")
    lines = [chain.append(_event(i)) for i in range(600)]
    # a client without a certificate is refused by the shipped x509/certvalid mode
    anonymous = SyslogSink(
        "localhost", rsyslog.port, ssl_context=client_context(str(rsyslog.tls.ca), None, None)
    )
    with contextlib.suppress(SinkError):
        await anonymous.send(lines[:5])
    await anonymous.close()
    sink = SyslogSink("localhost", rsyslog.port, ssl_context=_client_tls(rsyslog))
    for start in range(0, len(lines), 100):
        await sink.send(lines[start : start + 100])
    await sink.close()  # close_notify, then FIN
    archived = await asyncio.to_thread(rsyslog.wait_for, len(lines))
    assert archived == lines  # the canonical line travels verbatim, nothing from the anonymous one
    report = verify_events([orjson.loads(a) for a in archived], bytes.fromhex(KEY_HEX), None)
    assert report.ok, report.summary()
    parsed = rsyslog.parsed_records()
    assert len(parsed) == len(lines)
    for record, line in zip(parsed, lines, strict=True):
        event = orjson.loads(line)
        integrity = event["unmapped"]["integrity"]
        assert record["version"] == "1"  # parsed as RFC 5424, not as legacy syslog
        assert record["hostname"] == socket.gethostname()
        assert record["app_name"] == "crm-gateway"
        assert record["procid"] == str(os.getpid())
        assert record["msgid"] == "crm.access"
        assert record["facility"] == "13"  # log audit
        assert record["severity"] == "6"
        assert record["sd"].startswith(
            f'[crmaudit@32473 uid="{event["metadata"]["uid"]}" seq="{integrity["seq"]}" '
            f'writer="{integrity["writer"]}" decision="allow_masked" user="u1" '
            f'req="{event["metadata"]["correlation_uid"]}"]'
        )
        assert record["msg"].encode() == BOM + line


async def test_shipper_to_cef_over_tls_into_rsyslog_parsed_by_pycef(
    tmp_path: Path, redis_url: str, rsyslog: Rsyslog
) -> None:
    settings = Settings().with_overrides(
        **{
            "redis.url": redis_url,
            "base_dir": str(tmp_path),
            "audit.stream": "rx:audit",
            "audit.syslog_host": "localhost",
            "audit.syslog_port": rsyslog.port,
            "audit.syslog_ca_file": str(rsyslog.tls.ca),
            "audit.syslog_cert_file": str(rsyslog.tls.client_cert),
            "audit.syslog_key_file": str(rsyslog.tls.client_key),
        }
    )
    total = await _fill_stream(settings, 300)
    canonical = {e["metadata"]["uid"]: e for e in await _stream_events(redis_url, "rx:audit")}
    stats = await ship(settings, "cef", once=True)
    assert stats.shipped == total
    archived = await asyncio.to_thread(rsyslog.wait_for, total)
    assert len(archived) == total
    seqs = []
    for line in archived:
        cef = pycef.parse(line.decode())
        assert cef is not None, line
        assert cef["CEFVersion"] == "0"
        assert cef["DeviceVendor"] == "crm-gateway"
        assert cef["DeviceProduct"] == "CRM Access Gateway"
        event = canonical[cef["externalId"]]  # the pivot back to the canonical record
        seqs.append(int(cef["auditSeq"]))  # pycef names custom fields by their label
        assert int(cef["auditSeq"]) == event["unmapped"]["integrity"]["seq"]
        assert int(cef["rt"]) == event["time"]
        if event["unmapped"].get("seal") is None:
            assert cef["suid"] == "u1"
            assert cef["src"] == "10.0.0.1"
            assert cef["requestMethod"] == "GET"
            assert cef["act"] == "allow_masked"
            assert cef["customerIds"] == event["unmapped"]["crm"]["record_ids"][0]
    assert sorted(seqs) == list(range(1, total + 1))
    parsed = rsyslog.parsed_records()
    assert {r["msgid"] for r in parsed} <= {"crm.access", "audit.seal"}


async def _stream_events(redis_url: str, name: str) -> list[dict[str, Any]]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        entries = await client.xrange(name)
    finally:
        await client.aclose()
    return [orjson.loads(fields[FIELD]) for _, fields in entries or [] if fields]


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
