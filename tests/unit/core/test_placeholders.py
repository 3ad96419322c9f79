"""Masked values in every style (after NFKC), and the gateway's own outputs, are refused.

The property: for every category and every action the gateway can apply, the
masked output written back to that field is refused by the write guard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.catalog import FactsSpec, FieldRule, RouteSpec
from gateway.core.masking import DROPPED, Masker, is_masked_placeholder
from gateway.core.model import Action, Decision, Verb
from gateway.core.normalize import normalize_str
from gateway.core.placeholders import fold, generalised, masked_span, masked_value
from gateway.core.taxonomy import Taxonomy
from gateway.core.writeguard import check_write
from gateway.errors import MaskedValueWrite
from tests.unit.core.test_value_properties import ACTIONS, VALUES

ROOT = Path(__file__).resolve().parents[3]
TAX = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
MASKER = Masker(TAX, b"placeholder-test-pseudonym-key-01")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("185＊＊＊＊0203", "mobile"),
        ("210102••••••••9473", "id"),
        ("139●●●●5678", "mobile"),
        ("139○○○○5678", "mobile"),
        ("139××××5678", "mobile"),
        ("139ＸＸＸＸ5678", "mobile"),
        ("139xxxx5678", "mobile"),
        ("1391234xxxx", "mobile"),
        ("139####5678", "mobile"),
        ("139????5678", "mobile"),
        ("139…5678", "mobile"),
        ("139...5678", "mobile"),
        ("139-?-5678", "mobile"),
        ("6222■■■■■■■■1234", "card"),
        ("徐某", "name"),
        ("王某某", "name"),
        ("欧阳某", "name"),
        ("张*", "name"),
        ("张先生", "name"),
        ("李女士", "name"),
        ("Z. S.", "name"),
        ("[已脱敏]", "email"),
        ("<已隐藏>", "name"),
        ("(masked)", "email"),
        ("[REDACTED]", "email"),
        ("【保密】", "address"),
        ("***", "generic"),
        ("脱敏", None),
        ("pn_abcdefghijklmnop", "mobile"),
    ],
)
def test_masked_styles(value: str, kind: str | None) -> None:
    assert masked_value(value, kind)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("13912345678", "mobile"),
        ("+86 139-1234-5678", "mobile"),
        ("11010519491231002X", "id"),
        ("京A12345", "plate"),
        ("欧阳娜娜", "name"),
        ("某", "generic"),  # only names know 某
        ("Zhang San", "name"),
        ("zhang.san@example.com", "email"),
        ("北京市海淀区中关村大街1号院3栋201室", "address"),
        ("A*B 咨询", None),  # an unnamed field: only runs count
    ],
)
def test_real_values_are_not_masked(value: str, kind: str | None) -> None:
    if kind is None:
        assert not masked_span(value)
    else:
        assert not masked_value(value, kind)


def test_free_text_counts_only_unambiguous_marks() -> None:
    assert masked_span("客户手机139****5678，已回访")
    assert masked_span("回拨 139xxxx5678")
    assert masked_span("登录IP 10.1.2.*")
    assert masked_span("联系人 pn_abcdefghijklmnop")
    assert masked_span("卡号 6222●●●●1234")
    for prose in ("客户说...再联系", "3#楼 2单元", "5*3=15", "XX公司的王经理", "几点?? 明天"):
        assert not masked_span(prose), prose


def test_generalised_values() -> None:
    for band in ("10–50万", "10-50万", "10万~50万", "<10万", "≥300万", "50万以上", "100万以内"):
        assert generalised(band, "amount"), band
    assert not generalised("350000", "amount")
    assert not generalised("35万", "amount")
    for dob in ("30–39", "30-39岁", "1990", "1990年", "1990-**-**"):
        assert generalised(dob, "birth_date"), dob
    assert not generalised("1990-05-17", "birth_date")


def test_fold_is_nfkc_with_mask_glyphs_as_stars() -> None:
    assert fold("185＊＊＊＊0203") == "185****0203"
    assert fold("139••○●×5678") == "139*****5678"
    assert fold("张…") == "张..."


def test_gateway_outputs_without_a_mark_are_recognised() -> None:
    assert is_masked_placeholder("北京市海淀区", "address", TAX)  # a generalised address
    generalised_out = MASKER.apply(
        "浙江省杭州市西湖区文三路90号", "address", Action(Verb.GENERALISE)
    )
    assert is_masked_placeholder(generalised_out, "address", TAX)
    assert is_masked_placeholder("10–50万", "income", TAX)
    assert is_masked_placeholder("50万以上", "income", TAX)
    assert not is_masked_placeholder("浙江省杭州市西湖区文三路90号", "address", TAX)
    assert not is_masked_placeholder("ab*cd", "credentials", TAX)  # a password may hold *
    assert is_masked_placeholder("******", "credentials", TAX)


def _route(category: str) -> RouteSpec:
    return RouteSpec(
        name="t",
        template="/t",
        methods=frozenset(),
        sensitive=True,
        records=(),
        rules=(FieldRule("key", "f", category),),
        facts=FactsSpec(),
        csv_columns={},
        entry=None,
        catalog="t",
    )


def _decision(category: str, action: Action) -> Decision:
    return Decision(
        allow=True,
        reason="",
        revision="",
        fields={category: action},
        levels={},
        write=dict.fromkeys(TAX.categories, True),
    )


def _no_more_hidden(out: Any, value: Any) -> bool:
    if isinstance(out, str) and isinstance(value, str):
        return normalize_str(out).strip() == normalize_str(value).strip()
    return bool(out == value and type(out) is type(value))


@given(VALUES, st.sampled_from(sorted(TAX.categories)), st.sampled_from(ACTIONS))
def test_every_masked_output_written_back_is_refused(
    value: Any, category: str, action: Action
) -> None:
    out = MASKER.apply(value, category, action)
    if out is DROPPED or out == "" or _no_more_hidden(out, value):
        return  # nothing hidden: the output is the clear value (or absent)
    with pytest.raises(MaskedValueWrite):
        check_write(
            {"f": out},
            route=_route(category),
            taxonomy=TAX,
            decision=_decision(category, action),
            mode="reject",
            validate_entry=False,
        )


@pytest.mark.parametrize("action", ACTIONS)
def test_null_and_band_floors_are_refused_only_where_the_caller_sees_no_clear_value(
    action: Action,
) -> None:
    kwargs: dict[str, Any] = {"taxonomy": TAX, "mode": "reject", "validate_entry": False}
    for body in ({"f": None}, {"f": 100000}):
        with pytest.raises(MaskedValueWrite):
            check_write(
                body, route=_route("income"), decision=_decision("income", action), **kwargs
            )
        allowed = _decision("income", Action(Verb.ALLOW))
        assert check_write(body, route=_route("income"), decision=allowed, **kwargs)[0] == body
