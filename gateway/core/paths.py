"""One canonical form of a request path, used for routing AND forwarding.

If the gateway matched rules on one spelling of a path and forwarded another, a
caller could dodge a rule with `//api/../admin`, `%2e%2e`, `/API/Customers` or
`..;/`. So the handler normalises once and uses the result for both.

Canonical form:
- starts with `/`; no empty, `.` or `..` segments (dot segments resolved, never
  above the root); a trailing slash is kept (Django-style CRMs route on it);
- percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded
  once, every other escape is kept with upper-case hex, and characters that are
  not allowed raw in a path are percent-encoded (UTF-8);
- optional lower-casing of literal characters for case-insensitive CRMs.

Refused with `ClientError` (400): encoded `/` or `\\`, raw or encoded NUL and
control characters, raw backslashes, double encoding (`%25` followed by two hex
digits, e.g. `%252e`), malformed escapes, and dot segments hidden behind path
parameters (`..;x`).

`normalize_path(normalize_path(p)) == normalize_path(p)` for every accepted `p`.
"""

from __future__ import annotations

import functools

from gateway.errors import ClientError

_HEX = frozenset("0123456789abcdefABCDEF")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# RFC 3986 pchar minus unreserved and "%": sub-delims, ":" and "@".
_RAW_ALLOWED = _UNRESERVED | frozenset("!$&'()*+,;=:@")
_MEMO_MAX_PATH = 512  # longer paths are normalised every time, never kept
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class PathRejected(ClientError):
    """The request path is ambiguous or hostile; 400 with a stable code."""

    code = "bad_path"


def normalize_path(raw: str, *, case_insensitive: bool = False) -> str:
    """Return the canonical form of `raw` (a path without query), or raise PathRejected.

    Memoised for ordinary lengths (the handler and the API-key scope check both
    ask, and paths repeat); long paths are not kept, so the memo stays small
    whatever clients send. A rejection raises every time (not cached)."""
    if len(raw) > _MEMO_MAX_PATH:
        return _normalize_path.__wrapped__(raw, case_insensitive)
    return _normalize_path(raw, case_insensitive)


@functools.lru_cache(maxsize=8192)
def _normalize_path(raw: str, case_insensitive: bool) -> str:
    if not raw.startswith("/"):
        raise PathRejected("the request path must start with '/'")
    decoded = _decode_segments(raw, case_insensitive)
    out: list[str] = []
    for seg in decoded:
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        if seg.split(";", 1)[0].split("%3B", 1)[0] in (".", ".."):
            raise PathRejected("dot segment with path parameters in the request path")
        out.append(seg)
    trailing = decoded[-1] in ("", ".", "..") and bool(out)
    return "/" + "/".join(out) + ("/" if trailing else "")


def _decode_segments(raw: str, case_insensitive: bool) -> list[str]:
    """Decode escapes once and split on literal slashes (escaped ones are refused)."""
    parts: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == "%":
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise PathRejected("malformed percent-escape in the request path")
            dec = _decode_escape(int(pair, 16))
            parts.append(dec.translate(_ASCII_LOWER) if case_insensitive and len(dec) == 1 else dec)
            i += 3
            continue
        _check_raw(ch)
        if ch in _RAW_ALLOWED or ch == "/":
            parts.append(ch.translate(_ASCII_LOWER) if case_insensitive else ch)
        else:
            parts.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
        i += 1
    decoded = "".join(parts)
    # Checked on the decoded text, so escapes that decode into hex digits (`%25%34%31`)
    # are caught too, and a second pass sees exactly what the first one accepted.
    at = decoded.find("%25")
    while at != -1:
        if set(decoded[at + 3 : at + 5]) <= _HEX and len(decoded[at + 3 : at + 5]) == 2:
            raise PathRejected("double percent-encoding in the request path")
        at = decoded.find("%25", at + 3)
    return decoded.split("/")[1:]


def _decode_escape(byte: int) -> str:
    if byte in (0x2F, 0x5C):
        raise PathRejected("encoded slash or backslash in the request path")
    if byte < 0x20 or byte == 0x7F:
        raise PathRejected("encoded control character in the request path")
    ch = chr(byte)
    if ch in _UNRESERVED:
        return ch
    return f"%{byte:02X}"


def _check_raw(ch: str) -> None:
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        raise PathRejected("control character in the request path")
    if ch == "\\":
        raise PathRejected("backslash in the request path")
