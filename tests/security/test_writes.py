"""Issue 11 items 4-6: every write body guarded, placeholders in every style, no blind writes.

Real servers only: a gateway on a real OPA (the repository's rego/, open hours)
in front of `write_upstream` (a CRM that takes writes in every body type and
records the bytes it received, per record) and the demo CRM (which reads JSON
under any label). Every case asserts at the CRM: the recorded request (or the
demo store) shows that no masked placeholder, no field above the caller's write
clearance and no write to a record the caller may not see arrived. The clean
controls show the same requests do arrive when they are legitimate, so each
assertion can fail.

Callers: `cs` (customer service, L2, may modify L2; delete enabled for the
battery), `partner-01` (partner, sees assigned records; modify enabled).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.core.masking import Masker
from gateway.core.model import Action, Verb
from gateway.core.taxonomy import Taxonomy
from tests.conftest import ROOT, OpaProcess
from tests.integration.gateway_harness import Gateway, start_gateway
from tests.integration.policy_http_harness import (
    ALWAYS_OPEN,
    DemoCrm,
    headers,
    policy_copy,
    start_demo_crm,
    start_policy_gateway,
    write_staff_directory,
)
from tests.security.write_bodies import BODY_TYPES, BOUNDARY, CHUNKED, multipart
from tests.security.write_upstream import BASE, WriteCrm, start_write_crm, write_catalog

pytestmark = pytest.mark.integration

CONFIG = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
ROLES = {
    **CONFIG["roles"],
    "customer_service": {**CONFIG["roles"]["customer_service"], "delete": "L2"},
    "partner": {**CONFIG["roles"]["partner"], "modify": "L2", "delete": "L2"},
}
TAX = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
MASKER = Masker(TAX, b"battery-pseudonym-key-0123456789")


def _gw_mask(value: str, category: str, verb: Verb, style: str | None = None) -> str:
    out = MASKER.apply(value, category, Action(verb, style))
    assert isinstance(out, str)
    return out


# (field, placeholder): every style a person or a system writes, and the gateway's own.
PLACEHOLDERS: list[tuple[str, str]] = [
    ("mobile", "185＊＊＊＊0203"),
    ("mobile", "139••••5678"),
    ("mobile", "139●●●●5678"),
    ("mobile", "139○○○○5678"),
    ("mobile", "139××××5678"),
    ("mobile", "139ＸＸＸＸ5678"),
    ("mobile", "139xxxx5678"),
    ("mobile", "139####5678"),
    ("mobile", "139????5678"),
    ("mobile", "139…5678"),
    ("mobile", "[已脱敏]"),
    ("mobile", _gw_mask(BASE["mobile"], "mobile", Verb.MASK, "standard")),
    ("mobile", _gw_mask(BASE["mobile"], "mobile", Verb.MASK, "strict")),
    ("mobile", _gw_mask(BASE["mobile"], "mobile", Verb.PSEUDONYMISE)),
    ("id_number", "210102••••••••9473"),
    ("id_number", _gw_mask(BASE["id_number"], "id_number", Verb.MASK, "standard")),
    ("id_number", _gw_mask(BASE["id_number"], "id_number", Verb.MASK, "strict")),
    ("name", "徐某"),
    ("name", "王某某"),
    ("name", "张*"),
    ("name", "欧阳女士"),
    ("name", "<已隐藏>"),
    ("name", _gw_mask(BASE["name"], "name", Verb.MASK, "standard")),
    ("name", _gw_mask(BASE["name"], "name", Verb.MASK, "strict")),
    ("email", _gw_mask(BASE["email"], "email", Verb.MASK, "standard")),
    ("email", _gw_mask(BASE["email"], "email", Verb.MASK, "strict")),
    ("email", "(masked)"),
    ("email", "[REDACTED]"),
    ("email", "***"),
    ("address", _gw_mask(BASE["address"], "address", Verb.MASK, "standard")),
    ("address", _gw_mask(BASE["address"], "address", Verb.GENERALISE)),
    ("landline", _gw_mask(BASE["landline"], "landline", Verb.MASK, "standard")),
    ("birth_date", _gw_mask(BASE["birth_date"], "birth_date", Verb.MASK, "standard")),
    ("birth_date", _gw_mask(BASE["birth_date"], "birth_date", Verb.GENERALISE)),
    ("notes", "客户手机139****5678，已回访"),
]
# Fields above cs's write clearance (L2), by key, nested, by value alone, key spelling.
ABOVE_CLEARANCE: list[dict[str, Any]] = [
    {"bank_card": "6222600260001072445"},
    {"securities_account": "A987654321"},
    {"annual_income": "990000"},
    {"balance": "1"},
    {"query_password": "000000"},
    {"BANK_CARD": "6222600260001072445"},
    {"x_ref": "6222600260001072444"},  # a card under a name nobody catalogued
]


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    hours = {**CONFIG["time_place"], "hours": ALWAYS_OPEN, "holidays": []}
    dest = tmp_path_factory.mktemp("rego") / "writes"
    proc = OpaProcess([policy_copy(dest, ROOT, time_place=hours, roles=ROLES)])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
async def crm() -> AsyncIterator[WriteCrm]:
    c = await start_write_crm()
    yield c
    await c.stop()


def _engine(opa: OpaProcess) -> dict[str, Any]:
    return {"policy.engine": "external", "policy.url": opa.url}


async def _write_gateway(tmp_path: Path, crm: WriteCrm, opa: OpaProcess, **extra: Any) -> Gateway:
    return await start_gateway(
        tmp_path,
        crm.url,
        **_engine(opa),
        **{
            "identity.directory": str(write_staff_directory(tmp_path / "staff.yaml")),
            "classification.catalog": str(write_catalog(tmp_path / "catalog.yaml")),
            "policy.timeout": 2.0,
        },
        **extra,
    )


@pytest.fixture
async def gw(tmp_path: Path, crm: WriteCrm, opa: OpaProcess) -> AsyncIterator[Gateway]:
    g = await _write_gateway(tmp_path, crm, opa)
    yield g
    await g.stop()


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 7):
        yield body[i : i + 7]


async def send(
    gw: Gateway,
    method: str,
    path: str,
    who: str,
    hdrs: list[tuple[str, str]],
    body: bytes | None,
    *,
    chunked: bool = False,
) -> tuple[int, dict[str, Any]]:
    all_headers = [*headers(who).items(), *hdrs]
    data: Any = _chunks(body) if chunked and body is not None else body
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as s,
        s.request(method, gw.url + path, headers=all_headers, data=data) as r,
    ):
        raw = await r.read()
        try:
            parsed = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            parsed = {"raw": raw.decode("utf-8", "replace")}
        return r.status, parsed


def _encoded(value: str) -> list[bytes]:
    """Spellings of a value that may appear in a body (JSON escapes, GBK, UTF-16, form)."""
    from urllib.parse import quote_plus

    out = [value.encode(), json.dumps(value).encode()[1:-1], quote_plus(value).encode()]
    for codec in ("gbk", "utf-16-le", "utf-16-be"):
        try:
            out.append(value.encode(codec))
        except UnicodeEncodeError:
            continue
    return out


def assert_absent(crm: WriteCrm, value: str) -> None:
    """Nothing the CRM received (decompressed) carries `value` in any spelling."""
    for blob in (r.body for rs in crm.received.values() for r in rs):
        for spelling in _encoded(value):
            assert spelling not in blob, f"{value!r} reached the CRM"


# --- 4 x 5: every body type x every placeholder style x protected field ---------------


@pytest.mark.parametrize("body_type", sorted(BODY_TYPES))
async def test_masked_placeholders_never_reach_the_crm(
    gw: Gateway, crm: WriteCrm, body_type: str
) -> None:
    encode = BODY_TYPES[body_type]
    for field, placeholder in PLACEHOLDERS:
        hdrs, body = encode({field: placeholder})
        status, answer = await send(
            gw, "PATCH", "/api/customers/C100", "cs", hdrs, body, chunked=body_type in CHUNKED
        )
        assert status == 409, (body_type, field, placeholder, status, answer)
        assert answer["error"] == "masked_value_write"
        assert crm.count("C100") == 0, (body_type, field, placeholder)
        assert crm.records["C100"][field] == BASE[field]
    for _, placeholder in PLACEHOLDERS:
        assert_absent(crm, placeholder)


@pytest.mark.parametrize("body_type", sorted(BODY_TYPES))
async def test_fields_above_the_write_clearance_never_reach_the_crm(
    gw: Gateway, crm: WriteCrm, body_type: str
) -> None:
    encode = BODY_TYPES[body_type]
    for fields in ABOVE_CLEARANCE:
        for method, path in (("PATCH", "/api/customers/C100"), ("POST", "/api/customers")):
            hdrs, body = encode({"mobile": "13800001111", **fields})
            status, answer = await send(
                gw, method, path, "cs", hdrs, body, chunked=body_type in CHUNKED
            )
            assert status == 403, (body_type, fields, status, answer)
            assert answer["error"] == "forbidden"
    assert crm.received == {}
    for fields in ABOVE_CLEARANCE:
        for value in fields.values():
            assert_absent(crm, value)


@pytest.mark.parametrize("body_type", sorted(BODY_TYPES))
async def test_clean_writes_arrive_unchanged(gw: Gateway, crm: WriteCrm, body_type: str) -> None:
    """The control: a legitimate write in the same body type reaches the CRM byte for byte."""
    hdrs, body = BODY_TYPES[body_type]({"mobile": "13800001111", "name": "欧阳娜娜"})
    status, answer = await send(
        gw, "PATCH", "/api/customers/C100", "cs", hdrs, body, chunked=body_type in CHUNKED
    )
    assert status == 200, (body_type, answer)
    assert crm.count("C100") == 1
    sent = gzip.decompress(body) if body_type == "json_gzip" else body  # the CRM decodes gzip
    assert crm.last("C100").body == sent


# --- 4: bodies the gateway cannot inspect are refused, never forwarded --------------------

J = b'{"mobile": "13800001111"}'
UNINSPECTABLE: list[tuple[str, list[tuple[str, str]], bytes]] = [
    ("param trick", [("Content-Type", "application/json;x=multipart/form-data")], J),
    ("param trick 2", [("Content-Type", "multipart/form-data;a=application/json")], J),
    ("two content types",
     [("Content-Type", "application/json"), ("Content-Type", "text/plain")], J),
    ("merged content types", [("Content-Type", "application/json, text/plain")], J),
    ("file part", [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")],
     multipart({"mobile": "13800001111"}, extra_part=(
         f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="doc"; filename="a.csv"\r\n'
         "Content-Type: text/csv\r\n\r\nmobile\r\n139****5678\r\n").encode())),
    ("base64 part", [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")],
     (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="mobile"\r\n'
      f"Content-Transfer-Encoding: base64\r\n\r\nMTM5KioqKjU2Nzg=\r\n--{BOUNDARY}--\r\n").encode()),
    ("multipart without boundary", [("Content-Type", "multipart/form-data")], J),
    ("multipart unclosed", [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")],
     multipart({"mobile": "13800001111"})[: -len(BOUNDARY) - 6]),
    ("binary", [("Content-Type", "application/octet-stream")], b"\x00\x01mobile\x02\x03"),
    ("png", [("Content-Type", "image/png")], b"\x89PNG\r\n\x1a\n" + b"\x00" * 16),
    ("html", [("Content-Type", "text/html")], b"<p>mobile=139****5678</p>"),
    ("csv", [("Content-Type", "text/csv")], b"mobile\n139****5678\n"),
    ("msgpack", [("Content-Type", "application/msgpack")], b"\x81\xa6mobile\xa1x"),
    ("brotli", [("Content-Type", "application/json"), ("Content-Encoding", "br")], J),
    ("gzip twice", [("Content-Type", "application/json"), ("Content-Encoding", "gzip, gzip")],
     gzip.compress(gzip.compress(J))),
    ("gzip bomb", [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
     gzip.compress(b'{"notes": "' + b" " * 5_000_000 + b'"}')),
    ("bad gzip", [("Content-Type", "application/json"), ("Content-Encoding", "gzip")], J),
    ("xml entity", [("Content-Type", "application/xml")],
     b'<!DOCTYPE c [<!ENTITY m "139****5678">]><c><mobile>&m;</mobile></c>'),
    ("json duplicate key", [("Content-Type", "application/json")],
     b'{"mobile": "13800001111", "mobile": "139****5678"}'),
    ("json NaN", [("Content-Type", "application/json")], b'{"mobile": NaN}'),
    ("json labelled as form", [("Content-Type", "application/x-www-form-urlencoded")], J),
    ("form labelled as json", [("Content-Type", "application/json")], b"mobile=139****5678"),
    ("json labelled as xml", [("Content-Type", "application/xml")], J),
    ("utf-16 without BOM", [("Content-Type", "application/json; charset=utf-16")],
     J.decode().encode("utf-16-le")),
    ("BOM against charset", [("Content-Type", "application/json; charset=utf-8")],
     J.decode().encode("utf-16")),
    ("utf-7", [("Content-Type", "application/json; charset=utf-7")], J),
    ("invalid utf-8 and gb18030", [("Content-Type", "text/plain")], b'{"notes": "\x80\x80"}'),
    ("JSON-looking text that is not JSON", [("Content-Type", "text/plain")],
     b"{mobile: '139****5678'}"),
    ("markup that is not XML", [], b"<customer><mobile>139****5678</customer>"),
    ("nesting 200 deep", [("Content-Type", "application/json")],
     b'{"a":' * 200 + b"1" + b"}" * 200),
]  # fmt: skip


async def test_uninspectable_bodies_are_refused_with_415(gw: Gateway, crm: WriteCrm) -> None:
    for method in ("PATCH", "PUT", "POST", "DELETE"):
        for name, hdrs, body in UNINSPECTABLE:
            status, answer = await send(gw, method, "/api/customers/C100", "cs", hdrs, body)
            if name == "two content types":  # aiohttp's own parser refuses it first
                assert status in (400, 415), (method, name, status, answer)
                continue
            assert status == 415, (method, name, status, answer)
            assert answer["error"] == "unsupported_media_type"
            assert answer["details"]["reason"]
    assert crm.received == {}
    assert crm.records["C100"]["mobile"] == BASE["mobile"]


async def test_fields_in_the_query_string_of_a_write_are_checked(
    gw: Gateway, crm: WriteCrm
) -> None:
    """Frameworks that merge query parameters into the fields store these too. For cs
    these categories are not clear on every record, so the search-oracle check refuses
    them first (403, naming the parameter); the write guard's own reading of query
    fields (409 for placeholders) is covered in tests/unit/core/test_requestbody.py."""
    hdrs, body = PATCH
    for query, param in (("mobile=139%E2%80%A2%E2%80%A2%E2%80%A2%E2%80%A25678", "mobile"),
                         ("name=%E5%BE%90%E6%9F%90", "name"),
                         ("bank_card=6222600260001072445", "bank_card")):  # fmt: skip
        for sent_body in (body, None):
            status, answer = await send(
                gw, "PATCH", f"/api/customers/C100?{query}", "cs", hdrs if sent_body else [],
                sent_body,
            )  # fmt: skip
            assert status == 403, (query, sent_body, answer)
            assert answer["error"] == "protected_field_filter", answer
            assert {t["parameter"] for t in answer["details"]["parameters"]} == {param}, answer
    assert crm.count("C100") == 0
    status, _ = await send(gw, "PATCH", "/api/customers/C100?format=json", "cs", hdrs, body)
    assert status == 200  # the control: an ordinary parameter passes
    assert crm.count("C100") == 1


async def test_fields_in_cookies_of_a_write_are_checked_like_the_query(
    gw: Gateway, crm: WriteCrm
) -> None:
    """ASP.NET's Request["mobile"] reads a cookie when neither the query nor the form
    has the field: a write's cookies named like fields are read as its query."""
    hdrs, body = PATCH
    for cookie, param in (("mobile=139%E2%80%A2%E2%80%A2%E2%80%A2%E2%80%A25678", "mobile"),
                          ("sid=1; bank_card=6222600260001072445", "bank_card")):  # fmt: skip
        for sent_body in (body, None):
            status, answer = await send(
                gw, "PATCH", "/api/customers/C100", "cs",
                [*(hdrs if sent_body else []), ("Cookie", cookie)], sent_body,
            )  # fmt: skip
            assert status == 403, (cookie, sent_body, answer)
            assert answer["error"] == "protected_field_filter", answer
            assert {t["parameter"] for t in answer["details"]["parameters"]} == {param}, answer
    assert crm.count("C100") == 0
    status, _ = await send(
        gw, "PATCH", "/api/customers/C100", "cs", [*hdrs, ("Cookie", "sessionid=x")], body
    )
    assert status == 200  # the control: a session cookie passes
    assert crm.count("C100") == 1


# --- strip mode: masked fields removed, the body re-encoded in its own format -------------


@pytest.fixture
async def strip_gw(tmp_path: Path, crm: WriteCrm, opa: OpaProcess) -> AsyncIterator[Gateway]:
    g = await _write_gateway(tmp_path, crm, opa, **{"classification.masked_write": "strip"})
    yield g
    await g.stop()


STRIPPABLE = ["json", "json_gbk", "json_utf16_bom", "json_gzip", "form", "form_nested_keys",
              "multipart", "xml", "soap", "text_json", "vnd_api_json"]  # fmt: skip


async def test_strip_mode_reencodes_without_the_masked_field(
    strip_gw: Gateway, crm: WriteCrm
) -> None:
    for body_type in STRIPPABLE:
        before = crm.count("C106")
        hdrs, body = BODY_TYPES[body_type]({"mobile": "139••••5678", "name": "欧阳娜娜"})
        status, answer = await send(strip_gw, "PATCH", "/api/customers/C106", "cs", hdrs, body)
        assert status == 200, (body_type, answer)
        assert crm.count("C106") == before + 1
        got = crm.last("C106")
        assert got.content_type == [dict(hdrs)["Content-Type"]]
        text = got.body.decode("gbk" if body_type == "json_gbk" else
                          "utf-16" if body_type == "json_utf16_bom" else "utf-8")  # fmt: skip
        assert "欧阳娜娜" in text or "%E6%AC%A7" in text, (body_type, text)  # name kept
        assert "mobile" not in text, (body_type, text)  # masked field removed
    assert_absent(crm, "139••••5678")
    assert crm.records["C106"]["mobile"] == BASE["mobile"]


async def test_a_put_is_never_stripped(strip_gw: Gateway, crm: WriteCrm) -> None:
    """A PUT replaces the record: the field strip mode would remove would be erased at
    the CRM, so its placeholder is refused (409) and nothing is sent."""
    hdrs, body = BODY_TYPES["json"]({"mobile": "139••••5678", "name": "欧阳娜娜"})
    status, answer = await send(strip_gw, "PUT", "/api/customers/C106", "cs", hdrs, body)
    assert status == 409, answer
    assert answer["error"] == "masked_value_write"
    assert crm.count("C106") == 0
    assert crm.records["C106"]["mobile"] == BASE["mobile"]


async def test_ambiguous_bodies_are_refused_even_in_strip_mode(
    strip_gw: Gateway, crm: WriteCrm
) -> None:
    """An unlabelled form (also plain text) cannot be rewritten to mean one thing."""
    status, answer = await send(
        strip_gw, "PATCH", "/api/customers/C106", "cs", [("Content-Type", "text/plain")],
        b"mobile=139%E2%80%A2%E2%80%A2%E2%80%A2%E2%80%A25678&name=x",
    )  # fmt: skip
    assert status == 409, answer
    assert crm.count("C106") == 0


# --- 6: blind writes -------------------------------------------------------------------

HIDDEN = {"C102": "grade A", "C103": "grade B", "C104": "tier 流失", "C105": "tier 潜在"}
PATCH = [("Content-Type", "application/json")], b'{"mobile": "13800001111"}'


def _write_calls() -> list[tuple[str, list[tuple[str, str]], bytes | None]]:
    hdrs, body = PATCH
    return [
        ("PATCH", hdrs, body),
        ("PUT", hdrs, body),
        ("POST", hdrs, b'{"notes": "follow up"}'),
        ("DELETE", [], None),
        ("DELETE", hdrs, body),
        ("PATCH", [("Content-Type", "multipart/form-data; boundary=" + BOUNDARY)],
         multipart({"mobile": "13800001111"})),
    ]  # fmt: skip


async def test_blind_writes_to_hidden_records_are_refused(gw: Gateway, crm: WriteCrm) -> None:
    for cid, why in HIDDEN.items():
        for method, hdrs, body in _write_calls():
            status, answer = await send(gw, method, f"/api/customers/{cid}", "cs", hdrs, body)
            assert status == 403, (cid, why, method, answer)
            assert answer["error"] == "record_not_visible", (cid, method, answer)
            assert crm.count(cid) == 0, (cid, method)
            assert cid in crm.records


async def test_partner_writes_to_unassigned_records_are_refused(gw: Gateway, crm: WriteCrm) -> None:
    for method, hdrs, body in _write_calls():
        status, answer = await send(gw, method, "/api/customers/C101", "partner-01", hdrs, body)
        assert status == 403, (method, answer)
        assert answer["error"] == "record_not_visible"
    assert crm.count("C101") == 0
    # the control: the partner's own (assigned) customer takes the same writes
    hdrs, body = PATCH
    for method in ("PATCH", "PUT"):
        status, answer = await send(gw, method, "/api/customers/C100", "partner-01", hdrs, body)
        assert status == 200, (method, answer)
    assert crm.count("C100") == 2


async def test_writes_fail_closed_when_the_records_facts_cannot_be_read(
    gw: Gateway, crm: WriteCrm
) -> None:
    hdrs, body = PATCH
    for cid in ("C500", "C501", "C999"):  # read answers 500, HTML, 404
        for method in ("PATCH", "DELETE"):
            status, answer = await send(gw, method, f"/api/customers/{cid}", "cs", hdrs, body)
            assert status == 403, (cid, method, answer)
            assert answer["error"] == "record_not_visible"
            assert crm.count(cid) == 0


async def test_visible_records_take_writes_and_deletes(gw: Gateway, crm: WriteCrm) -> None:
    for method, hdrs, body in _write_calls():
        before = crm.count("C106")
        crm.records.setdefault("C106", {**BASE, "id": "C106", "grade": "C", "tier": "一般",
                                        "owner": "u-partner-01"})  # fmt: skip
        status, answer = await send(gw, method, "/api/customers/C106", "cs", hdrs, body)
        assert status == 200, (method, answer)
        assert crm.count("C106") == before + 1


# --- 6: write responses are enforced like reads ------------------------------------------


async def test_write_responses_are_masked_and_hidden_records_dropped(
    gw: Gateway, crm: WriteCrm
) -> None:
    hdrs, body = PATCH
    status, answer = await send(gw, "PATCH", "/api/customers/C106", "cs", hdrs, body)
    assert status == 200
    shown = answer["customer"]
    assert shown["mobile"] == "13800001111"  # L2: clear for cs
    assert shown["bank_card"] != BASE["bank_card"] and shown["bank_card"].endswith("2444")
    assert "query_password" not in shown or shown["query_password"] != BASE["query_password"]
    # a write that makes the record one cs may not see: the answer must not show it (the
    # path's record is withheld, so it answers like a missing one)
    status, answer = await send(
        gw, "PATCH", "/api/customers/C106", "cs", hdrs, b'{"tier": "\xe6\xb5\x81\xe5\xa4\xb1"}'
    )
    assert (status, answer["error"]) == (404, "not_found"), answer
    assert crm.records["C106"]["tier"] == "流失"
    text = json.dumps(answer, ensure_ascii=False)
    for secret in (BASE["mobile"], BASE["id_number"], BASE["email"], "13800001111"):
        assert secret not in text, (secret, answer)
    # a create answered with the full record (the CRM's defaults): masked as a read would be
    status, answer = await send(
        gw, "POST", "/api/customers", "cs", hdrs, b'{"name": "\xe7\x8e\x8b\xe8\x8a\xb3"}'
    )
    assert status == 200, answer
    assert answer["customer"]["name"] == "王芳"  # L2: clear for cs
    assert BASE["bank_card"] not in json.dumps(answer)
    assert answer["customer"]["bank_card"].endswith("2444")
    # an answer whose record has no grade cannot be checked against the record rules
    status, answer = await send(
        gw, "POST", "/api/customers", "cs", hdrs,
        b'{"name": "\xe7\x8e\x8b\xe8\x8a\xb3", "grade": null}',
    )  # fmt: skip
    assert status == 403, answer
    assert answer["error"] == "uncatalogued_route"
    assert BASE["bank_card"] not in json.dumps(answer)


# --- the demo CRM: JSON under any label, checked in its store ------------------------------


@pytest.fixture
async def demo() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=60)
    yield c
    await c.stop()


@pytest.fixture
async def demo_gw(tmp_path: Path, demo: DemoCrm, opa: OpaProcess) -> AsyncIterator[Gateway]:
    g = await start_policy_gateway(tmp_path, demo, **_engine(opa))
    yield g
    await g.stop()


def _store(demo: DemoCrm) -> dict[str, dict[str, Any]]:
    from gateway.demo.crm import STORE_KEY

    return demo.runner.app[STORE_KEY].customers


DEMO_LABELS = ["json", "text_plain_json", "text_json", "x_json", "vnd_api_json",
               "no_content_type", "octet_stream_json", "json_chunked"]  # fmt: skip


async def test_demo_crm_store_keeps_real_values(demo_gw: Gateway, demo: DemoCrm) -> None:
    store = _store(demo)
    rec = next(r for r in store.values() if r["grade"] == "C" and r["tier"] == "一般")
    before = json.dumps(rec, ensure_ascii=False, sort_keys=True)
    for label in DEMO_LABELS:
        for field, placeholder in PLACEHOLDERS:
            hdrs, body = BODY_TYPES[label]({field: placeholder})
            status, answer = await send(demo_gw, "PATCH", f"/api/customers/{rec['id']}", "cs",
                                        hdrs, body, chunked=label in CHUNKED)  # fmt: skip
            assert status == 409, (label, field, placeholder, answer)
        hdrs, body = BODY_TYPES[label]({"bank_card": "6222600260001072445"})
        status, answer = await send(demo_gw, "PATCH", f"/api/customers/{rec['id']}", "cs",
                                    hdrs, body, chunked=label in CHUNKED)  # fmt: skip
        assert status == 403, (label, answer)
    assert json.dumps(store[rec["id"]], ensure_ascii=False, sort_keys=True) == before
    # the control: a real value in the same labels is stored
    hdrs, body = BODY_TYPES["text_plain_json"]({"mobile": "13800001111"})
    status, _ = await send(demo_gw, "PATCH", f"/api/customers/{rec['id']}", "cs", hdrs, body)
    assert status == 200
    assert store[rec["id"]]["mobile"] == "13800001111"


async def test_demo_crm_blind_writes_leave_hidden_records_alone(
    demo_gw: Gateway, demo: DemoCrm
) -> None:
    store = _store(demo)
    hidden = [
        next(r for r in store.values() if r["grade"] == grade) for grade in ("A", "B")
    ] + [next(r for r in store.values() if r["tier"] == tier and r["grade"] == "C")
         for tier in ("流失", "潜在")]  # fmt: skip
    snapshot = {r["id"]: json.dumps(r, ensure_ascii=False, sort_keys=True) for r in hidden}
    for rec in hidden:
        for method in ("PATCH", "PUT"):
            hdrs, body = PATCH
            status, answer = await send(demo_gw, method, f"/api/customers/{rec['id']}", "cs",
                                        hdrs, body)  # fmt: skip
            assert status == 403, (rec["grade"], rec["tier"], method, answer)
            assert answer["error"] == "record_not_visible"
    for cid, before in snapshot.items():
        assert json.dumps(store[cid], ensure_ascii=False, sort_keys=True) == before
