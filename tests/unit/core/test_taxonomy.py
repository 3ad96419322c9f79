"""Taxonomy: the default file, validation with key paths, aliases, fingerprint."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.core.masking import operators
from gateway.core.taxonomy import KINDS, MASK_OPERATORS, Taxonomy

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "config" / "taxonomy.yaml"

REQUIRED = [
    "name",
    "gender",
    "id_number",
    "passport",
    "mobile",
    "landline",
    "email",
    "address",
    "postal_code",
    "employer",
    "birth_date",
    "nationality",
    "occupation",
    "marital",
    "licence_plate",
    "ip_address",
    "income",
    "assets",
    "balance",
    "risk_assessment",
    "bank_card",
    "bank_account",
    "securities_account",
    "holdings",
    "transactions",
    "credit",
    "credentials",
    "uscc_person",
    "uscc_org",
    "customer_no",
    "internal",
]


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))
    return doc


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return Taxonomy.load(DEFAULT)


def test_default_levels_are_ordered_l0_to_l5(tax: Taxonomy) -> None:
    assert [lv.code for lv in tax.levels] == ["L0", "L1", "L2", "L3", "L4", "L5"]
    assert [tax.level_rank(lv.code) for lv in tax.levels] == [0, 1, 2, 3, 4, 5]
    assert tax.levels[-1].never_clear
    assert not any(lv.never_clear for lv in tax.levels[:-1])
    assert tax.levels[2].name_zh == "客户身份与联系信息"


@pytest.mark.parametrize("name", REQUIRED)
def test_default_has_every_required_category(tax: Taxonomy, name: str) -> None:
    cat = tax.category(name)
    assert cat.name == name
    assert set(cat.masks) == {"standard", "strict"}
    assert cat.kind in KINDS


@pytest.mark.parametrize(
    ("name", "level", "spi"),
    [
        ("uscc_org", "L0", False),
        ("customer_no", "L1", False),
        ("mobile", "L2", False),
        ("uscc_person", "L2", False),
        ("income", "L3", False),
        ("balance", "L3", True),
        ("bank_card", "L4", True),
        ("credentials", "L5", False),
    ],
)
def test_default_levels_follow_the_reference(
    tax: Taxonomy, name: str, level: str, spi: bool
) -> None:
    cat = tax.category(name)
    assert (cat.level, cat.spi) == (level, spi)


def test_operator_names_match_the_masking_module() -> None:
    assert set(operators.OPERATORS) == MASK_OPERATORS


def test_record_attributes_list_grades_and_tiers(tax: Taxonomy) -> None:
    assert tax.records["grade"].values == ("A", "B", "C")
    assert tax.records["tier"].values == ("VIP", "重要", "一般", "潜在", "流失")


def test_aliases_resolve_to_internal_codes(tax: Taxonomy) -> None:
    assert tax.resolve("二级") == "L3"
    assert tax.resolve("核心") == "L4"
    assert tax.resolve("公开信息") == "L0"
    assert tax.resolve("L2") == "L2"
    assert tax.resolve("手机") == "mobile"
    assert tax.category("银行卡号").name == "bank_card"
    assert tax.level("一级").code == "L2"
    assert tax.level_rank("三级") == 4
    with pytest.raises(KeyError):
        tax.resolve("不存在")
    with pytest.raises(KeyError):
        tax.category("no_such_category")


def test_to_policy_shape(tax: Taxonomy) -> None:
    pol = tax.to_policy()
    assert pol["levels"] == ["L0", "L1", "L2", "L3", "L4", "L5"]
    assert pol["categories"]["bank_card"] == {"level": "L4", "spi": True}
    assert set(pol["categories"]) == set(tax.categories)


def test_renaming_changes_labels_not_codes(raw: dict[str, Any], tax: Taxonomy) -> None:
    d = copy.deepcopy(raw)
    d["labels"]["levels"]["L2"] = {
        "zh": "客户信息一级",
        "en": "Tier one",
        "aliases": ["普通客户信息"],
    }
    d["labels"]["categories"]["mobile"] = {"zh": "联系电话", "aliases": ["联系手机"]}
    renamed = Taxonomy.from_dict(d)
    assert renamed.level("L2").name_zh == "客户信息一级"
    assert renamed.resolve("普通客户信息") == "L2"
    assert renamed.category("联系手机").label == "联系电话"
    assert renamed.to_policy() == tax.to_policy()
    assert renamed.fingerprint != tax.fingerprint


def test_fingerprint_is_stable_and_hashable(raw: dict[str, Any], tax: Taxonomy) -> None:
    again = Taxonomy.from_dict(copy.deepcopy(raw))
    assert again.fingerprint == tax.fingerprint
    assert again == tax
    assert hash(again) == hash(tax)
    assert len({tax, again}) == 1
    changed = copy.deepcopy(raw)
    changed["categories"]["mobile"]["level"] = "L3"
    assert Taxonomy.from_dict(changed).fingerprint != tax.fingerprint


def test_free_form_categories(raw: dict[str, Any], tax: Taxonomy) -> None:
    """Names, addresses, employers and occupations are typed by staff: scanned even
    when shown in clear. A flag, so renaming keeps it and the fingerprint sees it."""
    assert {c.name for c in tax.categories.values() if c.free_form} == {
        "name", "address", "employer", "occupation",
    }  # fmt: skip
    d = copy.deepcopy(raw)
    d["labels"]["categories"]["name"] = {"zh": "户名"}
    assert Taxonomy.from_dict(d).category("name").free_form
    off = copy.deepcopy(raw)
    off["categories"]["name"]["free_form"] = False
    assert not Taxonomy.from_dict(off).category("name").free_form
    assert Taxonomy.from_dict(off).fingerprint != tax.fingerprint


def test_category_is_frozen_and_hashable(tax: Taxonomy) -> None:
    cat = tax.category("mobile")
    with pytest.raises(AttributeError):
        cat.level = "L0"  # type: ignore[misc]
    assert hash(cat) == hash(tax.category("mobile"))


def test_errors_name_every_key_path(raw: dict[str, Any]) -> None:
    d = copy.deepcopy(raw)
    d["levels"][1]["rank"] = "one"
    d["categories"]["mobile"]["level"] = "L9"
    d["categories"]["email"]["masks"]["strict"] = "nope"
    d["categories"]["name"]["kind"] = "person"
    d["categories"]["address"]["colour"] = "red"
    d["categories"]["employer"]["free_form"] = "yes"
    d["labels"]["levels"]["L8"] = {"zh": "x"}
    with pytest.raises(ValueError) as exc:
        Taxonomy.from_dict(d)
    msg = str(exc.value)
    for path in (
        "levels[1].rank",
        "categories.mobile.level",
        "categories.email.masks.strict",
        "categories.name.kind",
        "categories.address.colour",
        "categories.employer.free_form",
        "labels.levels.L8",
    ):
        assert path in msg


def test_alias_collision_is_rejected(raw: dict[str, Any]) -> None:
    d = copy.deepcopy(raw)
    d["labels"]["categories"]["email"] = {"aliases": ["手机"]}
    with pytest.raises(ValueError, match="手机"):
        Taxonomy.from_dict(d)


@pytest.mark.parametrize("bad", [None, [], "levels", {"levels": [], "categories": {}}])
def test_malformed_roots_are_rejected(bad: Any) -> None:
    with pytest.raises(ValueError, match="invalid taxonomy"):
        Taxonomy.from_dict(bad)


def test_rank_order_must_ascend(raw: dict[str, Any]) -> None:
    d = copy.deepcopy(raw)
    d["levels"][0]["rank"], d["levels"][1]["rank"] = 1, 0
    with pytest.raises(ValueError, match="ascending"):
        Taxonomy.from_dict(d)
