"""Write bodies of every type, parsed into one tree the write guard checks.

A write on a sensitive route is guarded only if the gateway reads it the way the
CRM will. So this module positively parses every body, whatever its label, and
refuses (415 `unsupported_media_type`) what it cannot read:

* the label: one Content-Type header, one media type, parameters `charset` (and
  `boundary` for multipart) only, so `application/json;x=multipart/form-data`
  or a second Content-Type header never reach a CRM that would read them
  differently;
* the bytes: Content-Encoding gzip/deflate decoded within limits; the declared
  charset (GBK, UTF-16 with a BOM, ...) decoded strictly; a BOM that disagrees
  with the declared charset, or binary content, is refused;
* the format: JSON under any label (`text/plain`, `text/json`, `application/x-json`,
  `+json`, no label at all: sniffed and parsed; duplicate keys refused), form
  (repeated keys kept, `a[b]` keys nested), multipart/form-data (stdlib `email`
  parser plus strict framing checks; text parts are fields, file parts are
  refused), XML/SOAP (defusedxml: no DTD, no entities). A body whose content
  contradicts its label (JSON labelled as a form) is refused.

An unlabelled or `text/plain` body is read every way a lenient CRM might read it
(JSON, XML, form, plain text); all readings are checked, and only the first can
be rewritten. `WriteBody.encode` re-encodes a rewritten (strip mode) tree in the
body's own format, charset and Content-Encoding.
"""

from __future__ import annotations

import codecs
import email.parser
import email.policy
import gzip
import json
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.etree.ElementTree import Element, tostring

import defusedxml.ElementTree as SafeET

from gateway.core.codecs.sniff import sniff
from gateway.errors import UnsupportedMediaType

__all__ = ["BODY_KEY", "BodyLimits", "Reading", "WriteBody", "parse_write_body", "query_reading"]

BODY_KEY = "(body)"  # the key under which a body that is one value (text) is checked

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # noqa: S105 - RFC 9110 token characters
_MEDIA = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*")
_PARAM = re.compile(rf"\s*;\s*({_TOKEN})\s*=\s*(?:({_TOKEN})|\"((?:[^\"\\]|\\.)*)\")\s*")
_JSON_TYPES = frozenset(
    {"application/json", "text/json", "application/x-json", "text/x-json"}
    | {"application/jsonrequest", "application/javascript", "text/javascript"}
)
_XML_TYPES = frozenset({"application/xml", "text/xml", "application/soap+xml"})
_LOOSE_TYPES = frozenset({"", "text/plain", "application/octet-stream"})
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_CHARSETS = {
    "utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "utf-8", "ascii": "utf-8",
    "gbk": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030", "cp936": "gb18030",
    "utf-16": "utf-16", "utf-16le": "utf-16-le", "utf-16be": "utf-16-be",
    "utf-32": "utf-32", "utf-32le": "utf-32-le", "utf-32be": "utf-32-be",
    "iso-8859-1": "latin-1", "latin1": "latin-1", "latin-1": "latin-1", "big5": "big5",
}  # fmt: skip
_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_BCHAR = r"[0-9A-Za-z'()+_,./:=?-]"  # RFC 2046 bcharsnospace
_BOUNDARY = re.compile(rf"{_BCHAR}(?:[0-9A-Za-z'()+_,./:=? -]{{0,68}}{_BCHAR})?")
_PART_ENCODINGS = frozenset({"", "7bit", "8bit", "binary"})
_MAX_PARTS = 1000


def _refuse(reason: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(f"the write body cannot be inspected: {reason}", reason=reason)


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_decoded: int  # bytes a Content-Encoding may expand to
    max_ratio: int = 100


@dataclass(slots=True)
class Reading:
    """One way of reading the body: its format, the tree to check, how to rebuild it."""

    format: str  # json | form | multipart | xml | text | empty
    tree: Any
    rebuild: Callable[[Any, frozenset[str]], str | bytes] | None = None


@dataclass(slots=True)
class WriteBody:
    readings: list[Reading]
    _wrap: Callable[[str | bytes], bytes] = field(default=lambda b: _as_bytes(b, "utf-8"))

    also: list[Reading] = field(default_factory=list)  # the query string, as form fields

    def field_names(self) -> list[str]:
        """The top-level field names of the form, multipart, JSON and XML readings
        (frameworks that merge body and query read any of them: PHP's $_REQUEST,
        Struts, Laravel's and ASP.NET's model binding)."""
        out: list[str] = []
        for r in self.readings:
            tree = r.tree
            if r.format == "xml" and isinstance(tree, dict) and len(tree) == 1:
                tree = next(iter(tree.values()))  # the root element's children
            if r.format in ("form", "multipart", "json", "xml") and isinstance(tree, dict):
                out.extend(str(name) for name in tree)
        return out

    @property
    def primary(self) -> Reading:
        return self.readings[0]

    @property
    def ambiguous(self) -> bool:
        """More than one reading: a rewrite could not be made to mean one thing."""
        return len(self.readings) > 1

    def encode(self, tree: Any, stripped: frozenset[str]) -> bytes:
        """The primary reading rebuilt from a rewritten tree (strip mode)."""
        rebuild = self.primary.rebuild
        if rebuild is None or self.ambiguous:
            raise _refuse("a body read more than one way cannot be rewritten")
        return self._wrap(rebuild(tree, stripped))


def parse_write_body(
    raw: bytes,
    content_types: Sequence[str],
    content_encodings: Sequence[str],
    limits: BodyLimits,
) -> WriteBody:
    """Every reading of a write body, or UnsupportedMediaType (never forwarded)."""
    mime, params = _media_type(content_types)
    layer = _content_encoding(content_encodings)
    data = _decode_layer(raw, layer, limits)
    recompress: Callable[[bytes], bytes] = (
        (lambda b: gzip.compress(b, mtime=0)) if layer == "gzip"
        else zlib.compress if layer == "deflate"
        else (lambda b: b)
    )  # fmt: skip
    if mime == _MULTIPART:
        boundary = params.get("boundary")
        if not boundary:
            raise _refuse("multipart body without a boundary")
        readings = [_multipart(data, boundary, params.get("charset"))]
        return WriteBody(readings, lambda b: recompress(_as_bytes(b, "utf-8")))
    if "boundary" in params:
        raise _refuse("a boundary parameter on a non-multipart type")
    text, codec, bom = _decode_text(data, params.get("charset"))
    others = _alternative_texts(data, text, codec, params.get("charset"))

    def wrap(b: str | bytes) -> bytes:
        out = b if isinstance(b, bytes) else bom + b.encode(codec if codec != "utf-8" else "utf-8")
        return recompress(out)

    if not text.strip():
        return WriteBody([Reading("empty", None)], wrap)
    if sniff(text.encode("utf-8")[:1024]) == "binary":
        raise _refuse("binary content")
    readings = _readings(mime, text, codec)
    for alt in others:  # the CRM may ignore the declared charset and read UTF-8
        readings.extend(r for r in _readings(mime, alt, "utf-8", strict=False))
    return WriteBody(readings, wrap)


def query_reading(query: str) -> Reading:
    """The query string of a write read as form fields: frameworks that merge query
    parameters into the request's fields (PHP `$_REQUEST`, Spring `@RequestParam`,
    ASP.NET model binding) store them like body fields, so they are checked alike."""
    readings = _form_readings(query, "utf-8", strict=False)
    if not readings:
        raise _refuse("a query string that is not valid form encoding")
    return Reading("query", readings[-1].tree)


def _as_bytes(b: str | bytes, codec: str) -> bytes:
    return b if isinstance(b, bytes) else b.encode(codec)


# --- label ------------------------------------------------------------------------


def _media_type(values: Sequence[str]) -> tuple[str, dict[str, str]]:
    values = [v for v in values if v.strip()]
    if len(values) > 1:
        raise _refuse("more than one Content-Type header")
    if not values:
        return "", {}
    value = values[0]
    m = _MEDIA.match(value)
    if m is None:
        raise _refuse("malformed Content-Type")
    mime = f"{m.group(1)}/{m.group(2)}".lower()
    params: dict[str, str] = {}
    pos = m.end()
    while pos < len(value):
        p = _PARAM.match(value, pos)
        if p is None:
            raise _refuse("malformed Content-Type parameters")
        name = p.group(1).lower()
        if name in params:
            raise _refuse(f"Content-Type parameter {name!r} given twice")
        if name not in ("charset", "boundary"):
            raise _refuse(f"unexpected Content-Type parameter {name!r}")
        params[name] = p.group(2) if p.group(2) is not None else re.sub(r"\\(.)", r"\1", p.group(3))
        pos = p.end()
    return mime, params


def _content_encoding(values: Sequence[str]) -> str:
    layers = [t.strip().lower() for v in values for t in v.split(",") if t.strip()]
    layers = [t for t in layers if t != "identity"]
    if len(layers) > 1:
        raise _refuse("more than one Content-Encoding")
    if not layers:
        return ""
    layer = {"x-gzip": "gzip"}.get(layers[0], layers[0])
    if layer not in ("gzip", "deflate"):
        raise _refuse(f"Content-Encoding {layers[0]!r}")
    return layer


def _decode_layer(raw: bytes, layer: str, limits: BodyLimits) -> bytes:
    if not layer:
        return raw
    wbits = 31 if layer == "gzip" else (15 if raw[:1] == b"\x78" else -15)
    d = zlib.decompressobj(wbits)
    cap = min(limits.max_decoded, max(len(raw), 1) * limits.max_ratio + (1 << 16))
    try:
        out = d.decompress(raw, cap + 1)
    except zlib.error as exc:
        raise _refuse(f"invalid {layer} data") from exc
    if len(out) > cap or d.unconsumed_tail:
        raise _refuse(f"{layer} body expands beyond the limit")
    if not d.eof or d.unused_data:
        raise _refuse(f"truncated or trailing {layer} data")
    return out


# --- charset ----------------------------------------------------------------------


def _codec(charset: str | None) -> str | None:
    if charset is None:
        return None
    found = _CHARSETS.get(charset.strip().lower())
    if found is None:
        raise _refuse(f"charset {charset!r}")
    return found


def _decode_text(data: bytes, charset: str | None) -> tuple[str, str, bytes]:
    """(text, codec, BOM): the declared charset, checked against any BOM."""
    declared = _codec(charset)
    bom, family = next(((b, f) for b, f in _BOMS if data.startswith(b)), (b"", ""))
    if bom:
        if declared is not None and not declared.startswith(family):
            raise _refuse(f"a {family} byte-order mark under charset {charset!r}")
        codec = family if family != "utf-8" else "utf-8"
        body = data[len(bom) :] if family == "utf-8" else data
        keep = bom if family == "utf-8" else b""
        try:
            return body.decode(codec), codec, keep
        except UnicodeDecodeError as exc:
            raise _refuse(f"invalid {codec} text") from exc
    if declared in ("utf-16", "utf-32"):
        raise _refuse(f"{declared} without a byte-order mark")
    for codec in (declared,) if declared else ("utf-8", "gb18030"):
        try:
            return data.decode(codec), codec, b""
        except UnicodeDecodeError:
            continue
    raise _refuse(f"text that is not valid {declared or 'UTF-8 (or GB18030)'}")


def _alternative_texts(data: bytes, text: str, codec: str, charset: str | None) -> list[str]:
    if charset is None or codec == "utf-8":
        return []
    try:
        alt = data.decode("utf-8")
    except UnicodeDecodeError:
        return []
    return [alt] if alt != text else []


# --- formats ----------------------------------------------------------------------


def _readings(mime: str, text: str, codec: str, *, strict: bool = True) -> list[Reading]:
    kind = sniff(text.lstrip()[:1024].encode("utf-8"))
    if mime in _JSON_TYPES or mime.endswith("+json"):
        return [_json(text, codec)] if strict or kind == "json" else []
    if mime in _XML_TYPES or mime.endswith("+xml"):
        if kind not in ("xml", "html"):
            if strict:
                raise _refuse(f"{mime} body that is not XML")
            return []
        return [_xml(text, codec)]
    if mime == _FORM:
        if kind in ("json", "xml", "html"):
            if strict:
                raise _refuse(f"{kind} content labelled as a form")
            return []
        return _form_readings(text, codec)
    if mime not in _LOOSE_TYPES:
        raise _refuse(f"media type {mime!r}")
    # Unlabelled or text/plain: every reading a lenient CRM might take. A body that
    # looks like JSON (or XML) is that; anything else is plain text and, with a `=`,
    # a form as well.
    # A body that looks like JSON or markup but does not parse is not inspectable.
    if kind == "json":
        return [_json(text, codec)]
    if kind in ("xml", "html"):
        return [_xml(text, codec)]
    out: list[Reading] = []
    if "=" in text:
        out.extend(_form_readings(text, codec, strict=False))
    out.append(Reading("text", {BODY_KEY: text}, lambda tree, _s: str(tree.get(BODY_KEY, ""))))
    return out


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _refuse(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise _refuse(f"non-standard JSON constant {name}")


def loads_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, UnsupportedMediaType):
            raise
        raise _refuse("invalid JSON") from exc


MAX_DEPTH = 64


def _check_depth(value: Any) -> None:
    """Nesting beyond MAX_DEPTH is refused (no CRM payload needs it; the walk is bounded)."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _refuse(f"nesting deeper than {MAX_DEPTH}")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _json(text: str, codec: str) -> Reading:
    value = loads_json(text)
    _check_depth(value)
    if isinstance(value, dict | list):
        return Reading("json", value, lambda tree, _s: json.dumps(tree, ensure_ascii=False))
    return Reading(
        "json",
        {BODY_KEY: value},
        lambda tree, _s: json.dumps(tree.get(BODY_KEY), ensure_ascii=False),
    )


# form ---------------------------------------------------------------------------------

_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def _key_path(key: str) -> list[str]:
    """`contact[email]` -> [contact, email] (Rails/PHP nesting); `tags[]` -> [tags]."""
    head, bracket, _ = key.partition("[")
    if not bracket or not head:
        return [key]
    rest = key[len(head) :]
    parts = _BRACKETS.findall(rest)
    if "".join(f"[{p}]" for p in parts) != rest:
        return [key]
    return [head] + [p for p in parts if p]


def _nest(pairs: list[tuple[list[str], Any]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in pairs:
        node = tree
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise _refuse(f"form key {part!r} is both a value and a group")
            node = nxt
        last = path[-1]
        if last in node:
            if isinstance(node[last], dict) or isinstance(value, dict):
                raise _refuse(f"form key {last!r} is both a value and a group")
            prev = node[last]
            node[last] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            node[last] = value
    return tree


def _dotted(path: list[str]) -> str:
    return ".".join(path)


def _dropped(name: str, stripped: frozenset[str]) -> bool:
    return any(name == s or name.startswith((s + ".", s + "[")) for s in stripped)


def _form_readings(text: str, codec: str, *, strict: bool = True) -> list[Reading]:
    """The form as `&` separates it; a raw `;` (never written by a form encoder) is
    also read as a separator, as some servers do, in a second reading."""
    out = []
    for body in (text, text.replace(";", "&")) if ";" in text else (text,):
        try:
            pairs = parse_qsl(body.strip(), keep_blank_values=True, encoding=codec, errors="strict")
        except (UnicodeError, ValueError) as exc:
            if strict and body is text:
                raise _refuse("malformed form body") from exc
            continue
        keyed = [(_key_path(k), v) for k, v in pairs]
        if any(len(path) > MAX_DEPTH for path, _ in keyed):
            raise _refuse(f"nesting deeper than {MAX_DEPTH}")
        out.append(Reading("form", _nest(keyed), _form_rebuild(pairs, keyed, codec)))
    return out


def _form_rebuild(
    pairs: list[tuple[str, str]], keyed: list[tuple[list[str], Any]], codec: str
) -> Callable[[Any, frozenset[str]], str | bytes]:
    def rebuild(_tree: Any, stripped: frozenset[str]) -> bytes:
        kept = [
            pair
            for pair, (path, _) in zip(pairs, keyed, strict=True)
            if not _dropped(_dotted(path), stripped)
        ]
        return urlencode(kept, encoding=codec).encode("ascii")

    return rebuild


# multipart ----------------------------------------------------------------------------


def _multipart(data: bytes, boundary: str, charset: str | None) -> Reading:
    if not _BOUNDARY.fullmatch(boundary):
        raise _refuse("a multipart boundary outside RFC 2046 (1-70 bchars)")
    delimiter = b"--" + boundary.encode("latin-1")
    head = data.lstrip(b"\r\n")
    if not head.startswith(delimiter + b"\r\n") and not head.startswith(delimiter + b"\n"):
        raise _refuse("multipart body with a preamble or without its first boundary")
    tail = data.rstrip(b"\r\n \t")
    if not tail.endswith(delimiter + b"--"):
        raise _refuse("multipart body without its closing boundary")
    envelope = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\n\r\n'.encode()
    # compat32 keeps header parameters as sent: repeated and RFC 2231 `name*` ones show
    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(envelope + data)
    if msg.defects or not msg.is_multipart():
        raise _refuse("malformed multipart body")
    payload = msg.get_payload()
    parts = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    if not parts or len(parts) != len(payload):
        raise _refuse("malformed multipart body")
    if len(parts) > _MAX_PARTS:
        raise _refuse("too many multipart parts")
    if data.count(delimiter) != len(parts) + 1:
        raise _refuse("multipart parts the parser did not frame")  # a boundary in a part
    default = _charset_field(parts) or charset
    fields: list[tuple[list[str], Any]] = []
    raws: list[Message] = []
    for part in parts:
        name, value = _part_field(part, default)
        fields.append((_key_path(name), value))
        raws.append(part)
    tree = _nest(fields)

    def rebuild(_tree: Any, stripped: frozenset[str]) -> bytes:
        out = []
        for (path, _), part in zip(fields, raws, strict=True):
            if _dropped(_dotted(path), stripped):
                continue
            out.append(delimiter + b"\r\n" + _part_bytes(part))
        return b"".join(out) + delimiter + b"--\r\n"

    return Reading("multipart", tree, rebuild)


def _charset_field(parts: list[Message]) -> str | None:
    for part in parts:
        if part.get_param("name", header="content-disposition") == "_charset_":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode("ascii", "replace").strip()
    return None


def _part_field(part: Message, default_charset: str | None) -> tuple[str, Any]:
    if part.is_multipart():
        raise _refuse("nested multipart parts")
    dispositions = part.get_all("content-disposition") or []
    if len(dispositions) != 1 or part.get_content_disposition() != "form-data":
        raise _refuse("a multipart part without one form-data Content-Disposition")
    raw_params = (part.get_params(header="content-disposition", unquote=False) or [])[1:]
    params = [k.lower() for k, _ in raw_params]
    extended = any(k.endswith("*") or not isinstance(v, str) for k, v in raw_params)
    if len(params) != len(set(params)) or extended:
        raise _refuse("repeated or extended Content-Disposition parameters")
    name = part.get_param("name", header="content-disposition")
    if not isinstance(name, str) or not name:
        raise _refuse("a multipart part without a name")
    if "filename" in params:
        raise _refuse(f"file part {name!r} (uploads are not inspected)")
    if len(part.get_all("content-type") or []) > 1:
        raise _refuse(f"part {name!r} with two Content-Type headers")
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if cte not in _PART_ENCODINGS:
        raise _refuse(f"part {name!r} with Content-Transfer-Encoding {cte!r}")
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    ctype = part.get_content_type() if part.get("content-type") else "text/plain"
    if ctype not in ("text/plain", *sorted(_JSON_TYPES)) and not ctype.endswith("+json"):
        raise _refuse(f"part {name!r} of type {ctype!r}")
    part_charset = part.get_param("charset")
    text, _codec_name, _bom = _decode_text(
        data, part_charset if isinstance(part_charset, str) else default_charset
    )
    if sniff(data[:1024]) == "binary":
        raise _refuse(f"binary content in part {name!r}")
    if ctype != "text/plain":
        return name, loads_json(text)
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            return name, loads_json(stripped)  # a CRM that reads JSON parts gets it checked
        except UnsupportedMediaType:
            pass
    return name, text


def _part_bytes(part: Message) -> bytes:
    headers = b"".join(f"{k}: {v}\r\n".encode() for k, v in part.items())
    payload = part.get_payload(decode=True)
    return headers + b"\r\n" + (payload if isinstance(payload, bytes) else b"") + b"\r\n"


# XML ----------------------------------------------------------------------------------


_XML_DECL = re.compile(r"\s*<\?xml[^>]*\?>")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2] if tag.startswith("{") else tag.rpartition(":")[2]


def _xml(text: str, codec: str) -> Reading:
    declaration = _XML_DECL.match(text)
    body = text[declaration.end() :] if declaration else text  # decoded already
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except Exception as exc:  # defusedxml raises its own and ElementTree's errors
        raise _refuse(f"invalid or unsafe XML ({type(exc).__name__})") from exc
    depths = [(root, 0)]
    while depths:
        elem, depth = depths.pop()
        if depth > MAX_DEPTH:
            raise _refuse(f"nesting deeper than {MAX_DEPTH}")
        depths.extend((child, depth + 1) for child in elem)
    names: dict[str, list[tuple[Element | None, Element, str | None]]] = {}
    tree = {_local(root.tag): _xml_node(root, _local(root.tag), None, names)}

    def rebuild(_tree: Any, stripped_names: frozenset[str]) -> bytes:
        for name, places in names.items():
            if not _dropped(name, stripped_names):
                continue
            for parent, elem, attr in places:
                if attr is not None:
                    elem.attrib.pop(attr, None)
                elif parent is not None and elem in list(parent):
                    parent.remove(elem)
                else:
                    elem.clear()
        head = declaration.group(0) if declaration else ""
        return (head + tostring(root, encoding="unicode")).encode(codec)

    return Reading("xml", tree, rebuild)


def _xml_node(
    elem: Element,
    name: str,
    parent: Element | None,
    names: dict[str, list[tuple[Element | None, Element, str | None]]],
) -> Any:
    names.setdefault(name, []).append((parent, elem, None))
    children = list(elem)
    if not children and not elem.attrib:
        return elem.text or ""
    node: dict[str, Any] = {}
    for attr, value in elem.attrib.items():
        key = _local(attr)
        names.setdefault(f"{name}.{key}", []).append((parent, elem, attr))
        node[key] = value
    counts: dict[str, int] = {}
    for child in children:
        key = _local(str(child.tag))
        counts[key] = counts.get(key, 0) + 1
    seen: dict[str, int] = {}
    for child in children:
        key = _local(str(child.tag))
        if counts[key] > 1:
            i = seen.get(key, 0)
            seen[key] = i + 1
            names.setdefault(f"{name}.{key}", []).append((elem, child, None))
            node.setdefault(key, []).append(_xml_node(child, f"{name}.{key}[{i}]", elem, names))
        else:
            node[key] = _xml_node(child, f"{name}.{key}", elem, names)
    text = (elem.text or "").strip() + "".join((c.tail or "").strip() for c in children)
    if text:
        node[BODY_KEY] = text
    return node
