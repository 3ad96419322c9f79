"""CSV exports: header-driven rows, streamed, quoted newlines across chunks, BOM and GBK kept."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.codecs import make_body_rewriter
from gateway.core.rewrite import RewriteError
from tests.unit.core.codecs.doubles import MaskingEnforcer
from tests.unit.core.codecs.helpers import LIMITS, run, split_at

CT = "text/csv; charset=utf-8"
EXPORT = (
    "id,name,mobile,grade,notes\r\n"
    "C1,张伟,13812345678,B,plain\r\n"
    'C2,李娜,13900000000,A,"dropped, with comma"\r\n'
    'C3,王芳,13700000001,C,"two\r\nlines, call 13512345678 ""quoted"""\r\n'
)


def parse(data: bytes, encoding: str = "utf-8") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))


def test_rows_are_rewritten_by_header_and_grade_a_rows_dropped() -> None:
    out = run(EXPORT.encode(), CT, MaskingEnforcer())
    assert parse(out) == [
        ["id", "name", "mobile", "grade", "notes"],
        ["C1", "**", "***********", "B", "plain"],
        ["C3", "**", "***********", "C", 'two\r\nlines, call 135******** "quoted"'],
    ]
    assert out.endswith(b"\r\n")  # CRLF kept
    assert out.count(b"\r\n") == 4


def test_rows_leave_as_soon_as_they_are_complete() -> None:
    rw = make_body_rewriter(CT, None, MaskingEnforcer(), limits=LIMITS, sensitive=True)
    body = EXPORT.encode()
    first = rw.feed(body[: body.index(b"C2")])
    assert parse(first) == [
        ["id", "name", "mobile", "grade", "notes"],
        ["C1", "**", "***********", "B", "plain"],
    ]
    inside_quote = body.index(b"two\r\n") + 5
    assert rw.feed(body[body.index(b"C2") : inside_quote]) == b""  # row 3 is still open
    assert b"C3" in rw.feed(body[inside_quote:]) + rw.finish()


def test_bom_is_kept() -> None:
    out = run(b"\xef\xbb\xbf" + EXPORT.encode(), CT, MaskingEnforcer())
    assert out.startswith(b"\xef\xbb\xbfid,name")


def test_gbk_export_is_rewritten_and_stays_gbk() -> None:
    body = "姓名,手机,grade\n张伟,13812345678,B\n".encode("gbk")
    out = run(split_at(body, [1, 3, 5, 7]), "text/csv; charset=gbk", MaskingEnforcer())
    assert out.decode("gbk") == "姓名,手机,grade\n**,***********,B\n"


def test_quote_all_style_is_preserved() -> None:
    body = b'"id","mobile","grade"\n"C1","13812345678","B"\n'
    assert run(body, CT, MaskingEnforcer()) == b'"id","mobile","grade"\n"C1","***********","B"\n'


def test_tab_separated_values() -> None:
    body = b"id\tmobile\tgrade\nC1\t13812345678\tB\n"
    out = run(body, "text/tab-separated-values", MaskingEnforcer())
    assert out == b"id\tmobile\tgrade\nC1\t***********\tB\n"


def test_unterminated_quote_is_refused() -> None:
    with pytest.raises(RewriteError):
        run(b'id,mobile\nC1,"13812345678\n', CT, MaskingEnforcer())


def test_last_row_without_line_break() -> None:
    out = run(b"id,mobile,grade\nC1,13812345678,B", CT, MaskingEnforcer())
    assert parse(out) == [["id", "mobile", "grade"], ["C1", "***********", "B"]]


def test_unbounded_row_is_refused() -> None:
    from gateway.core.codecs import CodecLimits

    limits = CodecLimits(max_buffered=1000, max_decompressed=1 << 20, max_ratio=10)
    rw = make_body_rewriter(CT, None, MaskingEnforcer(), limits=limits, sensitive=True)
    rw.feed(b'id,notes\nC1,"')
    rw.feed(b"x\n" * 200)
    with pytest.raises(RewriteError, match="too large"):
        rw.feed(b"x\n" * 400)


_CELLS = st.text(alphabet=st.sampled_from(list('ab ,"\r\n张1')), max_size=6)


@given(
    rows=st.lists(st.lists(_CELLS, min_size=3, max_size=3), max_size=6),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
    crlf=st.booleans(),
)
def test_chunking_does_not_change_the_output(
    rows: list[list[str]], cuts: list[int], crlf: bool
) -> None:
    if not crlf:  # the csv module leaves a bare CR unquoted under an LF terminator
        rows = [[cell.replace("\r", "") for cell in row] for row in rows]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n" if crlf else "\n").writerows(
        [["name", "mobile", "grade"], *rows]
    )
    body = buf.getvalue().encode()
    whole = run(body, CT, MaskingEnforcer())
    assert run(split_at(body, cuts), CT, MaskingEnforcer()) == whole
    expected = [r for r in rows if r[2] != "A"]
    assert len(parse(whole)) == 1 + len(expected)
