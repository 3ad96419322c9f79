"""Content-Type parsing and charset transcoding around the UTF-8 format stages.

Format stages only ever see UTF-8 bytes without a BOM. `Transcoder` turns the
declared charset into that and `Reencoder` turns the rewritten output back, so
a GBK export leaves as GBK and a UTF-8 body with a BOM keeps its BOM. GBK and
GB2312 are decoded as GB18030 (their superset, which also encodes every
character a mask may introduce). Invalid bytes are an error: guessing would
let undetected personal data through.

Only UTF-8 and the GB family leave in their own charset (`KEPT`). In UTF-7,
HZ, ISO-2022-*, UTF-16/32 or EBCDIC, ASCII bytes may stand for other characters
(`+6217...AAA-` is CJK in UTF-7), so a body re-encoded in them could carry, byte
for byte, a number the scan never saw as one; every other charset therefore
leaves as UTF-8, the text the scan read, and the Content-Type says so
(`output_charset`). Text transforms that pose as charsets (`rot13`, `base64`,
`zlib`) are refused.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from gateway.core.rewrite import RewriteError

UTF8_BOM = codecs.BOM_UTF8
_ALIASES = {"gbk": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030", "cp936": "gb18030"}


@dataclass(frozen=True)
class MediaType:
    mime: str  # lower-case type/subtype, "" when absent
    params: dict[str, str] = field(default_factory=dict)

    @property
    def charset(self) -> str | None:
        return self.params.get("charset")


def parse_media_type(value: str | None) -> MediaType:
    if not value:
        return MediaType("")
    mime, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, eq, val = part.partition("=")
        if eq:
            params[key.strip().lower()] = val.strip().strip('"').strip()
    return MediaType(mime.strip().lower(), params)


def codec_name(charset: str | None) -> str:
    """The Python codec for a declared charset; unknown charsets are refused."""
    if not charset:
        return "utf-8"
    name = charset.strip().lower()
    if name in _ALIASES:
        return _ALIASES[name]
    try:
        info = codecs.lookup(name)
    except LookupError as exc:
        raise RewriteError(f"unsupported charset {charset!r}") from exc
    if not info._is_text_encoding:  # the stdlib marks rot13, base64, zlib ... so
        raise RewriteError(f"{charset!r} is a transform, not a charset")
    found = info.name
    return "utf-8" if found in ("utf-8", "utf-8-sig", "us-ascii", "ascii") else found


# Charsets a rewritten body keeps: ASCII bytes are ASCII in them, and every character a
# mask may write (`*`, `–`, CJK) has a spelling.
KEPT = frozenset({"utf-8", "gb18030"})


def output_charset(codec: str) -> str:
    """The charset a rewritten body in `codec` leaves in (see the module doc)."""
    return codec if codec in KEPT else "utf-8"


def with_charset(content_type: str, charset: str) -> str:
    """`content_type` with its charset parameter set to `charset` (added if absent)."""
    mime, _, rest = content_type.partition(";")
    params = [p.strip() for p in rest.split(";") if p.strip()]
    kept = [p for p in params if p.partition("=")[0].strip().lower() != "charset"]
    return "; ".join([mime.strip(), *kept, f"charset={charset}"])


class Transcoder:
    """Declared charset -> UTF-8 (BOM removed and remembered)."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.had_bom = False
        self._start = b""
        self._started = False
        self._decoder = None if codec == "utf-8" else codecs.getincrementaldecoder(codec)("strict")

    def feed(self, data: bytes) -> bytes:
        if not self._started:
            self._start += data
            if len(self._start) < len(UTF8_BOM) and UTF8_BOM.startswith(self._start):
                return b""
            data, self._start, self._started = self._start, b"", True
            if self.codec == "utf-8" and data.startswith(UTF8_BOM):
                self.had_bom = True
                data = data[len(UTF8_BOM) :]
        if self._decoder is None:
            return data
        try:
            return self._decoder.decode(data).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise RewriteError(f"body is not valid {self.codec}: {exc.reason}") from exc

    def finish(self) -> bytes:
        out = b""
        if not self._started:
            self._started = True
            out = self._start
            if out == UTF8_BOM:
                self.had_bom, out = True, b""
        if self._decoder is None:
            return out
        try:
            return self._decoder.decode(out, final=True).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise RewriteError(f"body is not valid {self.codec}: {exc.reason}") from exc


class Reencoder:
    """UTF-8 -> the output charset (`output_charset` of the declared one); puts back a
    UTF-8 BOM the input had."""

    def __init__(self, transcoder: Transcoder) -> None:
        self._in = transcoder
        self._bom_pending = True
        codec = self.codec = output_charset(transcoder.codec)
        self._decoder = None if codec == "utf-8" else codecs.getincrementaldecoder("utf-8")()
        self._encoder = None if codec == "utf-8" else codecs.getincrementalencoder(codec)()

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        if self._bom_pending:
            self._bom_pending = False
            if self._in.had_bom:
                data = UTF8_BOM + data
        if self._decoder is None or self._encoder is None:
            return data
        try:
            return self._encoder.encode(self._decoder.decode(data))
        except UnicodeError as exc:
            raise RewriteError(f"rewritten body cannot be encoded as {self.codec}") from exc

    def finish(self) -> bytes:
        if self._decoder is None or self._encoder is None:
            return b""
        try:
            return self._encoder.encode(self._decoder.decode(b"", final=True), final=True)
        except UnicodeError as exc:
            raise RewriteError(f"rewritten body cannot be encoded as {self.codec}") from exc
