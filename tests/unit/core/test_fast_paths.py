"""The performance fast paths give exactly the slow paths' answers.

- `detect` memoises short texts: memoised and fresh scans agree on generated
  text (digits, CJK context words, e-mail and separators mixed), and a caller
  mutating the returned list cannot change a later answer.
- `classify_value` memoises: the memo agrees with the uncached classifier.
- `Masker.compiled` is the memoised `compile`: same output for every value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.core import detectors
from gateway.core.enforce._values import _looks_like_more
from gateway.core.masking import Masker
from gateway.core.masking.bands import band_of
from gateway.core.model import Action, Verb
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]
TAX = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")

_PIECES = st.sampled_from(
    [
        "客户",
        "手机",
        "电话",
        "身份证",
        "张先生",
        "王女士",
        "北京市海淀区中关村大街1号院3栋201室",
        "京A12345",
        "user@example.com",
        "13812345678",
        "110105194912310021",
        "6222020000000000003",
        "192.168.0.1",
        "护照E12345678",
        "，",
        " ",
        "-",
        "１３８",
    ]
)
TEXTS = st.one_of(
    st.lists(_PIECES | st.text(max_size=6), max_size=8).map("".join),
    st.text(max_size=40),
)


@given(TEXTS)
def test_detect_memo_matches_a_fresh_scan(text: str) -> None:
    fresh = detectors._detect(text) if len(text) >= 5 else []
    first = detectors.detect(text)
    assert first == fresh
    first.clear()  # the caller owns the list it gets
    assert detectors.detect(text) == fresh


def test_detect_long_text_bypasses_the_memo() -> None:
    text = "备注" * 200 + "手机13812345678"
    assert len(text) > detectors._MEMO_MAX_LEN
    before = detectors._detect_memo.cache_info().currsize
    hits = detectors.detect(text)
    assert [h.category for h in hits] == ["mobile"]
    assert detectors._detect_memo.cache_info().currsize == before


@given(
    TEXTS,
    st.sampled_from([None, "notes", "passport_no", "securities_account", "name", "x"]),
)
def test_classify_value_memo_matches_the_classifier(value: str, key: str | None) -> None:
    assert detectors.classify_value(value, key) == detectors._classify_value(value, key)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXTS,
    st.lists(TEXTS, max_size=3),
)


@given(
    st.sampled_from(sorted(c.name for c in TAX.categories.values())),
    st.sampled_from(
        [Action(Verb.MASK, "standard"), Action(Verb.MASK, "strict"), Action(Verb.GENERALISE)]
    ),
    _VALUES,
)
def test_compiled_is_compile(category: str, action: Action, value: Any) -> None:
    masker = Masker(TAX, b"fast-path-test-key-0123456789abc")
    assert masker.compiled(category, action) is masker.compiled(category, action)
    assert masker.compiled(category, action)(value) == masker.compile(category, action)(value)


@given(
    st.sampled_from(sorted(c.name for c in TAX.categories.values())),
    st.sampled_from(
        [
            Action(Verb.MASK, "standard"),
            Action(Verb.MASK, "strict"),
            Action(Verb.GENERALISE),
            Action(Verb.PSEUDONYMISE),
        ]
    ),
    st.lists(TEXTS, min_size=1, max_size=4),
)
def test_memoised_string_operators_repeat_their_first_answer(
    category: str, action: Action, values: list[str]
) -> None:
    """A compiled function answers a repeated value exactly as a fresh compile does."""
    masker = Masker(TAX, b"fast-path-test-key-0123456789abc")
    fn = masker.compiled(category, action)
    for value in values + values:
        assert fn(value) == masker.compile(category, action)(value)


def test_operator_memo_is_bounded() -> None:
    masker = Masker(TAX, b"fast-path-test-key-0123456789abc")
    fn = masker.compiled("mobile", Action(Verb.MASK, "standard"))
    fresh = masker.compile("mobile", Action(Verb.MASK, "standard"))
    values = [f"138{i:08d}" for i in range(5000)]  # more than the memo holds
    assert [fn(v) for v in values] == [fresh(v) for v in values]
    assert fn(values[0]) == fresh(values[0])


@given(TEXTS, st.sampled_from([r"\d(?:[ -]?\d){8,}|@", r"\d(?:[ -]?\d){8,}"]))
def test_rescan_memo_matches_the_pattern(text: str, source: str) -> None:
    pattern = re.compile(source)
    expected = pattern.search(text) is not None
    assert _looks_like_more(pattern, text) is expected
    assert _looks_like_more(pattern, text) is expected  # the memoised answer


_BANDED = sorted(
    c.name
    for c in TAX.categories.values()
    if c.kind in {"amount", "records"} and c.masks.get("standard") != "fixed"
)


@given(
    st.sampled_from(_BANDED or ["income"]),
    st.one_of(
        st.integers(min_value=-(10**9), max_value=10**9),
        st.floats(allow_infinity=True, allow_nan=True),
        st.sampled_from([0, 99_999, 100_000, 499_999.99, 500_000, 3_000_000, 2_999_999]),
    ),
)
def test_compiled_band_matches_band_of(category: str, value: float) -> None:
    masker = Masker(TAX, b"fast-path-test-key-0123456789abc")
    label, lower = band_of(float(value))
    expected: Any = label if TAX.category(category).number_as_string else lower
    if not TAX.category(category).number_as_string and value.__class__ is float:
        expected = float(lower)
    out = masker.compiled(category, Action(Verb.MASK, "standard"))(value)
    assert out == expected
    assert out.__class__ is expected.__class__
