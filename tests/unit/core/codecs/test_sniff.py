"""sniff(): what a body prefix looks like."""

from __future__ import annotations

import pytest

from gateway.core.codecs import body_kind, sniff


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'\xef\xbb\xbf {"a"', "json"),
        (b"[1, 2", "json"),
        (b'callback({"a": 1})', "jsonp"),
        (b"/**/ a.b_c$ ([", "jsonp"),
        (b"<!DOCTYPE html><html>", "html"),
        (b"  <HTML lang=zh>", "html"),
        (b'<?xml version="1.0"?><r/>', "xml"),
        (b"<soap:Envelope", "xml"),
        (b"%PDF-1.4", "binary"),
        (b"\x89PNG\r\n\x1a\n", "binary"),
        (b"PK\x03\x04", "binary"),
        (b"\x1f\x8b\x08\x00", "binary"),
        (b"text\x00with nul", "binary"),
        (b"hello 13812345678", "text"),
        ("客户张伟".encode(), "text"),
        (b"id,name\nC1,x", "text"),
    ],
)
def test_sniff(prefix: bytes, kind: str) -> None:
    assert sniff(prefix) == kind


@pytest.mark.parametrize(
    ("mime", "kind"),
    [
        ("application/json", "json"),
        ("application/problem+json", "json"),
        ("application/x-ndjson", "ndjson"),
        ("application/jsonl", "ndjson"),
        ("text/csv", "csv"),
        ("application/soap+xml", "xml"),
        ("application/atom+xml", "xml"),
        ("application/x-www-form-urlencoded", "form"),
        ("text/event-stream", "sse"),
        ("text/html", "text"),
        ("", "text"),
        ("image/jpeg", "binary"),
        ("application/octet-stream", "binary"),
    ],
)
def test_body_kind(mime: str, kind: str) -> None:
    assert body_kind(mime) == kind
