"""Issue 12: one record model on every route and in every format (the enforcer side).

Records are recognised by their facts wherever they are, the catalog-wide field
names and facts apply on paths the catalog does not list, and what the record
rules cannot be checked on is refused (UnidentifiedRecords -> 403
uncatalogued_route). The codec side (streamed == buffered with the new
recognition, XML records) is at the end.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.catalog import Catalog
from gateway.core.codecs import make_body_rewriter
from gateway.core.codecs.limits import CodecLimits
from gateway.core.enforce import Enforcer, build_enforcer
from gateway.core.rewrite import BlockResponse, UnidentifiedRecords
from tests.unit.core.test_enforce import (
    CATALOG,
    MASKER,
    MOBILE1,
    TAXONOMY,
    customer,
    decision_for,
    route,
)

DROP_A = decision_for("L2", records=[{"when": {"grade": ["A"]}, "record": "drop"}])
FALLBACK = CATALOG.fallback_route()
LIMITS = CodecLimits(
    max_buffered=1 << 22, max_decompressed=1 << 24, max_ratio=100, stream_threshold=0
)


def fallback(decision: Any = DROP_A, **kw: Any) -> Enforcer:
    return build_enforcer(
        taxonomy=TAXONOMY,
        route=FALLBACK,
        decision=decision,
        subject_id="u-sales-01",
        masker=MASKER,
        label=kw.get("label", "/x/y"),
    )


def on(route_name: str, decision: Any = DROP_A) -> Enforcer:
    return build_enforcer(
        taxonomy=TAXONOMY,
        route=route(route_name),
        decision=decision,
        subject_id="u-sales-01",
        masker=MASKER,
    )


def ids(doc: Any) -> set[str]:
    text = orjson.dumps(doc).decode()
    return {f"C{i:06d}" for i in range(100) if f"C{i:06d}" in text}


A, B = customer(1, grade="A"), customer(2, grade="B")


# --- recognition by shape -----------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {"data": {"rows": [A, B]}},
        [[A], [B, [A]]],
        {"x": {"y": {"z": A}}, "w": B},
        {"results": [dict(B, related=[A])]},
        {"results": [dict(B, owner=A)]},  # `owner` is catalogued internal: not a unit here
        {"results": [dict(B, holdings=[A])]},
    ],
    ids=["envelope", "arrays_of_arrays", "unnamed_keys", "nested", "named_key", "named_list"],
)
def test_records_are_recognised_by_their_facts_in_any_shape(doc: Any) -> None:
    enf = fallback()
    out = enf.rewrite_document(doc)
    assert ids(out) == {"C000002"}
    report = enf.report.to_audit()
    assert report["records"]["dropped"] >= 1
    assert "C000001" in report["records"]["ids"]  # seen (audited), not shown


def test_the_bulk_rule_counts_records_of_any_list() -> None:
    d = decision_for("L2", obligations={"max_clear_records": {"L2": 2}})
    doc = {"a": [[customer(i) for i in range(3)]], "b": {"c": customer(9)}}
    out = fallback(d).rewrite_document(doc)
    rows = [*out["a"][0], out["b"]["c"]]
    clear = [r for r in rows if r["mobile"] == customer(int(r["id"][1:]))["mobile"]]
    assert len(clear) == 2


def test_catalog_field_names_apply_on_uncatalogued_paths() -> None:
    out = fallback(decision_for("L2")).rewrite_document({"x": [customer(3)]})
    rec = out["x"][0]
    assert rec["bank_card"] != customer(3)["bank_card"]  # catalog key, L4: masked
    assert "query_password" not in rec


# --- what cannot be checked is refused -----------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {"rows": [{"id": "C1", "grade": "A"}, {"id": "C1", "name": "张伟", "mobile": MOBILE1}]},
        {"customer_ids": ["C000001", "C000002"]},
        [{"id": "C000001"}, {"id": "C000002"}],
        {"person": {"name": "张伟", "id_number": customer(1)["id_number"]}},
        {"message": f"客户张伟手机{MOBILE1}"},
        {MOBILE1: {"x": 1}},
        [{**{k: v for k, v in A.items() if k != "grade"}, "level": "A"}],
    ],
    ids=["split", "id_list", "id_only", "no_facts", "text", "key", "renamed_grade"],
)
def test_customer_data_outside_records_is_refused_under_record_rules(doc: Any) -> None:
    with pytest.raises(UnidentifiedRecords, match="/x/y"):
        fallback().rewrite_document(doc)
    fallback(decision_for("L2")).rewrite_document(doc)  # no record rules: nothing to check


def test_one_customer_number_alone_passes() -> None:
    """A write's answer echoes the id the caller named."""
    assert fallback().rewrite_document({"ok": True, "id": "C000001"}) == {
        "ok": True,
        "id": "C000001",
    }


def test_a_record_without_the_facts_the_rules_need_is_refused() -> None:
    note = {"id": "N000001", "customer_id": "C000001", "text": "回电"}
    with pytest.raises(UnidentifiedRecords, match="without its grade"):
        on("note").rewrite_document(note)
    tier_rule = decision_for("L2", records=[{"when": {"tier": ["流失"]}, "record": "drop"}])
    with pytest.raises(UnidentifiedRecords, match="tier"):
        fallback(tier_rule).rewrite_document([{k: v for k, v in A.items() if k != "tier"}])


def test_a_route_may_declare_its_records_ungraded() -> None:
    raw = {
        "name": "t",
        "record": {"id": "id", "grade": "grade"},
        "routes": [{"path": "/n/{id}", "records": [""], "record": {"grade": None}}],
    }
    spec = Catalog.from_dict(raw).routes[0]
    enf = build_enforcer(
        taxonomy=TAXONOMY, route=spec, decision=DROP_A, subject_id="u", masker=MASKER
    )
    assert enf.rewrite_document({"id": "N1", "text": "ok"}) == {"id": "N1", "text": "ok"}
    # records nested in them are still recognised with the catalog-wide facts
    assert ids(enf.rewrite_document({"id": "N1", "about": [A, B]})) == {"C000002"}


def test_record_facts_in_an_envelope_object_are_refused() -> None:
    page = {"grade": "A", "results": [customer(2)]}
    with pytest.raises(UnidentifiedRecords, match="envelope"):
        on("customer_list").rewrite_document(page)


# --- totals, keys -----------------------------------------------------------------------


def test_totals_are_removed_when_records_may_be_dropped() -> None:
    page = {"count": 2, "totalCount": 2, "page": 1, "results": [A, B]}
    out = on("customer_list").rewrite_document(page)
    assert set(out) == {"page", "results"}
    kept = on("customer_list", decision_for("L2")).rewrite_document(page)
    assert kept["count"] == 2  # no rule can drop a record: the count is true


def test_a_record_dropped_under_a_key_naming_it_goes_with_the_key() -> None:
    doc = {A["id"]: A, B["id"]: B}
    out = fallback().rewrite_document(doc)
    assert set(out) == {B["id"]}
    masked_keys = fallback(decision_for("L1")).rewrite_document({MOBILE1: "x"})
    assert MOBILE1 not in orjson.dumps(masked_keys).decode()  # L2 key for an L1 caller


def test_identifier_keys_inside_records_are_masked_by_the_record_table() -> None:
    rec = dict(customer(3), **{customer(3)["bank_card"]: "x"})
    out = on("customer_list").rewrite_document({"results": [rec]})
    assert customer(3)["bank_card"] not in orjson.dumps(out).decode()


# --- codecs: the same model, streamed == buffered ------------------------------------


_LEAF = st.one_of(st.none(), st.booleans(), st.integers(0, 99), st.sampled_from(["x", "ok"]))
_RECORD = st.builds(
    lambda i, g: customer(i, grade=g), st.integers(1, 30), st.sampled_from(["A", "B", "C"])
)
_KEYS = st.sampled_from(["data", "rows", "x", "customer", "results", "meta", "C000007"])
_DOC = st.recursive(
    st.one_of(_LEAF, _RECORD),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=12,
)


def _outcome(run: Any) -> Any:
    try:
        return run()
    except BlockResponse as exc:
        return type(exc)


@given(
    doc=_DOC,
    route_name=st.sampled_from([None, "customer_detail", "customer_list"]),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_streamed_equals_buffered_with_records_anywhere(
    doc: Any, route_name: str | None, cuts: list[int]
) -> None:
    raw = orjson.dumps(doc)

    def make() -> Enforcer:
        return fallback() if route_name is None else on(route_name)

    buffered = _outcome(lambda: make().rewrite_document(orjson.loads(raw)))

    def streamed() -> Any:
        rw = make_body_rewriter("application/json", None, make(), limits=LIMITS, sensitive=True)
        bounds = [0, *sorted(c % (len(raw) + 1) for c in cuts), len(raw)]
        out = b"".join(rw.feed(raw[a:b]) for a, b in itertools.pairwise(bounds)) + rw.finish()
        return orjson.loads(out)

    assert _outcome(streamed) == buffered


def _run(body: bytes, ctype: str, enf: Enforcer) -> bytes:
    rw = make_body_rewriter(ctype, None, enf, limits=LIMITS, sensitive=True)
    return rw.feed(body) + rw.finish()


def test_xml_records_declared_by_element_path_and_by_their_facts() -> None:
    from gateway.demo.legacy import soap_page

    page = {"count": 2, "page": 1, "page_size": 2, "results": [A, B]}
    body = soap_page(page, encoding="UTF-8").encode()
    declared = build_enforcer(
        taxonomy=TAXONOMY,
        route=CATALOG.route("legacy_customers_soap"),
        decision=DROP_A,
        subject_id="u",
        masker=MASKER,
    )
    for enf in (declared, fallback()):
        out = _run(body, "text/xml", enf).decode()
        assert "C000001" not in out and A["id_number"] not in out
        assert "C000002" in out and B["id_number"] in out  # L2 shown to L2
        assert B["bank_card"] not in out  # L4 masked
        assert "<c:total></c:total>" in out  # the total no longer counts the dropped one
        assert enf.report.to_audit()["records"]["dropped"] == 1
    attrs = '<r><row id="C000001" grade="A" name="张伟"/><row id="C000002" grade="C"/></r>'
    out = _run(attrs.encode(), "application/xml", fallback()).decode()
    assert "C000001" not in out and "C000002" in out


def test_csv_without_the_grade_column_is_refused_and_headers_are_scanned() -> None:
    body = f"id,name,mobile\nC000001,张伟,{MOBILE1}\n".encode()
    with pytest.raises(UnidentifiedRecords):
        _run(body, "text/csv", fallback())
    header = f"id,grade,{MOBILE1}\nC000002,C,x\n".encode()
    out = _run(header, "text/csv", fallback(decision_for("L1")))
    assert MOBILE1 not in out.decode()


def test_ndjson_form_and_sse_records_are_dropped_alike() -> None:
    lines = orjson.dumps(A) + b"\n" + orjson.dumps(B) + b"\n"
    out = _run(lines, "application/x-ndjson", fallback())
    assert b"C000001" not in out and b"C000002" in out
    form = b"id=C000001&grade=A&name=%E5%BC%A0%E4%BC%9F"
    assert _run(form, "application/x-www-form-urlencoded", fallback()) == b""
    sse = b"data: " + orjson.dumps(A) + b"\n\ndata: " + orjson.dumps(B) + b"\n\n"
    out = _run(sse, "text/event-stream", fallback())
    assert b"C000001" not in out and b"C000002" in out
