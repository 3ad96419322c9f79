"""Charsets in which ASCII bytes are not ASCII: the bytes that leave must be what was scanned.

In UTF-7 (`+6217003410087749547AAA-` is a base64 run of CJK code units), HZ
(`~{6217...~}` is GB2312 in 7-bit pairs), ISO-2022-JP/CN/KR (`ESC $ B` and then
pairs) and UTF-16/32 without a BOM (`62` is U+3632), a run of ASCII digits in
the raw bytes decodes to something else. A gateway that decodes by the declared
charset, finds no number, and re-encodes to the same charset sends the CRM's
bytes back unchanged; a client that does not know the charset (browsers dropped
UTF-7 and HZ; raw-byte tools, log shippers and `grep` never knew it) reads the
card number in clear. On a sensitive route such bodies leave as UTF-8, the
charset the scan read them in, so every byte out is one the detectors saw; text
transforms posing as charsets (`rot13`, `base64`) are refused. ASCII-transparent
charsets (GBK, Big5, Latin-1) keep their charset.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
import yaml
from aiohttp import web

from tests.conftest import ROOT, OpaProcess
from tests.integration.gateway_harness import Gateway, start_gateway
from tests.integration.policy_http_harness import write_staff_directory
from tests.security.hostile_upstream import VISIBLE
from tests.security.records_harness import Reply, fetch, opa_process, records_gateway, serve

pytestmark = pytest.mark.integration

CUSTOMER = VISIBLE[0]
CARD = CUSTOMER["bank_card"]  # above customer service's L2: never in clear
MARK = "@@NOTE@@"


def _doc() -> str:
    return orjson.dumps({"results": [dict(CUSTOMER, notes=MARK)]}).decode()


def _spliced(charset: str, raw_note: bytes, *, ascii_doc: bool = False) -> bytes:
    """The page in `charset`, the note's bytes put in raw (what a hostile CRM sends)."""
    text = _doc()
    if ascii_doc:  # 7-bit charsets: keep the rest of the page plain ASCII
        text = orjson.dumps(orjson.loads(text), option=orjson.OPT_NON_STR_KEYS).decode()
        text = text.encode("ascii", "backslashreplace").decode("ascii")
        text = text.replace("\\x", "\\u00").replace("\\U", "\\u")
    before, after = text.split(MARK)
    return before.encode(charset) + raw_note + after.encode(charset)


def _unicode_escaped(text: str) -> str:
    return "".join(c if ord(c) < 0x80 else f"\\u{ord(c):04x}" for c in text)


def _ascii_page(raw_note: bytes) -> bytes:
    before, after = _unicode_escaped(_doc()).split(MARK)
    return before.encode() + raw_note + after.encode()


# name: (charset, the note's raw bytes: the card in ASCII, something else in the charset)
NOTES: dict[str, tuple[str, bytes]] = {
    "utf-7": ("utf-7", f"+{CARD}AAA-".encode()),
    "hz": ("hz-gb-2312", b"~{" + CARD.encode() + b"0~}"),
    "iso-2022-jp": ("iso-2022-jp", b"\x1b$B" + CARD.encode() + b"0\x1b(B"),
    "utf-16be without bom": ("utf-16be", CARD.encode() + b"0"),
}
CASES: dict[str, tuple[bytes, str]] = {
    "utf-7": (_spliced("utf-7", NOTES["utf-7"][1]), "application/json; charset=utf-7"),
    "hz": (_ascii_page(NOTES["hz"][1]), "application/json; charset=hz-gb-2312"),
    "iso-2022-jp": (_ascii_page(NOTES["iso-2022-jp"][1]), "application/json; charset=iso-2022-jp"),
    "utf-16be without bom": (_spliced("utf-16-be", NOTES["utf-16be without bom"][1]),
                             "application/json; charset=utf-16be"),
}  # fmt: skip
REFUSED: dict[str, tuple[bytes, str]] = {
    "rot13": (_ascii_page(CARD.encode()), "application/json; charset=rot13"),
    "base64": (_ascii_page(CARD.encode()), "application/json; charset=base64"),
}
KEPT: dict[str, tuple[bytes, str]] = {
    "gbk": (_doc().replace(MARK, "已核对").encode("gbk"), "application/json; charset=GBK"),
    "gb18030": (_doc().replace(MARK, "已核对").encode("gb18030"),
                "application/json; charset=gb18030"),
}  # fmt: skip
# Valid bodies in charsets that do not leave as themselves: shown, as UTF-8.
TRANSCODED: dict[str, tuple[bytes, str]] = {
    "utf-32le": (_doc().replace(MARK, "已核对").encode("utf-32-le"),
                 "application/json; charset=utf-32le"),
    "utf-16 with bom": (_doc().replace(MARK, "已核对").encode("utf-16"),
                        "application/json; charset=utf-16"),
    "big5": (_doc().replace(MARK, "ok").encode("big5", "replace"),
             "application/json; charset=big5"),
    "latin-1": (_ascii_page(b"ok"), "application/json; charset=iso-8859-1"),
}  # fmt: skip
ALL = {**CASES, **REFUSED, **KEPT, **TRANSCODED}


def _xml(note: bytes, encoding: str) -> bytes:
    c = CUSTOMER
    head = (f'<?xml version="1.0" encoding="{encoding}"?><export><row id="{c["id"]}" '
            f'grade="{c["grade"]}" tier="{c["tier"]}"><name>{c["name"]}</name><notes>')  # fmt: skip
    tail = f"</notes><bank_card>{c['bank_card']}</bank_card></row></export>"
    codec = codecs.lookup(encoding).name
    return head.encode(codec) + note + tail.encode(codec)


XML_CASES: dict[str, tuple[bytes, str]] = {
    "xml utf-16be": (_xml(CARD.encode() + b"0", "UTF-16BE"), "text/xml; charset=utf-16be"),
    "xml declared utf-16be": (_xml(CARD.encode() + b"0", "UTF-16BE"), "text/xml"),
}
ALL.update(XML_CASES)


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("rego") / "open")


@pytest.fixture
async def gw(tmp_path: Path, opa: OpaProcess) -> AsyncIterator[Gateway]:
    async def page(request: web.Request) -> web.Response:
        body, ctype = ALL[request.match_info["case"]]
        return web.Response(body=body, headers={"Content-Type": ctype})

    app = web.Application()
    app.router.add_get("/charsets/{case}", page)
    runner, url = await serve(app)
    g = await records_gateway(tmp_path, url, opa)
    yield g
    await g.stop()
    await runner.cleanup()


@pytest.fixture
async def xml_gw(tmp_path: Path, opa: OpaProcess, gw: Gateway) -> AsyncIterator[Gateway]:
    """The same CRM behind a catalog that declares XML too."""
    doc = yaml.safe_load((ROOT / "config" / "crm" / "demo.yaml").read_text(encoding="utf-8"))
    doc["response_types"] = ["application/json", "text/xml"]
    catalog = tmp_path / "xml-catalog.yaml"
    catalog.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    home = tmp_path / "xml"
    home.mkdir()
    g = await start_gateway(
        home,
        gw.settings.upstream.url,
        **{
            "identity.directory": str(write_staff_directory(home / "staff.yaml")),
            "policy.engine": "external",
            "policy.url": opa.url,
            "classification.catalog": str(catalog),
        },
    )
    yield g
    await g.stop()


def _declared(reply: Reply) -> str:
    for part in reply.headers.get("Content-Type", "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return "utf-8"


def test_the_raw_bytes_carry_the_card() -> None:
    """The control: each note has the card as ASCII bytes, and its charset reads no card."""
    for name, (charset, note) in NOTES.items():
        assert note in CASES[name][0], name
        assert CARD.encode() in note
        assert CARD not in note.decode(codecs.lookup(charset).name, "replace"), name


@pytest.mark.parametrize("case", list(CASES))
async def test_every_byte_out_is_one_the_scan_read(gw: Gateway, case: str) -> None:
    reply = await fetch(gw, f"/charsets/{case}")
    assert reply.status in (200, 502), reply.raw[:300]
    assert CARD.encode() not in reply.raw, case
    assert CARD not in reply.raw.decode("latin-1"), case
    if reply.status == 200:
        assert _declared(reply) == "utf-8", reply.headers
        doc = orjson.loads(reply.raw)
        assert doc["results"][0]["id"] == CUSTOMER["id"]
        assert CARD not in doc["results"][0]["bank_card"]


@pytest.mark.parametrize("case", list(REFUSED))
async def test_text_transforms_are_no_charsets(gw: Gateway, case: str) -> None:
    reply = await fetch(gw, f"/charsets/{case}")
    assert reply.status == 502, reply.raw[:300]
    assert reply.error() == "response_rewrite_failed"


@pytest.mark.parametrize("case", list(KEPT))
async def test_ascii_transparent_charsets_are_kept(gw: Gateway, case: str) -> None:
    reply = await fetch(gw, f"/charsets/{case}")
    assert reply.status == 200, reply.raw[:300]
    assert _declared(reply) == ALL[case][1].split("charset=")[1].lower()
    assert CARD not in reply.text


@pytest.mark.parametrize("case", list(TRANSCODED))
async def test_other_charsets_leave_as_utf8(gw: Gateway, case: str) -> None:
    reply = await fetch(gw, f"/charsets/{case}")
    assert reply.status == 200, reply.raw[:300]
    assert _declared(reply) == "utf-8"
    doc = orjson.loads(reply.raw)
    assert doc["results"][0]["id"] == CUSTOMER["id"]
    assert CARD not in reply.raw.decode("utf-8")


@pytest.mark.parametrize("case", list(XML_CASES))
async def test_xml_in_charsets_that_reuse_ascii_leaves_as_utf8(xml_gw: Gateway, case: str) -> None:
    reply = await fetch(xml_gw, f"/charsets/{case}")
    assert CARD.encode() not in reply.raw
    assert CARD not in reply.raw.decode("latin-1")
    if case == "xml declared utf-16be":  # a declaration in UTF-16 without a BOM: unreadable
        assert reply.status == 502
        return
    assert reply.status == 200, reply.raw[:300]
    assert reply.raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'), reply.raw[:80]
    assert CUSTOMER["id"] in reply.raw.decode("utf-8")
