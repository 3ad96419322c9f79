"""The seams between the response path and the pure masking engine.

`handler.py` never looks inside a body. For a response that needs rewriting it
asks `gateway.core.codecs.make_body_rewriter(...)` for a `BodyRewriter`, feeds
it the upstream bytes as they arrive and sends whatever it returns. The codec
parses its format and hands records, rows and free text to a `RecordEnforcer`
(built by `gateway.core.enforce.build_enforcer`) that applies the decision.

Both are sans-IO objects in the h11 style: `feed(bytes) -> bytes`, bounded
internal buffer, poisoned after the first error (every later call raises).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class BlockResponse(Exception):
    """The decision says this response must not be shown at all (-> 403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnidentifiedRecords(BlockResponse):
    """The decision has record conditions (grade, tier) that this response cannot be
    checked against: customer data outside any identifiable record, or a record
    without the facts the rules need (-> 403 uncatalogued_route)."""

    code = "uncatalogued_route"


class RewriteError(Exception):
    """A body could not be parsed or rewritten. The response path fails closed (502)."""


class BodyRewriter(Protocol):
    content_type: str  # the Content-Type to send downstream (charset kept)

    def feed(self, data: bytes) -> bytes:
        """Consume upstream bytes; return rewritten bytes ready to send (may be b"")."""
        ...

    def finish(self) -> bytes:
        """End of body: flush, validate completeness, return the remaining bytes."""
        ...


class RecordEnforcer(Protocol):
    """Applies one Decision to the customer data of one response."""

    def rewrite_document(self, doc: Any) -> Any:
        """A whole parsed JSON document (buffered path)."""
        ...

    def record_prefixes(self) -> list[str]:
        """ijson-style prefixes (`results.item`, `item`) where records stream by."""
        ...

    def rewrite_record(self, record: dict[str, Any], prefix: str = "") -> dict[str, Any] | None:
        """One record (a JSON object); None means the record is dropped."""
        ...

    def record_keys(self) -> frozenset[str]:
        """Keys whose presence makes an object a record wherever it is (grade, tier):
        a streaming codec must not tokenise such an object as envelope."""
        ...

    def rewrite_subtree(self, prefix: str, value: Any) -> Any:
        """An object or array outside the records' ancestors, parsed whole, at the
        ijson-style `prefix`: exactly what `rewrite_document` does with it there.
        None for an object means a dropped record; `masking.DROPPED` means side
        data the catalog omits (left out, key and all)."""
        ...

    def rewrite_value(self, path: tuple[str | int, ...], value: Any) -> Any:
        """A scalar outside any record (envelopes, free text): classified by path and value."""
        ...

    def rewrite_header(self, header: list[str]) -> list[str]:
        """A CSV header row, before any row: raises UnidentifiedRecords when no row
        under it could be checked; returns the header scanned like free text."""
        ...

    def rewrite_row(self, header: list[str], row: list[str]) -> list[str] | None:
        """One CSV row, classified by the header; None means the row is dropped."""
        ...

    def rewrite_fields(self, fields: Mapping[str, str]) -> dict[str, str]:
        """Flat key/value pairs (form bodies, XML leaf elements by tag)."""
        ...

    def rewrite_text(self, text: str) -> str:
        """Free text: only detected spans are masked."""
        ...
