"""CSV exports, streamed row by row and rewritten by header (`rewrite_row`).

A row ends at a line break outside quotes, so the splitter tracks quote parity
across chunks: a quoted field may hold line breaks and may be cut anywhere.
Complete rows go through the csv module (strict quoting), and are written back
with the input's line terminator and, when every header field was quoted,
with every field quoted. The header row is scanned like free text (a column
named by a phone number is masked); rows are classified by the original header.
"""

from __future__ import annotations

import codecs
import csv
import io
from typing import TYPE_CHECKING

from gateway.core.codecs.limits import CodecLimits, too_large
from gateway.core.rewrite import RecordEnforcer, RewriteError

if TYPE_CHECKING:
    from _csv import Writer as _CsvWriter


class CsvStage:
    def __init__(self, enforcer: RecordEnforcer, limits: CodecLimits, delimiter: str = ",") -> None:
        self._enforcer = enforcer
        self._limit = limits.max_buffered
        self._delimiter = delimiter
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._pending = ""  # text after the last complete row
        self._scanned = 0  # chars of _pending already counted into _odd
        self._odd = False  # quote parity of _pending[:_scanned]
        self._header: list[str] | None = None
        self._out = io.StringIO()
        self._writer: _CsvWriter | None = None

    def feed(self, data: bytes) -> bytes:
        text = self._pending + self._decode(data, final=False)
        cut = self._complete_rows_end(text)
        self._pending = text[cut:]
        if len(self._pending) > self._limit:
            raise too_large()
        return self._rows(text[:cut]) if cut else b""

    def finish(self) -> bytes:
        text = self._pending + self._decode(b"", final=True)
        self._pending = ""
        if self._odd ^ (text.count('"', self._scanned) % 2 == 1):
            raise RewriteError("CSV body ends inside a quoted field")
        return self._rows(text) if text else b""

    def _decode(self, data: bytes, *, final: bool) -> str:
        try:
            return self._decoder.decode(data, final=final)
        except UnicodeDecodeError as exc:
            raise RewriteError(f"CSV body is not valid text: {exc.reason}") from exc

    def _complete_rows_end(self, text: str) -> int:
        """Index just past the last line break that ends a row (0 if none yet)."""
        i, odd = self._scanned, self._odd
        if not odd and '"' not in text[i:]:
            self._scanned = 0
            return text.rfind("\n") + 1
        cut = 0
        while (j := text.find("\n", i)) >= 0:
            odd ^= text.count('"', i, j) % 2 == 1
            i = j + 1
            if not odd:
                cut = i
        self._scanned, self._odd = i - cut, odd  # parity of text[cut:i]
        return cut

    def _rows(self, text: str) -> bytes:
        writer = self._writer or self._make_writer(text)
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=self._delimiter, quotechar='"', strict=True
        )
        try:
            rows = list(reader)
        except csv.Error as exc:
            raise RewriteError(f"malformed CSV: {exc}") from exc
        for row in rows:
            if self._header is None:
                self._header = row
                # checked before any byte goes out (an export whose rows cannot be
                # checked is refused here); a header naming a customer is scanned
                writer.writerow(self._enforcer.rewrite_header(row))
                continue
            new = self._enforcer.rewrite_row(self._header, row)
            if new is not None:
                writer.writerow(new)
        out = self._out.getvalue()
        self._out.seek(0)
        self._out.truncate()
        return out.encode("utf-8")

    def _make_writer(self, text: str) -> _CsvWriter:
        """Output style follows the first row: line terminator, quote-everything or minimal."""
        first = text.split("\n", 1)[0]
        bare = first.rstrip("\r")
        quote_all = len(bare) > 1 and bare.startswith('"') and bare.endswith('"')
        self._writer = csv.writer(
            self._out,
            delimiter=self._delimiter,
            quotechar='"',
            quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
            lineterminator="\r\n" if first.endswith("\r") else "\n",
        )
        return self._writer
