"""XML and SOAP: leaf text rewritten by tag, prefixes kept, DTDs and entities refused."""

from __future__ import annotations

import gzip

import defusedxml.ElementTree as ET
import pytest

from gateway.core.rewrite import RewriteError
from tests.unit.core.codecs.doubles import MaskingEnforcer
from tests.unit.core.codecs.helpers import run, split_at

SOAP = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:c="urn:crm">'
    "<soap:Body><c:GetCustomerResponse>"
    '<c:customer id="C1" mobile="13812345678">'
    "<c:name>张伟</c:name><c:mobile>13812345678</c:mobile>"
    "<c:query_password>123456</c:query_password>"
    "<c:note>see <c:b>bold</c:b> call 13912345678 &amp; more</c:note>"
    "<!-- agent 13512345678 --><c:empty/>"
    "</c:customer></c:GetCustomerResponse></soap:Body></soap:Envelope>"
)


def test_soap_leaves_are_rewritten_and_prefixes_kept() -> None:
    out = run(
        split_at(SOAP.encode(), [10, 100, 200]),
        "application/soap+xml; charset=utf-8",
        MaskingEnforcer(),
    )
    text = out.decode()
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope')
    for mobile in ("13812345678", "13912345678", "13512345678"):
        assert mobile not in text
    root = ET.fromstring(out)
    ns = {"c": "urn:crm"}
    customer = root.find(".//c:customer", ns)
    assert customer is not None
    assert customer.get("id") == "C1"
    assert customer.get("mobile") == "***********"
    assert customer.findtext("c:name", namespaces=ns) == "**"
    assert customer.findtext("c:mobile", namespaces=ns) == "***********"
    assert customer.findtext("c:query_password", namespaces=ns) == ""  # left out by the enforcer
    note = customer.find("c:note", ns)
    assert note is not None
    assert note.text == "see "
    assert "".join(note.itertext()) == "see bold call 139******** & more"


def test_gbk_xml_keeps_its_encoding() -> None:
    body = '<?xml version="1.0" encoding="GBK"?><r><name>张伟</name><addr>北京</addr></r>'.encode(
        "gbk"
    )
    out = run(body, "text/xml; charset=GBK", MaskingEnforcer())
    assert (
        out.decode("gbk")
        == '<?xml version="1.0" encoding="GBK"?>\n<r><name>**</name><addr>北京</addr></r>'
    )


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol9;</lolz>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>"""
DOCTYPE_ONLY = b'<!DOCTYPE r SYSTEM "http://example.com/r.dtd"><r/>'


@pytest.mark.parametrize(
    "body", [BILLION_LAUGHS, EXTERNAL, DOCTYPE_ONLY], ids=["laughs", "xxe", "dtd"]
)
@pytest.mark.parametrize("sensitive", [True, False])
def test_dtds_and_entities_are_refused(body: bytes, sensitive: bool) -> None:
    with pytest.raises(RewriteError, match="refused"):
        run(body, "application/xml", MaskingEnforcer(), sensitive=sensitive)


def test_malformed_xml_blocks_on_sensitive_route() -> None:
    with pytest.raises(RewriteError, match="malformed XML"):
        run(b"<r><a>13812345678</r>", "application/xml", MaskingEnforcer())


def test_malformed_xml_is_free_text_on_other_routes() -> None:
    out = run(b"<r><a>13812345678</r>", "application/xml", MaskingEnforcer(), sensitive=False)
    assert out == b"<r><a>138********</r>"


def test_special_characters_are_escaped_on_the_way_out() -> None:
    out = run(b'<r a="&quot;x&lt;"><b>&lt;tag&gt; &amp; "q"</b></r>', "text/xml", MaskingEnforcer())
    root = ET.fromstring(out)
    assert root.get("a") == '"x<'
    assert root.findtext("b") == '<tag> & "q"'


def test_charset_from_the_xml_declaration_when_content_type_has_none() -> None:
    doc = (
        '<?xml version="1.0" encoding="GBK"?><r><name>张伟</name><addr>北京 13812345678</addr></r>'
    )
    out = run(doc.encode("gbk"), "text/xml", MaskingEnforcer())
    assert out.decode("gbk") == (
        '<?xml version="1.0" encoding="GBK"?>\n<r><name>**</name><addr>北京 138********</addr></r>'
    )


def test_utf8_bom_xml_keeps_its_bom() -> None:
    out = run(
        b"\xef\xbb\xbf<r><mobile>13812345678</mobile></r>", "application/xml", MaskingEnforcer()
    )
    assert out == b"\xef\xbb\xbf<r><mobile>***********</mobile></r>"


def test_gzip_xml() -> None:
    out = run(gzip.compress(SOAP.encode()), "text/xml", MaskingEnforcer(), encoding="gzip")
    assert b"13812345678" not in out
    assert ET.fromstring(out).tag.endswith("Envelope")


@pytest.mark.parametrize(
    "body",
    [
        "<r><?note call 13912345678?><name>x</name></r>",
        '<?xml version="1.0"?><?xml-stylesheet href="/x?m=13912345678"?><r/>',
        '<r xmlns:c13912345678="urn:x"><c13912345678:name>x</c13912345678:name></r>',
        '<r><c:n xmlns:c="urn:crm:13912345678">x</c:n></r>',
        '<r><customer xmlns="urn:13912345678" id="C1"><name>x</name></customer></r>',
    ],
)
def test_processing_instructions_and_namespaces_are_scanned(body: str) -> None:
    out = run(body.encode(), "application/xml", MaskingEnforcer()).decode()
    assert "13912345678" not in out
    ET.fromstring(out.encode())  # still well-formed: prefixes masked alike everywhere
