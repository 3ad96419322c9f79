"""Streaming JSON rewriter: records at the enforcer's prefixes, one at a time, in bounded memory.

The envelope (everything outside records) is tokenised here and re-emitted
compactly, each scalar passed through `rewrite_value(path, value)`. When an
object starts at a record prefix (ijson style: `item`, `results.item`,
`customer`), the rewriter only finds where it ends (`recordend`), parses it
with orjson, hands it to `rewrite_record` and writes the result. Memory holds
one record plus the unread tail of the last chunk; a record over
`max_buffered` is refused.

Objects elsewhere are parsed whole too (bounded the same way) and handed to
`rewrite_subtree`, which recognises records by their facts in any shape: only
the declared prefixes' ancestors (the envelope proper) and arrays are
tokenised, so a top-level array of a million records still streams. An
ancestor object carrying a record fact key (`grade`) cannot be both envelope
and record: the response is blocked, as the buffered path blocks it.

Dropped records vanish from arrays; a dropped record held by an object key
becomes null. An envelope scalar that `rewrite_value` turns into None (from
something else) counts as dropped and is left out, key and all. The buffered
path (`rewrite_document`) must mean the same thing: the property tests check
that both give the same document for every chunking.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.core.catalog import suspect_key
from gateway.core.codecs.limits import CodecLimits, too_large
from gateway.core.codecs.recordend import NEED_MORE, RecordEnd
from gateway.core.masking import DROPPED
from gateway.core.rewrite import RecordEnforcer, RewriteError, UnidentifiedRecords

_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_SCALAR = re.compile(rb'[^ \t\r\n,:\[\]{}"]++')
_WS = re.compile(rb"[ \t\r\n]*+")
_NEXT_RECORD = re.compile(rb"[ \t\r\n]*+,[ \t\r\n]*+(?={)")
_INCOMPLETE: Any = object()
#: Envelope nesting limit (records are parsed by orjson, which has its own).
MAX_DEPTH = 512

_LBRACE, _RBRACE, _LBRACKET, _RBRACKET = b"{"[0], b"}"[0], b"["[0], b"]"[0]
_COMMA, _COLON, _QUOTE = b","[0], b":"[0], b'"'[0]

# Parser states: what the next significant byte must be.
(_VALUE, _ARR_FIRST, _ARR_NEXT, _OBJ_FIRST, _OBJ_KEY, _OBJ_COLON, _OBJ_NEXT, _RECORD, _DONE) = (
    range(9)
)

Path = tuple[str | int, ...]


class _Frame:
    """One open envelope container."""

    __slots__ = ("emitted", "index", "is_obj", "key", "out_key", "path", "prefix")

    def __init__(self, is_obj: bool, path: Path, prefix: str) -> None:
        self.is_obj = is_obj
        self.path = path
        self.prefix = prefix
        self.index = 0
        self.key = ""  # as the CRM sent it (paths and prefixes use it)
        self.out_key = ""  # as it is sent on (a key holding an identifier is masked)
        self.emitted = False


def _join(prefix: str, part: str) -> str:
    return f"{prefix}.{part}" if prefix else part


class JsonStream:
    """Sans-IO: feed UTF-8 JSON bytes, get rewritten JSON bytes back."""

    def __init__(self, enforcer: RecordEnforcer, limits: CodecLimits, *, fast: bool = True) -> None:
        self._enforcer = enforcer
        self._ends = RecordEnd(fast=fast)  # fast=False: always the exact scan (tests compare)
        self._prefixes = frozenset(enforcer.record_prefixes())
        # the envelope proper: objects on the way to a declared prefix are tokenised;
        # any other object is parsed whole and rewritten as a subtree
        self._ancestors = frozenset(
            ".".join(parts[:i])
            for p in self._prefixes
            if p
            for parts in [p.split(".")]
            for i in range(len(parts))
        )
        self._record_keys = enforcer.record_keys()
        self._subtree = False  # the object being collected is a subtree, not a record
        self._limit = limits.max_buffered
        self._buf = b""
        self._pos = 0  # first byte not yet consumed (a record's start while in _RECORD)
        self._record_prefix = ""
        self._record_slot: _Frame | None = None
        self._stack: list[_Frame] = []
        self._state = _VALUE
        self._out: list[bytes] = []

    def feed(self, data: bytes) -> bytes:
        if self._pos:
            self._buf = self._buf[self._pos :] + data
            self._ends.shift(self._pos)
            self._pos = 0
        else:
            self._buf += data
        self._run(final=False)
        return self._take()

    def finish(self) -> bytes:
        self._run(final=True)
        if self._state != _DONE:
            raise RewriteError("truncated JSON body")
        return self._take()

    def _take(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    # -- the state machine -------------------------------------------------

    def _run(self, final: bool) -> None:
        buf = self._buf
        n = len(buf)
        while True:
            if self._state == _RECORD:
                if not self._scan_record(final):
                    return
                continue
            pos = _WS.match(buf, self._pos).end()  # type: ignore[union-attr]
            self._pos = pos
            if pos >= n:
                return
            c = buf[pos]
            state = self._state
            if state == _VALUE or (state == _ARR_FIRST and c != _RBRACKET):
                if not self._begin_value(c, final):
                    return
            elif state in (_ARR_FIRST, _ARR_NEXT, _OBJ_NEXT):
                self._after_comma_or_close(c, state)
            elif state in (_OBJ_FIRST, _OBJ_KEY):
                if c == _RBRACE and state == _OBJ_FIRST:
                    self._close(b"}")
                elif c != _QUOTE or not self._read_key():
                    self._need(c == _QUOTE, final, "object key")
                    return
            elif state == _OBJ_COLON:
                if c != _COLON:
                    raise RewriteError("invalid JSON: expected ':'")
                self._pos += 1
                self._state = _VALUE
            else:  # _DONE
                raise RewriteError("invalid JSON: data after the document")

    def _need(self, incomplete: bool, final: bool, what: str) -> None:
        """Stop for more input if the token may still be arriving; otherwise it is malformed."""
        if not incomplete:
            raise RewriteError(f"invalid JSON: unexpected byte where {what} expected")
        if final:
            raise RewriteError("truncated JSON body")
        if len(self._buf) - self._pos > self._limit:
            raise too_large()

    def _after_comma_or_close(self, c: int, state: int) -> None:
        frame = self._stack[-1]
        if c == _COMMA and state != _ARR_FIRST:
            self._pos += 1
            self._state = _OBJ_KEY if frame.is_obj else _VALUE
        elif c == (_RBRACE if frame.is_obj else _RBRACKET):
            self._close(b"}" if frame.is_obj else b"]")
        else:
            raise RewriteError("invalid JSON: expected ',' or a closing bracket")

    def _read_key(self) -> bool:
        m = _STRING.match(self._buf, self._pos)
        if m is None:
            return False
        top = self._stack[-1]
        key = top.key = orjson.loads(m.group())
        if key in self._record_keys:
            raise UnidentifiedRecords(
                f"record facts ({key}) in an envelope object: the response cannot be "
                "checked against the record rules"
            )
        top.out_key = self._enforcer.rewrite_text(key) if suspect_key(key) else key
        self._pos = m.end()
        self._state = _OBJ_COLON
        return True

    def _child(self) -> tuple[Path, str]:
        if not self._stack:
            return (), ""
        top = self._stack[-1]
        if top.is_obj:
            return (*top.path, top.key), _join(top.prefix, top.key)
        return (*top.path, top.index), _join(top.prefix, "item")

    def _slot(self) -> None:
        """Write the separator (and key) that precede a value in the current container."""
        if not self._stack:
            return
        top = self._stack[-1]
        if top.emitted:
            self._out.append(b",")
        top.emitted = True
        if top.is_obj:
            self._out.append(orjson.dumps(top.out_key) + b":")

    def _begin_value(self, c: int, final: bool) -> bool:
        path, prefix = self._child()
        if c == _LBRACE and (prefix in self._prefixes or prefix not in self._ancestors):
            self._subtree = prefix not in self._prefixes
            self._record_prefix = prefix
            self._record_slot = self._stack[-1] if self._stack else None
            self._start_record()
            return True
        if c in (_LBRACE, _LBRACKET):
            if len(self._stack) >= MAX_DEPTH:
                raise RewriteError("JSON nested too deeply")
            self._slot()
            is_obj = c == _LBRACE
            self._out.append(b"{" if is_obj else b"[")
            self._stack.append(_Frame(is_obj, path, prefix))
            self._pos += 1
            self._state = _OBJ_FIRST if is_obj else _ARR_FIRST
            return True
        m = (_STRING if c == _QUOTE else _SCALAR).match(self._buf, self._pos)
        if m is None or (m.end() == len(self._buf) and c != _QUOTE and not final):
            self._need(c == _QUOTE or m is not None, final, "a value")
            return False
        try:
            value = orjson.loads(m.group())
        except orjson.JSONDecodeError as exc:
            raise RewriteError(f"invalid JSON value: {exc}") from exc
        new = self._enforcer.rewrite_value(path, value)
        if new is not None or value is None:  # None for a value means "dropped": leave it out
            self._slot()
            self._out.append(orjson.dumps(new))
        self._pos = m.end()
        self._after_value()
        return True

    def _close(self, bracket: bytes) -> None:
        self._out.append(bracket)
        self._stack.pop()
        self._pos += 1
        self._after_value()

    def _after_value(self) -> None:
        if not self._stack:
            self._state = _DONE
            return
        top = self._stack[-1]
        if top.is_obj:
            self._state = _OBJ_NEXT
        else:
            top.index += 1
            self._state = _ARR_NEXT

    def _scan_record(self, final: bool) -> bool:
        """Rewrite complete records; stay in the array while the next value is another record."""
        while True:
            record = self._complete_record(final)
            if record is _INCOMPLETE:
                return False
            if self._subtree:
                result = self._enforcer.rewrite_subtree(self._record_prefix, record)
            else:
                result = self._enforcer.rewrite_record(record, self._record_prefix)
            slot = self._record_slot
            # a dropped record vanishes from arrays, and with a key that names it;
            # omitted side data vanishes, key and all
            if result is DROPPED:
                pass
            elif result is not None or slot is None or (slot.is_obj and not suspect_key(slot.key)):
                self._slot()
                self._out.append(orjson.dumps(result))
            self._after_value()
            if slot is None or slot.is_obj:
                return True
            nxt = _NEXT_RECORD.match(self._buf, self._pos)
            if nxt is None:
                return True
            self._pos = nxt.end()
            self._start_record()

    def _start_record(self) -> None:
        self._state = _RECORD
        self._ends.start(self._pos)

    def _complete_record(self, final: bool) -> Any:
        """The parsed record starting at self._pos, or _INCOMPLETE if more input is needed."""
        start = self._pos
        end = self._ends.find(self._buf, start, final)
        if end == NEED_MORE:
            self._need(True, final, "a record")
            return _INCOMPLETE
        if end - start > self._limit:
            raise too_large()
        try:
            record = orjson.loads(memoryview(self._buf)[start:end])
        except orjson.JSONDecodeError as exc:
            if self._ends.guessing:
                self._ends.reject(start)
                return self._complete_record(final)
            raise RewriteError(f"invalid JSON record: {exc}") from exc
        self._pos = end
        self._ends.found(end - start)
        return record
