"""JSON bodies: buffered, streamed by record, and the two agreeing for every chunking."""

from __future__ import annotations

import gzip
import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.codecs import BodyTooLarge, CodecLimits, make_body_rewriter
from gateway.core.codecs.jsonstream import JsonStream
from gateway.core.rewrite import BlockResponse, RewriteError
from tests.unit.core.codecs.doubles import MaskingEnforcer
from tests.unit.core.codecs.helpers import LIMITS, STREAM_NOW, run, split_at

CT = "application/json; charset=utf-8"

CUSTOMER = {
    "id": "C000123",
    "name": "张伟",
    "mobile": "13812345678",
    "id_number": "110105194912310029",
    "grade": "B",
    "holdings": [{"code": "600519", "name": "贵州茅台", "quantity": 100}],
    "consent": {"marketing": True, "sharing": False},
    "notes": 'call 13912345678 re: "}], {[" and \\ back',
    "balance": 120000.55,
}


def page(n: int, grades: str = "BCA") -> dict[str, Any]:
    results = [{**CUSTOMER, "id": f"C{i:06d}", "grade": grades[i % len(grades)]} for i in range(n)]
    return {"count": n, "page": 1, "owner_mobile": "13700000000", "results": results}


def test_buffered_page_masks_records_and_envelope() -> None:
    enforcer = MaskingEnforcer(["results.item"])
    out = orjson.loads(run(orjson.dumps(page(3)), CT, enforcer))
    assert out["count"] == 3
    assert out["owner_mobile"] == "137********"
    assert [r["id"] for r in out["results"]] == ["C000000", "C000001"]  # grade A dropped
    first = out["results"][0]
    assert first["mobile"] == "*" * 11
    assert first["name"] == "**"
    assert first["holdings"][0]["name"] == "****"
    assert first["notes"].startswith("call 139********")


def test_streamed_page_equals_buffered_page() -> None:
    body = json.dumps(page(50), ensure_ascii=False, indent=2).encode()
    enforcer = MaskingEnforcer(["results.item"])
    buffered = run(body, CT, enforcer)
    streamed = run(split_at(body, range(0, len(body), 97)), CT, enforcer, limits=STREAM_NOW)
    assert orjson.loads(streamed) == orjson.loads(buffered)
    assert len(orjson.loads(streamed)["results"]) == 34


def test_top_level_array_streams_record_by_record() -> None:
    enforcer = MaskingEnforcer(["item"])
    rw = make_body_rewriter(CT, None, enforcer, limits=STREAM_NOW, sensitive=True)
    body = orjson.dumps([{**CUSTOMER, "grade": "C"}] * 3)
    first_record_end = body.index(b"},{") + 1
    out = rw.feed(body[: first_record_end + 1])
    assert b"13812345678" not in out
    assert out.startswith(b"[{")  # the first record left before the rest arrived
    out += rw.feed(body[first_record_end + 1 :]) + rw.finish()
    assert len(orjson.loads(out)) == 3


def test_switches_to_streaming_only_above_the_threshold() -> None:
    enforcer = MaskingEnforcer(["results.item"])
    limits = CodecLimits(
        max_buffered=1 << 20, max_decompressed=1 << 24, max_ratio=100, stream_threshold=4096
    )
    body = orjson.dumps(page(40))
    rw = make_body_rewriter(CT, None, enforcer, limits=limits, sensitive=True)
    assert rw.feed(body[:4000]) == b""  # still buffering
    early = rw.feed(body[4000:8000])
    assert early.startswith(b'{"count":40')  # streaming now: envelope and first records out
    rest = rw.feed(body[8000:]) + rw.finish()
    assert orjson.loads(early + rest) == orjson.loads(run(body, CT, enforcer))


def test_record_under_an_object_key_and_dropped_record_becomes_null() -> None:
    enforcer = MaskingEnforcer(["customer"])
    body = orjson.dumps({"customer": {**CUSTOMER, "grade": "A"}, "meta": {"fetched_at": "x"}})
    streamed = orjson.loads(run(split_at(body, [5, 50]), CT, enforcer, limits=STREAM_NOW))
    assert streamed == {"customer": None, "meta": {"fetched_at": "x"}}
    assert orjson.loads(run(body, CT, enforcer)) == streamed


@pytest.mark.parametrize("limits", [LIMITS, STREAM_NOW], ids=["buffered", "streamed"])
@pytest.mark.parametrize(
    "body",
    [b'{"results": [{"a": 1}', b'{"results": [{"a": 1}]', b"[", b'{"a": "unterminated', b"[1, 2"],
)
def test_truncated_json_fails_at_finish(body: bytes, limits: CodecLimits) -> None:
    rw = make_body_rewriter(
        CT, None, MaskingEnforcer(["results.item"]), limits=limits, sensitive=True
    )
    rw.feed(body)
    with pytest.raises(RewriteError):
        rw.finish()


@pytest.mark.parametrize(
    "body",
    [b"[1,]", b'{"a" 1}', b'{"a": tru}', b"[1] [2]", b'{"a": 1,}', b'[{"a": 1]]', b"[\x00]"],
)
def test_malformed_json_is_refused_when_streaming(body: bytes) -> None:
    with pytest.raises(RewriteError):
        run(body, CT, MaskingEnforcer(["item"]), limits=STREAM_NOW)


def test_invalid_utf8_inside_a_record_is_refused() -> None:
    body = b'[{"name": "\xff\xfe"}]'
    with pytest.raises(RewriteError):
        run(body, CT, MaskingEnforcer(["item"]), limits=STREAM_NOW)
    with pytest.raises(RewriteError):
        run(body, CT, MaskingEnforcer(["item"]))


def test_unparsable_json_blocks_on_sensitive_route_and_is_text_elsewhere() -> None:
    body = b"<html>call 13812345678</html>"
    with pytest.raises(RewriteError, match="not valid JSON"):
        run(body, CT, MaskingEnforcer())
    assert run(body, CT, MaskingEnforcer(), sensitive=False) == b"<html>call 138********</html>"


def test_jsonp_under_a_json_label() -> None:
    out = run(b'cb({"mobile": "13812345678"});', CT, MaskingEnforcer())
    assert out == b'cb({"mobile":"***********"});'


def test_a_record_larger_than_the_limit_is_refused() -> None:
    limits = CodecLimits(
        max_buffered=2048, max_decompressed=1 << 20, max_ratio=100, stream_threshold=0
    )
    body = orjson.dumps([{"notes": "x" * 4096}])
    with pytest.raises(RewriteError, match="too large"):
        run(split_at(body, range(0, len(body), 512)), CT, MaskingEnforcer(["item"]), limits=limits)


def test_buffered_body_over_the_limit_is_refused() -> None:
    limits = CodecLimits(max_buffered=1024, max_decompressed=1 << 20, max_ratio=100)
    with pytest.raises(BodyTooLarge, match="response too large to rewrite"):
        run(orjson.dumps({"notes": "x" * 2048}), CT, MaskingEnforcer(), limits=limits)


def test_block_response_propagates_from_a_streamed_record() -> None:
    body = orjson.dumps({"results": [{**CUSTOMER, "tier": "VIP"}]})
    enforcer = MaskingEnforcer(["results.item"], block_tier="VIP")
    with pytest.raises(BlockResponse):
        run(body, CT, enforcer, limits=STREAM_NOW)


def test_records_with_deep_nesting_and_tricky_strings() -> None:
    record = {
        "grade": "C",
        "mobile": "13812345678",
        "nested": [{"a": [{"b": "}]"}, {"c": '\\"{'}]}] * 20,
        "s": "\u2028 \\u0041 \t",
    }
    body = json.dumps({"results": [record, record]}, ensure_ascii=True).encode()
    enforcer = MaskingEnforcer(["results.item"])
    for size in (1, 7, 64):
        streamed = run(split_at(body, range(0, len(body), size)), CT, enforcer, limits=STREAM_NOW)
        assert orjson.loads(streamed) == orjson.loads(run(body, CT, enforcer))


# -- the first property: streaming equals buffered for every chunking ---------

_KEYS = st.sampled_from(["id", "name", "mobile", "grade", "notes", "items", "results", "x", "键"])
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["A", "B", "13812345678", '"}]', "\\", "张伟"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=30,
)
_RECORDS = st.lists(
    st.fixed_dictionaries(
        {"grade": st.sampled_from(["A", "B", "C"])}, optional={"x": _JSON}
    ).flatmap(
        lambda d: st.dictionaries(_KEYS, _JSON, max_size=4).map(lambda extra: {**extra, **d})
    ),
    max_size=6,
)
_DOCS = st.one_of(
    _JSON,
    _RECORDS,
    st.fixed_dictionaries(
        {"count": st.integers(0, 9), "results": _RECORDS}, optional={"meta": _JSON}
    ),
)


@given(
    doc=_DOCS,
    prefixes=st.sampled_from([["item"], ["results.item"], ["results.item", "item"], ["x"]]),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
    indent=st.sampled_from([None, 1]),
    ascii_only=st.booleans(),
)
def test_streaming_equals_buffered_for_every_chunking(
    doc: Any, prefixes: list[str], cuts: list[int], indent: int | None, ascii_only: bool
) -> None:
    body = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    enforcer = MaskingEnforcer(prefixes)
    buffered = run(body, CT, enforcer)
    streamed = run(split_at(body, cuts), CT, enforcer, limits=STREAM_NOW)
    assert orjson.loads(streamed) == orjson.loads(buffered)


@given(cuts=st.lists(st.integers(min_value=0), max_size=10), cut_at=st.integers(min_value=1))
def test_any_truncation_of_a_streamed_document_fails(cuts: list[int], cut_at: int) -> None:
    body = orjson.dumps(page(4))
    body = body[: 1 + cut_at % (len(body) - 1)]  # non-empty: an empty body is allowed
    rw = make_body_rewriter(
        CT, None, MaskingEnforcer(["results.item"]), limits=STREAM_NOW, sensitive=True
    )
    for chunk in split_at(body, cuts):
        rw.feed(chunk)  # a truncated prefix is not an error until the end
    with pytest.raises(RewriteError):
        rw.finish()


@given(
    doc=_DOCS,
    cuts=st.lists(st.integers(min_value=0), max_size=8),
    fast=st.booleans(),
)
def test_exact_and_guessing_record_scans_agree(doc: Any, cuts: list[int], fast: bool) -> None:
    """The bracket-count guess and the exact scan find the same records, chunking aside."""
    body = json.dumps(doc, ensure_ascii=False).encode()
    enforcer = MaskingEnforcer(["item", "results.item"])
    stream = JsonStream(enforcer, LIMITS, fast=fast)
    out = b"".join(stream.feed(chunk) for chunk in split_at(body, cuts)) + stream.finish()
    assert orjson.loads(out) == orjson.loads(run(body, CT, enforcer))


def test_unbalanced_brackets_in_strings_fall_back_to_the_exact_scan() -> None:
    records = [{"grade": "B", "notes": "closing ] } ]] only", "mobile": "13812345678"}] * 50
    body = orjson.dumps({"results": records})
    enforcer = MaskingEnforcer(["results.item"])
    streamed = run(split_at(body, range(0, len(body), 300)), CT, enforcer, limits=STREAM_NOW)
    assert orjson.loads(streamed) == orjson.loads(run(body, CT, enforcer))
    assert enforcer.records_seen == 100


def test_a_large_content_length_streams_from_the_first_byte() -> None:
    enforcer = MaskingEnforcer(["results.item"])
    body = orjson.dumps(page(3))
    limits = CodecLimits(
        max_buffered=1 << 20, max_decompressed=1 << 24, max_ratio=100, stream_threshold=100
    )
    rw = make_body_rewriter(
        CT, None, enforcer, limits=limits, sensitive=True, content_length=len(body)
    )
    assert rw.feed(body[:60]).startswith(b'{"count":3')
    small = make_body_rewriter(CT, None, enforcer, limits=limits, sensitive=True, content_length=50)
    assert small.feed(body[:60]) == b""  # small bodies buffer (then switch once they are not)


def test_content_length_over_the_limit_of_a_buffered_format_fails_at_the_first_byte() -> None:
    limits = CodecLimits(max_buffered=1000, max_decompressed=1 << 20, max_ratio=10)
    rw = make_body_rewriter(
        "text/xml", None, MaskingEnforcer(), limits=limits, sensitive=True, content_length=5000
    )
    with pytest.raises(BodyTooLarge):
        rw.feed(b"<r>")
    gz = make_body_rewriter(  # compressed: the decoded size is unknown, checked as it arrives
        "text/xml", "gzip", MaskingEnforcer(), limits=limits, sensitive=True, content_length=5000
    )
    assert gz.feed(gzip.compress(b"<r>13812345678</r>")) == b""
    assert gz.finish() == b"<r>138********</r>"
