"""Pre-write visibility: a write or delete on a record the caller may not see is refused.

Before a PUT, PATCH, DELETE (or a POST to a record) on a sensitive route whose
decision has record rules, the record is read through the catalog's read route
for the same path (GET, through `upstream`, with the caller's forwarded identity
headers, so the CRM answers as it would answer the caller) and the record rules
are applied to its facts (`gateway.core.visibility`). Hidden: 403
`record_not_visible`. Not found, not JSON, no record in it: refused as well,
since a decision with record rules cannot be honoured blind (fail closed).

`check_named_records` does the same for every record a write body names besides
the one in its path (upserts by id, bulk bodies, batch operations with their own
paths); there a 404 is a record that does not exist yet (a create), not a refusal.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.core import headers as h
from gateway.core.catalog import Catalog, RouteMatch, check_query_once
from gateway.core.codecs.charset import codec_name, parse_media_type
from gateway.core.model import Decision
from gateway.core.visibility import (
    dispatched_read,
    names_record,
    needs_check,
    read_route,
    record_verdict,
    targets,
)
from gateway.errors import GatewayError, RecordNotVisible
from gateway.upstream import Upstream

_BODY_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding", "accept"}
    | {"accept-encoding", "expect"}
    | h.CONDITIONAL
    | h.RANGE_REQUEST
)
MAX_FACTS_BODY = 4 * 1024 * 1024


async def check_record_visible(
    upstream: Upstream,
    catalog: Catalog,
    method: str,
    path: str,
    headers: h.Headers,
    decision: Decision,
    subject_id: str,
    write_route: RouteMatch | None,
    query: str = "",
) -> None:
    """Raise RecordNotVisible unless the caller may see the record this write changes."""
    if not decision.records or method in ("GET", "HEAD", "OPTIONS"):
        return
    if write_route is not None and write_route.route.query:
        await _check_dispatched(upstream, catalog, path, query, headers, decision, subject_id,
                                write_route)  # fmt: skip
        return
    if not needs_check(method, path, catalog, write_route):
        return
    route = read_route(catalog, path)
    if route is None:
        raise RecordNotVisible(
            "no read route names this record, so its record rules cannot be checked",
            reason="no_read_route",
        )
    await _check(upstream, route, path, headers, decision, subject_id, absent_ok=False)


async def _check_dispatched(
    upstream: Upstream,
    catalog: Catalog,
    path: str,
    query: str,
    headers: h.Headers,
    decision: Decision,
    subject_id: str,
    write: RouteMatch,
) -> None:
    """A write on a query-dispatched page (`customer.do?method=update&id=C1`): its
    record is read through the page the route `reads` (`?method=detail&id=C1`).
    Without `reads`, a query naming a record id is refused (it cannot be checked)."""
    if write.route.reads is None:
        if names_record(query, write):
            raise RecordNotVisible(
                f"this write names a record, and route {write.route.name!r} declares no "
                "page that reads it (`reads:`), so its record rules cannot be checked",
                reason="no_read_route",
            )
        return
    check_query_once(query)  # one record to the read, another to the write: no
    found = dispatched_read(catalog, path, query, write)
    if found is None:
        raise RecordNotVisible(
            f"the page route {write.route.name!r} reads its record through does not "
            "match this request",
            reason="no_read_route",
        )
    path_qs, route = found
    await _check(upstream, route, path_qs, headers, decision, subject_id, absent_ok=False)


async def check_named_records(
    upstream: Upstream,
    catalog: Catalog,
    paths: list[str],
    headers: h.Headers,
    decision: Decision,
    subject_id: str,
) -> None:
    """Raise RecordNotVisible unless the caller may see every record in `paths` (the
    read paths of records a write body names; one that does not exist is a create)."""
    if not decision.records:
        return
    for path in paths:
        route = read_route(catalog, path)
        if route is not None:
            await _check(upstream, route, path, headers, decision, subject_id, absent_ok=True)


async def _check(
    upstream: Upstream,
    route: RouteMatch,
    path: str,
    headers: h.Headers,
    decision: Decision,
    subject_id: str,
    *,
    absent_ok: bool,
) -> None:
    doc = await read_record(upstream, path, headers, absent_ok=absent_ok)
    if doc is None:
        return  # no such record: a create
    verdict = record_verdict(decision, targets(doc, route), subject_id)
    if not verdict.visible:
        raise RecordNotVisible(
            f"this record is not visible to the caller: {verdict.reason}",
            reason=verdict.reason,
            record_id=verdict.record_id,
        )


async def read_record(
    upstream: Upstream, path: str, headers: h.Headers, *, absent_ok: bool = False
) -> Any:
    """The parsed JSON document the catalog's read route `path` answers (GET through
    `upstream`, with the caller's headers minus those of a body). Anything but a 200
    with a readable JSON body raises RecordNotVisible (fail closed), except a 404/410
    when `absent_ok` (None: the record does not exist). Shared by the pre-write checks
    here and the reveal endpoint (`gateway/admin/reveal.py`)."""
    fetch = h.without(headers, _BODY_HEADERS)
    fetch += [("Accept", "application/json"), ("Accept-Encoding", "identity")]
    try:
        up = await upstream.send("GET", path, fetch, None)
        try:
            body = await _read(up.chunks())
        finally:
            up.release()
    except GatewayError as exc:
        if isinstance(exc, RecordNotVisible):
            raise
        raise RecordNotVisible(
            "the record could not be read to check its record rules", reason="fetch_failed"
        ) from exc
    if absent_ok and up.status in (404, 410):
        return None
    if up.status != 200:
        raise RecordNotVisible(
            f"the record could not be read to check its record rules (CRM status {up.status})",
            reason="fetch_failed",
        )
    unreadable = RecordNotVisible(
        "the record's facts could not be read to check its record rules",
        reason="facts_unreadable",
    )
    if h.first(up.headers, "content-encoding") not in (None, "", "identity"):
        raise unreadable
    try:
        ctype = parse_media_type(h.first(up.headers, "content-type"))
        text = codecs.decode(body, codec_name(ctype.charset))
        return orjson.loads(text.removeprefix("\ufeff"))
    except Exception as exc:  # any unreadable answer: fail closed
        raise unreadable from exc


async def _read(chunks: AsyncIterator[bytes]) -> bytes:
    out = bytearray()
    async for chunk in chunks:
        out += chunk
        if len(out) > MAX_FACTS_BODY:
            raise RecordNotVisible(
                "the record is too large to check its record rules", reason="facts_too_large"
            )
    return bytes(out)
