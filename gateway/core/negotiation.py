"""Content negotiation on sensitive routes: the CRM answers in a type the catalog declares.

A CRM often renders the same records several ways: Django REST Framework's
browsable API (`?format=api`, `Accept: text/html`) embeds them in HTML, where
only the free-text scan sees them. On a sensitive route the gateway therefore

- drops the format-override query parameters the catalog names (`format`,
  `_format`, `output`, ...) before the request reaches the CRM,
- replaces `Accept` with the declared types the client accepts (406 when it
  accepts none of them), and
- refuses a response whose media type the route does not declare (502
  `undeclared_response_type`), whatever its status.

Declared types come from the catalog (`response_types`, per route or
catalog-wide; `*/*` turns the check off for a route). Entries may be exact
(`application/json`) or suffix patterns (`application/*+json`); only exact
entries are sent in `Accept`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from urllib.parse import unquote_plus

from gateway.errors import NotAcceptable, UndeclaredResponseType

ANY = "*/*"
# What the codecs parse into records, used when a catalog declares nothing.
DEFAULT_RESPONSE_TYPES: tuple[str, ...] = (
    "application/json",
    "application/*+json",
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "text/csv",
    "text/tab-separated-values",
    "application/xml",
    "text/xml",
    "application/soap+xml",
    "application/*+xml",
    "application/x-www-form-urlencoded",
    "text/event-stream",
    "application/javascript",
    "text/javascript",
)
DEFAULT_FORMAT_PARAMS: tuple[str, ...] = ("format", "_format", "output")
_PLAIN_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9*][a-z0-9!#$&^_.+*-]{0,63}")
_DIGIT_RUN = re.compile(r"\d{5}")


def media_type(content_type: str | None) -> str:
    """`text/html; charset=utf-8` -> `text/html` (lower-cased; "" when absent)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def declares(declared: Sequence[str], mime: str) -> bool:
    """Does the route declare `mime`? (`*/*` declares everything.)"""
    if ANY in declared:
        return True
    if not mime or "/" not in mime:
        return False
    return any(mime == d or ("*" in d and fnmatch.fnmatchcase(mime, d)) for d in declared)


def check_response_type(declared: Sequence[str], content_type: str | None, route: str) -> None:
    """Raise UndeclaredResponseType unless the CRM's body type is declared for `route`."""
    if declares(declared, media_type(content_type)):
        return
    shown = media_type(content_type) or "no Content-Type"
    if shown != "no Content-Type" and (
        not _PLAIN_MIME.fullmatch(shown) or _DIGIT_RUN.search(shown)
    ):  # the CRM chose the label: it is echoed only when it cannot carry data
        shown = "an unusual media type"
    raise UndeclaredResponseType(
        f"the CRM answered {route or 'this route'} with {shown}, which the catalog does not "
        "declare for it (response_types); the body is not shown",
        content_type=shown[:100],
        declared=list(declared)[:10],
    )


def _accept_entries(value: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for part in value.split(","):
        mime, *params = (p.strip() for p in part.split(";"))
        if not mime:
            continue
        q = 1.0
        for param in params:
            name, _, val = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(val.strip())
                except ValueError:
                    q = 0.0
        out.append((mime.lower(), q))
    return out


def _covers(pattern: str, mime: str) -> bool:
    if pattern in (ANY, "*"):
        return True
    if pattern.endswith("/*"):
        return mime.startswith(pattern[:-1])
    return pattern == mime


def narrow_accept(client_accept: str | None, declared: Sequence[str]) -> str | None:
    """The `Accept` to send the CRM: the declared exact types the client accepts, in the
    client's order of preference. None for `*/*` routes (the client's own header goes on).

    Raises NotAcceptable when the client accepts none of the declared types.
    """
    if ANY in declared:
        return None
    exact = [d for d in declared if "*" not in d]
    if not exact:
        return None
    if not client_accept or not client_accept.strip():
        return ", ".join(exact)
    entries = _accept_entries(client_accept)
    ranked: list[tuple[float, int, str]] = []
    for i, mime in enumerate(exact):
        q = max((q for pattern, q in entries if _covers(pattern, mime)), default=0.0)
        if q > 0:
            ranked.append((-q, i, mime))
    if not ranked:
        raise NotAcceptable(
            "this route answers only in " + ", ".join(exact) + "; the request's Accept "
            "admits none of them",
            declared=exact[:10],
        )
    return ", ".join(mime for _, _, mime in sorted(ranked))


def strip_format_params(query: str, names: Iterable[str]) -> str:
    """The raw query without the format-override parameters `names` (case-insensitive,
    percent-decoded names, so `%66ormat=api` and `FORMAT=api` go too)."""
    if not query:
        return query
    drop = {n.lower() for n in names}
    if not drop:
        return query
    kept = []
    for part in query.split("&"):
        name = part.split("=", 1)[0]
        if unquote_plus(name).strip().lower() in drop:
            continue
        kept.append(part)
    return "&".join(kept)
