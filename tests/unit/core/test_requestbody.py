"""Write bodies of every type parse into one tree; what cannot be inspected is refused."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from gateway.core.catalog import Catalog
from gateway.core.model import Subject
from gateway.core.requestbody import (
    BODY_KEY,
    BodyLimits,
    WriteBody,
    parse_write_body,
    query_reading,
)
from gateway.core.static_policy import static_decision
from gateway.core.taxonomy import Taxonomy
from gateway.core.writeguard import guard_body
from gateway.errors import Forbidden, MaskedValueWrite, UnsupportedMediaType

ROOT = Path(__file__).resolve().parents[3]
TAX = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
ROUTE = Catalog.load(ROOT / "config" / "crm" / "demo.yaml").route("customer_update")
L2 = static_decision(TAX, Subject(id="s", clearance="L2"), method="PATCH")
LIMITS = BodyLimits(max_decoded=1 << 20, max_ratio=50)
B = "XyZ"


def guard(body: WriteBody, mode: str) -> Any:
    return guard_body(body, route=ROUTE, taxonomy=TAX, decision=L2, mode=mode,  # type: ignore[arg-type]
                      validate_entry=False)  # fmt: skip


def parse(raw: bytes, ctype: str | list[str] | None = None, enc: str | None = None) -> WriteBody:
    types = [ctype] if isinstance(ctype, str) else (ctype or [])
    return parse_write_body(raw, types, [enc] if enc else [], LIMITS)


def trees(raw: bytes, ctype: str | list[str] | None = None, enc: str | None = None) -> list[Any]:
    return [(r.format, r.tree) for r in parse(raw, ctype, enc).readings]


def refused(raw: bytes, ctype: str | list[str] | None = None, enc: str | None = None) -> str:
    with pytest.raises(UnsupportedMediaType) as info:
        parse(raw, ctype, enc)
    assert info.value.status == 415
    return str(info.value.details["reason"])


def mp(*parts: str) -> bytes:
    return ("".join(f"--{B}\r\n{p}\r\n" for p in parts) + f"--{B}--\r\n").encode()


J = {"mobile": "13812345678", "name": "王芳"}
RAW = json.dumps(J, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "text/json",
        "application/x-json",
        "application/vnd.api+json",
        "text/plain",
        "text/plain; charset=UTF-8",
        "application/octet-stream",
        None,
    ],
)
def test_json_under_any_label(ctype: str | None) -> None:
    assert trees(RAW, ctype) == [("json", J)]


def test_charsets_and_boms() -> None:
    assert trees(
        json.dumps(J, ensure_ascii=False).encode("gbk"), "application/json; charset=gbk"
    ) == [("json", J)]
    assert trees(json.dumps(J).encode("utf-16"), "application/json; charset=utf-16") == [
        ("json", J)
    ]
    assert trees(json.dumps(J).encode("utf-16"), "application/json") == [("json", J)]  # BOM decides
    assert trees(b"\xef\xbb\xbf" + RAW, "application/json") == [("json", J)]
    assert trees(json.dumps(J, ensure_ascii=False).encode("gbk")) == [("json", J)]  # undeclared
    assert "byte-order mark" in refused(
        json.dumps(J).encode("utf-16"), "application/json; charset=gbk"
    )
    assert "without a byte-order mark" in refused(
        RAW.decode().encode("utf-16-le"), "application/json; charset=utf-16"
    )
    assert "charset" in refused(RAW, "application/json; charset=utf-7")


def test_a_charset_the_crm_may_ignore_is_read_both_ways() -> None:
    """latin-1 declared, UTF-8 sent: a CRM that ignores the charset reads 徐某."""
    body = parse('{"name": "徐某"}'.encode(), "application/json; charset=iso-8859-1")
    assert [r.tree for r in body.readings][1] == {"name": "徐某"}
    with pytest.raises(MaskedValueWrite):
        guard(body, "strip")


@pytest.mark.parametrize(
    ("raw", "ctype", "reason"),
    [
        (RAW, "application/json;x=multipart/form-data", "parameter"),
        (RAW, ["application/json", "text/plain"], "more than one"),
        (RAW, "application/json; charset=utf-8; charset=gbk", "twice"),
        (RAW, "application/json; boundary=x", "boundary"),
        (RAW, "json", "malformed"),
        (RAW, "text/html", "media type"),
        (RAW, "text/csv", "media type"),
        (b'{"a": 1, "a": 2}', "application/json", "duplicate"),
        (b'{"a": NaN}', "application/json", "constant"),
        (b"a=1", "application/json", "invalid JSON"),
        (RAW, "application/x-www-form-urlencoded", "labelled as a form"),
        (RAW, "application/xml", "not XML"),
        (b"<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", "application/xml", "XML"),
        (b"<a><b>1</a>", "text/xml", "XML"),
        (b"\x00\x01\x02", "application/octet-stream", "binary"),
        (b"%PDF-1.4 ...", None, "binary"),
        (b"\x80\x80", "text/plain", "not valid"),
    ],
)
def test_uninspectable_bodies(raw: bytes, ctype: str | list[str], reason: str) -> None:
    assert reason in refused(raw, ctype)


def test_content_encodings() -> None:
    assert trees(gzip.compress(RAW), "application/json", "gzip") == [("json", J)]
    assert trees(zlib.compress(RAW), "application/json", "deflate") == [("json", J)]
    assert trees(RAW, "application/json", "identity") == [("json", J)]
    assert "Content-Encoding" in refused(RAW, "application/json", "br")
    assert "more than one" in refused(
        gzip.compress(gzip.compress(RAW)), "application/json", "gzip, gzip"
    )
    assert "limit" in refused(gzip.compress(b" " * 2_000_000), "application/json", "gzip")
    assert "invalid" in refused(RAW, "application/json", "gzip")
    assert "truncated" in refused(gzip.compress(RAW)[:-6], "application/json", "gzip")


def test_forms_keep_repeats_and_nest_bracket_keys() -> None:
    raw = b"name=%E7%8E%8B&tags=1&tags=2&contact[mobile]=138&a[b][c]=x&list[]=1&list[]=2"
    assert trees(raw, "application/x-www-form-urlencoded") == [
        ("form", {"name": "王", "tags": ["1", "2"], "contact": {"mobile": "138"},
                  "a": {"b": {"c": "x"}}, "list": ["1", "2"]}),
    ]  # fmt: skip
    gbk = b"name=%CD%F5%B7%BC"
    assert trees(gbk, "application/x-www-form-urlencoded; charset=gbk") == [
        ("form", {"name": "王芳"})
    ]
    assert "both a value and a group" in refused(b"a=1&a[b]=2", "application/x-www-form-urlencoded")


def test_a_raw_semicolon_is_also_read_as_a_separator() -> None:
    readings = trees(b"notes=1;bank_card=6222", "application/x-www-form-urlencoded")
    assert readings == [
        ("form", {"notes": "1;bank_card=6222"}),
        ("form", {"notes": "1", "bank_card": "6222"}),
    ]
    body = parse(b"notes=1;bank_card=6222600260001072444", "application/x-www-form-urlencoded")
    with pytest.raises(Forbidden):
        guard_body(
            body, route=ROUTE, taxonomy=TAX, decision=L2, mode="reject", validate_entry=False
        )


def test_unlabelled_text_is_read_every_way() -> None:
    assert trees(b"mobile=138****1234") == [
        ("form", {"mobile": "138****1234"}),
        ("text", {BODY_KEY: "mobile=138****1234"}),
    ]
    assert trees(b"just a note", "text/plain") == [("text", {BODY_KEY: "just a note"})]
    assert trees(b"<c><mobile>1</mobile></c>", "text/plain") == [("xml", {"c": {"mobile": "1"}})]
    assert trees(b"", "application/json") == [("empty", None)]


def test_multipart_text_parts_are_fields() -> None:
    raw = mp(
        'Content-Disposition: form-data; name="name"\r\n\r\n王芳',
        'Content-Disposition: form-data; name="contact[mobile]"\r\n\r\n138',
        'Content-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n{"email": "a@b.c"}',  # noqa: E501
        'Content-Disposition: form-data; name="extra"\r\n\r\n{"bank_card": "1"}',
        'Content-Disposition: form-data; name="gbk"\r\nContent-Type: text/plain; charset=gbk\r\n\r\n',  # noqa: E501
    )
    raw = raw.replace(b"charset=gbk\r\n\r\n\r\n", "charset=gbk\r\n\r\n王\r\n".encode("gbk"))
    assert trees(raw, f"multipart/form-data; boundary={B}") == [
        ("multipart", {"name": "王芳", "contact": {"mobile": "138"}, "meta": {"email": "a@b.c"},
                       "extra": {"bank_card": "1"}, "gbk": "王"}),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (mp('Content-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nx'), "file part"),
        (
            mp('Content-Disposition: form-data; name="f"\r\nContent-Type: image/png\r\n\r\nx'),
            "type",
        ),
        (
            mp(
                'Content-Disposition: form-data; name="f"\r\n'
                "Content-Transfer-Encoding: base64\r\n\r\neA=="
            ),
            "Transfer",
        ),
        (mp('Content-Disposition: form-data; name="f"; name="g"\r\n\r\nx'), "repeated"),
        (mp("Content-Disposition: form-data; name*=utf-8''f\r\n\r\nx"), "extended"),
        (mp("Content-Disposition: attachment\r\n\r\nx"), "form-data"),
        (mp("Content-Disposition: form-data\r\n\r\nx"), "name"),
        (b"preamble\r\n" + mp('Content-Disposition: form-data; name="f"\r\n\r\nx'), "preamble"),
        (mp('Content-Disposition: form-data; name="f"\r\n\r\nx')[:-8], "closing"),
        (mp(f'Content-Disposition: form-data; name="f"\r\n\r\na--{B}b'), "did not frame"),
    ],
)
def test_multipart_refusals(raw: bytes, reason: str) -> None:
    assert reason in refused(raw, f"multipart/form-data; boundary={B}")


def test_multipart_needs_a_boundary() -> None:
    assert "boundary" in refused(b"x", "multipart/form-data")


def test_xml_and_soap_by_local_name() -> None:
    soap = (
        b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<s:Body><c:Update xmlns:c="urn:c" id="7"><c:mobile>138</c:mobile><c:tag>a</c:tag>'
        b"<c:tag>b</c:tag></c:Update></s:Body></s:Envelope>"
    )
    assert trees(soap, "application/soap+xml") == [
        (
            "xml",
            {"Envelope": {"Body": {"Update": {"id": "7", "mobile": "138", "tag": ["a", "b"]}}}},
        ),
    ]


def _strip(raw: bytes, ctype: str, enc: str | None = None) -> bytes:
    out, report = guard_body(
        parse(raw, ctype, enc), route=ROUTE, taxonomy=TAX, decision=L2, mode="strip",
        validate_entry=False,
    )  # fmt: skip
    assert report.stripped
    assert out is not None
    return out


def test_strip_mode_reencodes_in_the_same_format() -> None:
    masked = {"name": "王芳", "mobile": "138••••1234"}
    text = json.dumps(masked, ensure_ascii=False)
    assert json.loads(_strip(text.encode(), "application/json")) == {"name": "王芳"}
    gbk = "".join(c if c != "•" else "\\u2022" for c in text).encode("gbk")
    assert json.loads(_strip(gbk, "application/json; charset=gbk").decode("gbk")) == {
        "name": "王芳"
    }
    assert json.loads(
        gzip.decompress(_strip(gzip.compress(text.encode()), "application/json", "gzip"))
    ) == {"name": "王芳"}
    form = b"name=%E7%8E%8B%E8%8A%B3&mobile=138%E2%80%A2%E2%80%A2%E2%80%A2%E2%80%A21234"
    assert _strip(form, "application/x-www-form-urlencoded") == b"name=%E7%8E%8B%E8%8A%B3"
    parts = mp(
        'Content-Disposition: form-data; name="name"\r\n\r\n王芳',
        'Content-Disposition: form-data; name="mobile"\r\n\r\n138••••1234',
    )
    out = _strip(parts, f"multipart/form-data; boundary={B}")
    assert trees(out, f"multipart/form-data; boundary={B}") == [("multipart", {"name": "王芳"})]
    xml = "<c><name>王芳</name><mobile>138••••1234</mobile></c>".encode()
    assert trees(_strip(xml, "application/xml"), "application/xml") == [
        ("xml", {"c": {"name": "王芳"}})
    ]


def test_unchanged_bodies_are_forwarded_as_sent() -> None:
    out, _ = guard_body(parse(RAW, "text/plain"), route=ROUTE, taxonomy=TAX, decision=L2,
                        mode="strip", validate_entry=False)  # fmt: skip
    assert out is None


def test_every_reading_is_checked_for_permissions() -> None:
    body = parse(b"bank_card=6222600260001072444", "text/plain")
    with pytest.raises(Forbidden):
        guard_body(
            body, route=ROUTE, taxonomy=TAX, decision=L2, mode="reject", validate_entry=False
        )


def test_nesting_is_bounded() -> None:
    deep = b'{"a":' * 100 + b"1" + b"}" * 100
    assert "deeper" in refused(deep, "application/json")
    xml = b"<a>" * 100 + b"x" + b"</a>" * 100
    assert "deeper" in refused(xml, "application/xml")
    assert "deeper" in refused(b"a" + b"[b]" * 100 + b"=1", "application/x-www-form-urlencoded")


def test_text_that_looks_structured_but_does_not_parse_is_refused() -> None:
    assert "JSON" in refused(b"{mobile: '1'}", "text/plain")
    assert "XML" in refused(b"<a><b></a>")


def test_query_string_fields_are_checked() -> None:
    body = parse(RAW, "application/json")
    body.also.append(query_reading("bank_card=6222600260001072444"))
    with pytest.raises(Forbidden):
        guard(body, "strip")
    for placeholder in (
        "mobile=139%E2%80%A2%E2%80%A2%E2%80%A2%E2%80%A25678",
        "name=%E5%BE%90%E6%9F%90",
    ):
        masked = parse(RAW, "application/json")
        masked.also.append(query_reading(placeholder))
        with pytest.raises(MaskedValueWrite):
            guard(masked, "reject")
    clean = parse(RAW, "application/json")
    clean.also.append(query_reading("format=json"))
    assert guard(clean, "strip")[0] is None


def test_boundaries_outside_rfc_2046_are_refused() -> None:
    for boundary in ('a\\"; x=y', "a ", "x" * 71, "é"):
        assert "boundary" in refused(b"--x--", f'multipart/form-data; boundary="{boundary}"')
