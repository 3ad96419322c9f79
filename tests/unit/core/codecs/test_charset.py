"""Charsets: legacy Chinese encodings and BOMs survive the round trip; bad bytes fail closed."""

from __future__ import annotations

import orjson
import pytest

from gateway.core.codecs import make_body_rewriter
from gateway.core.codecs.charset import codec_name
from gateway.core.rewrite import RewriteError
from tests.unit.core.codecs.doubles import MaskingEnforcer
from tests.unit.core.codecs.helpers import LIMITS, STREAM_NOW, run, split_at

DOC = {"results": [{"name": "张伟", "mobile": "13812345678", "notes": "北京市海淀区 13912345678"}]}


@pytest.mark.parametrize("charset", ["gbk", "GB2312", "gb18030"])
@pytest.mark.parametrize("streaming", [False, True])
def test_legacy_chinese_json_is_decoded_rewritten_and_reencoded(
    charset: str, streaming: bool
) -> None:
    body = orjson.dumps(DOC).decode().encode("gb18030")
    ct = f"application/json; charset={charset}"
    limits = STREAM_NOW if streaming else LIMITS
    chunks = split_at(body, range(1, len(body), 3))
    out = run(chunks, ct, MaskingEnforcer(["results.item"]), limits=limits)
    assert orjson.loads(out.decode("gb18030")) == {
        "results": [{"name": "**", "mobile": "***********", "notes": "北京市海淀区 139********"}]
    }


def test_content_type_keeps_the_declared_charset() -> None:
    rw = make_body_rewriter(
        "text/csv; charset=GBK", None, MaskingEnforcer(), limits=LIMITS, sensitive=True
    )
    assert rw.content_type == "text/csv; charset=GBK"


def test_utf8_bom_is_kept() -> None:
    body = b"\xef\xbb\xbf" + orjson.dumps({"mobile": "13812345678"})
    for chunks in ([body], split_at(body, [1, 2, 3])):
        out = run(chunks, "application/json", MaskingEnforcer())
        assert out == b'\xef\xbb\xbf{"mobile":"***********"}'


@pytest.mark.parametrize(
    ("ct", "body"),
    [
        ("application/json; charset=utf-8", b'{"notes": "\xc3\x28"}'),
        ("text/plain; charset=utf-8", b"hello \xff world"),
        ("text/csv; charset=utf-8", b"name,mobile\n\xe5\xbc,1\n"),
        ("application/json; charset=gbk", b'{"notes": "\x81"}'),
        ("text/plain; charset=gbk", b"\x81\x20"),
        ("text/event-stream", b"data: \xff\n\n"),
    ],
)
def test_invalid_bytes_are_refused(ct: str, body: bytes) -> None:
    with pytest.raises(RewriteError):
        run(body, ct, MaskingEnforcer())


def test_unknown_charset_is_refused() -> None:
    with pytest.raises(RewriteError, match="unsupported charset"):
        run(b"{}", "application/json; charset=klingon", MaskingEnforcer())


def test_latin1_text_is_supported_through_python_codecs() -> None:
    """Read as Latin-1, written as UTF-8 (only UTF-8 and the GB family are kept)."""
    body = "café 13812345678".encode("latin-1")
    out = run(body, "text/plain; charset=iso-8859-1", MaskingEnforcer())
    assert out.decode("utf-8") == "café 138********"


def test_charsets_that_reuse_ascii_bytes_leave_as_utf8() -> None:
    from gateway.core.codecs.charset import output_charset, with_charset

    for charset in ("utf-7", "hz", "iso2022_jp", "utf-16-be", "utf-32", "cp037", "big5"):
        assert output_charset(codec_name(charset)) == "utf-8", charset
    for charset in ("utf-8", "GBK", "gb2312", "gb18030", "us-ascii"):
        assert output_charset(codec_name(charset)) == codec_name(charset), charset
    assert with_charset('text/csv; header=present; charset="hz"', "utf-8") == (
        "text/csv; header=present; charset=utf-8"
    )


@pytest.mark.parametrize("charset", ["rot13", "base64", "zlib", "hex", "uu"])
def test_text_transforms_are_no_charsets(charset: str) -> None:
    with pytest.raises(RewriteError):
        codec_name(charset)
