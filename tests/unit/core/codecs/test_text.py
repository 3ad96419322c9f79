"""Textual bodies and content-type confusion: a JSON body is masked as JSON whatever its label."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.codecs import CodecLimits, make_body_rewriter
from gateway.core.rewrite import RewriteError
from tests.unit.core.codecs.doubles import MaskingEnforcer
from tests.unit.core.codecs.helpers import LIMITS, run, split_at

JSON_BODY = orjson.dumps({"results": [{"name": "张伟", "mobile": "13812345678", "grade": "B"}]})
MASKED = {"results": [{"name": "**", "mobile": "***********", "grade": "B"}]}


@pytest.mark.parametrize(
    "ct", ["text/html; charset=utf-8", "text/plain", None, "application/javascript"]
)
def test_json_under_any_textual_label_is_masked_as_json(ct: str | None) -> None:
    out = run(JSON_BODY, ct, MaskingEnforcer(["results.item"]))
    assert orjson.loads(out) == MASKED


def test_jsonp_is_masked_as_json() -> None:
    body = b"/**/ jQuery123.cb(" + JSON_BODY + b");\n"
    out = run(body, "text/javascript", MaskingEnforcer(["results.item"]))
    assert out.startswith(b"/**/jQuery123.cb(")
    assert out.endswith(b");")
    assert orjson.loads(out[len(b"/**/jQuery123.cb(") : -2]) == MASKED


def test_ndjson_labelled_text_plain_is_masked_per_line() -> None:
    body = (
        b'{"mobile": "13812345678", "grade": "B"}\n'
        b'{"mobile": "1", "grade": "A"}\n\n[1, "13912345678"]\n'
    )
    out = run(body, "text/plain", MaskingEnforcer([""]))  # each line: a document
    assert out == b'{"mobile":"***********","grade":"B"}\n[1,"139********"]\n'


def test_plain_text_goes_through_the_free_text_detectors() -> None:
    body = "<p>客户张伟 手机13812345678</p>".encode()
    assert (
        run(body, "text/html; charset=utf-8", MaskingEnforcer()).decode()
        == "<p>客户张伟 手机138********</p>"
    )


def test_no_content_type_is_sent_as_text_plain() -> None:
    rw = make_body_rewriter(None, None, MaskingEnforcer(), limits=LIMITS, sensitive=True)
    assert rw.content_type == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "body",
    [b"%PDF-1.7\n%\xe2\xe3", b"\x89PNG\r\n\x1a\n\x00\x00", b"PK\x03\x04\x14\x00", b"abc\x00def"],
)
def test_binary_bytes_under_a_textual_label_are_refused(body: bytes) -> None:
    with pytest.raises(RewriteError):
        run(body, "text/plain", MaskingEnforcer())


@pytest.mark.parametrize(
    "ct",
    [
        "image/png",
        "application/pdf",
        "application/octet-stream",
        "application/zip",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "multipart/form-data; boundary=x",
    ],
)
def test_binary_types_are_refused_at_the_first_byte(ct: str) -> None:
    rw = make_body_rewriter(ct, None, MaskingEnforcer(), limits=LIMITS, sensitive=True)
    assert rw.content_type == ct
    with pytest.raises(RewriteError, match="cannot rewrite"):
        rw.feed(b"%PDF-1.7")
    with pytest.raises(RewriteError, match="cannot rewrite"):
        rw.finish()


def test_text_over_the_limit_is_refused() -> None:
    limits = CodecLimits(max_buffered=100, max_decompressed=1 << 20, max_ratio=10)
    with pytest.raises(RewriteError, match="response too large to rewrite"):
        run([b"x" * 60, b"y" * 60], "text/plain", MaskingEnforcer(), limits=limits)


def test_ndjson_declared_is_streamed_line_by_line() -> None:
    rw = make_body_rewriter(
        "application/x-ndjson", None, MaskingEnforcer(), limits=LIMITS, sensitive=True
    )
    assert (
        rw.feed(b'{"mobile": "13812345678", "grade": "C"}\n{"mob')
        == b'{"mobile":"***********","grade":"C"}\n'
    )
    assert rw.feed(b'ile": "1", "grade": "A"}\n') == b""  # grade A dropped
    assert rw.finish() == b""


@pytest.mark.parametrize("ct", ["application/x-ndjson", "application/jsonl"])
def test_bad_ndjson_line_blocks_on_sensitive_route(ct: str) -> None:
    with pytest.raises(RewriteError, match="not JSON"):
        run(b'{"a": 1}\nnot json 13812345678\n', ct, MaskingEnforcer())
    out = run(b'{"a": 1}\nnot json 13812345678\n', ct, MaskingEnforcer(), sensitive=False)
    assert out == b'{"a":1}\nnot json 138********\n'


_LINES = st.lists(
    st.fixed_dictionaries(
        {"grade": st.sampled_from("ABC"), "mobile": st.sampled_from(["13812345678", "x\n"])},
        optional={"notes": st.text(max_size=8)},
    ),
    min_size=2,  # one line alone is a JSON document, not NDJSON
    max_size=8,
)


@given(records=_LINES, cuts=st.lists(st.integers(min_value=0), max_size=10), crlf=st.booleans())
def test_streamed_ndjson_equals_buffered_ndjson(
    records: list[dict[str, str]], cuts: list[int], crlf: bool
) -> None:
    end = b"\r\n" if crlf else b"\n"
    body = b"".join(orjson.dumps(r) + end for r in records)
    buffered = run(body, "text/plain", MaskingEnforcer())
    streamed = run(split_at(body, cuts), "application/x-ndjson", MaskingEnforcer())
    assert streamed == buffered
    assert len(streamed.splitlines()) == sum(r["grade"] != "A" for r in records)
