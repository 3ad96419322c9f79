"""Response headers from the CRM, scanned like body text before they reach the client.

Identifiers travel in headers as easily as in bodies: `Content-Disposition:
attachment; filename="张三_110105....csv"`, `Location: /customers?mobile=138...`,
`Link`, `Refresh`, `Set-Cookie: last_viewed=110105...`, `Warning`, any `X-*`.
`scan_headers` runs every value through the caller's free-text scan (`scan`, the
enforcer's `rewrite_text`: the same detectors, escapes undone, the same action
table) after rewriting links to the CRM (`LinkMap`), and

- reads each value as UTF-8 where its bytes are UTF-8 (aiohttp hands them over
  as Latin-1), so a Chinese file name is scanned as text, not as mojibake, and
  decodes RFC 2047 encoded words (`=?UTF-8?B?...?=`), which hide it in base64;
  (percent-encoding, character references and JSON escapes are undone by the
  scan itself);
- scans a cookie's name, value and attributes apart (a session id named
  `token` is the caller's own cookie, not a secret in a sentence);
- drops a header whose *name* carries an identifier;
- with `counts`, drops headers that count a list's records (`X-Total-Count`,
  `X-Pagination-Total-Entries`, `Content-Range: items 0-59/60`), which would
  reveal how many records the record rules left out;
- refuses a value holding CR, LF or NUL (`FoldedHeader`).

Obs-fold (a header continued on a line starting with a space, RFC 9112 §5.2):
aiohttp's client parsers (llhttp and the pure-Python one) unfold it into one
value joined by a space before the gateway sees it, so a fold cannot be detected
here; what can be guaranteed is that the unfolded value is scanned whole and
leaves as one line. A raw CR or LF that survived parsing is refused.
"""

from __future__ import annotations

import base64
import contextlib
import quopri
import re
from collections.abc import Callable, Iterable

from gateway.core.links import LinkMap

Headers = list[tuple[str, str]]

# Framing aiohttp parses as such (a number, hop-by-hop tokens): nothing to scan. Every
# other header is scanned, `Date` and `Via` included (a hostile CRM chooses them too).
_SKIP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
# Headers that hold links (rewritten to the gateway even on non-sensitive routes).
LINK_HEADERS = frozenset({"location", "content-location", "link", "refresh", "uri"})


class FoldedHeader(ValueError):
    """A CRM header value held a line break or NUL (folding, splitting): refused."""


def _as_text(value: str) -> str:
    """The value as the CRM meant it: UTF-8 where its bytes are UTF-8, else as given;
    RFC 2047 encoded words (`=?UTF-8?B?...?=`) decoded."""
    if not value.isascii():
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            value = value.encode("latin-1").decode("utf-8")
    if "=?" in value and "?=" in value:
        value = _ENCODED_WORD.sub(_decode_word, value)
    return value


_ENCODED_WORD = re.compile(r"=\?([A-Za-z0-9_\-]+)\?([BbQq])\?([^?\s]*)\?=")


def _decode_word(m: re.Match[str]) -> str:
    charset, kind, data = m.groups()
    try:
        if kind in "Bb":
            raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=False)
        else:
            raw = quopri.decodestring(data.replace("_", " ").encode("ascii"), header=True)
        return raw.decode(charset)
    except (ValueError, LookupError, UnicodeDecodeError):
        return m.group()


def _check(name: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise FoldedHeader(f"the CRM's {name} header holds a line break (folded or split)")


def rewrite_links(headers: Iterable[tuple[str, str]], links: LinkMap | None) -> Headers:
    """Only the link rewriting (non-sensitive routes): `Location` and friends."""
    out: Headers = []
    for name, value in headers:
        _check(name, value)
        if links is not None and name.lower() in LINK_HEADERS:
            value = links.rewrite(value)
        out.append((name, value))
    return out


_COUNT_WORDS = frozenset({"total", "totals", "count", "counts", "totalcount", "hits"})


def counts_records(name: str) -> bool:
    """Whether a header's name says it counts something (`X-Total-Count`, `Total`)."""
    lname = name.lower()
    return lname == "content-range" or not _COUNT_WORDS.isdisjoint(re.split(r"[-_.]", lname))


def scan_headers(
    headers: Iterable[tuple[str, str]],
    scan: Callable[[str], str],
    links: LinkMap | None,
    *,
    counts: bool = False,
) -> Headers:
    """Every header with its identifiers masked (see the module docstring)."""
    out: Headers = []
    for name, raw in headers:
        _check(name, raw)
        lname = name.lower()
        if counts and counts_records(name):
            continue
        if lname in _SKIP:
            out.append((name, raw))
            continue
        if scan(name) != name:
            continue  # the name itself carries an identifier: the header goes
        value = _as_text(raw)
        if links is not None:
            value = links.rewrite(value)
        new = _scan_cookie(value, scan) if lname == "set-cookie" else scan(value)
        out.append((name, new))
    return out


def _scan_cookie(value: str, scan: Callable[[str], str]) -> str:
    """`name=value; Path=/...; Domain=...`: each part scanned on its own."""
    parts = value.split(";")
    out = []
    for i, part in enumerate(parts):
        key, eq, val = part.partition("=")
        if i == 0 and eq:
            out.append(f"{scan(key)}={scan(val)}" if val else f"{scan(key)}=")
        else:
            out.append(scan(part) if not eq else f"{key}={scan(val)}")
    return ";".join(out)
