"""RecordEnd: the end of a JSON object, guessed or scanned, resumable across chunks."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.codecs.recordend import NEED_MORE, RecordEnd

_TEXT = st.text(alphabet=st.sampled_from(list('ab{}[]"\\,: 张')), max_size=6)
_VALUES = st.recursive(
    st.none() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)
_OBJECTS = st.dictionaries(_TEXT, _VALUES, max_size=4)


def find_confirmed(ends: RecordEnd, buf: bytes, start: int, final: bool) -> int:
    """What JsonStream does: a guess that does not parse is rejected and decided exactly."""
    end = ends.find(buf, start, final)
    if end != NEED_MORE and ends.guessing and not _parses(buf[start:end]):
        ends.reject(start)
        end = ends.find(buf, start, final)
    return end


def _parses(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


@given(obj=_OBJECTS, step=st.integers(min_value=1, max_value=50), fast=st.booleans())
def test_finds_the_true_end_in_any_chunking(obj: dict[str, Any], step: int, fast: bool) -> None:
    text = json.dumps(obj, ensure_ascii=False).encode()
    stream = text + b', {"next": 1}]'
    ends = RecordEnd(fast=fast)
    buf, start = b"[", 1
    ends.start(start)
    end = NEED_MORE
    for i in range(0, len(stream), step):  # chunks arrive
        buf += stream[i : i + step]
        end = find_confirmed(ends, buf, start, final=False)
        if end != NEED_MORE:
            break
    else:  # a guess spoilt by a brace in a string may run on until the body ends
        end = find_confirmed(ends, buf, start, final=True)
    assert end - start == len(text)


def test_incomplete_string_waits_for_more_input() -> None:
    ends = RecordEnd(fast=False)
    ends.start(0)
    assert ends.find(b'{"a": "x}', 0, final=False) == NEED_MORE
    assert ends.find(b'{"a": "x}"}', 0, final=False) == len(b'{"a": "x}"}')


def test_stops_guessing_after_repeated_fallbacks() -> None:
    ends = RecordEnd()
    record = b'{"a": "}}"}'
    for _ in range(20):
        ends.start(0)
        end = ends.find(record, 0, final=False)
        if ends.guessing:  # the guess stops at the first brace inside the string
            ends.reject(0)
            end = ends.find(record, 0, final=False)
        assert end == len(record)
    assert not ends.guessing
