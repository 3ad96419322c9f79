"""XML and SOAP bodies: a refusing parser, records rewritten as records, leaves by tag.

expat is driven directly (not ElementTree) so the output keeps the document's
own namespace prefixes (`soap:Envelope` stays `soap:Envelope`). Any DOCTYPE or
entity declaration is refused outright: that closes billion-laughs, quadratic
blow-up and external-entity reads with one rule, and CRM payloads never need
a DTD.

The record model is the JSON one (issue 12). An element is a record when its
path of local names is a declared record prefix (`Envelope.Body.
GetCustomersResponse.Customer`: repeated elements are spelled once, no `item`)
or when its attributes or child elements carry the catalog's record facts
(`<grade>`, `grade="A"`). A record is read into a dict (attributes and leaf
children by local name, nested elements as nested dicts, repeated ones as
lists), rewritten by `rewrite_record` / `rewrite_subtree` with the record
rules, bulk quota and report of every other format, and written back: a
dropped record vanishes with its element, a field the enforcer leaves out
vanishes with its element or attribute. Outside records, attributes and leaf
elements go to `rewrite_fields` keyed by local name (a leaf left out is
emptied), and mixed-content text and comments to `rewrite_text`. Element and
attribute names that may hold an identifier are scanned like free text.
"""

from __future__ import annotations

import re
from typing import Any
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from gateway.core.catalog import suspect_key
from gateway.core.codecs.buffered import BufferedStage
from gateway.core.codecs.charset import UTF8_BOM, codec_name, output_charset
from gateway.core.codecs.limits import CodecLimits
from gateway.core.codecs.structured import MalformedBody
from gateway.core.masking import DROPPED
from gateway.core.rewrite import RecordEnforcer, RewriteError

_DECLARED_ENCODING = re.compile(rb"""\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_NOT_NAME_CHAR = re.compile(r"[^\w.\-:]")
_MISSING: Any = object()
#: Element nesting limit (expat has none of its own that we rely on).
MAX_DEPTH = 256


class _Refused(Exception):
    pass


def _refuse(*_: object) -> None:
    raise _Refused("DTDs and entity declarations are refused")


def _refuse_external(*_: object) -> int:
    raise _Refused("external entities are refused")


def _local(name: str) -> str:
    return name.rpartition(":")[2]


def _is_ns(attr: str) -> bool:
    return attr == "xmlns" or attr.startswith("xmlns:")


class _Node:
    __slots__ = ("attrs", "children", "name")

    def __init__(self, name: str, attrs: list[tuple[str, str]]) -> None:
        self.name = name
        self.attrs = attrs
        self.children: list[_Node | str | tuple[str, str, str]] = []

    def elements(self) -> list[_Node]:
        return [c for c in self.children if isinstance(c, _Node)]

    def plain_attrs(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.attrs if not _is_ns(k)]

    def structured(self) -> bool:
        """Has child elements or (non-namespace) attributes: read as a dict."""
        return any(isinstance(c, _Node) for c in self.children) or bool(self.plain_attrs())

    def text(self) -> str:
        return "".join(c for c in self.children if isinstance(c, str))


class _Builder:
    """expat handlers that build the tree (the body is buffered anyway)."""

    def __init__(self) -> None:
        self.declaration: tuple[str | None, int] | None = None
        self.before: list[tuple[str, str, str]] = []  # comments / PIs before the root
        self.after: list[tuple[str, str, str]] = []
        self.root: _Node | None = None
        self._stack: list[_Node] = []

    def xml_decl(self, version: str | None, _encoding: str | None, standalone: int) -> None:
        self.declaration = (version, standalone)

    def start(self, name: str, attrs: list[str]) -> None:
        if len(self._stack) >= MAX_DEPTH:
            raise _Refused("XML nested too deeply")
        node = _Node(name, list(zip(attrs[::2], attrs[1::2], strict=True)))
        if self._stack:
            self._stack[-1].children.append(node)
        else:
            self.root = node
        self._stack.append(node)

    def end(self, _name: str) -> None:
        self._stack.pop()

    def chars(self, data: str) -> None:
        if self._stack:
            self._stack[-1].children.append(data)

    def comment(self, data: str) -> None:
        self._misc(("comment", data, ""))

    def instruction(self, target: str, data: str) -> None:
        self._misc(("pi", target, data))

    def _misc(self, item: tuple[str, str, str]) -> None:
        if self._stack:
            self._stack[-1].children.append(item)
        elif self.root is None:
            self.before.append(item)
        else:
            self.after.append(item)


def _fields(node: _Node) -> dict[str, Any]:
    """A structured element as a record dict: attributes, then children by local name
    (leaves as their text, structured ones as dicts, repeated names as lists)."""
    out: dict[str, Any] = {_local(k): v for k, v in node.plain_attrs()}
    repeated: set[str] = set()
    for child in node.elements():
        key = _local(child.name)
        value = _fields(child) if child.structured() else child.text()
        if key not in out:
            out[key] = value
        elif key in repeated:
            out[key].append(value)
        else:
            out[key] = [out[key], value]
            repeated.add(key)
    return out


def _scalar(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


class _Writer:
    def __init__(self, enforcer: RecordEnforcer, encoding_label: str) -> None:
        self._enforcer = enforcer
        self._label = encoding_label
        self._prefixes = frozenset(enforcer.record_prefixes())
        self._keys = enforcer.record_keys()
        self.out: list[str] = []

    def document(self, built: _Builder) -> str:
        if built.declaration is not None:
            version, standalone = built.declaration
            alone = {1: ' standalone="yes"', 0: ' standalone="no"'}.get(standalone, "")
            self.out.append(
                f'<?xml version="{version or "1.0"}" encoding="{self._label}"{alone}?>\n'
            )
        for item in built.before:
            self._misc(item)
        if built.root is not None:
            self._element(built.root, "")
        for item in built.after:
            self._misc(item)
        return "".join(self.out)

    # --- names ------------------------------------------------------------------

    def _name(self, name: str) -> str:
        return _masked_name(name, self._enforcer) if suspect_key(name) else name

    def _ns(self, key: str, value: str) -> str:
        """A namespace declaration: its prefix masked as the names using it are, its
        URI scanned as text (`xmlns:c139...="urn:crm:110105..."` carries data too)."""
        return f"{self._name(key)}={quoteattr(self._enforcer.rewrite_text(value))}"

    # --- outside records ----------------------------------------------------------

    def _element(self, node: _Node, parent: str) -> None:
        prefix = f"{parent}.{_local(node.name)}" if parent else _local(node.name)
        if prefix in self._prefixes:
            self._record(node, self._enforcer.rewrite_record(_fields(node), prefix))
            return
        if self._keys and node.structured():
            names = {_local(k) for k, _ in node.plain_attrs()}
            names.update(_local(c.name) for c in node.elements())
            if not self._keys.isdisjoint(names):
                # a record by its facts (or record facts in the envelope: refused there)
                self._record(node, self._enforcer.rewrite_subtree(prefix, _fields(node)))
                return
        plain = {_local(k): v for k, v in node.plain_attrs()}
        rewritten = self._enforcer.rewrite_fields(plain) if plain else {}
        parts = [self._name(node.name)]
        for key, value in node.attrs:
            if _is_ns(key):
                parts.append(self._ns(key, value))
            elif _local(key) in rewritten:
                parts.append(f"{self._name(key)}={quoteattr(rewritten[_local(key)])}")
        self.out.append("<" + " ".join(parts) + ">")
        if not node.elements():
            text = node.text()
            if text.strip():
                tag = _local(node.name)
                text = self._enforcer.rewrite_fields({tag: text}).get(tag, "")
            self.out.append(escape(text))
        else:
            for child in node.children:
                if isinstance(child, _Node):
                    self._element(child, prefix)
                elif isinstance(child, str):
                    self._text(child)
                else:
                    self._misc(child)
        self.out.append(f"</{self._name(node.name)}>")

    def _text(self, text: str) -> None:
        self.out.append(escape(self._enforcer.rewrite_text(text) if text.strip() else text))

    def _misc(self, item: tuple[str, str, str]) -> None:
        kind, a, b = item
        if kind == "comment":
            self.out.append(f"<!--{self._enforcer.rewrite_text(a)}-->")
        else:  # a processing instruction: its target is a name, its data text
            data = self._enforcer.rewrite_text(b).replace("?>", "? >")
            self.out.append(f"<?{self._name(a)} {data}?>")

    # --- records ----------------------------------------------------------------

    def _record(self, node: _Node, new: Any) -> None:
        """Write a rewritten record back into its element (None, or omitted side
        data: the element vanishes)."""
        if new is None or new is DROPPED:
            return
        if not isinstance(new, dict):
            self._leaf(node, new)
            return
        name = self._name(node.name)
        parts = [name]
        for key, value in node.attrs:
            if _is_ns(key):
                parts.append(self._ns(key, value))
                continue
            got = new.get(_local(key))
            if got is not None and not isinstance(got, dict | list):
                parts.append(f"{self._name(key)}={quoteattr(_scalar(got))}")
        self.out.append("<" + " ".join(parts) + ">")
        seen: dict[str, int] = {}
        counts: dict[str, int] = {}
        for element in node.elements():
            counts[_local(element.name)] = counts.get(_local(element.name), 0) + 1
        for child in node.children:
            if isinstance(child, str):
                self._text(child)
            elif isinstance(child, tuple):
                self._misc(child)
            else:
                self._record_child(child, new, seen, counts)
        self.out.append(f"</{name}>")

    def _record_child(
        self, child: _Node, new: dict[str, Any], seen: dict[str, int], counts: dict[str, int]
    ) -> None:
        key = _local(child.name)
        value = new.get(key, _MISSING)
        index = seen.get(key, 0)
        seen[key] = index + 1
        if isinstance(value, list) and counts[key] > 1:  # one value per occurrence
            value = value[index] if index < len(value) else _MISSING
        if value is _MISSING or value is None:
            return  # dropped by the enforcer: the element goes too
        if isinstance(value, dict) and child.structured():
            self._record(child, value)
        else:
            self._leaf(child, value)

    def _leaf(self, node: _Node, value: Any) -> None:
        name = self._name(node.name)
        ns = "".join(f" {self._ns(k, v)}" for k, v in node.attrs if _is_ns(k))
        body = escape(_flatten(value) if isinstance(value, dict | list) else _scalar(value))
        self.out.append(f"<{name}{ns}>{body}</{name}>")


def _flatten(value: Any) -> str:
    """A container the enforcer returned for a leaf (a masked unit): its scalars joined."""
    if isinstance(value, dict):
        return " ".join(_flatten(v) for v in value.values() if v is not None)
    if isinstance(value, list):
        return " ".join(_flatten(v) for v in value if v is not None)
    return _scalar(value)


def _masked_name(name: str, enforcer: RecordEnforcer) -> str:
    """An element or attribute name holding an identifier, masked and kept a valid name;
    a namespace prefix is masked the same way wherever it appears (declaration and use),
    so the document stays well-formed."""
    prefix, colon, local = name.rpartition(":")
    if prefix and prefix != "xmlns" and suspect_key(prefix):
        prefix = _masked_part(prefix, enforcer)
    return f"{prefix}{colon}{_masked_part(local, enforcer)}"


def _masked_part(part: str, enforcer: RecordEnforcer) -> str:
    masked = _NOT_NAME_CHAR.sub("_", enforcer.rewrite_text(part))
    if not masked or not (masked[0].isalpha() or masked[0] == "_"):
        masked = "_" + masked
    return masked


def rewrite_xml(raw: bytes, enforcer: RecordEnforcer, encoding_label: str) -> bytes:
    """`raw` is UTF-8 (already transcoded); the declaration keeps the declared label."""
    built = _Builder()
    parser = expat.ParserCreate(encoding="utf-8")
    parser.ordered_attributes = True
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse_external
    parser.XmlDeclHandler = built.xml_decl
    parser.StartElementHandler = built.start
    parser.EndElementHandler = built.end
    parser.CharacterDataHandler = built.chars
    parser.CommentHandler = built.comment
    parser.ProcessingInstructionHandler = built.instruction
    try:
        parser.Parse(raw, True)
    except _Refused as exc:
        raise RewriteError(f"XML body refused: {exc}") from exc
    except expat.ExpatError as exc:
        raise MalformedBody(f"malformed XML: {exc}") from exc
    return _Writer(enforcer, encoding_label).document(built).encode("utf-8")


class XmlStage:
    """Buffers XML and rewrites it whole, handling its own charset.

    An XML body may name its encoding in its declaration instead of in the
    Content-Type (common for GBK SOAP services), so this stage decodes by the
    Content-Type charset, else a UTF-8 BOM, else the declaration, else UTF-8,
    and writes the result back in that same encoding when it is one that keeps
    (`output_charset`), else in UTF-8 with a declaration that says so.
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
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")) and not self._charset:
            return self._utf16(raw)
        bom = raw.startswith(UTF8_BOM)
        body = raw[len(UTF8_BOM) :] if bom else raw
        declared = _DECLARED_ENCODING.match(body)
        label = self._charset or (declared.group(1).decode("ascii") if declared else "UTF-8")
        codec = "utf-8" if bom else codec_name(label)
        try:
            text = body.decode(codec)
        except UnicodeDecodeError as exc:
            raise RewriteError(f"XML body is not valid {codec}: {exc.reason}") from exc
        out_codec = output_charset(codec)
        out_label = label if out_codec == codec else "UTF-8"
        try:
            out = rewrite_xml(text.encode("utf-8"), self._enforcer, out_label).decode("utf-8")
        except MalformedBody:
            if self._sensitive:
                raise
            out = self._enforcer.rewrite_text(text)
        try:
            return (UTF8_BOM if bom else b"") + out.encode(out_codec)
        except UnicodeEncodeError as exc:
            raise RewriteError(f"rewritten XML cannot be encoded as {out_codec}") from exc

    def _utf16(self, raw: bytes) -> bytes:
        """A UTF-16 document known by its byte-order mark (no charset declared)."""
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise RewriteError(f"XML body is not valid UTF-16: {exc.reason}") from exc
        return rewrite_xml(text.encode("utf-8"), self._enforcer, "UTF-8")  # see the class doc
