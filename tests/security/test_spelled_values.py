"""Identifiers spelled so a digit scan misses them: invisible separators, other digits.

A person reads `6217\u200b0034\u200b1008...` (zero-width spaces, word joiners, soft
hyphens, bidi marks, variation selectors and keycaps between the digits),
`一三九一二三四五六七八` / `幺三九...` (Chinese numerals, as numbers are written
out or read aloud), `壹贰叁...` (financial numerals), `٦٢١٧...` / `६२१७...`
(Arabic-Indic, Devanagari digits) as the number it is; a detector that matches
ASCII digits after NFKC does not. Every spelling is tried in free text of a
response (a visible customer's `notes`, on an uncatalogued route) and as a write
value under an unnamed key; nothing of it may reach the L2 caller in clear, or
the CRM. Plain Chinese text with numerals (`一般`, `张三`, `三里屯`) stays as it is.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.conftest import OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.security.hostile_upstream import VISIBLE
from tests.security.records_harness import fetch, opa_process, records_gateway, serve
from tests.security.test_writes import crm, send  # noqa: F401 - fixture
from tests.security.test_writes import gw as write_gw  # noqa: F401 - fixture
from tests.security.write_upstream import WriteCrm

pytestmark = pytest.mark.integration

_ZH = str.maketrans("0123456789", "〇一二三四五六七八九")
_FIN = str.maketrans("0123456789", "零壹贰叁肆伍陆柒捌玖")
_ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")


def _joined(sep: str) -> Any:
    return lambda v: sep.join(v)


SPELLINGS: dict[str, Any] = {
    "zero-width space": _joined("\u200b"),
    "zero-width non-joiner": _joined("\u200c"),
    "zero-width joiner": _joined("\u200d"),
    "word joiner": _joined("\u2060"),
    "byte order mark": _joined("\ufeff"),
    "soft hyphen": _joined("\u00ad"),
    "left-to-right mark": _joined("\u200e"),
    "bidi isolate": lambda v: "\u2066" + v[:6] + "\u2069\u2067" + v[6:] + "\u2069",
    "keycaps": lambda v: "".join(d + "\ufe0f\u20e3" for d in v),
    "chinese numerals": lambda v: v.translate(_ZH),
    "chinese numerals spaced": lambda v: v[:3].translate(_ZH) + " " + v[3:7].translate(_ZH)
    + " " + v[7:].translate(_ZH),
    "yao for one": lambda v: v.translate(_ZH).replace("一", "幺"),
    "financial numerals": lambda v: v.translate(_FIN),
    "arabic-indic digits": lambda v: v.translate(_ARABIC),
    "devanagari digits": lambda v: v.translate(_DEVANAGARI),
    "mixed": lambda v: v[:4] + v[4:9].translate(_ZH) + "\u200b" + v[9:],
}  # fmt: skip
_READ_BACK = {
    **{ord(c): str(i) for i, c in enumerate("〇一二三四五六七八九")},
    **{ord(c): str(i) for i, c in enumerate("零壹贰叁肆伍陆柒捌玖")},
    ord("幺"): "1",
}
PLAIN = "张三在三里屯一号院，客户等级一般，第一二次回访。"


def read_as_digits(text: str) -> str:
    """What a reader makes of the text: invisible marks gone, every digit an ASCII digit."""
    out = []
    for ch in text.translate(_READ_BACK):
        if unicodedata.category(ch) in ("Cf", "Mn", "Me"):
            continue
        digit = unicodedata.decimal(ch, None)
        out.append(str(digit) if digit is not None else ch)
    return unicodedata.normalize("NFKC", "".join(out)).replace(" ", "")


# --- reads: spelled identifiers in a visible customer's notes --------------------------

CUSTOMER = VISIBLE[0]
# Above customer service's clear level (L2) and found by shape: bank cards (Luhn).
VALUES = {"卡号": CUSTOMER["bank_card"], "转入卡": VISIBLE[1]["bank_card"]}


def _spelled_page(spelling: str) -> bytes:
    spell = SPELLINGS[spelling]
    notes = "；".join(f"{k} {spell(v)}" for k, v in VALUES.items())
    return orjson.dumps({"results": [dict(CUSTOMER, notes=notes)]})


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("rego") / "open")


@pytest.fixture
async def gw(tmp_path: Path, opa: OpaProcess) -> AsyncIterator[Gateway]:
    async def page(request: web.Request) -> web.Response:
        if request.match_info["spelling"] == "plain-chinese":
            doc = {"results": [dict(CUSTOMER, notes=PLAIN)]}
            return web.Response(body=orjson.dumps(doc), content_type="application/json")
        return web.Response(body=_spelled_page(request.match_info["spelling"]),
                            content_type="application/json")  # fmt: skip

    app = web.Application()
    app.router.add_get("/spelled/{spelling}", page)
    runner, url = await serve(app)
    g = await records_gateway(tmp_path, url, opa)
    yield g
    await g.stop()
    await runner.cleanup()


def test_the_reader_recovers_every_spelling() -> None:
    """The control: each spelling does carry the value, read as a person reads it."""
    for name, spell in SPELLINGS.items():
        for value in VALUES.values():
            assert value in read_as_digits(spell(value)), name


@pytest.mark.parametrize("spelling", list(SPELLINGS))
async def test_spelled_identifiers_in_free_text_are_masked(gw: Gateway, spelling: str) -> None:
    reply = await fetch(gw, f"/spelled/{spelling}")
    assert reply.status == 200, reply.text[:300]
    notes = orjson.loads(reply.raw)["results"][0]["notes"]
    for name, value in VALUES.items():
        assert value not in read_as_digits(notes), (spelling, name, notes)


async def test_plain_chinese_with_numerals_is_left_alone(gw: Gateway) -> None:
    reply = await fetch(gw, "/spelled/plain-chinese")
    assert reply.status == 200
    notes = orjson.loads(reply.raw)["results"][0]["notes"]
    assert "一号院" in notes and "一般" in notes and "第一二次" in notes, notes


# --- writes: a spelled card under a key nobody catalogued -------------------------------

CARD = "6222600260001072444"  # Luhn-valid (the stored card)


@pytest.mark.parametrize("spelling", list(SPELLINGS))
async def test_spelled_cards_never_reach_the_crm(
    write_gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
    spelling: str,
) -> None:
    body = orjson.dumps({"x_ref": SPELLINGS[spelling](CARD)})
    hdrs = [("Content-Type", "application/json")]
    status, answer = await send(write_gw, "PATCH", "/api/customers/C100", "cs", hdrs, body)
    assert status == 403, (spelling, answer)
    assert crm.count("C100") == 0
