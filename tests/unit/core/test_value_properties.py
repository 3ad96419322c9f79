"""Properties of detection and masking over generated identifiers and text.

1. A valid ID, card or mobile embedded in random text, plain, grouped or
   full-width, is always found, and its span covers the identifier.
2. After `mask_text`, the identifier does not survive in clear and nothing
   detectable as an ID, card or mobile is left.
3. Masking is idempotent for every category and verb.
4. Masked output is always valid JSON with the same shape.
5. Whatever masking emits, the write guard recognises as a placeholder.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.core.detectors import classify_value, detect
from gateway.core.masking import DROPPED, Masker, is_masked_placeholder
from gateway.core.model import Action, Verb
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]
TAX = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
MASKER = Masker(TAX, b"property-test-pseudonym-key-0001")
ACTIONS = [
    Action(Verb.MASK, "standard"),
    Action(Verb.MASK, "strict"),
    Action(Verb.GENERALISE),
    Action(Verb.PSEUDONYMISE),
    Action(Verb.REDACT),
]
REGIONS = ["110105", "310101", "440305", "510104", "320102", "650102", "230103"]
SEGMENTS = ["130", "135", "138", "147", "150", "166", "177", "186", "191", "199"]
_ID_W = [2 ** (17 - i) % 11 for i in range(17)]


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    born = date(1930, 1, 1) + timedelta(days=draw(st.integers(0, 32000)))
    body = draw(st.sampled_from(REGIONS)) + born.strftime("%Y%m%d")
    body += f"{draw(st.integers(0, 999)):03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _ID_W, strict=True)) % 11]


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["622202", "622848", "621700", "411111", "522222"]))
    length = 16 if prefix[0] in "45" else draw(st.sampled_from([16, 19]))
    body = prefix + "".join(str(draw(st.integers(0, 9))) for _ in range(length - 7))
    total = 0
    for i, ch in enumerate(reversed(body)):
        n = int(ch) * (1 if i % 2 else 2)
        total += n - 9 if n > 9 else n
    return body + str((10 - total % 10) % 10)


@st.composite
def mobiles(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(SEGMENTS)) + f"{draw(st.integers(0, 99_999_999)):08d}"


_GROUPS = {"id_number": (6, 8, 4), "bank_card": (4, 4, 4, 4, 3), "mobile": (3, 4, 4)}
_FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


@st.composite
def written(draw: st.DrawFn, category: str, value: str) -> str:
    """The identifier as people write it: plain, grouped with spaces or hyphens, full-width."""
    if draw(st.booleans()):
        sep = draw(st.sampled_from([" ", "-"]))
        parts, pos = [], 0
        for size in _GROUPS[category]:
            if pos < len(value):
                parts.append(value[pos : pos + size])
                pos += size
        parts[-1] += value[pos:]
        value = sep.join(parts)
    if draw(st.booleans()):
        value = value.translate(_FULL_WIDTH)
    return value


IDENTIFIERS = st.one_of(
    st.tuples(st.just("id_number"), resident_ids()),
    st.tuples(st.just("bank_card"), card_numbers()),
    st.tuples(st.just("mobile"), mobiles()),
)
WRITTEN = IDENTIFIERS.flatmap(lambda cv: st.tuples(st.just(cv[0]), written(cv[0], cv[1])))
# Filler without digits (a digit glued to an identifier makes it a different number).
FILLER = st.text(
    alphabet=st.sampled_from(list("客户来电说明已经办理业务谢谢您好的了，。：; ,!?-abcxyzABCXYZ")),
    max_size=25,
)


@given(WRITTEN, FILLER, FILLER)
def test_embedded_identifiers_are_detected(ident: tuple[str, str], left: str, right: str) -> None:
    category, value = ident
    text = left + value + right
    start = len(left)
    covering = [h for h in detect(text) if h.start <= start and h.end >= start + len(value)]
    assert covering, f"{value!r} not found in {text!r}"
    assert covering[0].category in (category, "credentials")


@given(WRITTEN, FILLER, FILLER, st.sampled_from(ACTIONS))
def test_no_identifier_survives_mask_text(
    ident: tuple[str, str], left: str, right: str, action: Action
) -> None:
    _, value = ident
    text = left + value + right
    masked = MASKER.mask_text(text, detect(text), lambda h: action)
    assert value not in masked
    leaked = [h for h in detect(masked) if h.category in ("id_number", "bank_card", "mobile")]
    assert leaked == []


@given(IDENTIFIERS)
def test_generated_identifiers_classify_as_whole_values(ident: tuple[str, str]) -> None:
    category, value = ident
    hit = classify_value(value)
    assert hit is not None
    assert hit.category == category


VALUES = st.one_of(
    st.text(max_size=30),
    resident_ids(),
    card_numbers(),
    mobiles(),
    st.sampled_from(
        ["北京市海淀区中关村大街1号", "zhangwei@example.com", "1990-05-12", "京A12345"]
    ),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.none(),
    st.booleans(),
)


@given(VALUES, st.sampled_from(sorted(TAX.categories)), st.sampled_from(ACTIONS))
# found by Hypothesis: a formula-guarded cell masked to `'****` kept its guard only once
@example("'0", "address", Action(Verb.MASK, "standard"))
def test_masking_is_idempotent(value: Any, category: str, action: Action) -> None:
    once = MASKER.apply(value, category, action)
    assert MASKER.apply(once, category, action) == once


JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


def _shape(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(x) for x in v]
    return "leaf"


@given(JSON, st.sampled_from(sorted(TAX.categories)), st.sampled_from(ACTIONS))
def test_output_stays_json_with_the_same_shape(value: Any, category: str, action: Action) -> None:
    out = MASKER.apply(value, category, action)
    assert out is not DROPPED
    orjson.dumps(out)
    if TAX.level(TAX.category(category).level).never_clear:
        assert out is None or out == "******"
    else:
        assert _shape(out) == _shape(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert (
            out is None or isinstance(out, int | float) or TAX.category(category).number_as_string
        )


MASKING = [a for a in ACTIONS if a.verb is not Verb.GENERALISE]


@example("R\u00b800", "id_number", Action(Verb.MASK, "standard"))  # separator before a mark
@example("A\r", "passport", Action(Verb.MASK, "strict"))  # all type letters, nothing masked
@given(VALUES, st.sampled_from(sorted(TAX.categories)), st.sampled_from(MASKING))
def test_masked_output_is_recognised_by_the_write_guard(
    value: Any, category: str, action: Action
) -> None:
    out = MASKER.apply(value, category, action)
    if isinstance(out, str) and out and out != value:
        assert is_masked_placeholder(out, category, TAX)
