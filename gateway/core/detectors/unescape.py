"""Undo the escapes that hide identifiers from the free-text scan, with a map back.

An HTML rendering spells a card number `&#54;&#50;&#50;&#50;...` or `&#x36;...`,
a script block spells it `\\u0036\\u0032...`, a link spells it `%36%32...`, and
the scan, which matches digits, sees none of them. `decode(text)` undoes HTML
character references (decimal, hex, named), JSON/JavaScript escapes (`\\u`
and four hex digits, with surrogate pairs, `\\u{X}`, `\\xXX`, `\\/`) and percent-encoding (runs of
`%XX` as UTF-8), repeatedly (`&amp;#54;` is `&#54;` is `6`) up to `ROUNDS`
times, and keeps for every decoded character the span of original characters
it came from, so a hit on the decoded text masks exactly the escape that
spelled it. `respell(original_span, masked)` writes the masked value back in
the same escape family, so the output stays valid for its format.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.entities import html5
from urllib.parse import quote

ROUNDS = 3
MARKERS = ("&", "\\", "%")

_ESCAPE = re.compile(
    r"&#(?P<dec>[0-9]{1,7});?"
    r"|&#[xX](?P<hex>[0-9a-fA-F]{1,6});?"
    r"|&(?P<named>[A-Za-z][A-Za-z0-9]{1,31};)"
    r"|\\u\{(?P<ucurly>[0-9a-fA-F]{1,6})\}"
    r"|\\u(?P<u>[0-9a-fA-F]{4})"
    r"|\\x(?P<x>[0-9a-fA-F]{2})"
    r"|\\(?P<plain>[/\\\"'])"
    r"|(?P<pct>(?:%[0-9a-fA-F]{2})+)"
)


@dataclass(frozen=True, slots=True)
class Decoded:
    """Decoded text; character i came from original characters starts[i]:ends[i]."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        return self.starts[start], self.ends[end - 1]


def has_escapes(text: str) -> bool:
    return any(m in text for m in MARKERS) and _ESCAPE.search(text) is not None


def _char(code: int) -> str | None:
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _pieces(m: re.Match[str], text: str) -> list[tuple[str, int, int]] | None:
    """What one escape stands for, as (characters, start, end) pieces; None: leave it."""
    kind = m.lastgroup
    s, e = m.span()
    value = m.group(kind or 0)
    if kind == "dec" or kind == "hex":
        ch = _char(int(value, 10 if kind == "dec" else 16))
        return None if ch is None else [(ch, s, e)]
    if kind == "named":
        ch = html5.get(value)
        return None if ch is None else [(ch, s, e)]
    if kind == "ucurly" or kind == "x":
        ch = _char(int(value, 16))
        return None if ch is None else [(ch, s, e)]
    if kind == "u":
        code = int(value, 16)
        if 0xD800 <= code <= 0xDBFF:  # a high surrogate: pair it with the next \u escape
            nxt = re.match(r"\\u([dD][c-fC-F][0-9a-fA-F]{2})", text[e:])
            if nxt is None:
                return None
            low = int(nxt.group(1), 16)
            return [(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), s, e + 6)]
        ch = _char(code)
        return None if ch is None else [(ch, s, e)]
    if kind == "plain":
        return [(value, s, e)]
    # a run of %XX: as UTF-8 where it decodes, byte by byte (Latin-1) where it does not
    raw = bytes(int(value[i + 1 : i + 3], 16) for i in range(0, len(value), 3))
    try:
        chars = raw.decode("utf-8")
    except UnicodeDecodeError:
        return [(chr(b), s + 3 * i, s + 3 * i + 3) for i, b in enumerate(raw)]
    out = []
    pos = s
    for ch in chars:
        width = 3 * len(ch.encode("utf-8"))
        out.append((ch, pos, pos + width))
        pos += width
    return out


def _round(text: str) -> tuple[str, list[int], list[int]] | None:
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    changed = False
    for m in _ESCAPE.finditer(text):
        pieces = _pieces(m, text)
        if pieces is None:
            continue
        if pieces[0][1] < pos:
            continue  # overlaps a surrogate pair already taken
        for i in range(pos, pieces[0][1]):
            chars.append(text[i])
            starts.append(i)
            ends.append(i + 1)
        for ch, s, e in pieces:
            chars.append(ch)
            starts.append(s)
            ends.append(e)
        pos = pieces[-1][2]
        changed = True
    if not changed:
        return None
    for i in range(pos, len(text)):
        chars.append(text[i])
        starts.append(i)
        ends.append(i + 1)
    return "".join(chars), starts, ends


def decode(text: str) -> Decoded | None:
    """`text` with its escapes undone (see the module docstring), or None if it has none."""
    if not has_escapes(text):
        return None
    starts = list(range(len(text)))
    ends = list(range(1, len(text) + 1))
    current = text
    changed = False
    for _ in range(ROUNDS):
        done = _round(current)
        if done is None:
            break
        current, s2, e2 = done
        starts = [starts[i] for i in s2]
        ends = [ends[i - 1] for i in e2]
        changed = True
        if not has_escapes(current):
            break
    if not changed:
        return None
    return Decoded(current, tuple(starts), tuple(ends))


_JS_SAFE = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz*-_. ")


def respell(original: str, masked: str) -> str:
    """`masked` written in the escape family `original` used (HTML references, JSON/JS
    escapes, percent-encoding), so a masked span stays valid where it stands."""
    if "&" in original:
        return html.escape(masked, quote=True)
    if "\\" in original:
        return "".join(ch if ch in _JS_SAFE else _js_escape(ch) for ch in masked)
    if "%" in original:
        return quote(masked, safe="*-_.")
    return masked


def _js_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
