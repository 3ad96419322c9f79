"""text/event-stream: events rewritten and sent as they complete."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.codecs import make_body_rewriter
from tests.unit.core.codecs.doubles import MaskingEnforcer
from tests.unit.core.codecs.helpers import LIMITS, run, split_at

CT = "text/event-stream"
STREAM = (
    b'event: customer\nid: 7\ndata: {"mobile": "13812345678",\ndata:  "grade": "B"}\n\n'
    b": keepalive from 13912345678\n\n"
    b"data: call 13712345678\r\ndata: now\r\n\r\n"
    b"retry: 1000\n\n"
)
EXPECTED = (
    b'event: customer\nid: 7\ndata: {"mobile":"***********","grade":"B"}\n\n'
    b": keepalive from 139********\n\n"
    b"data: call 137********\ndata: now\n\n"
    b"retry: 1000\n\n"
)


def test_events_are_rewritten() -> None:
    assert run(STREAM, CT, MaskingEnforcer()) == EXPECTED


def test_each_event_leaves_when_its_blank_line_arrives() -> None:
    rw = make_body_rewriter(CT, None, MaskingEnforcer(), limits=LIMITS, sensitive=True)
    assert rw.feed(b'data: {"mobile": "13812345678"}\n') == b""
    assert rw.feed(b"\n") == b'data: {"mobile":"***********"}\n\n'
    assert rw.feed(b"data: partial 138") == b""
    assert rw.finish() == b"data: partial 138\n"


@given(cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_chunking_does_not_change_the_output(cuts: list[int]) -> None:
    assert run(split_at(STREAM, cuts), CT, MaskingEnforcer()) == EXPECTED


def test_json_payload_is_a_document() -> None:
    out = run(b'data: [{"name": "\xe5\xbc\xa0"}]\n\n', CT, MaskingEnforcer())
    assert orjson.loads(out.removeprefix(b"data: ")) == [{"name": "*"}]
