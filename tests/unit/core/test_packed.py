"""Packed values: several people's fields flattened into one CSV cell or one field
(`张伟/配偶/13812345678；李娜/子女/13987654321`), catalog `packed:`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.catalog import Catalog
from gateway.core.enforce import Enforcer, build_enforcer
from gateway.core.explain import explain_sample
from gateway.core.model import Decision
from gateway.core.rewrite import BlockResponse
from gateway.demo.vocab import MOBILE_PREFIXES
from tests.unit.core.codecs.helpers import run, split_at
from tests.unit.core.test_enforce import (
    MASKER,
    STANDARD,
    STRICT,
    TAXONOMY,
    decision_for,
    masked,
)

FAMILY = {"fields": ["name", "internal", "mobile"]}
CATALOG = Catalog.from_dict(
    {
        "name": "legacy",
        "record": {"id": "id", "grade": "grade"},
        "fields": [{"key": "family", "packed": FAMILY}],
        "routes": [
            {
                "name": "export",
                "path": "/households.csv",
                "export": True,
                "response_types": ["text/csv"],
                "csv": {"columns": {"家庭成员": {"packed": FAMILY}, "客户": "name"}},
            },
            {"name": "page", "path": "/households", "records": ["item"]},
            {
                "name": "mailbox",
                "path": "/mailbox.csv",
                "csv": {
                    "columns": {
                        "Contacts": {
                            "packed": {
                                "fields": ["name", "email"],
                                "people": r"\s*;\s*",
                                "between": r"\s*<|>",
                            }
                        }
                    }
                },
            },
        ],
    }
)
HEADER = ["id", "客户", "grade", "家庭成员"]
CELL = "王芳/配偶/13912345678；王小明/子女/13800001111"
ALLOW_ALL = Decision.from_json(
    {"allow": True, "fields": {}, "levels": {f"L{i}": "allow" for i in range(6)}}
)


def enforcer(decision: Decision, route: str = "export", catalog: Catalog = CATALOG) -> Enforcer:
    return build_enforcer(
        taxonomy=TAXONOMY,
        route=catalog.route(route),
        decision=decision,
        subject_id="u-sales-01",
        masker=MASKER,
    )


def test_each_person_masked_field_by_field() -> None:
    out = enforcer(decision_for("L1")).rewrite_row(HEADER, ["C1", "张伟", "B", CELL])
    assert out is not None
    expected = "；".join(
        f"{masked(name, 'name', STANDARD)}/{rel}/{masked(mobile, 'mobile', STANDARD)}"
        for name, rel, mobile in (
            ("王芳", "配偶", "13912345678"),
            ("王小明", "子女", "13800001111"),
        )
    )
    assert out[3] == expected
    for value in ("王芳", "王小明", "13912345678", "13800001111"):
        assert value not in out[3]


def test_a_cleared_caller_gets_the_cell_exactly() -> None:
    cell = " 王芳 / 配偶 / 13912345678 ; 王小明/子女/13800001111\n李娜//  "
    out = enforcer(ALLOW_ALL).rewrite_row(HEADER, ["C1", "张伟", "B", cell])
    assert out == ["C1", "张伟", "B", cell]


def test_a_person_with_more_fields_than_named_is_masked_whole_and_strict() -> None:
    cell = "王芳/配偶/13912345678/备用13800001111；王小明/子女/13800002222"
    for decision in (ALLOW_ALL, decision_for("L1")):
        out = enforcer(decision).rewrite_row(HEADER, ["C1", "张伟", "B", cell])
        assert out is not None
        first, second = out[3].split("；")
        # mobile and name are both L2: the first named of the highest level, strict
        assert first == masked("王芳/配偶/13912345678/备用13800001111", "name", STRICT)
        assert "13912345678" not in first and "13800001111" not in first
        if decision is ALLOW_ALL:
            assert second == "王小明/子女/13800002222"


def test_pattern_separators_and_an_email_between_brackets() -> None:
    header = ["Contacts"]
    cell = "Zhang Wei <zw@example.cn>; Li Na <lina@example.cn>"
    out = enforcer(decision_for("L1"), "mailbox").rewrite_row(header, [cell])
    assert out is not None
    assert "zw@example.cn" not in out[0] and "Zhang Wei" not in out[0]
    assert out[0] == (
        f"{masked('Zhang Wei', 'name', STANDARD)} <{masked('zw@example.cn', 'email', STANDARD)}>; "
        f"{masked('Li Na', 'name', STANDARD)} <{masked('lina@example.cn', 'email', STANDARD)}>"
    )
    assert enforcer(ALLOW_ALL, "mailbox").rewrite_row(header, [cell]) == [cell]


def test_record_rules_of_the_row_hold_for_its_people() -> None:
    drop_b = decision_for("L2", records=[{"when": {"grade": ["B"]}, "record": "drop"}])
    assert enforcer(drop_b).rewrite_row(HEADER, ["C1", "张伟", "B", CELL]) is None
    stricter = decision_for(
        "L2",
        records=[
            {"when": {"grade": ["A"]}, "fields": {"mobile": {"action": "mask", "style": "strict"}}}
        ],
    )
    out = enforcer(stricter).rewrite_row(HEADER, ["C1", "张伟", "A", CELL])
    assert out is not None
    assert out[3].split("；")[0] == f"王芳/配偶/{masked('13912345678', 'mobile', STRICT)}"
    block = decision_for("L2", fields={"mobile": "block"})
    with pytest.raises(BlockResponse):
        enforcer(block).rewrite_row(HEADER, ["C1", "张伟", "B", CELL])


def test_people_count_for_the_bulk_quota() -> None:
    d = decision_for("L2", obligations={"max_clear_records": {"L2": 1}})
    enf = enforcer(d)
    header = ["id", "grade", "家庭成员"]  # no other L2 column: only the packed one
    first = enf.rewrite_row(header, ["C1", "B", CELL])
    second = enf.rewrite_row(header, ["C2", "B", CELL])
    assert first is not None and second is not None
    assert first[2] == CELL
    assert "13912345678" not in second[2]
    assert enf.report.to_audit()["records"]["bulk_limited_by_level"] == {"L2": 1}


def test_the_same_rule_reads_json_fields_and_their_lists() -> None:
    doc = [
        {"id": "C1", "grade": "B", "family": CELL},
        {"id": "C2", "grade": "B", "family": ["李娜/母亲/13700001111"]},
        {"id": "C3", "grade": "B", "family": {"name": "李娜", "mobile": "13700002222"}},
        {"id": "C4", "grade": "B", "family": None},
    ]
    out = enforcer(decision_for("L1"), "page").rewrite_document(doc)
    assert out[0]["family"].count("；") == 1
    assert "13912345678" not in out[0]["family"]
    assert out[1]["family"] == [
        f"{masked('李娜', 'name', STANDARD)}/母亲/{masked('13700001111', 'mobile', STANDARD)}"
    ]
    # not the string the catalog describes: masked strict, key by key
    assert out[2]["family"]["mobile"] == masked("13700002222", "mobile", STRICT)
    assert out[3]["family"] is None
    cleared = enforcer(ALLOW_ALL, "page").rewrite_document(doc)
    assert cleared[:2] == doc[:2]


@pytest.mark.parametrize(
    "person",
    [
        "13912345678/王芳",  # a mobile where the name should be
        "/配偶/王芳 13912345678",  # a name beside the mobile
        "zw@example.cn/配偶/13912345678",  # an e-mail in the name's place
        "王芳/配偶/010-62345678",  # a landline is not the mobile declared
        "王芳/13912345678/配偶",  # fields swapped
    ],
)
def test_fields_out_of_place_make_the_person_unreadable(person: str) -> None:
    """Positions are trusted only where the values agree: a value the detectors give
    another category, or a mobile slot without a mobile, masks the person whole."""
    for decision in (ALLOW_ALL, decision_for("L1")):
        out = enforcer(decision).rewrite_row(
            HEADER, ["C1", "张伟", "B", f"{person}；李娜/母亲/13700001111"]
        )
        assert out is not None
        first, second = out[3].split("；")
        assert first == masked(person, "name", STRICT)
        for value in ("13912345678", "王芳", "zw@example.cn", "62345678"):
            assert value not in first
        if decision is ALLOW_ALL:
            assert second == "李娜/母亲/13700001111"


def test_a_clear_field_holding_more_than_its_category_is_scanned() -> None:
    """The relation is internal (L1, clear for an L1 caller), but a mobile typed into
    its place is L2: masked as the span it is, the relation kept."""
    cell = "王芳/配偶 13912345678/13700001111"
    out = enforcer(decision_for("L1")).rewrite_row(HEADER, ["C1", "张伟", "B", cell])
    assert out is not None
    assert "13912345678" not in out[3] and "配偶" in out[3]
    assert enforcer(ALLOW_ALL).rewrite_row(HEADER, ["C1", "张伟", "B", cell]) == [
        "C1",
        "张伟",
        "B",
        cell,
    ]


def test_a_separator_holding_words_is_scanned() -> None:
    catalog = Catalog.from_dict(
        {
            "name": "x",
            "fields": [
                {"key": "c", "packed": {"fields": ["name"], "people": r"\s*(?:and|备注\S*)\s*"}}
            ],
            "routes": [{"name": "r", "path": "/r", "records": [""]}],
        }
    )
    out = enforcer(decision_for("L1"), "r", catalog).rewrite_document(
        {"c": "王芳 备注手机13912345678 王小明"}
    )
    assert "13912345678" not in out["c"]


def test_explain_names_each_packed_category() -> None:
    doc = [{"id": "C1", "grade": "B", "family": CELL}]
    rows = explain_sample(TAXONOMY, CATALOG, CATALOG.route("page"), doc, decision_for("L1"))
    found = {(r.path, r.category) for r in rows}
    assert {("[0].family", "name"), ("[0].family", "internal"), ("[0].family", "mobile")} <= found


@pytest.mark.parametrize(
    ("packed", "problem"),
    [
        ({}, "fields: must list each field's category"),
        ({"fields": []}, "fields: must list each field's category"),
        ({"fields": ["name", 3]}, "fields: must list each field's category"),
        ({"fields": ["name"], "people": "("}, "people: not a regular expression"),
        ({"fields": ["name"], "between": "x*"}, "between: must be a regular expression that"),
        ({"fields": ["name"], "people": 5}, "people: must be a regular expression that"),
        ({"fields": ["name"], "sep": ";"}, "sep: unknown key"),
        ("name", "packed: must be a mapping"),
    ],
)
def test_packed_declarations_are_checked(packed: Any, problem: str) -> None:
    raw = {
        "name": "x",
        "routes": [{"name": "r", "path": "/r", "csv": {"columns": {"c": {"packed": packed}}}}],
    }
    with pytest.raises(ValueError) as err:
        Catalog.from_dict(raw)
    assert problem in str(err.value)
    raw = {"name": "x", "fields": [{"key": "c", "packed": packed}], "routes": []}
    with pytest.raises(ValueError) as err:
        Catalog.from_dict(raw)
    assert problem in str(err.value)


def test_a_column_is_a_category_or_packed_and_a_rule_one_meaning() -> None:
    bad_column = {
        "name": "x",
        "routes": [{"name": "r", "path": "/r", "csv": {"columns": {"c": 1}}}],
    }
    with pytest.raises(ValueError, match="must be a category or"):
        Catalog.from_dict(bad_column)
    both = {"name": "x", "fields": [{"key": "c", "category": "name", "packed": FAMILY}]}
    with pytest.raises(ValueError, match="needs exactly one of category"):
        Catalog.from_dict(both)


def test_check_config_names_unknown_packed_categories() -> None:
    catalog = Catalog.from_dict(
        {
            "name": "x",
            "fields": [{"key": "c", "packed": {"fields": ["name", "mobil"]}}],
            "routes": [
                {
                    "name": "r",
                    "path": "/r",
                    "csv": {"columns": {"k": {"packed": {"fields": ["nam"]}}}},
                }
            ],
        }
    )
    known = frozenset(TAXONOMY.categories)
    problems = catalog.problems_with(known)
    assert any("'mobil'" in p for p in problems)
    assert any("csv.columns.k: unknown category 'nam'" in p for p in problems)
    assert {"name", "mobil", "nam"} <= catalog.categories()


_SURNAMES = "王李张刘陈杨赵黄周吴"
_GIVEN = "伟芳娜敏静丽强磊军洋"


@st.composite
def people(draw: st.DrawFn) -> list[tuple[str, str, str]]:
    n = draw(st.integers(1, 6))
    out = []
    for _ in range(n):
        name = draw(st.sampled_from(_SURNAMES)) + draw(
            st.text(alphabet=_GIVEN, min_size=1, max_size=2)
        )
        rel = draw(st.sampled_from(["配偶", "子女", "父亲", "母亲", ""]))
        mobile = draw(st.sampled_from(MOBILE_PREFIXES)) + f"{draw(st.integers(0, 10**8 - 1)):08d}"
        out.append((name, rel, mobile))
    return out


@given(people(), st.sampled_from(["；", ";", "; ", "\n"]), st.sampled_from(["/", ",", " | "]))
def test_no_member_left_in_clear_and_nothing_changed_for_the_cleared(
    members: list[tuple[str, str, str]], people_sep: str, between: str
) -> None:
    cell = people_sep.join(between.join(m) for m in members)
    low = enforcer(decision_for("L1")).rewrite_row(HEADER, ["C1", "张伟", "B", cell])
    assert low is not None
    for name, _, mobile in members:
        assert mobile not in low[3]
        assert name not in low[3] or len(name) == 1
    assert enforcer(ALLOW_ALL).rewrite_row(HEADER, ["C1", "张伟", "B", cell]) == [
        "C1",
        "张伟",
        "B",
        cell,
    ]


PACKED_FORMATS = Catalog.from_dict(
    {
        "name": "legacy",
        "record": {"id": "id", "grade": "grade"},
        "fields": [{"key": "family", "packed": FAMILY}],
        "response_types": [
            "application/json",
            "text/xml",
            "text/csv",
            "text/tab-separated-values",
            "application/x-ndjson",
        ],
        "routes": [{"name": "any", "path": "/any", "records": ["item", "rows.row", ""]}],
    }
)
_MEMBERS = [("王芳", "配偶", "13912345678"), ("王小明", "子女", "13800001111")]
_CELL = "；".join("/".join(m) for m in _MEMBERS)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", orjson.dumps([{"id": "C1", "grade": "B", "family": _CELL}])),
        ("application/x-ndjson", orjson.dumps({"id": "C1", "grade": "B", "family": _CELL}) + b"\n"),
        ("text/csv", f"id,grade,family\nC1,B,{_CELL}\n".encode()),
        ("text/tab-separated-values", f"id\tgrade\tfamily\nC1\tB\t{_CELL}\n".encode()),
        (
            "text/xml",
            f"<rows><row><id>C1</id><grade>B</grade><family>{_CELL}</family></row></rows>".encode(),
        ),
    ],
)
def test_one_packed_rule_in_every_format(content_type: str, body: bytes) -> None:
    """The field rule reads the packed people the same in JSON, NDJSON, CSV, TSV and
    XML, cut into chunks anywhere: masked for L1, byte for byte for a cleared caller."""

    def through(decision: Decision) -> str:
        enf = enforcer(decision, "any", PACKED_FORMATS)
        return run(split_at(body, [7, 31, 60]), content_type, enf).decode()

    low = through(decision_for("L1"))
    for name, rel, mobile in _MEMBERS:
        assert mobile not in low and name not in low
        assert f"/{rel[0]}" in low  # the shape survives: people and their fields
    expected = "；".join(
        f"{masked(n, 'name', STANDARD)}/{r}/{masked(m, 'mobile', STANDARD)}" for n, r, m in _MEMBERS
    )
    assert expected in low
    assert _CELL in through(ALLOW_ALL)
