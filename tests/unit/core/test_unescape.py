"""Escapes undone before the free-text scan, with spans back to the original text."""

from __future__ import annotations

import html
import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.detectors import unescape

CARD = "6217003129435471022"


def test_each_escape_family_decodes() -> None:
    cases = {
        "&#54;&#50;": "62",
        "&#x36;&#X32;": "62",
        "&commat;&amp;": "@&",
        "&amp;#54;": "6",  # double-escaped: decoded twice
        "\\u0036\\u0032": "62",
        "\\u{36}\\x32": "62",
        "http:\\/\\/x": "http://x",
        "\\ud83d\\ude00": "\U0001f600",
        "%36%32": "62",
        "%E5%BC%A0": "张",
        "%FF": "\xff",
    }
    for text, want in cases.items():
        decoded = unescape.decode(text)
        assert decoded is not None and decoded.text == want, text


def test_plain_text_is_left_alone() -> None:
    assert unescape.decode("no escapes here, 100% sure") is None
    assert unescape.decode("&nosuchentity; &#0; \\u00") is None


def test_spans_map_back_to_the_escapes() -> None:
    text = "卡号 " + "".join(f"&#{ord(c)};" for c in CARD) + " 完"
    decoded = unescape.decode(text)
    assert decoded is not None
    start = decoded.text.index(CARD)
    s, e = decoded.to_original(start, start + len(CARD))
    assert text[s:e] == "".join(f"&#{ord(c)};" for c in CARD)


def test_respell_keeps_the_escape_family() -> None:
    assert unescape.respell("&#54;", "6<*>") == "6&lt;*&gt;"
    assert unescape.respell("\\u0036", '张*"') == "\\u5f20*\\u0022"
    assert unescape.respell("%36", "张*") == "%E5%BC%A0*"
    assert unescape.respell("6", "x") == "x"


_spell = st.sampled_from(
    [
        lambda c: c,
        lambda c: f"&#{ord(c)};",
        lambda c: f"&#x{ord(c):x};",
        lambda c: f"\\u{ord(c):04x}",
        lambda c: "".join(f"%{b:02X}" for b in c.encode()),
    ]
)


@given(st.lists(st.tuples(st.sampled_from("0123456789X张三@ "), _spell), max_size=40))
def test_decode_inverts_any_mix_of_spellings(chars: list[tuple[str, object]]) -> None:
    text = "".join(f(c) for c, f in chars)  # type: ignore[operator]
    plain = "".join(c for c, _ in chars)
    decoded = unescape.decode(text)
    got = plain if decoded is None else decoded.text
    assert got == plain
    if decoded is not None:
        pieces = [text[s:e] for s, e in zip(decoded.starts, decoded.ends, strict=True)]
        assert "".join(pieces) == text  # the spans tile the original exactly


@given(st.text(alphabet="0123456789*张三 ", max_size=20))
def test_respelled_html_and_json_read_back(masked: str) -> None:
    assert html.unescape(unescape.respell("&#54;", masked)) == masked
    assert json.loads('"' + unescape.respell("\\u0036", masked) + '"') == masked
