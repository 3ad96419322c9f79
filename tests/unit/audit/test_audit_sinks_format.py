"""CEF escaping, RFC 5424 structure and RFC 5425 octet-counting framing."""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.audit.chain import ChainWriter
from gateway.audit.sinks.cef import escape_extension, escape_header, to_cef
from gateway.audit.sinks.syslog import BOM, SyslogSink, frame, sd_escape, to_rfc5424


def _event() -> dict[str, Any]:
    return {
        "time": 1_700_000_000_123,
        "severity_id": 3,
        "status_id": 1,
        "message": "crm access allow_masked",
        "metadata": {"uid": "0190-uid", "correlation_uid": "req=1|x"},
        "actor": {"user": {"uid": "u\\7", "name": "张 伟"}},
        "src_endpoint": {"ip": "10.0.0.1"},
        "http_request": {"http_method": "GET", "url": {"path": "/a|b=c"}},
        "api": {"operation": "contacts|read"},
        "policy": {"version": "rev\n9"},
        "unmapped": {
            "crm": {
                "decision": {"outcome": "allow_masked"},
                "clearance": "L3",
                "record_ids": ["C1", "C2"],
                "records": {"ids_total": 2},
                "fields": {"masked": {"L3": {"mobile": 2}}, "dropped": {"L4": {"id": 1}}},
            },
            "integrity": {"seq": 42, "writer": "h:1:x", "mac": "m"},
        },
    }


def test_cef_header_escaping() -> None:
    assert escape_header("a|b\\c") == "a\\|b\\\\c"
    assert escape_header("line\nbreak") == "line break"


def test_cef_extension_escaping() -> None:
    assert escape_extension("a=b\\c|d") == "a\\=b\\\\c|d"
    assert escape_extension("x\r\ny") == "x\\r\\ny"


def test_cef_projection() -> None:
    line = to_cef(_event(), vendor="Acme|Corp", product="GW", version="1.0", host="gw1")
    header, _, ext = line.partition("|rt=")
    parts = re.split(r"(?<!\\)\|", header)
    assert parts == [
        "CEF:0",
        "Acme\\|Corp",
        "GW",
        "1.0",
        "contacts\\|read:allow_masked",
        "crm access allow_masked",
        "5",
    ]
    assert "request=/a|b\\=c" in ext
    assert "suid=u\\\\7" in ext
    assert "cs1=rev\\n9" in ext
    assert "cs3=C1,C2" in ext
    assert "cs4=mobile" in ext
    assert "cs5=id" in ext
    assert "cn1=42" in ext
    assert "externalId=0190-uid" in ext
    assert "\n" not in line


def test_sd_escape() -> None:
    assert sd_escape('a"b]c\\d') == 'a\\"b\\]c\\\\d'


def test_rfc5424_message_layout() -> None:
    event = _event()
    line = orjson.dumps(event)
    msg = to_rfc5424(line, event, app_name="crm-gateway", sd_id="crmaudit@32473", hostname="gw 1")
    head, _, rest = msg.partition(b" [crmaudit@32473 ")
    pri_version, ts, host, app, _pid, msgid = head.decode().split(" ")
    assert pri_version == "<108>1"  # facility 13 (log audit) * 8 + warning (4), version 1
    assert ts == "2023-11-14T22:13:20.123Z"
    assert host == "gw1"
    assert app == "crm-gateway"
    assert msgid == "crm.access"
    sd, _, body = rest.partition(b"] ")
    assert b'seq="42"' in sd
    assert b'decision="allow_masked"' in sd
    assert b'user="u\\\\7"' in sd
    assert body.startswith(BOM)
    assert body[len(BOM) :] == line


def _deframe(data: bytes) -> list[bytes]:
    out = []
    while data:
        length, _, rest = data.partition(b" ")
        n = int(length)
        out.append(rest[:n])
        data = rest[n:]
    return out


def test_octet_counting_survives_newlines_and_utf8() -> None:
    messages = [b"one\ntwo", "三 four".encode(), b"x" * 9000]
    data = b"".join(frame(m) for m in messages)
    assert _deframe(data) == messages


def test_sink_renders_cef_payload() -> None:
    line = ChainWriter(b"k" * 32, "w").append(_event())
    sink = SyslogSink("127.0.0.1", 1, ssl_context=None, cef=("Acme", "GW"))
    framed = sink.render(line)
    (msg,) = _deframe(framed)
    assert BOM + b"CEF:0|Acme|GW|" in msg
