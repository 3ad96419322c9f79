"""Where does the JSON object starting at a given byte end? Found fast, or exactly.

The streaming rewriter only needs each record's end; orjson then parses the
slice. Two ways to find it, both resumable across chunks:

- the guess: count braces with `bytes.find`/`count` (memchr speed) as if no
  string held any (square brackets need no counting: in valid JSON braces
  balance on their own). It is confirmed by parsing: an object's end is fixed by
  its first bytes, so a slice that parses is the record. Brackets inside
  strings can only make a guess fail to parse or run long;
- the exact scan: a possessive regular expression skips strings and plain
  bytes at C speed, so Python runs once per bracket, not per byte.

A failed or overlong guess falls back to the exact scan for that record; after
a few fallbacks (strings full of brackets) the stream stops guessing.
"""

from __future__ import annotations

import re

# Everything up to the next bracket outside a string, or up to an unterminated string.
_SKIP = re.compile(rb'(?:[^"{}\[\]]++|"(?:[^"\\]++|\\.)*+")*+', re.DOTALL)
_QUOTE, _LBRACE, _LBRACKET = b'"'[0], b"{"[0], b"["[0]

#: How far past a record's start a guess may look before the exact scan decides.
FAST_WINDOW = 64 * 1024
#: Fallbacks after which a stream stops guessing.
MAX_FALLBACKS = 16

NEED_MORE = -1
_GAVE_UP = -2


class RecordEnd:
    def __init__(self, *, fast: bool = True) -> None:
        self._fast = fast
        self._exact = not fast
        self._scan = 0  # next byte to look at (absolute index in the current buffer)
        self._depth = 0
        self._largest = 0
        self._fallbacks = 0

    @property
    def guessing(self) -> bool:
        return not self._exact

    def start(self, at: int) -> None:
        """A new record begins at `at` (its opening brace)."""
        self._scan, self._depth, self._exact = at, 0, not self._fast

    def shift(self, n: int) -> None:
        """The buffer lost its first n bytes."""
        self._scan -= n

    def find(self, buf: bytes, start: int, final: bool) -> int:
        """Index just past the record's closing brace, or NEED_MORE."""
        if not self._exact:
            end = self._guess(buf, start)
            if end != _GAVE_UP and (end != NEED_MORE or not final):
                return end
            self.reject(start)
        return self._exact_end(buf)

    def reject(self, start: int) -> None:
        """The guess did not parse (or gave up): decide exactly from the record's start."""
        self._exact, self._scan, self._depth = True, start, 0
        self._fallbacks += 1
        self._fast = self._fallbacks < MAX_FALLBACKS

    def found(self, size: int) -> None:
        self._largest = max(self._largest, size)

    def _guess(self, buf: bytes, start: int) -> int:
        c, depth = self._scan, self._depth
        window = max(FAST_WINDOW, 4 * self._largest)
        while (close := buf.find(b"}", c)) >= 0:
            depth += buf.count(b"{", c, close) - 1  # braces nest on their own in valid JSON
            c = close + 1
            if depth == 0:
                return c
            if depth < 0 or c - start > window:
                return _GAVE_UP
        tail = len(buf)
        self._depth = depth + buf.count(b"{", c, tail)
        self._scan = tail
        return _GAVE_UP if tail - start > window else NEED_MORE

    def _exact_end(self, buf: bytes) -> int:
        n = len(buf)
        skip = _SKIP.match
        i, depth = self._scan, self._depth
        while True:
            i = skip(buf, i).end()  # type: ignore[union-attr]
            if i >= n or buf[i] == _QUOTE:  # end of input, or a string still arriving
                self._scan, self._depth = i, depth
                return NEED_MORE
            if buf[i] in (_LBRACE, _LBRACKET):
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
