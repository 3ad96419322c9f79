"""text/event-stream, streamed event by event.

Each event's `data:` payload is rewritten as a JSON document when it parses
as JSON, else as free text; comments and unknown fields go through
`rewrite_text`, while `event:`, `id:` and `retry:` keep their values. An event
is emitted as soon as its blank line arrives, so live feeds stay live. Line
endings are normalised to LF (the spec allows CR, LF and CRLF).
"""

from __future__ import annotations

import codecs

import orjson

from gateway.core.codecs.limits import CodecLimits, too_large
from gateway.core.rewrite import RecordEnforcer, RewriteError

_KEPT_FIELDS = frozenset({"event", "id", "retry"})


class SseStage:
    def __init__(self, enforcer: RecordEnforcer, limits: CodecLimits) -> None:
        self._enforcer = enforcer
        self._limit = limits.max_buffered
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._pending = ""

    def feed(self, data: bytes) -> bytes:
        text = self._pending + self._decode(data, final=False)
        held = ""
        if text.endswith("\r"):  # maybe the first half of CRLF
            text, held = text[:-1], "\r"
        events = text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n")
        self._pending = events.pop() + held
        if len(self._pending) > self._limit:
            raise too_large()
        return "".join(self._event(e) + "\n" for e in events).encode("utf-8")

    def finish(self) -> bytes:
        text = self._pending + self._decode(b"", final=True)
        self._pending = ""
        events = text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n")
        last = events.pop()
        out = "".join(self._event(e) + "\n" for e in events)
        if last.strip("\n"):
            out += self._event(last.strip("\n"))  # an unterminated event stays unterminated
        return out.encode("utf-8")

    def _decode(self, data: bytes, *, final: bool) -> str:
        try:
            return self._decoder.decode(data, final=final)
        except UnicodeDecodeError as exc:
            raise RewriteError(f"event stream is not valid UTF-8: {exc.reason}") from exc

    def _event(self, event: str) -> str:
        """One event (no blank line inside) -> its rewritten lines, each ending in LF."""
        lines: list[str] = []
        data: list[str] = []
        data_at = -1
        for line in event.split("\n"):
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "data":
                if data_at < 0:
                    data_at = len(lines)
                data.append(value)
            elif name in _KEPT_FIELDS or not line:
                lines.append(line)
            elif not name:
                lines.append(":" + self._enforcer.rewrite_text(line[1:]))
            else:
                lines.append(self._enforcer.rewrite_text(line))
        if data_at >= 0:
            lines[data_at:data_at] = [f"data: {v}" for v in self._payload("\n".join(data))]
        return "".join(line + "\n" for line in lines)

    def _payload(self, payload: str) -> list[str]:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return self._enforcer.rewrite_text(payload).split("\n")
        return [orjson.dumps(self._enforcer.rewrite_document(doc)).decode("utf-8")]
