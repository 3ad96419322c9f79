"""Body codecs: parse a response body in its own format and rewrite it through a RecordEnforcer.

`make_body_rewriter` picks the pipeline for one response:

    Content-Encoding layers (reversed)  ->  charset to UTF-8  ->  format stage  ->  UTF-8 to charset

and returns it as a sans-IO `BodyRewriter` (see gateway.core.rewrite). Output
is always uncompressed. Everything fails closed with RewriteError: unknown
encodings and charsets, binary types, bodies over the limits, truncated or
malformed input (BodyTooLarge, a RewriteError subclass, marks the size limits).
BlockResponse from the enforcer propagates unchanged. After any exception the
rewriter is poisoned.

Format by declared media type:
  JSON (application/json, */*+json)     buffered below stream_threshold, else streamed by record
  NDJSON (x-ndjson, jsonl, ...)         streamed by line
  CSV / TSV                             streamed by row, header-driven
  XML / SOAP (*/xml, */*+xml)           buffered, DTDs refused
  x-www-form-urlencoded                 buffered, as fields
  text/event-stream                     streamed by event
  any other text, or no Content-Type    buffered; masked as JSON/JSONP/NDJSON if it parses as one
                                        (content-type confusion), else as free text
  image/*, audio/*, video/*, PDF, zip, octet-stream, ...   refused, unless the route is a
                                        document route the caller may see whole (`document=True`:
                                        relayed unchanged, only decoded)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from gateway.core.codecs.buffered import BufferedStage
from gateway.core.codecs.charset import (
    Reencoder,
    Transcoder,
    codec_name,
    output_charset,
    parse_media_type,
    with_charset,
)
from gateway.core.codecs.csvcodec import CsvStage
from gateway.core.codecs.encoding import content_decoders
from gateway.core.codecs.form import rewrite_form
from gateway.core.codecs.jsonbody import JsonStage
from gateway.core.codecs.limits import BodyTooLarge, CodecLimits, too_large
from gateway.core.codecs.ndjson import NdjsonStage
from gateway.core.codecs.pipeline import Pipeline, Refused, Stage
from gateway.core.codecs.sniff import sniff
from gateway.core.codecs.sse import SseStage
from gateway.core.codecs.structured import MalformedBody, rewrite_as_text, rewrite_json_like
from gateway.core.codecs.xmlcodec import XmlStage
from gateway.core.rewrite import BodyRewriter, RecordEnforcer, RewriteError

__all__ = ["BodyTooLarge", "CodecLimits", "body_kind", "make_body_rewriter", "sniff"]

_NDJSON = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/json-lines",
    }
)
_JSON = frozenset({"application/json", "text/json", "application/x-json"})
_XML = frozenset({"application/xml", "text/xml", "application/soap+xml"})
_CSV = frozenset({"text/csv", "application/csv", "text/x-csv", "application/x-csv"})
_TSV = frozenset({"text/tab-separated-values"})
_BUFFERED = frozenset({"xml", "form", "text"})
_BINARY_PREFIXES = (
    "image/",
    "audio/",
    "video/",
    "font/",
    "multipart/",
    "model/",
    "application/vnd.openxmlformats",
    "application/vnd.oasis.opendocument",
)
_BINARY = frozenset(
    {
        "application/octet-stream",
        "application/pdf",
        "application/zip",
        "application/x-zip-compressed",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.ms-excel",
        "application/msword",
        "application/vnd.ms-powerpoint",
        "application/x-protobuf",
        "application/protobuf",
        "application/grpc",
        "application/x-msgpack",
        "application/msgpack",
        "application/cbor",
        "application/wasm",
    }
)


def body_kind(mime: str) -> str:
    """Which codec a media type gets: json, ndjson, csv, tsv, xml, form, sse, text or binary."""
    if mime in _NDJSON:
        return "ndjson"
    if mime in _JSON or mime.endswith("+json"):
        return "json"
    if mime in _CSV:
        return "csv"
    if mime in _TSV:
        return "tsv"
    if mime in _XML or mime.endswith("+xml"):
        return "xml"
    if mime == "application/x-www-form-urlencoded":
        return "form"
    if mime == "text/event-stream":
        return "sse"
    if mime in _BINARY or mime.startswith(_BINARY_PREFIXES):
        return "binary"
    return "text"


def make_body_rewriter(
    content_type: str | None,
    content_encoding: str | None,
    enforcer: RecordEnforcer,
    *,
    limits: CodecLimits,
    sensitive: bool,
    content_length: int | None = None,
    document: bool = False,
) -> BodyRewriter:
    """The rewriter for one response body.

    Raises no RewriteError itself: a body that cannot be rewritten at all (a
    binary media type, an unknown Content-Encoding or charset, a Content-Length
    already over what a buffered format may hold) gets a rewriter whose first
    feed() or finish() raises RewriteError, before any byte is produced.
    `content_length` is optional: without it a JSON body starts buffered and
    switches to streaming once it crosses `limits.stream_threshold`; with a
    larger one it streams from the first byte. `content_type` of the result is
    the declared one (charset kept), or text/plain; charset=utf-8 when none was
    declared.
    """
    out_type = content_type or "text/plain; charset=utf-8"
    try:
        if document and body_kind(parse_media_type(content_type).mime) == "binary":
            return Pipeline([*content_decoders(content_encoding, limits), _Unchanged()], out_type)
        return _build(content_type, content_encoding, enforcer, limits, sensitive, content_length)
    except RewriteError as exc:
        return Refused(exc, out_type)


class _Unchanged:
    """A document released whole: its bytes as they come (the handler decided), once
    its first bytes show it is one. Text under a binary label (JSON, HTML) is not a
    document and is refused: it would otherwise leave unmasked."""

    _CHECK = 1024

    def __init__(self) -> None:
        self._head: bytearray | None = bytearray()

    def feed(self, data: bytes) -> bytes:
        if self._head is None:
            return data
        self._head += data
        return self._release() if len(self._head) >= self._CHECK else b""

    def finish(self) -> bytes:
        return b"" if self._head is None else self._release()

    def _release(self) -> bytes:
        head, self._head = bytes(self._head or b""), None
        if head and sniff(head[: self._CHECK]) != "binary":
            raise RewriteError("a document route answered with text under a binary type")
        return head


def _build(
    content_type: str | None,
    content_encoding: str | None,
    enforcer: RecordEnforcer,
    limits: CodecLimits,
    sensitive: bool,
    content_length: int | None,
) -> BodyRewriter:
    media = parse_media_type(content_type)
    kind = body_kind(media.mime)
    if kind == "binary":
        raise RewriteError(f"cannot rewrite a {media.mime} body")
    decoders = content_decoders(content_encoding, limits)
    known = content_length if not decoders else None  # encoded sizes say little
    if known is not None and known > limits.max_buffered and kind in _BUFFERED:
        raise too_large()
    out_type = content_type or "text/plain; charset=utf-8"
    if content_type and media.charset:
        declared = codec_name(media.charset)
        if output_charset(declared) != declared:  # leaves as UTF-8 (see codecs.charset)
            out_type = with_charset(content_type, output_charset(declared))
    if kind == "xml":  # XML may declare its charset inside the body
        return Pipeline(
            [*decoders, XmlStage(enforcer, limits, media.charset, sensitive=sensitive)], out_type
        )
    codec = codec_name(media.charset)
    transcoder = Transcoder(codec)
    stage = _format_stage(kind, enforcer, limits, sensitive, codec, content_length)
    stages: list[Stage] = [*decoders, transcoder, stage, Reencoder(transcoder)]
    return Pipeline(stages, out_type)


def _format_stage(
    kind: str,
    enforcer: RecordEnforcer,
    limits: CodecLimits,
    sensitive: bool,
    codec: str,
    content_length: int | None,
) -> Stage:
    if kind == "json":
        return JsonStage(enforcer, limits, sensitive=sensitive, expected_size=content_length)
    if kind == "ndjson":
        return NdjsonStage(enforcer, limits, sensitive=sensitive)
    if kind in ("csv", "tsv"):
        return CsvStage(enforcer, limits, delimiter="\t" if kind == "tsv" else ",")
    if kind == "sse":
        return SseStage(enforcer, limits)
    if kind == "form":
        form = partial(rewrite_form, enforcer=enforcer, codec=codec)
        return BufferedStage(_or_text(form, enforcer, sensitive), limits)
    return BufferedStage(partial(_rewrite_textual, enforcer=enforcer), limits)


def _or_text(
    rewrite: Callable[[bytes], bytes], enforcer: RecordEnforcer, sensitive: bool
) -> Callable[[bytes], bytes]:
    """A structured body that does not parse: blocked on sensitive routes, free text elsewhere."""

    def run(raw: bytes) -> bytes:
        if not raw.strip():
            return raw  # an empty body has nothing to mask
        try:
            return rewrite(raw)
        except MalformedBody:
            if sensitive:
                raise
            return rewrite_as_text(raw, enforcer)

    return run


def _rewrite_textual(raw: bytes, *, enforcer: RecordEnforcer) -> bytes:
    """Content-type confusion: whatever the label, JSON-shaped bodies are masked as JSON."""
    if sniff(raw[:1024]) == "binary":
        raise RewriteError("binary body under a textual content type")
    out = rewrite_json_like(raw, enforcer)
    if out is not None:
        return out
    return rewrite_as_text(raw, enforcer)
