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
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pycef
import pytest

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
from tests.conftest import ROOT
from tests.integration.hec_receiver import HecReceiver, serve_hec
from tests.integration.rsyslog_receiver import Rsyslog, run_rsyslog

pytestmark = pytest.mark.integration

KEY_HEX = "ef" * 32
SPLUNK_INPUTS = ROOT / "deploy" / "siem" / "splunk-inputs.conf"


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


async def test_hec_shipper_acks_redis_only_after_indexer_ack(
    tmp_path: Path, redis_url: str
) -> None:
    receiver = HecReceiver.from_inputs_conf(SPLUNK_INPUTS, "hec-token-1", busy=1)
    async with serve_hec(receiver) as url:
        settings = Settings().with_overrides(
            **{
                "redis.url": redis_url,
                "base_dir": str(tmp_path),
                "audit.stream": "hec:audit",
                "audit.hec_url": url,
                "audit.shipper_batch": 200,
                "audit.hec_index": receiver.index,
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
    assert len(receiver.indexed) == total
    assert not any(c.pending for c in receiver.channels.values())  # every ackId was confirmed
    assert len(receiver.channels) == 1  # the busy answer came before a channel was used
    canonical = [e["event"] for e in receiver.indexed]
    assert {e["sourcetype"] for e in receiver.indexed} == {receiver.sourcetype}
    assert {e["index"] for e in receiver.indexed} == {"crm_audit"}
    assert (
        receiver.indexed[0]["fields"]["audit_seq"] == canonical[0]["unmapped"]["integrity"]["seq"]
    )
    report = verify_events(canonical, bytes.fromhex(KEY_HEX), None, require_closed=True)
    assert report.ok, report.summary()


async def test_hec_sink_splits_large_batches_and_waits_for_each_ack() -> None:
    receiver = HecReceiver("t", index_after=3)
    async with serve_hec(receiver) as url:
        chain = ChainWriter(bytes.fromhex(KEY_HEX), "h:1:hec")
        lines = [chain.append(_event(i)) for i in range(50)]
        sink = HecSink(url, "t", max_request_bytes=8192, poll_interval=0.01)
        await sink.send(lines)
        await sink.close()
    assert [e["event"] for e in receiver.indexed] == [orjson.loads(line) for line in lines]
    ids = [ack for _, ack in receiver.ack_ids]
    assert len(ids) > 5 and ids == list(range(len(ids)))  # ackIds count from 0 per channel
    assert receiver.ack_queries == 3 * len(ids)  # each request waited until it was indexed


async def test_hec_sink_refuses_to_call_a_batch_delivered_without_an_ack() -> None:
    receiver = HecReceiver("t")
    async with serve_hec(receiver) as url:
        chain = ChainWriter(bytes.fromhex(KEY_HEX), "h:1:hec")
        lines = [chain.append(_event(i)) for i in range(3)]
        wrong = HecSink(url, "not-the-token", poll_interval=0.01)
        with pytest.raises(SinkError, match="403"):
            await wrong.send(lines)
        await wrong.close()
        slow = HecSink(url, "t", poll_interval=0.01, ack_timeout=0.2)
        receiver.index_after = 10**6  # never indexed
        with pytest.raises(SinkError, match="did not acknowledge"):
            await slow.send(lines)
        await slow.close()
    assert receiver.indexed == []


async def test_hec_receiver_follows_the_documented_protocol() -> None:
    """The receiver itself, against Splunk's documented answers."""
    import aiohttp

    receiver = HecReceiver("t", index_after=1)
    channel = str(uuid.uuid4())
    auth = {"Authorization": "Splunk t"}
    async with serve_hec(receiver) as url, aiohttp.ClientSession() as http:

        async def post(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
            async with http.post(url + path, data=body, headers=headers) as resp:
                return resp.status, await resp.json(content_type=None)

        one = b'{"event":{"a":1},"time":"1.5"}{"event":"b"}\n {"event":"c"}'
        assert await post("/services/collector/event", one, {}) == (
            401,
            {"text": "Token is required", "code": 2},
        )
        status, reply = await post("/services/collector/event", one, auth)
        assert (status, reply["code"]) == (400, 10)
        bad_channel = {**auth, "X-Splunk-Request-Channel": "not-a-guid"}
        status, reply = await post("/services/collector/event", one, bad_channel)
        assert (status, reply["code"]) == (400, 11)
        with_channel = {**auth, "X-Splunk-Request-Channel": channel}
        status, reply = await post("/services/collector/event", b'{"time":1}', with_channel)
        assert (status, reply["code"], reply["invalid-event-number"]) == (400, 12, 0)
        status, reply = await post("/services/collector/event", one, with_channel)
        assert (status, reply) == (200, {"text": "Success", "code": 0, "ackId": 0})
        status, reply = await post(
            f"/services/collector/event?channel={channel}", b'{"event":"d"}', auth
        )
        assert reply["ackId"] == 1
        acks = orjson.dumps({"acks": [0, 1, 7]})
        status, reply = await post("/services/collector/ack", acks, with_channel)
        assert reply == {"acks": {"0": True, "1": True, "7": False}}
        status, reply = await post("/services/collector/ack", acks, with_channel)
        assert reply == {"acks": {"0": False, "1": False, "7": False}}  # reported once
    assert [e["event"] for e in receiver.indexed] == [{"a": 1}, "b", "c", "d"]
