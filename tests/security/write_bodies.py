"""Every body type a client can send a write in, for the write battery.

`BODY_TYPES[name](fields)` gives `(headers, body)` for a flat dict of string
fields: the Content-Type spellings (JSON under every label, charsets, form,
nested form keys, multipart text parts, XML and SOAP, gzip) a lenient CRM reads
as the same fields. `chunked` bodies are sent without a length.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

Headers = list[tuple[str, str]]
Encoder = Callable[[dict[str, Any]], tuple[Headers, bytes]]


def _json(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


def _labelled(ctype: str | None) -> Encoder:
    def enc(fields: dict[str, Any]) -> tuple[Headers, bytes]:
        return ([("Content-Type", ctype)] if ctype else []), _json(fields)

    return enc


def _charset(ctype: str, codec: str) -> Encoder:
    def enc(fields: dict[str, Any]) -> tuple[Headers, bytes]:
        text = json.dumps(fields, ensure_ascii=False)
        # characters the charset lacks (• in GBK) are JSON escapes, as a GBK client writes them
        out = "".join(c if _encodable(c, codec) else f"\\u{ord(c):04x}" for c in text)
        return [("Content-Type", ctype)], out.encode(codec)

    return enc


def _encodable(c: str, codec: str) -> bool:
    try:
        c.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _form(ctype: str, nest: bool = False) -> Encoder:
    def enc(fields: dict[str, Any]) -> tuple[Headers, bytes]:
        pairs = [(f"customer[{k}]" if nest else k, str(v)) for k, v in fields.items()]
        return [("Content-Type", ctype)], urlencode(pairs).encode()

    return enc


BOUNDARY = "----gw-battery-7MA4YWxkTrZu0gW"


def multipart(fields: dict[str, Any], extra_part: bytes = b"") -> bytes:
    out = b""
    for k, v in fields.items():
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        ).encode()
    return out + extra_part + f"--{BOUNDARY}--\r\n".encode()


def _multipart(fields: dict[str, Any]) -> tuple[Headers, bytes]:
    return [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")], multipart(fields)


def _xml(fields: dict[str, Any]) -> tuple[Headers, bytes]:
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
    doc = f'<?xml version="1.0" encoding="UTF-8"?><customer>{inner}</customer>'
    return [("Content-Type", "application/xml")], doc.encode()


def _soap(fields: dict[str, Any]) -> tuple[Headers, bytes]:
    inner = "".join(f"<c:{k}>{escape(str(v))}</c:{k}>" for k, v in fields.items())
    doc = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:c="urn:crm"><soap:Body><c:UpdateCustomer>'
        f"{inner}</c:UpdateCustomer></soap:Body></soap:Envelope>"
    )
    return [("Content-Type", "text/xml; charset=utf-8")], doc.encode()


def _gzip(fields: dict[str, Any]) -> tuple[Headers, bytes]:
    return [("Content-Type", "application/json"), ("Content-Encoding", "gzip")], gzip.compress(
        _json(fields)
    )


BODY_TYPES: dict[str, Encoder] = {
    "json": _labelled("application/json"),
    "text_plain_json": _labelled("text/plain"),
    "text_json": _labelled("text/json"),
    "x_json": _labelled("application/x-json"),
    "vnd_api_json": _labelled("application/vnd.api+json"),
    "no_content_type": _labelled(None),
    "octet_stream_json": _labelled("application/octet-stream"),
    "json_gbk": _charset("application/json; charset=gbk", "gbk"),
    "json_utf16_bom": _charset("application/json; charset=utf-16", "utf-16"),
    "json_chunked": _labelled("application/json"),  # sent as a stream, no length
    "json_gzip": _gzip,
    "form": _form("application/x-www-form-urlencoded"),
    "form_nested_keys": _form("application/x-www-form-urlencoded", nest=True),
    "form_as_text_plain": _form("text/plain"),
    "multipart": _multipart,
    "xml": _xml,
    "soap": _soap,
}
CHUNKED = frozenset({"json_chunked"})
