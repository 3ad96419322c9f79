"""Side data and record kinds in the catalog (issue 12 follow-up).

Next to its records a CRM sends data that is no record of the route: a copy of
the record's own data (`address_obj` beside `contact_obj`), references to other
records without their facts (`{id, first_name}` lookup lists), data nobody needs
through the gateway. The catalog's `side:` rules say what each is; with them a
decision with record conditions no longer refuses such responses, and nothing in
them is shown clearer than the record rules allow. Records of another kind on a
route (`records: [{path: ..., record: {...}}]`) and CSV exports checked at their
header row are here too.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.core.catalog import Catalog
from gateway.core.codecs import make_body_rewriter
from gateway.core.codecs.limits import CodecLimits
from gateway.core.enforce import Enforcer, build_enforcer
from gateway.core.rewrite import UnidentifiedRecords
from tests.unit.core.test_enforce import (
    MASKER,
    STANDARD,
    STRICT,
    TAXONOMY,
    customer,
    decision_for,
)

DROP_A = decision_for("L1", records=[{"when": {"grade": ["A"]}, "record": "drop"}])
STREAM = CodecLimits(
    max_buffered=1 << 22, max_decompressed=1 << 24, max_ratio=100, stream_threshold=0
)
BUFFER = CodecLimits(
    max_buffered=1 << 22, max_decompressed=1 << 24, max_ratio=100, stream_threshold=1 << 22
)

RAW: dict[str, Any] = {
    "name": "t",
    "version": 1,
    "record": {"id": "id", "grade": "grade", "tier": "tier", "assignees": ["owner"]},
    "fields": [
        {"key": "id", "category": "customer_no"},
        {"key": "name", "category": "name"},
        {"key": "mobile", "category": "mobile"},
        {"key": "address", "category": "address"},
        {"key": "amount", "category": "assets"},
        {"key": "grade", "category": "internal"},
        {"key": "tier", "category": "internal"},
        {"key": "owner", "category": "internal"},
    ],
    "side": [{"path": "lookup", "mask": "strict"}, {"path": "debug", "omit": True}],
    "routes": [
        {
            "name": "detail",
            "path": "/c/{id}",
            "records": ["customer"],
            "side": [
                {"path": "address_obj", "of": "customer"},
                {"path": "deals", "of": "customer"},
            ],
        },
        {
            "name": "company",
            "path": "/co/{id}",
            "records": ["company", {"path": "people.item", "record": {"grade": "grade"}}],
            "record": {"grade": None, "tier": None},
        },
        {"name": "export", "path": "/export", "response_types": ["text/csv"]},
        {
            "name": "ungraded_export",
            "path": "/export2",
            "response_types": ["text/csv"],
            "record": {"grade": None, "tier": None},
        },
    ],
}
CAT = Catalog.from_dict(RAW)


def enforcer(route: str, decision: Any = DROP_A) -> Enforcer:
    spec = CAT.route(route)
    assert spec is not None
    return build_enforcer(
        taxonomy=TAXONOMY, route=spec, decision=decision, subject_id="u-sales-01", masker=MASKER
    )


def person(i: int, grade: str = "C") -> dict[str, Any]:
    rec = customer(i, grade=grade, tier="一般")
    return {k: rec[k] for k in ("id", "name", "mobile", "grade", "tier", "owner")}


def detail(grade: str, *, owner_first: bool = True) -> dict[str, Any]:
    own = {"customer": person(1, grade)}
    side = {
        "address_obj": {"address": "北京市海淀区学院路1号"},
        "deals": [{"id": "D1", "name": "张伟 基金定投", "amount": 500000}],
        "lookup": [{"id": "C000002", "name": "李娜"}, {"id": "C000003", "name": "王芳"}],
        "debug": {"mobile": "13900001111"},
    }
    return {**own, **side} if owner_first else {**side, **own}


def test_catalog_side_rules_are_checked_at_load() -> None:
    def problems(side: list[Any], records: list[Any] | None = None) -> str:
        raw = {**RAW, "side": [], "routes": [{"name": "r", "path": "/r", "side": side}]}
        raw["routes"][0]["records"] = records or ["rows.item", "one"]
        with pytest.raises(ValueError, match="invalid catalog") as err:
            Catalog.from_dict(raw)
        return str(err.value)

    assert "single-record prefixes" in problems([{"path": "x", "of": "rows.item"}])
    assert "exactly one of" in problems([{"path": "x", "mask": "strict", "omit": True}])
    assert "must be strict" in problems([{"path": "x", "mask": "standard"}])
    assert "holds) a records prefix" in problems([{"path": "rows", "mask": "strict"}])
    assert "unknown key" in problems([{"path": "x", "omit": True, "why": "?"}])
    assert "must be a prefix" in problems([], records=[{"record": {}}])


def test_a_copy_of_the_records_data_follows_the_record() -> None:
    shown = enforcer("detail").rewrite_document(detail("C"))
    assert shown["customer"]["name"] != "张伟"
    # masked with the record's own table, not refused as "outside every record"
    assert shown["address_obj"]["address"] == MASKER.apply(
        "北京市海淀区学院路1号", "address", STANDARD
    )
    assert shown["deals"][0]["name"] != "张伟 基金定投"
    dropped = enforcer("detail").rewrite_document(detail("A"))
    assert dropped["customer"] is None
    assert "address_obj" not in dropped and dropped["deals"] == []  # gone with the record


def test_side_data_before_its_record_is_masked_strict() -> None:
    out = enforcer("detail").rewrite_document(detail("C", owner_first=False))
    level, action = DROP_A.field_action("address", "L2"), STRICT
    assert out["address_obj"]["address"] == MASKER.apply(
        "北京市海淀区学院路1号", "address", action.stricter(level)
    )


def test_references_are_masked_strict_ids_too_and_omitted_data_is_gone() -> None:
    enf = enforcer("detail")
    out = enf.rewrite_document(detail("C"))
    for ref in out["lookup"]:
        assert ref["id"] not in ("C000002", "C000003")  # no list of unchecked customers
        assert ref["name"] not in ("李娜", "王芳")
    assert "debug" not in out
    audit = enf.report.to_audit()
    assert audit["side_data"] == {
        "address_obj: of": 1,
        "deals: of": 1,
        "debug: omit": 1,
        "lookup: strict": 1,
    }
    assert audit["blocked"] is None


def test_without_record_rules_references_get_the_decisions_own_table() -> None:
    out = enforcer("detail", decision_for("L2")).rewrite_document(detail("C"))
    assert [r["id"] for r in out["lookup"]] == ["C000002", "C000003"]  # L1: clear
    assert out["lookup"][0]["name"] == "李娜"  # L2 clearance, nothing left to check


def test_a_record_inside_side_data_keeps_its_own_rules() -> None:
    doc = {"customer": person(1), "lookup": [person(5, "A"), person(6, "C")]}
    out = enforcer("detail").rewrite_document(doc)
    assert "C000005" not in orjson.dumps(out).decode()
    assert len(out["lookup"]) == 1


def test_without_side_rules_the_same_response_is_refused() -> None:
    raw = {**RAW, "side": [], "routes": [{**RAW["routes"][0], "side": []}]}
    spec = Catalog.from_dict(raw).route("detail")
    assert spec is not None
    enf = build_enforcer(
        taxonomy=TAXONOMY, route=spec, decision=DROP_A, subject_id="u-sales-01", masker=MASKER
    )
    with pytest.raises(UnidentifiedRecords):
        enf.rewrite_document(detail("C"))


def test_records_of_another_kind_keep_their_facts() -> None:
    company = {"id": "K1", "name": "恒通科技", "amount": 100}
    ok = enforcer("company").rewrite_document({"company": company, "people": [person(1, "A")]})
    assert ok["people"] == []  # a grade A person dropped, the ungraded company shown
    assert ok["company"]["id"] == "K1"
    graded_elsewhere = {"company": dict(company, people=[person(2, "A")])}
    out = enforcer("company").rewrite_document(graded_elsewhere)
    assert "C000002" not in orjson.dumps(out).decode()
    no_grade = {"company": company, "people": [{"id": "C000009", "name": "王芳"}]}
    with pytest.raises(UnidentifiedRecords, match="without its grade"):
        enforcer("company").rewrite_document(no_grade)


@pytest.mark.parametrize("grade", ["A", "C"])
@pytest.mark.parametrize("owner_first", [True, False])
def test_streamed_side_data_equals_buffered(grade: str, owner_first: bool) -> None:
    body = orjson.dumps(detail(grade, owner_first=owner_first))
    outs = []
    for limits in (STREAM, BUFFER):
        rw = make_body_rewriter(
            "application/json", None, enforcer("detail"), limits=limits, sensitive=True
        )
        chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
        out = b"".join(rw.feed(c) for c in chunks)
        outs.append(out + rw.finish())
    assert orjson.loads(outs[0]) == orjson.loads(outs[1])


def _csv(route: str, body: bytes) -> tuple[bytes, Exception | None]:
    rw = make_body_rewriter("text/csv", None, enforcer(route), limits=STREAM, sensitive=True)
    out = b""
    try:
        for line in body.splitlines(keepends=True):
            out += rw.feed(line)
        out += rw.finish()
    except UnidentifiedRecords as exc:
        return out, exc
    return out, None


def test_an_export_without_the_facts_is_refused_at_its_header() -> None:
    body = "\ufeffid,name,mobile\r\nC000001,张伟,13800000001\r\n".encode()
    out, err = _csv("export", body)
    assert out == b""  # not a byte before the refusal
    assert err is not None and "no grade column" in str(err)
    graded = b"id,name,mobile,grade,tier\r\nC000001,x,13800000001,A,t\r\nC000002,y,1,C,t\r\n"
    out, err = _csv("export", graded)
    assert err is None and b"C000001" not in out and b"C000002" in out
    out, err = _csv("ungraded_export", body)  # a kind without grades by design
    assert err is None and b"13800000001" not in out and b"C000001" in out
