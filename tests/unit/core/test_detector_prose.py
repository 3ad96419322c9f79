"""Prose detectors: amounts with a cue, risk grades, role-word names, estate addresses.

The labelled corpora under `corpora/` are the acceptance: every labelled span is
found with its category, and the false-positive corpus (product copy, prices,
dates, order numbers, product risk ratings, system ids) yields no hit at all.
`bench/prose_precision.py` prints the same figures with the scan speed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.detectors import detect
from gateway.core.masking import Masker
from gateway.core.model import Action, Verb
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]
CORPORA = Path(__file__).resolve().parent / "corpora"
TAX = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
MASKER = Masker(TAX, b"prose-detector-test-pseudonym-01")
STANDARD = Action(Verb.MASK, "standard")


def _lines(name: str) -> list[str]:
    text = (CORPORA / name).read_text(encoding="utf-8")
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


POSITIVE = [tuple(row.split("\t")) for row in _lines("prose_positive.tsv")]
NEGATIVE = _lines("prose_negative.txt")


def _found(text: str) -> set[tuple[str, str]]:
    return {(h.category, text[h.start : h.end]) for h in detect(text)}


# --- the values that leaked on BottleCRM ------------------------------------------

LEAKED = [
    ("法定代表人欧阳伟", "name", "欧阳伟"),
    ("投资人吴海涛", "name", "吴海涛"),
    ("年收入约60万元", "income", "60万元"),
    ("可投资资产约3400万元", "assets", "3400万元"),
    ("意向投资300万元", "assets", "300万元"),
    ("C2 稳健型", "risk_assessment", "C2 稳健型"),
    ("锦绣苑29栋2单元2403室", "address", "锦绣苑29栋2单元2403室"),
]


@pytest.mark.parametrize(("text", "category", "span"), LEAKED)
def test_each_leaked_value_is_detected_and_masked(text: str, category: str, span: str) -> None:
    assert (category, span) in _found(text)
    masked = MASKER.mask_text(text, detect(text), lambda h: STANDARD)
    assert span not in masked
    assert masked != text


def test_amounts_are_masked_to_their_band() -> None:
    text = "客户年收入约60万元，可投资资产约3400万元。"
    masked = MASKER.mask_text(text, detect(text), lambda h: STANDARD)
    assert masked == "客户年收入约50–100万，可投资资产约≥300万。"


# --- the corpora --------------------------------------------------------------------


def test_positive_corpus_is_found_in_full() -> None:
    missed = [(t, c, s) for t, c, s in POSITIVE if (c, s) not in _found(t)]
    assert missed == []
    assert len(POSITIVE) >= 50


def test_false_positive_corpus_yields_no_hit() -> None:
    assert len(NEGATIVE) >= 300
    hits = {t: _found(t) for t in NEGATIVE if detect(t)}
    assert hits == {}


# --- what the cues decide --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "起投金额5万元，最低投资1万元",  # product terms
        "本产品风险等级R3，适合稳健型及以上投资者",  # a product's rating
        "该基金风险等级为R4",
        "稳健型理财产品，售价199元",
        "投资者类型说明：C1保守型至C5激进型共五级",  # a scale being explained
        "投资3个项目",  # no unit: no amount
        "型号C2-300",  # a model number
        "会议室预订：A栋3层301会议室",  # an office floor, not a home
        "认购起点100万元",
        "基金规模12.5亿元",
    ],
)
def test_product_copy_is_left_alone(text: str) -> None:
    assert detect(text) == []


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("客户风险承受能力为R4", "risk_assessment"),
        ("测评结果：稳健型", "risk_assessment"),
        ("客户为保守型投资者", "risk_assessment"),
        ("账户余额为35,000元", "balance"),
        ("公司年营业额约1.2亿元", "income"),
        ("家住18栋1单元602室", "address"),
    ],
)
def test_cued_facts_are_found(text: str, category: str) -> None:
    assert category in {c for c, _ in _found(text)}


def test_role_words_introduce_names() -> None:
    for role in ("投资人", "实际控制人", "股东", "负责人", "紧急联系人", "法定代表人"):
        assert ("name", "吴海涛") in _found(f"{role}吴海涛已确认")


# --- properties ------------------------------------------------------------------------

INCOME_CUES = ["年收入", "月收入", "年薪", "月薪", "营业额", "税后收入"]
ASSET_CUES = ["可投资资产", "总资产", "金融资产", "存款", "意向投资", "计划投资"]
LINKS = ["", "约", "为", "大约", "超过", "：", "达", " "]
UNITS = ["元", "万元", "亿元", "万", "亿", "块"]
FILLER = st.sampled_from(NEGATIVE[:120]).map(lambda s: s.rstrip("。") + "。")


def _amount(n: int, frac: int | None, comma: bool) -> str:
    whole = f"{n:,}" if comma else str(n)
    return whole if frac is None else f"{whole}.{frac}"


@given(
    cue=st.sampled_from(INCOME_CUES + ASSET_CUES),
    link=st.sampled_from(LINKS),
    n=st.integers(1, 99_999),
    frac=st.none() | st.integers(0, 99),
    comma=st.booleans(),
    unit=st.sampled_from(UNITS),
    before=FILLER,
    after=FILLER,
)
def test_a_cued_amount_is_found_in_any_surrounding_copy(
    cue: str,
    link: str,
    n: int,
    frac: int | None,
    comma: bool,
    unit: str,
    before: str,
    after: str,
) -> None:
    amount = _amount(n, frac, comma) + unit
    text = f"{before}客户{cue}{link}{amount}，{after}"
    category = "income" if cue in INCOME_CUES else "assets"
    assert (category, amount) in _found(text)
    masked = MASKER.mask_text(text, detect(text), lambda h: STANDARD)
    assert f"{cue}{link}{amount}" not in masked


@given(
    grade=st.integers(1, 5),
    kind=st.sampled_from(["保守型", "谨慎型", "稳健型", "平衡型", "成长型", "进取型", "激进型"]),
    sep=st.sampled_from(["", " ", "（", "("]),
    before=FILLER,
)
def test_a_customer_grade_with_its_type_is_found(
    grade: int, kind: str, sep: str, before: str
) -> None:
    close = {"（": "）", "(": ")"}.get(sep, "")
    value = f"C{grade}{sep}{kind}{close}"
    text = f"{before}客户测评为{value}，有效期一年。"
    assert any(c == "risk_assessment" and value in s for c, s in _found(text))


@given(
    estate=st.sampled_from(["锦绣苑", "阳光花园", "翠湖小区", "碧桂园", "金色家园", "滨江公寓"]),
    block=st.integers(1, 99),
    word=st.sampled_from(["栋", "幢", "号楼"]),
    unit=st.integers(1, 9),
    room=st.integers(101, 3299),
    before=FILLER,
)
def test_an_estate_address_is_found_whole(
    estate: str, block: int, word: str, unit: int, room: int, before: str
) -> None:
    address = f"{estate}{block}{word}{unit}单元{room}室"
    text = f"{before}客户现住{address}，请更新。"
    assert ("address", address) in _found(text)


@given(st.lists(st.sampled_from(NEGATIVE), min_size=2, max_size=6))
def test_false_positive_lines_stay_silent_when_joined(lines: list[str]) -> None:
    assert detect("\n".join(lines)) == []
