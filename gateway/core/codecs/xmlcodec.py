"""XML and SOAP bodies: a refusing parser, leaf text rewritten by tag name.

expat is driven directly (not ElementTree) so the output keeps the document's
own namespace prefixes (`soap:Envelope` stays `soap:Envelope`). Any DOCTYPE or
entity declaration is refused outright: that closes billion-laughs, quadratic
blow-up and external-entity reads with one rule, and CRM payloads never need
a DTD. Leaf elements go to `rewrite_fields({tag: text})` keyed by local name,
attributes the same way per element, and mixed-content text and comments to
`rewrite_text`. A key the enforcer leaves out empties that leaf or drops that
attribute.
"""

from __future__ import annotations

import re
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from gateway.core.codecs.buffered import BufferedStage
from gateway.core.codecs.charset import UTF8_BOM, codec_name
from gateway.core.codecs.limits import CodecLimits
from gateway.core.codecs.structured import MalformedBody
from gateway.core.rewrite import RecordEnforcer, RewriteError

_DECLARED_ENCODING = re.compile(rb"""\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


class _Refused(Exception):
    pass


def _refuse(*_: object) -> None:
    raise _Refused("DTDs and entity declarations are refused")


def _refuse_external(*_: object) -> int:
    raise _Refused("external entities are refused")


def _local(name: str) -> str:
    return name.rpartition(":")[2]


class _Element:
    __slots__ = ("has_child", "name", "text")

    def __init__(self, name: str) -> None:
        self.name = name
        self.has_child = False
        self.text: list[str] = []


class _Writer:
    """expat handlers that re-emit the document with rewritten text."""

    def __init__(self, enforcer: RecordEnforcer, encoding_label: str) -> None:
        self._enforcer = enforcer
        self._label = encoding_label
        self._stack: list[_Element] = []
        self.out: list[str] = []

    def declaration(self, version: str | None, _encoding: str | None, standalone: int) -> None:
        alone = {1: ' standalone="yes"', 0: ' standalone="no"'}.get(standalone, "")
        self.out.append(f'<?xml version="{version or "1.0"}" encoding="{self._label}"{alone}?>\n')

    def start(self, name: str, attrs: list[str]) -> None:
        if self._stack:
            parent = self._stack[-1]
            parent.has_child = True
            self._flush_mixed(parent)
        pairs = list(zip(attrs[::2], attrs[1::2], strict=True))
        plain = {_local(k): v for k, v in pairs if not _is_ns(k)}
        rewritten = self._enforcer.rewrite_fields(plain) if plain else {}
        parts = [name]
        for key, value in pairs:
            if _is_ns(key):
                parts.append(f"{key}={quoteattr(value)}")
            elif _local(key) in rewritten:
                parts.append(f"{key}={quoteattr(rewritten[_local(key)])}")
        self.out.append("<" + " ".join(parts) + ">")
        self._stack.append(_Element(name))

    def end(self, name: str) -> None:
        element = self._stack.pop()
        text = "".join(element.text)
        if not element.has_child and text.strip():
            tag = _local(name)
            text = self._enforcer.rewrite_fields({tag: text}).get(tag, "")
            self.out.append(escape(text))
        else:
            self._flush_mixed(element)
        self.out.append(f"</{name}>")

    def chars(self, data: str) -> None:
        if self._stack:
            self._stack[-1].text.append(data)

    def comment(self, data: str) -> None:
        self.out.append(f"<!--{self._enforcer.rewrite_text(data)}-->")

    def instruction(self, target: str, data: str) -> None:
        self.out.append(f"<?{target} {data}?>")

    def _flush_mixed(self, element: _Element) -> None:
        text = "".join(element.text)
        element.text.clear()
        if text.strip():
            text = self._enforcer.rewrite_text(text)
        self.out.append(escape(text))


def _is_ns(attr: str) -> bool:
    return attr == "xmlns" or attr.startswith("xmlns:")


def rewrite_xml(raw: bytes, enforcer: RecordEnforcer, encoding_label: str) -> bytes:
    """`raw` is UTF-8 (already transcoded); the declaration keeps the declared label."""
    writer = _Writer(enforcer, encoding_label)
    parser = expat.ParserCreate(encoding="utf-8")
    parser.ordered_attributes = True
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse_external
    parser.XmlDeclHandler = writer.declaration
    parser.StartElementHandler = writer.start
    parser.EndElementHandler = writer.end
    parser.CharacterDataHandler = writer.chars
    parser.CommentHandler = writer.comment
    parser.ProcessingInstructionHandler = writer.instruction
    try:
        parser.Parse(raw, True)
    except _Refused as exc:
        raise RewriteError(f"XML body refused: {exc}") from exc
    except expat.ExpatError as exc:
        raise MalformedBody(f"malformed XML: {exc}") from exc
    return "".join(writer.out).encode("utf-8")


class XmlStage:
    """Buffers XML and rewrites it whole, handling its own charset.

    An XML body may name its encoding in its declaration instead of in the
    Content-Type (common for GBK SOAP services), so this stage decodes by the
    Content-Type charset, else a UTF-8 BOM, else the declaration, else UTF-8,
    and writes the result back in that same encoding.
    """

    def __init__(
        self, enforcer: RecordEnforcer, limits: CodecLimits, charset: str | None, *, sensitive: bool
    ) -> None:
        self._enforcer = enforcer
        self._charset = charset
        self._sensitive = sensitive
        self._buffer = BufferedStage(self._rewrite, limits)

    def feed(self, data: bytes) -> bytes:
        return self._buffer.feed(data)

    def finish(self) -> bytes:
        return self._buffer.finish()

    def _rewrite(self, raw: bytes) -> bytes:
        if not raw.strip():
            return raw
        bom = raw.startswith(UTF8_BOM)
        body = raw[len(UTF8_BOM) :] if bom else raw
        declared = _DECLARED_ENCODING.match(body)
        label = self._charset or (declared.group(1).decode("ascii") if declared else "UTF-8")
        codec = "utf-8" if bom else codec_name(label)
        try:
            text = body.decode(codec)
        except UnicodeDecodeError as exc:
            raise RewriteError(f"XML body is not valid {codec}: {exc.reason}") from exc
        try:
            out = rewrite_xml(text.encode("utf-8"), self._enforcer, label).decode("utf-8")
        except MalformedBody:
            if self._sensitive:
                raise
            out = self._enforcer.rewrite_text(text)
        try:
            return (UTF8_BOM if bom else b"") + out.encode(codec)
        except UnicodeEncodeError as exc:
            raise RewriteError(f"rewritten XML cannot be encoded as {codec}") from exc
