"""One canonical form of a request path, used for routing AND forwarding.

If the gateway matched rules on one spelling of a path and forwarded another, a
caller could dodge a rule with `//api/../admin`, `%2e%2e`, `/API/Customers` or
`..;/`. So the handler normalises once and uses the result for both; and since
the CRM behind may be lenient (IIS, Tomcat, old Java front ends), anything such
a CRM could read as a different path is refused here rather than guessed at.

Canonical form:
- starts with `/`; no empty, `.` or `..` segments (dot segments resolved, never
  above the root); a trailing slash is kept (Django-style CRMs route on it);
- percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded
  once, every other escape is kept with upper-case hex, and characters that are
  not allowed raw in a path are percent-encoded (UTF-8);
- optional lower-casing of literal characters for case-insensitive CRMs.

Refused with `PathRejected` (400 `bad_path`):
- encoded `/` or `\\`, raw or encoded NUL and control characters, raw
  backslashes, double encoding (`%25` followed by two hex digits, e.g.
  `%252e`), malformed escapes (`%zz`, IIS `%u002e`);
- escapes that are not valid UTF-8: overlong forms (`%c0%ae`, `%c0%af`,
  `%e0%80%ae`), lone continuation bytes, truncated sequences, surrogates;
- non-ASCII characters that NFKC maps to ASCII (fullwidth `／`, `．`, `Ａ`,
  no-break spaces) or Windows best-fit maps to `/`, `\\` or `.` (`∕`, `¥`)
  and invisible ones (format characters such as U+200B,
  C1 controls, other spaces), which a CRM may fold into `/`, `.` or letters;
- segments ending in `.` or a space (`customers.`, `customers%20`): Windows
  front ends strip them, so `/api/customers./X` would be `/api/customers/X`;
- dot segments or empty segments behind path parameters (`..;x`, `/;x/`):
  a front end that strips parameters first would resolve them differently.

Path parameters (`;jsessionid=1`, `%3B`) are kept here; `strip_matrix` gives the
form route rules match on and `has_matrix` lets the router refuse them.

`normalize_path(normalize_path(p)) == normalize_path(p)` for every accepted `p`.
"""

from __future__ import annotations

import functools
import unicodedata

from gateway.errors import ClientError

_HEX = frozenset("0123456789abcdefABCDEF")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# RFC 3986 pchar minus unreserved and "%": sub-delims, ":" and "@".
_RAW_ALLOWED = _UNRESERVED | frozenset("!$&'()*+,;=:@")
_MEMO_MAX_PATH = 512  # longer paths are normalised every time, never kept
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Unicode categories a lenient CRM may drop or fold: controls, format characters,
# surrogates, private use, separators (no-break and ideographic spaces).
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"})
_PARAM_MARKS = (";", "%3B")
# Windows "best fit" conversions (IIS, ANSI APIs) turn these into "/", "\\" or ".",
# although NFKC leaves them alone.
_BEST_FIT = frozenset("\u2044\u2215\u2216\u29f8\u29f9\u00a5\u20a9\u2024\u2025\u2026\ufe68")


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


def has_matrix(path: str) -> bool:
    """Whether a canonical path carries path parameters (`;x=1`, `%3B`) in any segment."""
    return any(mark in path for mark in _PARAM_MARKS)


def strip_matrix(path: str) -> str:
    """A canonical path without its path parameters: what Tomcat-style front ends
    route on (`/api/customers;jsessionid=1/X` -> `/api/customers/X`). The result
    is canonical too: `normalize_path` refused parameters behind empty or dot segments."""
    if not has_matrix(path):
        return path
    return "/".join(_bare(seg) for seg in path.split("/"))


def _bare(segment: str) -> str:
    for mark in _PARAM_MARKS:
        segment = segment.split(mark, 1)[0]
    return segment


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
        _check_segment(seg)
        out.append(seg)
    trailing = decoded[-1] in ("", ".", "..") and bool(out)
    return "/" + "/".join(out) + ("/" if trailing else "")


def _check_segment(seg: str) -> None:
    bare = _bare(seg)
    if bare in (".", ".."):
        raise PathRejected("dot segment with path parameters in the request path")
    if bare == "":
        raise PathRejected("empty segment with path parameters in the request path")
    for part in (bare, seg):
        if part.endswith((".", "%20")):
            raise PathRejected("a path segment ends in a dot or a space")


def _decode_segments(raw: str, case_insensitive: bool) -> list[str]:
    """Decode escapes once and split on literal slashes (escaped ones are refused)."""
    parts: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == "%":
            i = _decode_escapes(raw, i, parts, case_insensitive)
            continue
        _check_raw(ch)
        if ch in _RAW_ALLOWED or ch == "/":
            parts.append(ch.translate(_ASCII_LOWER) if case_insensitive else ch)
        else:
            parts.append(_encode(ch))
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


def _decode_escapes(raw: str, i: int, parts: list[str], case_insensitive: bool) -> int:
    """Decode the run of escapes starting at `raw[i]` as strict UTF-8; return the
    index after it. Overlong forms, stray continuation bytes and surrogates fail."""
    run = bytearray()
    n = len(raw)
    while i < n and raw[i] == "%":
        pair = raw[i + 1 : i + 3]
        if len(pair) != 2 or not set(pair) <= _HEX:
            raise PathRejected("malformed percent-escape in the request path")
        run.append(int(pair, 16))
        i += 3
    try:
        text = run.decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise PathRejected(
            "percent-escapes in the request path are not valid UTF-8 (overlong or malformed)"
        ) from None
    for ch in text:
        dec = _decode_escape(ord(ch)) if ord(ch) < 0x80 else _encode(ch)
        parts.append(dec.translate(_ASCII_LOWER) if case_insensitive and len(dec) == 1 else dec)
    return i


def _decode_escape(byte: int) -> str:
    if byte in (0x2F, 0x5C):
        raise PathRejected("encoded slash or backslash in the request path")
    if byte < 0x20 or byte == 0x7F:
        raise PathRejected("encoded control character in the request path")
    ch = chr(byte)
    if ch in _UNRESERVED:
        return ch
    return f"%{byte:02X}"


def _encode(ch: str) -> str:
    """Percent-encode one character that may not appear raw (non-ASCII checked first)."""
    if ord(ch) >= 0x80:
        _check_unicode(ch)
    try:
        data = ch.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a str handed to us directly
        raise PathRejected("surrogate code point in the request path") from None
    return "".join(f"%{b:02X}" for b in data)


def _check_unicode(ch: str) -> None:
    if unicodedata.category(ch) in _INVISIBLE:
        raise PathRejected("invisible or control character in the request path")
    folded = unicodedata.normalize("NFKC", ch)
    if ch in _BEST_FIT or (folded != ch and any(ord(c) < 0x80 for c in folded)):
        raise PathRejected(
            f"look-alike character U+{ord(ch):04X} in the request path (NFKC: {folded!r})"
        )


def _check_raw(ch: str) -> None:
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        raise PathRejected("control character in the request path")
    if ch == "\\":
        raise PathRejected("backslash in the request path")
