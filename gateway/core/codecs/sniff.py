"""What a body looks like from its first bytes, whatever its Content-Type claims."""

from __future__ import annotations

import re

from gateway.core.codecs.charset import UTF8_BOM

_BINARY_MAGIC = (
    b"%PDF-",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"PK\x03\x04",  # zip, xlsx, docx
    b"PK\x05\x06",
    b"\x1f\x8b",  # gzip
    b"BZh",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # OLE: xls, doc
    b"RIFF",
    b"\x00\x00\x01\x00",  # ico
    b"wOFF",
    b"wOF2",
)
_JSONP_HEAD = re.compile(rb"(?:/\*\*/\s*)?[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*\s*\(\s*[\[{\"]")
_HTML_HEAD = re.compile(rb"<(?:!doctype\s+html|html|head|body|!--)", re.IGNORECASE)
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f]")


def sniff(prefix: bytes) -> str:
    """Classify a body prefix: "empty", "binary", "json", "jsonp", "html", "xml" or "text".

    A hint for content-type confusion, not a verdict: JSON-looking text is still
    parsed in full before it is treated as JSON.
    """
    body = prefix.removeprefix(UTF8_BOM)
    head = body.lstrip()
    if not head:
        return "empty"
    if body.startswith(_BINARY_MAGIC) or _CONTROL.search(body[:1024]):
        return "binary"
    if head[:1] in (b"{", b"["):
        return "json"
    if _HTML_HEAD.match(head):
        return "html"
    if head.startswith(b"<"):
        return "xml"
    if _JSONP_HEAD.match(head):
        return "jsonp"
    return "text"
