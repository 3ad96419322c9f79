"""Normalisation: full-width, separators, country codes, and the offset map back."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.core.normalize import compact, normalize, strip_country_code


def test_ascii_is_identity_except_trailing_x() -> None:
    norm = normalize("id 11010519491231002x, box")
    assert norm.text == "id 11010519491231002X, box"
    assert norm.offsets is None


def test_full_width_becomes_half_width_with_identity_offsets() -> None:
    norm = normalize("手机：１３８１２３４５６７８")
    assert norm.text == "手机:13812345678"
    assert norm.to_original(3, 14) == (3, 14)


def test_dash_space_and_dot_variants_collapse() -> None:
    assert normalize("138\u20141234\u30005678").text == "138-1234 5678"
    assert normalize("欧阳\u30fb娜娜").text == "欧阳·娜娜"


def test_expanding_characters_keep_a_map_to_the_original() -> None:
    text = "编号⑩号 电话１３８１２３４５６７８"
    norm = normalize(text)
    assert "10" in norm.text
    assert norm.offsets is not None
    start = norm.text.index("138")
    s, e = norm.to_original(start, start + 11)
    assert text[s:e] == "１３８１２３４５６７８"
    s, e = norm.to_original(norm.text.index("10"), norm.text.index("10") + 2)
    assert text[s:e] == "⑩"


def test_compact_strips_separators_and_brackets() -> None:
    assert compact("110105 19491231 002x") == "11010519491231002X"
    assert compact("+86 138-1234-5678") == "+8613812345678"
    assert compact("(010) 6234·5678") == "01062345678"
    assert compact("１３８ １２３４ ５６７８") == "13812345678"
    assert compact("138****1234") == "138****1234"
    assert compact("abc") == "abc"


@example("0)x\x80")  # the x follows a digit only once the bracket is gone
@example("R\u00b800")  # removing the separator leaves a combining mark on R
@given(st.text(max_size=30))
def test_compact_is_idempotent(value: str) -> None:
    once = compact(value)
    assert compact(once) == once


def test_strip_country_code() -> None:
    assert strip_country_code("+8613812345678") == "13812345678"
    assert strip_country_code("008613812345678") == "13812345678"
    assert strip_country_code("8613812345678") == "13812345678"
    assert strip_country_code("86123") == "86123"
    assert strip_country_code("13812345678") == "13812345678"


@given(st.text(max_size=60))
def test_every_normalised_span_maps_inside_the_original(text: str) -> None:
    norm = normalize(text)
    n = len(norm.text)
    for start in range(0, n, 3):
        end = min(n, start + 5)
        s, e = norm.to_original(start, end)
        assert 0 <= s <= e <= len(text)


def test_invisible_characters_are_dropped_with_a_map_back() -> None:
    text = "卡 6\u200b2\u00ad1\u20607"
    norm = normalize(text)
    assert norm.text == "卡 6217"
    s, e = norm.to_original(2, 6)
    assert text[s:e] == "6\u200b2\u00ad1\u20607"


def test_every_format_character_of_the_bmp_is_invisible() -> None:
    import unicodedata

    from gateway.core.normalize import INVISIBLE

    missing = [
        f"U+{cp:04X}"
        for cp in range(0x10000)
        if unicodedata.category(chr(cp)) == "Cf" and chr(cp) not in INVISIBLE
    ]
    assert missing == []


def test_digits_of_other_scripts_and_numeral_runs_become_ascii_digits() -> None:
    assert normalize("电话 一三九 一二三四 五六七八").text == "电话 139 1234 5678"
    assert normalize("幺三九壹贰叁肆伍陆柒捌").text == "13912345678"
    assert normalize("٦٢١٧ ०१२३").text == "6217 0123"
    assert normalize("张三在三里屯一号院，一般客户，第一二次").text == (
        "张三在三里屯一号院,一般客户,第一二次"
    )  # words with numerals stay words
    assert compact("一三九\u200b一二三四五六七八") == "13912345678"


def test_digit_zeros_cover_every_decimal_digit() -> None:
    import unicodedata

    from gateway.core.normalize import DIGIT_ZEROS

    covered = {z + d for z in DIGIT_ZEROS for d in range(10)}
    digits = {cp for cp in range(0x80, 0x20000) if unicodedata.category(chr(cp)) == "Nd"}
    assert digits <= covered


def test_supplementary_digits_and_tags_take_the_slow_path() -> None:
    bold = "".join(chr(0x1D7CE + int(d)) for d in "6217")  # mathematical bold digits
    osmanya = "".join(chr(0x104A0 + int(d)) for d in "139")
    text = f"卡{bold}\U000e0041号{osmanya}"
    norm = normalize(text)
    assert norm.text == "卡6217号139"
    s, e = norm.to_original(1, 5)
    assert text[s:e] == bold
