"""Writes: masked placeholders never overwrite real values; permissions; entry validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core.catalog import Catalog, RouteSpec
from gateway.core.masking import Masker
from gateway.core.model import Action, Decision, Subject, Verb
from gateway.core.static_policy import static_decision
from gateway.core.taxonomy import Taxonomy
from gateway.core.writeguard import _has_masked_span, check_format, check_write, validate
from gateway.errors import EntryValidationFailed, Forbidden, MaskedValueWrite

ROOT = Path(__file__).resolve().parents[3]
TAXONOMY = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
CATALOG = Catalog.load(ROOT / "config" / "crm" / "demo.yaml")
MASKER = Masker(TAXONOMY, b"k" * 32)
WRITER = static_decision(TAXONOMY, Subject(id="w", clearance="L4"), method="PUT")
ID = "11010519491231002X"
CARD = "6222600260001072444"


def route(name: str) -> RouteSpec:
    found = CATALOG.route(name)
    assert found is not None
    return found


def check(body: Any, *, mode: str = "reject", name: str = "customer_update", **kw: Any) -> Any:
    return check_write(
        body,
        route=route(name),
        taxonomy=TAXONOMY,
        decision=kw.pop("decision", WRITER),
        mode=mode,  # type: ignore[arg-type]
        validate_entry=kw.pop("validate_entry", False),
    )


def mask(value: Any, category: str, style: str = "standard") -> Any:
    return MASKER.apply(value, category, Action(Verb.MASK, style))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mobile", mask("13812345678", "mobile")),
        ("mobile", mask("13812345678", "mobile", "strict")),
        ("name", mask("张伟", "name")),
        ("id_number", mask(ID, "id_number")),
        ("email", mask("zhangwei@example.com", "email")),
        ("address", mask("北京市海淀区中关村大街1号院3栋201室", "address")),
        ("name", MASKER.apply("张伟", "name", Action(Verb.PSEUDONYMISE))),
        ("annual_income", "10–50万"),
    ],
)
def test_masked_placeholder_rejected_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(MaskedValueWrite) as info:
        check({"name": "王芳", field: value} if field != "name" else {field: value})
    assert field in info.value.message
    assert info.value.details["fields"] == [field]
    assert info.value.status == 409


def test_strip_mode_removes_only_masked_fields() -> None:
    body = {"name": "王芳", "mobile": mask("13812345678", "mobile"), "notes": "新客户"}
    out, report = check(body, mode="strip")
    assert out == {"name": "王芳", "notes": "新客户"}
    assert report.stripped == ["mobile"]
    assert report.fields == {"name": "name", "mobile": "mobile"}
    assert report.free_text == ["notes"]
    assert report.unclassified == []
    assert body["mobile"] != "13812345678"  # the input is not modified in place
    assert "mobile" in body


def test_nested_and_form_bodies() -> None:
    with pytest.raises(MaskedValueWrite, match=r"contact\.mobile"):
        check({"contact": {"mobile": mask("13812345678", "mobile")}})
    out, _ = check({"contact": {"mobile": "13812345678", "x": "1"}})
    assert out == {"contact": {"mobile": "13812345678", "x": "1"}}
    form = {"name": "王芳", "mobile": "13912345678"}  # a form body: dict of str
    out, report = check(form)
    assert out == form
    assert report.to_audit()["fields"] == {"mobile": "mobile", "name": "name"}


def test_list_bodies_are_checked_item_by_item() -> None:
    with pytest.raises(MaskedValueWrite, match=r"\[1\]\.name"):
        check([{"name": "王芳"}, {"name": mask("张伟", "name")}])
    out, report = check([{"name": "王芳"}, {"name": mask("张伟", "name")}], mode="strip")
    assert out == [{"name": "王芳"}, {}]
    assert report.stripped == ["[1].name"]


def test_real_values_pass() -> None:
    body = {"name": "张伟", "mobile": "13812345678", "id_number": ID, "bank_card": CARD}
    out, _ = check(body)
    assert out == body


def test_forbidden_categories_named() -> None:
    sales = static_decision(TAXONOMY, Subject(id="s", clearance="L2"), method="PUT")
    with pytest.raises(Forbidden) as info:
        check({"name": "张伟", "bank_card": CARD, "annual_income": 1}, decision=sales)
    assert info.value.details["fields"] == ["annual_income", "bank_card"]
    with pytest.raises(Forbidden, match="query_password"):
        check({"query_password": "123456"})  # L5 is never writable
    read_only = Decision.from_json({"allow": True, "fields": {}, "levels": {}})
    with pytest.raises(Forbidden):
        check({"name": "张伟"}, decision=read_only)


def test_entry_validation_reports_every_field() -> None:
    body = {"name": " ", "id_number": ID[:-1] + "1", "mobile": "12312345678", "email": "nope"}
    with pytest.raises(EntryValidationFailed) as info:
        check(body, name="customer_create", validate_entry=True)
    fields = info.value.details["fields"]
    assert fields == {
        "name": "required",
        "id_number": "invalid ID number (check digit)",
        "mobile": "invalid mobile number (segment)",
        "email": "invalid e-mail address",
    }
    assert info.value.status == 422
    ok = {"name": "张伟", "id_number": ID, "mobile": "138 1234 5678", "bank_card": CARD}
    out, _ = check(ok, name="customer_create", validate_entry=True)
    assert out == ok
    # entry validation is opt-in, and routes without entry rules skip it
    check(body | {"name": "x"}, name="customer_create", validate_entry=False)
    check(body | {"name": "x"}, name="customer_update", validate_entry=True)


def test_validate_missing_required() -> None:
    assert validate({"mobile": "13812345678"}, route("customer_create")) == {
        "name": "required",
        "id_number": "required",
    }


@pytest.mark.parametrize(
    ("fmt", "value", "ok"),
    [
        ("id_card", ID, True),
        ("id_card", ID.lower(), True),
        ("id_card", "110105194912310021", False),
        ("mobile", "+8613812345678", True),
        ("mobile", "14212345678", False),
        ("bank_card", "6222 6002 6000 1072 444", True),
        ("bank_card", "6222600260001072445", False),
        ("bank_card", "12ab", False),
        ("email", "a.b@example.com", True),
        ("email", "a@b", False),
        ("landline", "010-62345678", True),
        ("landline", "12345", False),
        ("not_blank", "x", True),
        ("not_blank", "  ", False),
        ("mobile", True, False),
        ("email", ["x"], False),
    ],
)
def test_formats(fmt: str, value: Any, ok: bool) -> None:
    assert (check_format(fmt, value) is None) is ok


def test_non_object_bodies_pass_untouched() -> None:
    assert check("raw text")[0] == "raw text"
    assert check(None, name="customer_create", validate_entry=True)[0] is None


def test_free_text_with_masked_spans_is_a_masked_write() -> None:
    notes = f"客户手机{mask('13812345678', 'mobile')}，已回访"
    with pytest.raises(MaskedValueWrite, match="notes"):
        check({"name": "王芳", "notes": notes})
    token = MASKER.apply("张伟", "name", Action(Verb.PSEUDONYMISE))
    with pytest.raises(MaskedValueWrite, match="remark"):
        check({"remark": f"联系人 {token}"})
    out, report = check({"name": "王芳", "notes": notes}, mode="strip")
    assert out == {"name": "王芳"}
    assert report.stripped == ["notes"]
    out, _ = check({"notes": "客户手机13812345678，5*3=15"})  # a single * is prose
    assert out == {"notes": "客户手机13812345678，5*3=15"}
    out, report = check({"misc": "x"})
    assert report.unclassified == ["misc"]


def test_free_form_fields_with_masked_spans_are_masked_writes() -> None:
    """The enforcer masks a card typed into a clear name or employer field in place;
    saving that value back would store the mask, so it is a masked write too."""
    card = mask(CARD, "bank_card", "strict")
    with pytest.raises(MaskedValueWrite, match="name"):
        check({"name": f"王芳 {card}"})
    with pytest.raises(MaskedValueWrite, match="employer"):
        check({"name": "王芳", "employer": f"华信科技 {card}"})
    out, report = check({"name": "王芳", "employer": f"华信科技 {card}"}, mode="strip")
    assert out == {"name": "王芳"}
    assert report.stripped == ["employer"]
    assert check({"employer": "A*B 咨询"})[0] == {"employer": "A*B 咨询"}  # one * is a name
    # A credential is one opaque value: "**" in a new password is not a mask (the
    # static table never lets anyone write one, so the rule is checked directly).
    assert not _has_masked_span("ab**cd", "credentials", TAXONOMY)
    assert _has_masked_span("ab**cd", "employer", TAXONOMY)
