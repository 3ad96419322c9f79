"""A hostile upstream: the demo CRM's customers in every format, charset, envelope
shape and key trick an old CRM (or an attacker who controls one) could send.

Every case is one path under `/hostile/` (none is in the demo catalog, so the
gateway's catalog-wide fallback is what stands between them and the caller).
A case says what the gateway must do with it for a low-clearance caller under
record rules (`u-cs`: no grade A/B grant, no 流失/潜在 role):

  shown    200; every record of a grade/tier the caller may not see is gone,
           at least one visible record's id is there (the case is not vacuous)
  blocked  403 uncatalogued_route: records the rules cannot be checked on
  safe     any refusal or a 200 without the hidden records (a type another
           layer may refuse outright, e.g. JSON labelled text/html)

The tests (tests/security/test_outbound_*.py) then look for every hidden
customer's id, name and ID number, and every visible customer's L4 values, in
the decoded body.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

import orjson
from aiohttp import web

from gateway.demo.data import generate_customers, generate_note
from gateway.demo.legacy import soap_page

COUNT = 60
CUSTOMERS: list[dict[str, Any]] = generate_customers(7, COUNT)
HIDDEN_TIERS = frozenset({"潜在", "流失"})  # customer_service has neither role


def hidden_from_cs(c: dict[str, Any]) -> bool:
    return c["grade"] in ("A", "B") or c["tier"] in HIDDEN_TIERS


HIDDEN = [c for c in CUSTOMERS if hidden_from_cs(c)]
VISIBLE = [c for c in CUSTOMERS if not hidden_from_cs(c)]
# Names shared by a visible customer would be false alarms: only unique ones count.
_NAMES = [c["name"] for c in CUSTOMERS]
HIDDEN_MARKS = [
    m for c in HIDDEN for m in (c["id"], c["id_number"], c["name"]) if _NAMES.count(m) <= 1
]
# What customer_service (L2) never sees in clear, even of a visible customer (L4).
PROTECTED = [m for c in VISIBLE for m in (c["bank_card"], c["securities_account"])]

Body = tuple[bytes, str]  # body, Content-Type


@dataclass(frozen=True)
class Case:
    name: str
    expect: str  # shown | blocked | undeclared | safe
    make: Callable[[], Body]
    kind: str = "records"  # records | formats | keys (which test module runs it)
    encoding: str | None = None  # Content-Encoding


def _json(doc: Any, ctype: str = "application/json; charset=utf-8") -> Body:
    return orjson.dumps(doc), ctype


def _page(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(rows), "page": 1, "page_size": len(rows), "results": rows}


def _flat(c: dict[str, Any]) -> dict[str, str]:
    """A customer as flat text fields (CSV, forms): consent split, no holdings."""
    out = {k: str(v) for k, v in c.items() if k not in ("holdings", "consent")}
    out["consent_marketing"] = str(c["consent"]["marketing"]).lower()
    return out


def _csv(rows: list[dict[str, str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _xml_attrs() -> Body:
    """Records as attribute-only elements, undeclared: recognised by `grade="..."`."""
    rows = "".join(
        "<row " + " ".join(f"{k}={quoteattr(v)}" for k, v in _flat(c).items()) + "/>"
        for c in CUSTOMERS
    )
    return f"<export><rows>{rows}</rows></export>".encode(), "application/xml"


def _xml_nested() -> Body:
    """SOAP in UTF-8, records one level deeper than the demo catalog declares them."""
    page = soap_page(_page(CUSTOMERS), encoding="UTF-8")
    wrapped = page.replace("<c:Customer ", "<c:Item><c:Customer ").replace(
        "</c:Customer>", "</c:Customer></c:Item>"
    )
    return wrapped.encode(), "application/soap+xml; charset=utf-8"


def _xml_utf16() -> Body:
    return soap_page(_page(CUSTOMERS), encoding="UTF-16").encode("utf-16"), "text/xml"


def _sse() -> Body:
    events = "".join(
        f"event: customer\ndata: {json.dumps(c, ensure_ascii=False)}\n\n" for c in CUSTOMERS
    )
    return events.encode(), "text/event-stream"


def _split() -> Body:
    """Facts and data in two objects: the second carries no grade."""
    rows: list[dict[str, Any]] = []
    for c in CUSTOMERS:
        rows.append({"id": c["id"], "grade": c["grade"], "tier": c["tier"]})
        rows.append({"id": c["id"], "name": c["name"], "id_number": c["id_number"]})
    return _json({"rows": rows})


def _note() -> Body:
    hidden = HIDDEN[0]
    note = generate_note(7, CUSTOMERS.index(hidden), hidden)
    return _json({"note": note})


def _big_array() -> Body:
    """A top-level array past the streaming threshold (1 MiB): streamed by the gateway."""
    rows = [dict(c, id=c["id"]) for _ in range(40) for c in CUSTOMERS]
    return _json(rows)


def _big_envelope() -> Body:
    rows = [c for _ in range(40) for c in CUSTOMERS]
    return _json({"meta": {"page": 1}, "data": {"rows": rows}})


CASES: list[Case] = [
    # --- records in shapes the catalog does not declare -----------------------------
    Case("envelope", "shown", lambda: _json({"data": {"rows": CUSTOMERS}, "total": COUNT})),
    Case("unnamed_key", "shown", lambda: _json({"x": [{"who": {"c": c}} for c in CUSTOMERS]})),
    Case(
        "arrays_of_arrays",
        "shown",
        lambda: _json([CUSTOMERS[i : i + 7] for i in range(0, COUNT, 7)]),
    ),
    Case(
        "nested_in_record",
        "shown",
        lambda: _json({"results": [dict(VISIBLE[0], related=HIDDEN), VISIBLE[1]]}),
    ),
    Case(
        "under_named_key",  # `owner` is catalogued `internal` (L1): a unit, were it not a record
        "shown",
        lambda: _json({"results": [dict(VISIBLE[0], owner=HIDDEN[0], consent=HIDDEN[1])]}),
    ),
    Case("bare_record", "shown", lambda: _json(VISIBLE[0])),
    Case("bare_hidden_record", "safe", lambda: _json(HIDDEN[0])),
    Case("big_array_streamed", "shown", _big_array),
    Case("big_envelope", "shown", _big_envelope),
    Case(
        "gzip",
        "shown",
        lambda: (gzip.compress(_json(CUSTOMERS)[0]), "application/json"),
        encoding="gzip",
    ),
    Case("split_record", "blocked", _split),
    Case("id_list", "blocked", lambda: _json({"customer_ids": [c["id"] for c in CUSTOMERS]})),
    Case("bare_ids", "blocked", lambda: _json({"ids": [c["id"] for c in CUSTOMERS]})),
    Case("top_level_ids", "blocked", lambda: _json([c["id"] for c in CUSTOMERS])),
    Case(
        "ids_in_a_string", "blocked", lambda: _json({"data": ",".join(c["id"] for c in CUSTOMERS)})
    ),
    Case(
        "id_only_records", "blocked", lambda: _json({"results": [{"id": c["id"]} for c in HIDDEN]})
    ),
    Case(
        "renamed_grade",
        "blocked",
        lambda: _json(
            [
                {**{k: v for k, v in c.items() if k != "grade"}, "level": c["grade"]}
                for c in CUSTOMERS
            ]
        ),
    ),
    Case(
        "no_facts_at_all",
        "blocked",
        lambda: _json([{"name": c["name"], "id_number": c["id_number"]} for c in CUSTOMERS]),
    ),
    Case("note_without_grade", "blocked", _note),
    Case(
        "plain_text_listing",
        "blocked",
        lambda: (
            "\n".join(
                f"{c['id']} {c['name']} {c['mobile']} {c['id_number']}" for c in CUSTOMERS
            ).encode(),
            "text/plain; charset=utf-8",
        ),
    ),
    Case(
        "grade_in_envelope_object",  # a root that is a record: dropped when hidden
        "safe",
        lambda: _json({"grade": "A", "tier": "VIP", "results": VISIBLE[:3]}),
    ),
    # --- formats and charsets ---------------------------------------------------------
    Case(
        "gbk_json",
        "shown",
        lambda: (
            json.dumps(_page(CUSTOMERS), ensure_ascii=False).encode("gbk"),
            "application/json; charset=GBK",
        ),
        kind="formats",
    ),
    Case(
        "utf16_json",
        "shown",
        lambda: (
            json.dumps(_page(CUSTOMERS), ensure_ascii=False).encode("utf-16"),
            "application/json; charset=utf-16",
        ),
        kind="formats",
    ),
    Case(
        "bom_json",
        "shown",
        lambda: (b"\xef\xbb\xbf" + _json(_page(CUSTOMERS))[0], "application/json"),
        kind="formats",
    ),
    Case(
        "jsonp",
        "shown",
        lambda: (b"/**/cb(" + _json(_page(CUSTOMERS))[0] + b");", "application/javascript"),
        kind="formats",
    ),
    Case(
        "json_as_text_plain", "shown", lambda: _json(_page(CUSTOMERS), "text/plain"), kind="formats"
    ),
    Case(
        "json_as_html",
        "safe",
        lambda: _json(_page(CUSTOMERS), "text/html; charset=utf-8"),
        kind="formats",
    ),
    Case(
        "ndjson",
        "shown",
        lambda: (b"".join(orjson.dumps(c) + b"\n" for c in CUSTOMERS), "application/x-ndjson"),
        kind="formats",
    ),
    Case(
        "csv_bom",
        "shown",
        lambda: (b"\xef\xbb\xbf" + _csv([_flat(c) for c in CUSTOMERS]).encode(), "text/csv"),
        kind="formats",
    ),
    Case(
        "csv_gbk",
        "shown",
        lambda: (_csv([_flat(c) for c in CUSTOMERS]).encode("gbk"), "text/csv; charset=GBK"),
        kind="formats",
    ),
    Case(
        "tsv",
        "shown",
        lambda: (_csv([_flat(c) for c in CUSTOMERS], "\t").encode(), "text/tab-separated-values"),
        kind="formats",
    ),
    Case(
        "csv_without_grade",
        "blocked",
        lambda: (
            _csv([{k: v for k, v in _flat(c).items() if k != "grade"} for c in CUSTOMERS]).encode(),
            "text/csv",
        ),
        kind="formats",
    ),
    Case(
        "soap_gbk",
        "shown",
        lambda: (soap_page(_page(CUSTOMERS)).encode("gbk"), "text/xml"),
        kind="formats",
    ),
    Case("soap_nested", "shown", _xml_nested, kind="formats"),
    Case("soap_utf16", "shown", _xml_utf16, kind="formats"),
    Case("xml_attributes", "shown", _xml_attrs, kind="formats"),
    Case("sse", "shown", _sse, kind="formats"),
    Case(
        "form_hidden",
        "safe",
        lambda: (urlencode(_flat(HIDDEN[0])).encode(), "application/x-www-form-urlencoded"),
        kind="formats",
    ),
    Case(
        "form_visible",
        "shown",
        lambda: (urlencode(_flat(VISIBLE[0])).encode(), "application/x-www-form-urlencoded"),
        kind="formats",
    ),
    # --- identifiers in keys and names ------------------------------------------------
    Case("keyed_by_id", "shown", lambda: _json({c["id"]: c for c in CUSTOMERS}), kind="keys"),
    Case(
        "keyed_by_mobile",
        "blocked",
        lambda: _json({c["mobile"]: c for c in CUSTOMERS}),
        kind="keys",
    ),
    Case(
        "keyed_by_id_number",
        "blocked",
        lambda: _json({c["id_number"]: c for c in CUSTOMERS}),
        kind="keys",
    ),
    Case(
        "record_keyed_by_id_number",
        "shown",
        lambda: _json({"results": [dict(c, **{c["id_number"]: "x"}) for c in CUSTOMERS]}),
        kind="keys",
    ),
    Case(
        "xml_element_named_by_card",
        "shown",
        lambda: (
            (
                "<r>"
                + "".join(
                    f"<c grade={quoteattr(c['grade'])} tier={quoteattr(c['tier'])}"
                    f" id={quoteattr(c['id'])}><n{c['bank_card']}>x</n{c['bank_card']}>"
                    f"<name>{escape(c['name'])}</name></c>"
                    for c in CUSTOMERS
                )
                + "</r>"
            ).encode(),
            "application/xml",
        ),
        kind="keys",
    ),
    Case(
        "csv_header_card",  # a header outside every record naming a card: refused
        "blocked",
        lambda: (
            _csv([{**_flat(c), VISIBLE[0]["bank_card"]: "1"} for c in CUSTOMERS]).encode(),
            "text/csv",
        ),
        kind="keys",
    ),
]
BY_NAME = {c.name: c for c in CASES}


async def _serve(request: web.Request) -> web.Response:
    case = BY_NAME.get(request.match_info["case"])
    if case is None:
        return web.json_response({"error": "no such case"}, status=404)
    body, ctype = case.make()
    headers = {"Content-Type": ctype}
    if case.encoding:
        headers["Content-Encoding"] = case.encoding
    return web.Response(body=body, headers=headers)


def create_hostile_upstream() -> web.Application:
    app = web.Application()
    app.router.add_get("/hostile/{case}", _serve)
    return app
