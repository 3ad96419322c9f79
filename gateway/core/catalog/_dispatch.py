"""Routes told apart by a query parameter: `/legacy.do?method=list` vs `?method=detail`.

Legacy CRMs (Struts `DispatchAction`, `*.ashx?action=`, `index.php?m=&a=`) answer
one path with different pages, chosen by a parameter. A catalog route with
`query: {method: detail}` answers only a request whose query string carries that
parameter once with exactly that value; routes of the same template without
`query` answer requests that carry none of the family's dispatch parameters.

The CRM, not the gateway, parses the query string in the end, and parsers differ
(first or last of a repeated parameter, names matched case-insensitively, a NUL
or a `[]` ending a name). A request that could reach a page the gateway would not
know it reached is refused (400 `ambiguous_dispatch`): a dispatch parameter given
twice, or spelled another way (`Method`, `method[]`, `method%00`, ` method`), or
a value differing from a declared one in case only (`method=DETAIL`). A value no
route declares (`method=exportAll`), or no dispatch parameter where the family
has no plain route, matches no route: the request is enforced as an uncatalogued
path (catalog-wide rules and record facts, record rules failing closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, unquote

from gateway.core.catalog._spec import RouteMatch
from gateway.errors import ClientError

_NOISE = re.compile(r"[\s\x00-\x1f\x7f]+|\[\]$")


class AmbiguousDispatch(ClientError):
    """A query-dispatch parameter the CRM might read otherwise than the gateway."""

    code = "ambiguous_dispatch"


_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


def dispatch(
    family: Sequence[RouteMatch], query: str | None, method: str = "GET"
) -> RouteMatch | None:
    """The route of one template's family (in catalog order) this query selects."""
    if not family:
        return None
    names = {name for m in family for name in m.route.query}
    # A request that may carry a body (POST ...) names its page in the query: the CRM
    # may read a dispatch parameter from a form body too (refused there, see
    # check_body), so without one in the query it is not the plain route's.
    plain = next((m for m in family if not m.route.query), None)
    if method.upper() not in _BODYLESS:
        plain = None
    if not names:
        return family[0]
    given: dict[str, list[str]] = {}
    for raw_name, value in parse_qsl(query or "", keep_blank_values=True):
        # a CRM that decodes twice reads `m%2565thod` as `method`: fold the same way
        folded = _NOISE.sub("", unquote(unquote(raw_name))).lower()
        name = next((n for n in names if n.lower() == folded), None)
        if name is None:
            continue
        if raw_name != name:
            raise AmbiguousDispatch(
                f"the query parameter {name!r} is spelled another way; send it once, "
                "as the CRM names it"
            )
        given.setdefault(name, []).append(value)
    if not given:
        return plain
    if any(len(values) != 1 for values in given.values()):
        raise AmbiguousDispatch(
            "a query parameter that selects the page is given more than once; send it once"
        )
    chosen = {name: values[0] for name, values in given.items()}
    for m in family:
        wanted = m.route.query
        if not wanted or set(chosen) != set(wanted):
            continue
        if all(chosen[k] == v for k, v in wanted.items()):
            return m
        if all(chosen[k].lower() == v.lower() for k, v in wanted.items()):
            raise AmbiguousDispatch(
                "a query parameter that selects the page differs from the CRM's spelling "
                "in case only"
            )
    return None


def _fold(name: str) -> str:
    return _NOISE.sub("", unquote(unquote(name))).lower()


def query_names(query: str) -> frozenset[str]:
    """The query's parameter names, folded as a lenient CRM reads them."""
    return frozenset(_fold(name) for name, _ in parse_qsl(query, keep_blank_values=True))


def check_query_once(query: str) -> None:
    """A write on a dispatched page whose record is read by its query parameters
    (`?method=update&id=C1`): a parameter given twice, in any spelling, could name
    one record to the read and another to the write (first or last wins)."""
    seen: set[str] = set()
    for name, _ in parse_qsl(query, keep_blank_values=True):
        folded = _fold(name)
        if folded in seen:
            raise AmbiguousDispatch(
                f"the query parameter {name!r} is given more than once; on a page that "
                "writes a record, send each parameter once"
            )
        seen.add(folded)


def check_cookies(cookie_headers: Iterable[str], names: Iterable[str]) -> None:
    """A cookie named like a dispatch parameter is refused: ASP.NET's Request["method"]
    and PHP's $_REQUEST (request_order with C) read cookies too, so on a request whose
    query names no page the cookie would choose one the gateway did not."""
    wanted = {n.lower() for n in names}
    if not wanted:
        return
    for header in cookie_headers:
        for pair in header.split(";"):
            name = pair.partition("=")[0].strip()
            if name and _fold(name) in wanted:
                raise AmbiguousDispatch(
                    f"the cookie {name!r} is named like a query parameter that selects "
                    "the page; the CRM could read the page from it"
                )


def check_body(fields: Iterable[str], names: Iterable[str]) -> None:
    """A write body naming a dispatch parameter (or, on a dispatched write page, any
    parameter of its query) is refused: the CRM may take it from the body (PHP's
    $_REQUEST, Struts' getParameter, Laravel's input()) while the gateway took it
    from the query."""
    wanted = {n.lower() for n in names}
    if not wanted:
        return
    for field in fields:
        if _fold(field) in wanted:
            raise AmbiguousDispatch(
                f"the body carries {field!r}, which the query string names (or which "
                "selects the page); name it in the query string only"
            )
