"""The record enforcer: decisions applied to records, envelopes, rows, text; the report."""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.catalog import Catalog, RouteSpec
from gateway.core.detectors.checks import luhn_ok, resident_id_ok
from gateway.core.enforce import Enforcer, build_enforcer
from gateway.core.masking import DROPPED, Masker
from gateway.core.model import Action, Decision, Subject, Verb
from gateway.core.rewrite import BlockResponse, UnidentifiedRecords
from gateway.core.static_policy import static_decision
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]
TAXONOMY = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
CATALOG = Catalog.load(ROOT / "config" / "crm" / "demo.yaml")
MASKER = Masker(TAXONOMY, b"k" * 32)
STANDARD = Action(Verb.MASK, "standard")
STRICT = Action(Verb.MASK, "strict")

# --- valid identifiers ----------------------------------------------------------

_ID_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def make_id(region: int, year: int, month: int, day: int, seq: int) -> str:
    body = f"{region:06d}{year:04d}{month:02d}{day:02d}{seq:03d}"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, _ID_W, strict=True)) % 11]
    return body + check


def make_card(prefix: str, body: int, length: int = 19) -> str:
    stem = (prefix + f"{body:0{length - len(prefix) - 1}d}")[: length - 1]
    for last in "0123456789":
        if luhn_ok(stem + last):
            return stem + last
    raise AssertionError("unreachable: one check digit always fits")


ID1 = make_id(110105, 1980, 5, 17, 123)
ID2 = make_id(310104, 1975, 11, 2, 456)
CARD1 = make_card("622202", 123456789012)
MOBILE1 = "13812345678"
MOBILE2 = "15987654321"
assert resident_id_ok(ID1)
assert luhn_ok(CARD1)


def customer(i: int, **over: Any) -> dict[str, Any]:
    rec = {
        "id": f"C{i:06d}",
        "name": "张伟",
        "gender": "男",
        "id_number": make_id(110105, 1970 + i % 30, 1 + i % 12, 1 + i % 28, i % 1000),
        "mobile": f"138{i:08d}",
        "landline": "010-62345678",
        "email": f"user{i}@example.com",
        "address": "北京市海淀区中关村大街1号院3栋201室",
        "employer": "华信科技有限公司",
        "birth_date": "1980-05-17",
        "annual_income": 350000,
        "total_assets": 2500000.0,
        "balance": 120000.55,
        "bank_card": make_card("622202", 1000 + i),
        "securities_account": "A123456789",
        "holdings": [{"code": "600519", "name": "贵州茅台", "quantity": 100, "market_value": 1.0}],
        "risk_level": "C3",
        "grade": "B",
        "tier": "一般",
        "owner": "u-sales-01",
        "department": "retail",
        "consent": {"marketing": True, "sharing": False},
        "notes": f"客户来电，手机{MOBILE2}，卡号{CARD1}，请回电",
        "query_password": "******",
        "created_at": "2024-03-01T10:00:00+08:00",
    }
    rec.update(over)
    return rec


def route(name: str) -> RouteSpec:
    found = CATALOG.route(name)
    assert found is not None
    return found


def decision_for(clearance: str, **extra: Any) -> Decision:
    base = static_decision(TAXONOMY, Subject(id="u-sales-01", clearance=clearance), method="GET")
    raw: dict[str, Any] = {
        "allow": True,
        "reason": base.reason,
        "revision": "test",
        "fields": {k: v.to_json() for k, v in base.fields.items()},
        "levels": {k: v.to_json() for k, v in base.levels.items()},
    }
    raw.update(extra)
    return Decision.from_json(raw)


def enforcer(
    decision: Decision, route_name: str | None = "customer_list", subject: str = "u-sales-01"
) -> Enforcer:
    return build_enforcer(
        taxonomy=TAXONOMY,
        route=route(route_name) if route_name else None,
        decision=decision,
        subject_id=subject,
        masker=MASKER,
    )


def masked(value: Any, category: str, action: Action) -> Any:
    return MASKER.apply(value, category, action)


# --- per-field semantics ----------------------------------------------------------


def test_l2_clearance_list_page() -> None:
    doc: dict[str, Any] = {"count": 2, "page": 1, "results": [customer(1), customer(2)]}
    original = copy.deepcopy(doc)
    enf = enforcer(decision_for("L2"))
    out = enf.rewrite_document(doc)
    assert doc == original  # input never changed
    first = out["results"][0]
    src = doc["results"][0]
    for key in ("id", "name", "id_number", "mobile", "email", "address", "grade", "consent"):
        assert first[key] == src[key]
    assert first["annual_income"] == masked(350000, "income", STANDARD)
    assert first["bank_card"] == masked(src["bank_card"], "bank_card", STRICT)
    assert src["bank_card"] not in orjson.dumps(out).decode()
    assert first["holdings"] == masked(src["holdings"], "holdings", STRICT)
    assert "query_password" not in first
    assert CARD1 not in first["notes"]  # L4 span masked
    assert first["notes"].startswith(f"客户来电，手机{MOBILE2}")  # L2 span clear
    assert out["count"] == 2
    report = enf.report.to_audit()
    assert report["records"]["ids"] == ["C000001", "C000002"]
    assert report["records"]["clear_by_level"] == {"L1": 2, "L2": 2}
    assert report["fields"]["dropped"]["L5"]["credentials"] == 2
    assert report["fields"]["clear"]["L2"]["mobile"] == 4  # fields and spans in notes
    assert report["fields"]["masked"]["L4"]["bank_card"] == 4
    assert report["grades"] == {"B": 2}
    assert report["tiers"] == {"一般": 2}
    assert report["detectors"]["mobile"] == 2
    assert report["detectors"]["bank_card"] == 2


def test_report_carries_no_customer_values() -> None:
    enf = enforcer(decision_for("L1"))
    rec = customer(7)
    enf.rewrite_record(rec)
    text = orjson.dumps(enf.report.to_audit()).decode()
    for key in ("name", "id_number", "mobile", "email", "bank_card", "address"):
        assert str(rec[key]) not in text
    assert MOBILE2 not in text
    assert "C000007" in text  # ids are what the audit needs


def test_l0_clearance_masks_identity_standard_and_above_strict() -> None:
    rec = customer(3)
    out = enforcer(decision_for("L1")).rewrite_record(rec)
    assert out is not None
    assert out["mobile"] == masked(rec["mobile"], "mobile", STANDARD)
    assert out["id_number"] == masked(rec["id_number"], "id_number", STANDARD)
    assert out["annual_income"] == masked(350000, "income", STRICT)
    assert out["id"] == rec["id"]
    assert rec["mobile"] not in orjson.dumps(out).decode()


def test_top_level_list_and_nested_envelope() -> None:
    catalog = Catalog.from_dict(
        {
            "name": "t",
            "fields": [{"key": "mobile", "category": "mobile"}],
            "routes": [
                {"name": "flat", "path": "/flat", "records": ["item"]},
                {"name": "deep", "path": "/deep", "records": ["data.rows.item"]},
            ],
        }
    )
    decision = decision_for("L1")
    cases: tuple[tuple[str, Any, Callable[[Any], Any]], ...] = (
        ("flat", [{"mobile": MOBILE1}, {"mobile": MOBILE2}], lambda d: d),
        (
            "deep",
            {"data": {"rows": [{"mobile": MOBILE1}, {"mobile": MOBILE2}], "total": 2}},
            lambda d: d["data"]["rows"],
        ),
    )
    for name, doc, rows in cases:
        spec = catalog.route(name)
        enf = build_enforcer(
            taxonomy=TAXONOMY, route=spec, decision=decision, subject_id="x", masker=MASKER
        )
        assert enf.record_prefixes() == list(spec.records) if spec else []
        out = enf.rewrite_document(doc)
        assert [r["mobile"] for r in rows(out)] == [
            masked(MOBILE1, "mobile", STANDARD),
            masked(MOBILE2, "mobile", STANDARD),
        ]
        assert enf.report.records_seen == 2


def test_bottlecrm_rows_in_two_places() -> None:
    catalog = Catalog.from_dict(
        {
            "name": "bottle",
            "record": {"id": "id"},
            "fields": [
                {"key": "first_name", "category": "name"},
                {"key": "phone", "category": "mobile"},
                {"key": "description", "text": True},
            ],
            "routes": [
                {
                    "name": "contacts",
                    "path": "/api/contacts/",
                    "records": ["results.item", "contact_obj_list.item"],
                }
            ],
        }
    )
    row = {"id": "c1", "first_name": "伟", "phone": MOBILE1, "description": f"备用{MOBILE2}"}
    doc = {"count": 1, "results": [row], "contact_obj_list": [dict(row)], "per_page": 10}
    enf = build_enforcer(
        taxonomy=TAXONOMY,
        route=catalog.route("contacts"),
        decision=decision_for("L1"),
        subject_id="x",
        masker=MASKER,
    )
    out = enf.rewrite_document(doc)
    text = orjson.dumps(out).decode()
    assert MOBILE1 not in text
    assert MOBILE2 not in text
    assert out["results"] == out["contact_obj_list"]
    assert enf.report.to_audit()["records"]["ids"] == ["c1", "c1"]


def test_unknown_fields_still_masked() -> None:
    rec = customer(
        4,
        wechat_phone=MOBILE1,  # unknown key, known by its name pattern or value
        remark_x=f"证件{ID2} 手机 {MOBILE2}",  # unknown key, PII inside prose
        extra={"deep": [ID1, {"card_no_2": CARD1}]},  # unknown nesting
        customer_phone_number=13912345678,  # a number, not a string
    )
    out = enforcer(decision_for("L1")).rewrite_record(rec)
    text = orjson.dumps(out).decode()
    for value in (MOBILE1, MOBILE2, ID1, ID2, CARD1, "13912345678"):
        assert value not in text
    assert out is not None
    assert out["remark_x"].startswith("证件")


def test_unknown_route_scans_everything() -> None:
    doc = {"rows": [{"phone": MOBILE1, "memo": f"卡号{CARD1}"}], "id": 3}
    enf = enforcer(decision_for("L1"), route_name=None)
    assert enf.record_prefixes() == []
    out = enf.rewrite_document(doc)
    text = orjson.dumps(out).decode()
    assert MOBILE1 not in text
    assert CARD1 not in text
    assert out["id"] == 3


# --- record rules -------------------------------------------------------------------


def test_grade_a_records_dropped() -> None:
    d = decision_for("L2", records=[{"when": {"grade": ["A"]}, "record": "drop", "reason": "A"}])
    enf = enforcer(d)
    doc = {"results": [customer(1, grade="A"), customer(2), customer(3, grade="A")]}
    out = enf.rewrite_document(doc)
    assert [r["id"] for r in out["results"]] == ["C000002"]
    audit = enf.report.to_audit()
    assert audit["records"]["dropped"] == 2
    assert audit["records"]["seen"] == 3
    assert audit["record_rules"] == {"A": 2}


def test_vip_stricter_and_missing_consent() -> None:
    d = decision_for(
        "L2",
        records=[
            {"when": {"tier": ["VIP"]}, "fields": {"name": {"action": "mask", "style": "strict"}}},
            {"when": {"missing_consent": "marketing"}, "fields": {"mobile": "drop"}},
            # a rule can never loosen: allow is weaker than the default mask
            {"when": {"tier": ["VIP"]}, "fields": {"income": "allow"}},
        ],
    )
    enf = enforcer(d)
    vip = customer(1, tier="VIP")
    no_consent = customer(2, consent={"marketing": False})
    plain = customer(3)
    out_vip, out_nc, out_plain = (enf.rewrite_record(r) for r in (vip, no_consent, plain))
    assert out_vip is not None
    assert out_nc is not None
    assert out_plain is not None
    assert out_vip["name"] == masked("张伟", "name", STRICT)
    assert out_vip["annual_income"] == masked(350000, "income", STANDARD)
    assert out_vip["mobile"] == vip["mobile"]
    assert "mobile" not in out_nc
    assert out_nc["name"] == "张伟"
    assert out_plain["mobile"] == plain["mobile"]
    assert out_plain["name"] == "张伟"


def test_not_assigned_rule_uses_owner() -> None:
    d = decision_for("L2", records=[{"when": {"not_assigned": True}, "record": "drop"}])
    enf = enforcer(d, subject="u-sales-01")
    assert enf.rewrite_record(customer(1)) is not None
    assert enf.rewrite_record(customer(2, owner="u-other")) is None


def test_record_rule_block_raises() -> None:
    d = decision_for("L2", records=[{"when": {"tier": ["VIP"]}, "record": "block", "reason": "v"}])
    enf = enforcer(d)
    assert enf.rewrite_record(customer(1)) is not None
    with pytest.raises(BlockResponse, match="v"):
        enf.rewrite_record(customer(2, tier="VIP"))
    assert enf.report.to_audit()["blocked"] == "v"


def test_field_block_raises_only_when_field_present() -> None:
    d = decision_for("L2", fields={"bank_card": "block", "name": "allow"})
    enf = enforcer(d)
    assert enf.rewrite_record({"id": "1", "name": "张伟"}) is not None
    with pytest.raises(BlockResponse):
        enf.rewrite_record({"id": "2", "bank_card": CARD1})
    with pytest.raises(BlockResponse):  # also inside free text
        enforcer(d).rewrite_text(f"卡号 {CARD1}")


def test_denied_decision_blocks_everything() -> None:
    enf = enforcer(Decision.deny("nope"))
    with pytest.raises(BlockResponse, match="nope"):
        enf.rewrite_document({"results": []})
    with pytest.raises(BlockResponse):
        enf.rewrite_text("hello")


def test_unknown_category_in_decision_falls_back_to_drop() -> None:
    d = Decision.from_json({"allow": True, "fields": {"name": "allow"}, "levels": {}})
    out = enforcer(d).rewrite_record({"id": "1", "name": "张伟", "mobile": MOBILE1})
    assert out == {"name": "张伟"}


# --- bulk rule ------------------------------------------------------------------------


def test_bulk_mask_crosses_limit_mid_stream() -> None:
    d = decision_for("L2", obligations={"max_clear_records": {"L2": 2}, "bulk_action": "mask"})
    enf = enforcer(d)
    outs = [enf.rewrite_record(customer(i)) for i in range(5)]
    assert all(o is not None for o in outs)
    mobiles = [o["mobile"] for o in outs if o is not None]
    assert mobiles[:2] == [customer(0)["mobile"], customer(1)["mobile"]]
    assert mobiles[2:] == [masked(customer(i)["mobile"], "mobile", STRICT) for i in (2, 3, 4)]
    notes = [o["notes"] for o in outs if o is not None]
    assert all(MOBILE2 in n for n in notes[:2])  # L2 spans in free text follow the quota too
    assert not any(MOBILE2 in n for n in notes[2:])
    audit = enf.report.to_audit()["records"]
    assert audit["bulk_limited_by_level"] == {"L2": 3}
    assert audit["clear_by_level"]["L2"] == 2


def test_bulk_counts_across_document_and_records() -> None:
    d = decision_for("L2", obligations={"max_clear_records": {"L2": 1}})
    enf = enforcer(d)
    out = enf.rewrite_document({"results": [customer(1), customer(2)]})
    assert out["results"][0]["name"] == "张伟"
    assert out["results"][1]["name"] == masked("张伟", "name", STRICT)


def test_bulk_block() -> None:
    d = decision_for("L2", obligations={"max_clear_records": {"L2": 2}, "bulk_action": "block"})
    enf = enforcer(d)
    enf.rewrite_record(customer(1))
    enf.rewrite_record(customer(2))
    with pytest.raises(BlockResponse, match="more than 2"):
        enf.rewrite_record(customer(3))


def test_bulk_ignores_records_without_clear_fields_of_that_level() -> None:
    d = decision_for("L1", obligations={"max_clear_records": {"L2": 1}, "bulk_action": "block"})
    enf = enforcer(d)
    for i in range(3):  # L2 is masked for L1 callers, nothing counts
        assert enf.rewrite_record(customer(i)) is not None


# --- rows, fields, values, text -------------------------------------------------------


def test_csv_rows_by_header() -> None:
    header = ["id", "name", "mobile", "bank_card", "query_password", "remark", "grade"]
    rec = customer(1)
    row = ["C1", "张伟", rec["mobile"], rec["bank_card"], "x", f"手机{MOBILE2}", "B"]
    enf = enforcer(decision_for("L1"), route_name="customer_export_csv")
    out = enf.rewrite_row(header, row)
    assert out is not None
    assert out[0] == "C1"
    assert out[1] == masked("张伟", "name", STANDARD)
    assert out[2] == masked(rec["mobile"], "mobile", STANDARD)
    assert out[3] == str(masked(rec["bank_card"], "bank_card", STRICT))
    assert out[4] == ""
    assert MOBILE2 not in out[5]
    d = decision_for("L2", records=[{"when": {"grade": ["B"]}, "record": "drop"}])
    assert enforcer(d, route_name="customer_export_csv").rewrite_row(header, row) is None


def test_form_fields_and_envelope_values_and_text() -> None:
    enf = enforcer(decision_for("L1"), route_name="customer_create")
    out = enf.rewrite_fields({"name": "张伟", "mobile": MOBILE1, "pwd": "x", "memo": "ok"})
    assert out == {
        "name": masked("张伟", "name", STANDARD),
        "mobile": masked(MOBILE1, "mobile", STANDARD),
        "memo": "ok",
    }
    assert enf.report.records_seen == 0  # no record id: not a record (an XML leaf, say)
    d = decision_for("L2", records=[{"when": {"grade": ["A"]}, "record": "drop"}])
    dropper = enforcer(d, route_name="customer_create")
    assert dropper.rewrite_fields({"id": "C1", "grade": "A", "name": "张伟"}) == {}
    assert dropper.rewrite_fields({"id": "C2", "grade": "B", "tier": "VIP"})["tier"] == "VIP"
    assert dropper.report.records_seen == 2
    # a grade alone is a record too (issue 12: records are recognised by their facts)
    assert dropper.rewrite_fields({"grade": "A"}) == {}
    assert enf.rewrite_value(("meta", "mobile"), MOBILE1) == masked(MOBILE1, "mobile", STANDARD)
    assert enf.rewrite_value(("meta", "fetched_at"), "2024-01-01") == "2024-01-01"
    assert enf.rewrite_value(("count",), 20) == 20
    assert enf.rewrite_value(("x", 0, "password"), "secret") is None
    text = enf.rewrite_text(f"请联系 {MOBILE1} 或邮箱 a.b@example.com")
    assert MOBILE1 not in text
    assert "a.b@example.com" not in text
    assert text.startswith("请联系 ")


def test_plans_are_shared_between_enforcers_of_one_decision() -> None:
    d = decision_for("L2")
    a = enforcer(d)
    b = enforcer(d)
    a.rewrite_record(customer(1))
    assert a._shared is b._shared
    assert len(a._shared.plans) == 1
    b.rewrite_record(customer(2))
    assert len(b._shared.plans) == 1


def test_the_tables_live_with_their_decision_not_in_the_process() -> None:
    """The policy engine's decision cache owns the decisions, and with them the tables:
    an equal decision gets its own, and a decision let go takes its tables along."""
    import dataclasses
    import gc
    import weakref

    d = decision_for("L2")
    shared = enforcer(d)._shared
    assert enforcer(decision_for("L2"))._shared is not shared
    assert list(d.enforcement_cache.values()) == [shared]
    # A changed copy (lockdown, report-only) never reuses the original's tables.
    changed = dataclasses.replace(d, fields={})
    assert changed.enforcement_cache == {}
    assert enforcer(changed)._shared is not shared
    gone = weakref.ref(shared)
    del d, shared
    gc.collect()
    assert gone() is None


# --- the safety property -----------------------------------------------------------------

ids = st.builds(
    make_id,
    st.sampled_from([110105, 310104, 440305, 510107, 650102]),
    st.integers(1930, 2015),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 999),
)
cards = st.builds(
    make_card, st.sampled_from(["622202", "621700", "436742"]), st.integers(0, 10**11)
)
mobiles = st.builds(
    lambda seg, rest: f"{seg}{rest:08d}",
    st.sampled_from(["138", "139", "150", "186", "177", "199"]),
    st.integers(0, 10**8 - 1),
)
secrets = st.one_of(ids, cards, mobiles)
keys = st.sampled_from(
    [
        "id_number",
        "mobile",
        "bank_card",
        "name",
        "notes",
        "misc",
        "x1",
        "联系方式",
        "data",
        "备注",
        "employer",
        "address",
        "holdings",
        "grade",
        "email",
    ]
)
filler = st.sampled_from(["", "客户说 ", "请联系", " and ", "：", "电话 "])


@st.composite
def records(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    planted: list[str] = []

    def leaf() -> Any:
        value = draw(secrets)
        planted.append(value)
        how = draw(st.integers(0, 2))
        if how == 0:
            return value
        if how == 1 and value.isdigit():
            return int(value)  # a number stored as a JSON number
        return draw(filler) + value + draw(filler)

    rec: dict[str, Any] = {"id": "C1"}
    for _ in range(draw(st.integers(1, 6))):
        key = draw(keys)
        shape = draw(st.integers(0, 2))
        if shape == 0:
            rec[key] = leaf()
        elif shape == 1:
            rec[key] = [leaf() for _ in range(draw(st.integers(1, 3)))]
        else:
            rec[key] = {draw(keys): leaf()}
    return rec, planted


MASK_ALL = Decision.from_json(
    {
        "allow": True,
        "fields": {},
        "levels": {f"L{i}": {"action": "mask", "style": "strict"} for i in range(6)},
    }
)


@given(records())
def test_masking_everything_leaves_nothing_in_clear(
    sample: tuple[dict[str, Any], list[str]],
) -> None:
    rec, planted = sample
    doc = {"results": [rec]}
    out = enforcer(MASK_ALL).rewrite_document(doc)
    text = orjson.dumps(out).decode()  # JSON-serialisable
    for value in planted:
        assert value not in text
    again = enforcer(MASK_ALL).rewrite_document(out)
    assert again == out  # idempotent


def test_random_pages_round_trip_without_loss_of_shape() -> None:
    rnd = random.Random(7)
    page = [customer(rnd.randrange(10_000)) for _ in range(20)]
    out = enforcer(decision_for("L4")).rewrite_document({"results": page})
    assert len(out["results"]) == 20
    assert all(set(r) == set(page[0]) - {"query_password"} for r in out["results"])
    assert DROPPED is not None


def test_identifier_typed_into_another_categorys_field_is_still_masked() -> None:
    rec = {"id": "1", "name": f"张伟 {CARD1}", "employer": f"x@y.com {MOBILE1}"}
    out = enforcer(decision_for("L1")).rewrite_record(rec)
    text = orjson.dumps(out).decode()
    assert CARD1 not in text
    assert MOBILE1 not in text
    email = enforcer(decision_for("L1")).rewrite_record({"id": "1", "email": "ab@example.com"})
    assert email == {"id": "1", "email": masked("ab@example.com", "email", STANDARD)}


def test_walk_rules_and_path_globs_inside_records() -> None:
    catalog = Catalog.from_dict(
        {
            "name": "t",
            "record": {"id": "id"},
            "fields": [
                {"key": "custom_fields", "walk": True},
                {"path": "custom_fields.wechat", "category": "mobile"},
                {"path": "contacts.item.phone", "category": "mobile"},
                {"key": "tags", "category": "internal"},
            ],
            "routes": [{"name": "r", "path": "/r", "records": ["data"]}],
        }
    )
    enf = build_enforcer(
        taxonomy=TAXONOMY,
        route=catalog.route("r"),
        decision=decision_for("L1"),
        subject_id="x",
        masker=MASKER,
    )
    doc = {
        "data": {
            "id": "r1",
            "custom_fields": {"wechat": "wx_13800001111", "level": "gold"},
            "contacts": [{"phone": MOBILE1}, {"phone": None}],
            "tags": ["a", "b"],
        },
        "links": [MOBILE2, "ok"],
    }
    out = enf.rewrite_document(doc)
    assert out["data"]["custom_fields"] == {
        "wechat": masked("wx_13800001111", "mobile", STANDARD),
        "level": "gold",
    }
    assert out["data"]["contacts"] == [
        {"phone": masked(MOBILE1, "mobile", STANDARD)},
        {"phone": None},
    ]
    assert out["data"]["tags"] == ["a", "b"]
    assert out["links"] == [masked(MOBILE2, "mobile", STANDARD), "ok"]
    assert enf.report.max_clear_level({lv.code: lv.rank for lv in TAXONOMY.levels}) == "L1"
    assert enf.rewrite_value(("links", 3), MOBILE2) == masked(MOBILE2, "mobile", STANDARD)


def test_short_csv_rows_and_unknown_columns() -> None:
    enf = enforcer(decision_for("L1"), route_name="customer_export_csv")
    out = enf.rewrite_row(["id", "手机号码", "extra"], ["C1", MOBILE1])
    assert out == ["C1", masked(MOBILE1, "mobile", STANDARD)]


@pytest.mark.parametrize("clearance", ["L0", "L1", "L2", "L3", "L4", "L5"])
def test_demo_page_rewrite_is_idempotent_at_every_clearance(clearance: str) -> None:
    page = {"count": 5, "results": [customer(i) for i in range(5)]}
    once = enforcer(decision_for(clearance)).rewrite_document(page)
    twice = enforcer(decision_for(clearance)).rewrite_document(once)
    assert twice == once
    orjson.dumps(once)


@pytest.mark.parametrize("chunk", [1, 7, 64, 100_000])
def test_streamed_through_json_codec_equals_buffered(chunk: int) -> None:
    from gateway.core.codecs import make_body_rewriter
    from gateway.core.codecs.limits import CodecLimits

    d = decision_for(
        "L2",
        records=[{"when": {"grade": ["A"]}, "record": "drop"}],
        obligations={"max_clear_records": {"L2": 3}},
    )
    page = {
        "count": 6,
        "results": [customer(i, grade="A" if i == 2 else "B") for i in range(6)],
        "meta": {"page": 1, "nested": [[customer(7, grade="A"), customer(8)]]},
    }
    buffered = enforcer(d).rewrite_document(page)
    # records in arrays of arrays, in an envelope the catalog did not declare: dropped
    # by their grade, and counted by the bulk rule (C000008 is the 5th clear record)
    nested = buffered["meta"]["nested"]
    assert [[r["id"] for r in row] for row in nested] == [["C000008"]]
    assert nested[0][0]["mobile"] != customer(8)["mobile"]
    # customer data outside any record cannot be checked against grade rules: blocked
    # (issue 12), by the buffered and the streamed path alike
    for extra in ({"meta": {"mobile": MOBILE1}}, {"holdings": [{"code": "600519"}]}):
        with pytest.raises(UnidentifiedRecords):
            enforcer(d).rewrite_document({**page, **extra})
    streaming = enforcer(d)
    limits = CodecLimits(
        max_buffered=1 << 20, max_decompressed=1 << 22, max_ratio=100, stream_threshold=0
    )
    rewriter = make_body_rewriter(
        "application/json", None, streaming, limits=limits, sensitive=True
    )
    raw = orjson.dumps(page)
    out = b"".join(rewriter.feed(raw[i : i + chunk]) for i in range(0, len(raw), chunk))
    out += rewriter.finish()
    assert orjson.loads(out) == buffered
    assert streaming.report.to_audit()["records"]["bulk_limited_by_level"] == {"L2": 3}


def test_bulk_rule_applies_to_csv_exports() -> None:
    d = decision_for("L2", obligations={"max_clear_records": {"L2": 2}})
    enf = enforcer(d, route_name="customer_export_csv")
    header = ["id", "name", "mobile", "remark"]
    rows = [[f"C{i}", "张伟", f"138{i:08d}", f"手机{MOBILE2}"] for i in range(4)]
    out = [enf.rewrite_row(header, r) for r in rows]
    assert [o[2] for o in out if o] == [
        rows[0][2],
        rows[1][2],
        masked(rows[2][2], "mobile", STRICT),
        masked(rows[3][2], "mobile", STRICT),
    ]
    assert [MOBILE2 in o[3] for o in out if o] == [True, True, False, False]
    audit = enf.report.to_audit()["records"]
    assert audit["clear_by_level"] == {"L1": 4, "L2": 2}
    assert audit["bulk_limited_by_level"] == {"L2": 2}
    blocker = enforcer(
        decision_for("L2", obligations={"max_clear_records": {"L2": 1}, "bulk_action": "block"}),
        route_name="customer_export_csv",
    )
    blocker.rewrite_row(header, rows[0])
    with pytest.raises(BlockResponse):
        blocker.rewrite_row(header, rows[1])


def test_a_record_repeated_in_one_body_uses_one_bulk_slot() -> None:
    catalog = Catalog.from_dict(
        {
            "name": "bottle",
            "record": {"id": "id"},
            "fields": [{"key": "phone", "category": "mobile"}],
            "routes": [
                {"name": "c", "path": "/c", "records": ["results.item", "contact_obj_list.item"]}
            ],
        }
    )
    rows = [{"id": f"c{i}", "phone": f"139{i:08d}"} for i in range(3)]
    doc = {"results": rows, "contact_obj_list": rows}
    d = decision_for("L2", obligations={"max_clear_records": {"L2": 2}})
    enf = build_enforcer(
        taxonomy=TAXONOMY, route=catalog.route("c"), decision=d, subject_id="x", masker=MASKER
    )
    out = enf.rewrite_document(doc)
    clear = [rows[0]["phone"], rows[1]["phone"], masked(rows[2]["phone"], "mobile", STRICT)]
    assert [r["phone"] for r in out["results"]] == clear
    assert [r["phone"] for r in out["contact_obj_list"]] == clear


def test_catalog_category_unknown_to_the_taxonomy_is_dropped() -> None:
    catalog = Catalog.from_dict(
        {
            "name": "typo",
            "fields": [{"key": "phone", "category": "mobil"}],
            "routes": [{"name": "r", "path": "/r", "records": ["item"]}],
        }
    )
    allow_all = Decision.from_json(
        {
            "allow": True,
            "fields": {"mobil": "allow"},
            "levels": {f"L{i}": "allow" for i in range(6)},
        }
    )
    enf = build_enforcer(
        taxonomy=TAXONOMY,
        route=catalog.route("r"),
        decision=allow_all,
        subject_id="x",
        masker=MASKER,
    )
    assert enf.rewrite_document([{"phone": MOBILE1, "x": 1}]) == [{"x": 1}]
    assert enf.report.to_audit()["fields"]["dropped"] == {"L5": {"mobil": 1}}


def test_bottlecrm_like_detail_envelope() -> None:
    catalog = Catalog.from_dict(
        {
            "name": "bottle",
            "record": {"id": "id", "assignees": ["assigned_to"]},
            "fields": [
                {"key": "first_name", "category": "name"},
                {"key": "last_name", "category": "name"},
                {"key": "phone", "category": "mobile"},
                {"path": "address_obj.*", "category": "address"},
            ],
            "routes": [
                {"name": "contact", "path": "/api/contacts/{id}/", "records": ["contact_obj"]}
            ],
        }
    )
    doc = {
        "contact_obj": {
            "id": "c-1",
            "first_name": "伟",
            "last_name": "张",
            "phone": MOBILE1,
            "assigned_to": ["p-1"],
            "address_obj": {"street": "中关村大街1号", "city": "北京"},
        },
        "comments": [{"comment": f"回访 {MOBILE2}，卡号 {CARD1}", "commented_by": "p-1"}],
        "assigned_data": [{"id": "p-1", "user_details": {"email": "rm@bank.example"}}],
    }
    d = decision_for("L1", records=[{"when": {"not_assigned": True}, "record": "drop"}])
    out = build_enforcer(
        taxonomy=TAXONOMY,
        route=catalog.route("contact"),
        decision=d,
        subject_id="p-1",
        masker=MASKER,
    ).rewrite_document(doc)
    text = orjson.dumps(out).decode()
    for value in (MOBILE1, MOBILE2, CARD1, "rm@bank.example", "中关村大街1号"):
        assert value not in text
    assert out["contact_obj"]["id"] == "c-1"
    assert out["comments"][0]["comment"].startswith("回访 ")
    other = build_enforcer(
        taxonomy=TAXONOMY,
        route=catalog.route("contact"),
        decision=d,
        subject_id="p-2",
        masker=MASKER,
    ).rewrite_document(doc)
    assert other["contact_obj"] is None  # not assigned: the record is withheld


def test_categorised_flags_follow_their_action() -> None:
    catalog = Catalog.from_dict(
        {
            "name": "flags",
            "fields": [
                {"key": "consent", "walk": True},
                {"path": "consent.*", "category": "internal"},
            ],
            "routes": [{"name": "r", "path": "/r", "records": ["item"]}],
        }
    )
    d = decision_for("L2", fields={"internal": "drop"})
    enf = build_enforcer(
        taxonomy=TAXONOMY, route=catalog.route("r"), decision=d, subject_id="x", masker=MASKER
    )
    out = enf.rewrite_document([{"consent": {"marketing": True, "sharing": False}, "vip": True}])
    assert out == [{"consent": {}, "vip": True}]


def test_record_rule_fields_by_level_code() -> None:
    d = decision_for("L2", records=[{"when": {"tier": ["VIP"]}, "fields": {"L2": "redact"}}])
    out = enforcer(d).rewrite_record(customer(1, tier="VIP"))
    assert out is not None
    assert out["mobile"] == masked(customer(1)["mobile"], "mobile", Action(Verb.REDACT))
    assert out["id"] == "C000001"  # L1 untouched


@st.composite
def pages_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    n = draw(st.integers(0, 4))
    rows = []
    for i in range(n):
        extra = draw(st.dictionaries(keys, st.one_of(secrets, filler), max_size=2))
        rows.append(customer(i, **{**extra, "grade": draw(st.sampled_from("ABC"))}))
    envelope = draw(st.dictionaries(keys, st.one_of(secrets, st.integers(0, 9)), max_size=3))
    raw = orjson.dumps({**envelope, "results": rows, "count": n})
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    return raw, cuts


STREAM_DECISION = decision_for(
    "L2",
    records=[{"when": {"grade": ["A"]}, "record": "drop"}],
    obligations={"max_clear_records": {"L2": 2}},
)


@given(pages_and_cuts())
def test_streaming_equals_buffered_for_any_chunking(sample: tuple[bytes, list[int]]) -> None:
    from gateway.core.codecs import make_body_rewriter
    from gateway.core.codecs.limits import CodecLimits

    raw, cuts = sample
    try:
        buffered = enforcer(STREAM_DECISION).rewrite_document(orjson.loads(raw))
    except BlockResponse as exc:
        buffered = type(exc)
    limits = CodecLimits(
        max_buffered=1 << 20, max_decompressed=1 << 22, max_ratio=100, stream_threshold=0
    )
    rewriter = make_body_rewriter(
        "application/json", None, enforcer(STREAM_DECISION), limits=limits, sensitive=True
    )
    bounds = [0, *cuts, len(raw)]
    try:
        out = b"".join(rewriter.feed(raw[a:b]) for a, b in itertools.pairwise(bounds))
        out += rewriter.finish()
    except BlockResponse as exc:
        assert buffered is type(exc)  # noqa: PT017 - the same refusal both ways
        return
    assert orjson.loads(out) == buffered


def test_csv_header_with_bom_and_padding() -> None:
    d = decision_for("L1", records=[{"when": {"grade": ["A"]}, "record": "drop"}])
    enf = enforcer(d, route_name="customer_export_csv")
    header = ["\ufeffid", " mobile ", "grade"]
    assert enf.rewrite_row(header, ["C1", MOBILE1, "B"]) == [
        "C1",
        masked(MOBILE1, "mobile", STANDARD),
        "B",
    ]
    assert enf.rewrite_row(header, ["C2", MOBILE1, "A"]) is None
    assert enf.report.to_audit()["records"]["ids"] == ["C1", "C2"]


_CSV_HEADER = [
    "id", "name", "gender", "id_number", "mobile", "landline", "email", "address", "employer",
    "birth_date", "annual_income", "balance", "bank_card", "risk_level", "grade", "tier",
    "notes", "query_password", "password", "remark",
]  # fmt: skip


@given(
    clearance=st.sampled_from(["L0", "L1", "L2", "L3", "L4", "L5"]),
    which=st.integers(0, 999),
    blanks=st.sets(st.integers(0, len(_CSV_HEADER) - 1), max_size=6),
    rules=st.sampled_from(["none", "drop_a", "mask_c", "bulk", "bulk_block"]),
)
def test_csv_row_plan_equals_cell_by_cell(
    clearance: str, which: int, blanks: set[int], rules: str
) -> None:
    """Full-width rows go through a per-header column plan; short rows cell by cell.
    The same rows under a header one column wider (so every row is short) must come
    out the same, with the same report."""
    extras: dict[str, dict[str, Any]] = {
        "none": {},
        "drop_a": {"records": [{"when": {"grade": ["A"]}, "record": "drop"}]},
        "mask_c": {"records": [{"when": {"grade": ["C"]}, "fields": {"L1": "redact"}}]},
        "bulk": {"obligations": {"max_clear_records": {"L1": 2, "L2": 1}}},
        "bulk_block": {"obligations": {"max_clear_records": {"L2": 2}, "bulk_action": "block"}},
    }
    extra = extras[rules]
    d = decision_for(clearance, **extra)
    rows = []
    for n in range(4):
        rec = customer(which + n, grade="ABC"[(which + n) % 3])
        rec["notes"] = f"客户手机{MOBILE2}，卡号{rec['bank_card']}"
        rec["remark"] = rec["mobile"]
        if n == 3:  # an identifier typed into a categorised column: the residue scan
            rec["employer"] = f"{rec['mobile']} {rec['bank_card']} {rec['mobile']}"
        if n == 2:  # ... and into a free-form column the caller may see in clear
            rec["name"] = f"{rec['name']} {rec['bank_card']}"
        row = [str(rec.get(c, "")) for c in _CSV_HEADER]
        rows.append(["" if i in blanks else v for i, v in enumerate(row)])

    def run(header: list[str]) -> tuple[list[Any], dict[str, Any]]:
        enf = enforcer(d, route_name="customer_export_csv")
        out: list[Any] = []
        for row in rows:
            try:
                out.append(enf.rewrite_row(header, row))
            except BlockResponse as exc:
                out.append(("blocked", exc.reason))
                break
        return out, enf.report.to_audit()

    assert run(_CSV_HEADER) == run([*_CSV_HEADER, "unused_column"])


def test_clear_free_form_fields_are_scanned_for_other_identifiers() -> None:
    """Cleared for names is not cleared for the card someone typed into the name field:
    a clear name, address or employer is scanned like free text when it holds a long
    digit run or an "@", and only the spans above the caller's clearance change."""
    rec = customer(1)
    card = rec["bank_card"]
    odd = {"name": f"张三 {card}", "employer": f"华信科技 手机{MOBILE2}", "address": "北京市1号"}
    d = decision_for("L2")
    assert d.field_action("bank_card", "L4").verb is not Verb.ALLOW
    enf = enforcer(d)
    out = enf.rewrite_document({"count": 1, "results": [{**rec, **odd}]})["results"][0]
    assert card not in out["name"]
    assert out["name"].startswith("张三 ")
    assert out["name"] == enforcer(d).rewrite_text(odd["name"])
    assert out["employer"] == odd["employer"]  # a mobile: L2, which this caller may see
    assert out["address"] == odd["address"]
    assert out["mobile"] == rec["mobile"]  # a clear mobile field is one identifier
    fields = enf.report.to_audit()["fields"]
    plain = enforcer(d)
    plain.rewrite_document({"count": 1, "results": [rec]})
    assert fields["clear"]["L2"]["name"] == 1
    cards = plain.report.to_audit()["fields"]["masked"]["L4"]["bank_card"]
    assert fields["masked"]["L4"]["bank_card"] == cards + 1  # the card in the name
    # The same through every other shape: a CSV row, an envelope value, flat fields.
    csv = enforcer(d, route_name="customer_export_csv")
    row = csv.rewrite_row(["id", "name", "employer"], ["C1", odd["name"], odd["employer"]])
    assert row == ["C1", out["name"], odd["employer"]]
    assert enforcer(d).rewrite_value(("meta", "name"), odd["name"]) == out["name"]
    assert enforcer(d).rewrite_fields({"name": odd["name"]}) == {"name": out["name"]}
    # A caller cleared for cards sees the name as stored.
    l4 = enforcer(decision_for("L4")).rewrite_document({"results": [{**rec, **odd}]})
    assert l4["results"][0]["name"] == odd["name"]


def test_a_records_own_masked_values_are_masked_in_its_free_text() -> None:
    """No detector finds a bare name in a sentence ("与欧阳敏通话"); the record names it
    itself, so where its name (or any value it masks) recurs in its free text, the text
    shows it as the field does."""
    rec = customer(
        3, name="欧阳敏", notes="与欧阳敏通话，确认地址北京市海淀区中关村大街1号院3栋201室"
    )
    out = enforcer(decision_for("L1")).rewrite_document({"results": [rec]})["results"][0]
    assert out["name"] != "欧阳敏"
    assert "欧阳敏" not in out["notes"] and out["name"] in out["notes"]
    assert rec["address"] not in out["notes"]
    # cleared for names: the text is left as it is
    clear = enforcer(decision_for("L2")).rewrite_document({"results": [rec]})["results"][0]
    assert "与欧阳敏通话" in clear["notes"]


# --- unified social credit codes: the code's own prefix says whose it is --------------

ORG_USCC = "91110000600037341L"  # a company: public registration (L0)
PERSON_USCC = "92350211MA2Y3G8K6W"  # `92`: an individual business, a person (L2)


def test_a_companys_credit_code_is_clear_and_an_individual_business_code_masked() -> None:
    enf = enforcer(decision_for("L1"))
    out = enf.rewrite_document(
        {"results": [customer(1, uscc=ORG_USCC), customer(2, uscc=PERSON_USCC)]}
    )
    first, second = out["results"]
    assert first["uscc"] == ORG_USCC
    assert second["uscc"] == masked(PERSON_USCC, "uscc_person", STANDARD)
    assert PERSON_USCC not in orjson.dumps(out).decode()
    report = enf.report.to_audit()
    assert report["fields"]["clear"]["L0"]["uscc_org"] == 1
    assert report["fields"]["masked"]["L2"]["uscc_person"] == 1


def test_a_declared_organisation_code_with_the_personal_prefix_is_masked() -> None:
    catalog = Catalog.from_dict(
        {
            "name": "t",
            "fields": [{"key": "org_code", "category": "uscc_org"}],
            "routes": [{"name": "orgs", "path": "/orgs", "records": ["item"]}],
        }
    )
    found = catalog.route("orgs")
    assert found is not None
    enf = build_enforcer(
        taxonomy=TAXONOMY,
        route=found,
        decision=decision_for("L1"),
        subject_id="u-sales-01",
        masker=MASKER,
    )
    out = enf.rewrite_document([{"org_code": ORG_USCC}, {"org_code": PERSON_USCC}])
    assert out[0]["org_code"] == ORG_USCC
    assert out[1]["org_code"] == masked(PERSON_USCC, "uscc_person", STANDARD)
    # a malformed value keeps the declared category; one with the `92` prefix is personal
    out = enf.rewrite_document([{"org_code": "92XXXXXXXX"}])
    assert out[0]["org_code"] != "92XXXXXXXX"


def test_credit_codes_in_csv_columns_are_judged_cell_by_cell() -> None:
    header = ["id", "grade", "uscc"]
    enf = enforcer(decision_for("L1"), route_name="customer_export_csv")
    org = enf.rewrite_row(header, ["C1", "B", ORG_USCC])
    person = enf.rewrite_row(header, ["C2", "B", PERSON_USCC])
    assert org is not None and person is not None
    assert org[2] == ORG_USCC
    assert person[2] == masked(PERSON_USCC, "uscc_person", STANDARD)


# --- validation messages are about a field, not its value --------------------------------

PHONE_MESSAGE = "Enter a valid phone number (7-25 characters, digits and separators only)"


@pytest.mark.parametrize("route_name", [None, "customer_list"])
def test_validation_messages_under_field_keys_are_kept_as_text(route_name: str | None) -> None:
    doc = {
        "error": True,
        "errors": {
            "phone": [PHONE_MESSAGE],
            "first_name": ["This field may not be blank."],
            "email": ["Enter a valid email address."],
            "mobile": "请输入有效的手机号码，应为 11 位数字。",
        },
    }
    out = enforcer(decision_for("L1"), route_name=route_name).rewrite_document(doc)
    assert out == doc


def test_an_identifier_inside_a_message_is_still_masked() -> None:
    doc = {"errors": {"phone": [f"The number {MOBILE1} is already used by another contact."]}}
    out = enforcer(decision_for("L1"), route_name=None).rewrite_document(doc)
    message = out["errors"]["phone"][0]
    assert MOBILE1 not in message
    assert message.startswith("The number ") and message.endswith("by another contact.")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "Maria De La Cruz"),  # a Latin name: capitalised words
        ("name", "欧阳娜娜"),
        ("mobile", "138 1234 5678"),
        ("phone", "+86 138-1234-5678"),
    ],
)
def test_values_in_their_own_shape_are_still_masked(key: str, value: str) -> None:
    out = enforcer(decision_for("L1"), route_name=None).rewrite_document({"data": [{key: value}]})
    assert out["data"][0][key] != value


def test_masked_free_text_is_remembered_per_table_and_counted_per_call() -> None:
    """A note masked once under a table is reused (same decision, later responses),
    never under another table (past the bulk quota the same note is stricter), and
    every response's report still counts what its text held."""
    d = decision_for("L2", obligations={"max_clear_records": {"L2": 1}, "bulk_action": "mask"})
    note = f"客户来电，手机{MOBILE2}，请回电"
    outs, counts = [], []
    for _ in range(2):  # two responses under one decision: the second reads the memo
        enf = enforcer(d)
        first = enf.rewrite_record({**customer(1), "notes": note})
        second = enf.rewrite_record({**customer(2), "notes": note})
        assert first is not None and second is not None
        outs.append((first["notes"], second["notes"]))
        counts.append(enf.report.to_audit()["detectors"])
    assert outs[0] == outs[1]
    clear, limited = outs[0]
    assert MOBILE2 in clear and MOBILE2 not in limited
    assert counts[0] == counts[1] and counts[0]
