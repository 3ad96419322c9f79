"""Masking: each Chinese display convention, verbs, JSON types, placeholders."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gateway.core.detectors import Hit, classify_value, detect
from gateway.core.masking import (
    DROPPED,
    NEVER_CLEAR,
    Masker,
    MaskingError,
    is_masked_placeholder,
)
from gateway.core.masking import operators as ops
from gateway.core.masking.bands import age_band
from gateway.core.model import Action, Verb
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]
STD = Action(Verb.MASK, "standard")
STRICT = Action(Verb.MASK, "strict")
GEN = Action(Verb.GENERALISE)
PSEUDO = Action(Verb.PSEUDONYMISE)
REDACT = Action(Verb.REDACT)
ALLOW = Action(Verb.ALLOW)
DROP = Action(Verb.DROP)


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return Taxonomy.load(ROOT / "config" / "taxonomy.yaml")


@pytest.fixture(scope="module")
def masker(tax: Taxonomy) -> Masker:
    return Masker(tax, b"unit-test-pseudonym-key-32-bytes")


@pytest.mark.parametrize(
    ("category", "value", "standard", "strict"),
    [
        ("name", "张三", "张*", "*三"),
        ("name", "张三丰", "张**", "**丰"),
        ("name", "欧阳娜娜", "欧阳**", "***娜"),
        ("name", "Zhang San", "Z**** S**", "* San"),
        ("mobile", "13800001234", "138****1234", "138******34"),
        ("mobile", "+86 138-0000-1234", "138****1234", "138******34"),
        ("mobile", "１３８００００１２３４", "138****1234", "138******34"),
        ("landline", "010-62345678", "010-****5678", "0106*****78"),
        ("landline", "0915-2345679", "0915-***5679", "0915*****79"),
        ("id_number", "11010519491231002X", "110105********002X", "1****************X"),
        ("id_number", "110105 19491231 002x", "110105********002X", "1****************X"),
        ("bank_card", "6222021234561234", "622202******1234", "************1234"),
        ("bank_account", "6200123412341234", "******1234", "***"),
        ("securities_account", "A123456789", "******6789", "***"),
        ("email", "zhangwei@example.com", "z***@example.com", "z***@***.com"),
        ("address", "北京市海淀区中关村大街1号院3栋201室", "北京市海淀区****", "北京市****"),
        (
            "address",
            "广东省深圳市南山区科技园南路8号",
            "广东省深圳市南山区****",
            "广东省深圳市****",
        ),
        ("address", "中关村大街1号", "****", "****"),
        ("passport", "E12356789", "E*****789", "E********"),
        ("birth_date", "1990-05-12", "1990-**-**", None),
        ("licence_plate", "京A12345", "京A***5", "京****"),
        ("ip_address", "192.168.1.10", "192.168.1.*", "192.*.*.*"),
        ("ip_address", "2001:db8::1", "2001:0db8:0000:0000:*:*:*:*", "2001:*:*:*:*:*:*:*"),
        ("postal_code", "100080", "1000**", "***"),
        ("uscc_person", "92110105MA0000000X", "92110105*********X", "9****************X"),
        ("employer", "华信科技有限公司", "华信科***公司", "***"),
        ("customer_no", "C000123", "C00**23", "***"),
        ("income", "350000", "10–50万", "***"),
        ("income", "35万", "10–50万", "***"),
    ],
)
def test_conventions(
    masker: Masker, category: str, value: str, standard: str, strict: str | None
) -> None:
    assert masker.apply(value, category, STD) == standard
    if strict is not None:
        assert masker.apply(value, category, STRICT) == strict


def test_age_band_from_birth_date() -> None:
    assert age_band("1990-05-12", today=date(2026, 5, 11)) == "30–39"
    assert age_band("1990-05-12", today=date(2026, 5, 12)) == "30–39"
    assert age_band("1986-12-31", today=date(2026, 6, 1)) == "30–39"
    assert age_band("1986-01-01", today=date(2026, 6, 1)) == "40–49"
    assert age_band("40–49") == "40–49"
    assert age_band("no date") == "***"


def test_unknown_rule_is_thirds() -> None:
    assert ops.thirds("abcdefgh") == "abc***gh"
    assert ops.thirds("abc") == "a*c"
    assert ops.thirds("ab") == "a*"
    assert ops.thirds("a") == "*"


@pytest.mark.parametrize(
    ("amount", "band", "lower"),
    [
        (0, "<10万", 0),
        (99_999.99, "<10万", 0),
        (100_000, "10–50万", 100_000),
        (350_000, "10–50万", 100_000),
        (500_000, "50–100万", 500_000),
        (2_500_000.0, "100–300万", 1_000_000),
        (3_000_000, "≥300万", 3_000_000),
        (-5, "<10万", 0),
    ],
)
def test_amount_bands(amount: float, band: str, lower: int) -> None:
    assert ops.band_of(amount) == (band, lower)


def test_numbers_keep_their_type_unless_the_taxonomy_says_string(
    tax: Taxonomy, masker: Masker
) -> None:
    assert masker.apply(350000, "income", STD) == 100000
    assert isinstance(masker.apply(350000, "income", STD), int)
    assert masker.apply(2500000.0, "assets", GEN) == 1000000.0
    assert isinstance(masker.apply(120000.55, "balance", STD), float)
    assert masker.apply(120000.55, "balance", STRICT) is None
    assert masker.apply(120000.55, "balance", REDACT) is None
    assert masker.apply(120000.55, "balance", PSEUDO) is None
    assert masker.apply(13812345678, "mobile", STD) is None

    raw: dict[str, Any] = {"levels": [], "categories": {}}
    raw["levels"] = [
        {"code": lv.code, "rank": lv.rank, "never_clear": lv.never_clear} for lv in tax.levels
    ]
    raw["categories"] = {
        "income": {
            "level": "L3",
            "kind": "amount",
            "number_as_string": True,
            "masks": {"standard": "amount_band", "strict": "fixed"},
        },
        "mobile": {
            "level": "L2",
            "kind": "mobile",
            "number_as_string": True,
            "masks": {"standard": "mobile_3_4", "strict": "mobile_3_2"},
        },
    }
    stringly = Masker(Taxonomy.from_dict(raw), b"unit-test-pseudonym-key-32-bytes")
    assert stringly.apply(350000, "income", STD) == "10–50万"
    assert stringly.apply(350000, "income", REDACT) == "***"
    assert stringly.apply(13812345678, "mobile", STD) == "138****5678"


def test_allow_and_drop(masker: Masker) -> None:
    assert masker.apply("13812345678", "mobile", ALLOW) == "13812345678"
    assert masker.apply({"a": 1}, "holdings", ALLOW) == {"a": 1}
    assert masker.apply("13812345678", "mobile", DROP) is DROPPED
    assert repr(DROPPED) == "DROPPED"
    assert not DROPPED


def test_block_raises(masker: Masker) -> None:
    with pytest.raises(MaskingError):
        masker.apply("13812345678", "mobile", Action(Verb.BLOCK))


def test_unknown_category_raises(masker: Masker) -> None:
    with pytest.raises(KeyError):
        masker.apply("x", "no_such_category", STD)


def test_aliases_are_accepted(masker: Masker) -> None:
    assert masker.apply("13812345678", "手机", STD) == "138****5678"


@pytest.mark.parametrize("action", [ALLOW, STD, STRICT, GEN, PSEUDO, REDACT])
@pytest.mark.parametrize("value", ["hunter2", "a-much-longer-secret-value-123", "******"])
def test_credentials_never_leave_in_clear_nor_reveal_length(
    masker: Masker, action: Action, value: str
) -> None:
    assert masker.apply(value, "credentials", action) == NEVER_CLEAR


def test_credentials_non_strings_become_null(masker: Masker) -> None:
    assert masker.apply(1234, "credentials", ALLOW) is None
    assert masker.apply({"pin": "1234"}, "credentials", STD) is None
    assert masker.apply("1234", "credentials", DROP) is DROPPED


def test_redact_keeps_strings_strings(masker: Masker) -> None:
    assert masker.apply("张伟", "name", REDACT) == "***"
    assert masker.apply(True, "name", REDACT) is None
    assert masker.apply(None, "name", STD) is None
    assert masker.apply("", "name", STD) == ""


def test_pseudonyms_are_stable_keyed_and_normalised(tax: Taxonomy, masker: Masker) -> None:
    a = masker.apply("13812345678", "mobile", PSEUDO)
    assert a.startswith("pn_")
    assert len(a) == 19
    assert masker.apply("+86 138 1234 5678", "mobile", PSEUDO) == a
    assert masker.apply("13812345678", "landline", PSEUDO) != a  # category is part of the key
    other = Masker(tax, b"another-pseudonym-key-of-32-byte")
    assert other.apply("13812345678", "mobile", PSEUDO) != a
    assert masker.apply(a, "mobile", PSEUDO) == a


def test_short_pseudonym_key_is_refused(tax: Taxonomy) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Masker(tax, b"short")


def test_containers_keep_their_shape(masker: Masker) -> None:
    holdings = [{"code": "600519", "name": "贵州茅台", "quantity": 100, "market_value": 168000.0}]
    out = masker.apply(holdings, "holdings", STD)
    assert out == [{"code": "60**19", "name": "贵州*台", "quantity": 0, "market_value": 100000.0}]
    strict = masker.apply(holdings, "holdings", STRICT)
    assert strict == [{"code": "***", "name": "***", "quantity": None, "market_value": None}]


def test_mask_text_masks_only_spans_from_the_original(masker: Masker) -> None:
    text = "客户张伟，手机１３８ １２３４ ５６７８，卡号4111111111111111，密码: abc123。谢谢"
    out = masker.mask_text(text, detect(text), lambda h: STD)
    assert out == "客户张*，手机138****5678，卡号411111******1111，密码: ******。谢谢"


def test_mask_text_per_hit_actions(masker: Masker) -> None:
    text = "手机13812345678 邮箱zhangwei@example.com"
    hits = detect(text)

    def action_for(hit: Hit) -> Action:
        return {"mobile": ALLOW, "email": DROP}[hit.category]

    assert masker.mask_text(text, hits, action_for) == "手机13812345678 邮箱***"
    with pytest.raises(MaskingError):
        masker.mask_text(text, hits, lambda h: Action(Verb.BLOCK))
    assert masker.mask_text(text, [], lambda h: STD) == text


@pytest.mark.parametrize(
    ("value", "category", "expected"),
    [
        ("138****1234", "mobile", True),
        ("138******34", "mobile", True),
        ("13812341234", "mobile", False),
        ("110105********002X", "id_number", True),
        ("11010519491231002X", "id_number", False),
        ("张*", "name", True),
        ("张伟", "name", False),
        ("z***@example.com", "email", True),
        ("pn_abcdefghijklmnop", "mobile", True),
        ("***", "anything", True),
        ("10–50万", "income", True),
        ("30–39", "birth_date", True),
        ("ab*cd", "credentials", False),
        ("", "name", False),
    ],
)
def test_placeholders(
    tax: Taxonomy, masker: Masker, value: Any, category: str, expected: bool
) -> None:
    assert masker.is_masked_placeholder(value, category) is expected
    assert is_masked_placeholder(value, category) is expected
    assert is_masked_placeholder(value, category, tax) is expected


def test_placeholder_rejects_non_strings() -> None:
    assert not is_masked_placeholder(None, "mobile")
    assert not is_masked_placeholder(13812345678, "mobile")


# --- spreadsheet formula guards --------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "category", "masked"),
    [
        ("'+8613812319515", "mobile", "'138****9515"),  # was '+861*****19515 (5 digits shown)
        ("'13812319515", "mobile", "'138****9515"),
        ("\t+8613812319515", "mobile", "\t138****9515"),
        ("'010-62345678", "landline", "'010-****5678"),
        ("'11010519491231002X", "id_number", "'110105********002X"),
    ],
)
def test_a_formula_guarded_cell_gets_the_standard_mask(
    masker: Masker, cell: str, category: str, masked: str
) -> None:
    assert masker.apply(cell, category, STD) == masked
    assert masker.apply(cell, category, STD) == cell[0] + masker.apply(cell[1:], category, STD)
    assert masker.is_masked_placeholder(masked, category)


def test_a_formula_guarded_cell_is_classified_as_what_it_guards() -> None:
    for cell, category in (
        ("'+8613812319515", "mobile"),
        ("'6222600260001072444", "bank_card"),
        ("'11010519491231002X", "id_number"),
    ):
        hit = classify_value(cell)
        assert hit is not None and hit.category == category, cell
        assert (hit.start, hit.end) == (0, len(cell))
    assert classify_value("'quoted text'") is None
    assert classify_value("it's 2024") is None
