"""`explain`: the table the security team reads must match what enforcement does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core.catalog import Catalog
from gateway.core.explain import UNCLASSIFIED, ExplainRow, explain_sample, format_rows
from gateway.core.model import Decision
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]
TAXONOMY = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
CATALOG = Catalog.load(ROOT / "config" / "crm" / "demo.yaml")
CARD = "6222600260001072444"


def sample() -> dict[str, Any]:
    return {
        "count": 2,
        "results": [
            {
                "id": "C1",
                "name": "张伟",
                "bank_card": CARD,
                "grade": "A",
                "notes": "手机13912345678",
                "query_password": "x",
                "wechat_no": "abc",
                "holdings": [{"code": "600519"}],
            },
            {"id": "C2", "name": "李娜", "grade": "C", "notes": "无"},
        ],
    }


def by_path(rows: list[ExplainRow]) -> dict[str, ExplainRow]:
    return {r.path: r for r in rows}


def test_level_uses_static_table_and_catalog_without_route() -> None:
    rows = by_path(explain_sample(TAXONOMY, CATALOG, None, sample(), "L2"))
    assert rows["results[0].name"] == ExplainRow(
        "results[0].name", "name", "L2", "catalog", 1.0, "allow", "张伟"
    )
    assert rows["results[0].bank_card"].action == "mask:strict"
    assert rows["results[0].bank_card"].sent not in ("", CARD, "(removed)")
    assert rows["results[0].query_password"].action == "drop"
    assert rows["results[0].holdings"].category == "holdings"
    note = rows["results[0].notes[2:13]"]
    assert (note.category, note.detector, note.action) == ("mobile", "mobile", "allow")
    assert rows["results[0].wechat_no"].category == UNCLASSIFIED
    assert rows["results[1].notes"].detector == "free text"
    assert rows["count"].category == UNCLASSIFIED


def test_level_aliases_resolve() -> None:
    rows = by_path(explain_sample(TAXONOMY, CATALOG, None, sample(), "一级"))
    assert rows["results[0].name"].action == "allow"
    assert rows["results[0].bank_card"].action == "mask:strict"


def test_decision_with_record_rule_and_explicit_route() -> None:
    decision = Decision.from_json(
        {
            "allow": True,
            "fields": {"name": {"action": "mask", "style": "standard"}},
            "levels": {"L1": "allow", "L2": "allow", "L4": "redact", "L5": "drop"},
            "records": [{"when": {"grade": ["A"]}, "record": "drop", "reason": "grade A"}],
        }
    )
    route = CATALOG.route("customer_list")
    rows = by_path(explain_sample(TAXONOMY, CATALOG, route, sample(), decision))
    dropped = rows["results[0]"]
    assert (dropped.category, dropped.action) == ("(record)", "drop")
    assert "grade A" in dropped.detector
    assert "results[0].name" not in rows
    assert rows["results[1].name"].action == "mask:standard"


def test_unknown_shapes_without_catalog() -> None:
    rows = explain_sample(TAXONOMY, None, None, [{"phone": "13812345678", "x": CARD}], "L4")
    assert [(r.path, r.category, r.detector) for r in rows] == [
        ("[0].phone", "mobile", "key"),
        ("[0].x", "bank_card", "bank_card"),
    ]


def test_format_rows_aligns_columns_with_cjk_width() -> None:
    rows = [
        ExplainRow("results[0].name", "name", "L2", "catalog", 1.0, "allow"),
        ExplainRow("备注", "mobile", "L2", "mobile", 0.9, "mask:standard"),
    ]
    text = format_rows(rows)
    lines = text.splitlines()
    assert lines[0].split() == [
        "field", "category", "level", "classified", "by", "conf", "action", "sent",
    ]  # fmt: skip
    assert lines[1].startswith("---")
    assert "0.90" in lines[3]
    # the category column starts at the same display cell on every line
    assert lines[2].index(" name ") + 1 == 17
    assert lines[3].index("mobile") == 15  # 备注 is 2 characters but 4 cells wide


def test_unknown_level_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown level 'L9'"):
        explain_sample(TAXONOMY, CATALOG, None, {}, "L9")
    with pytest.raises(ValueError, match="unknown level"):
        explain_sample(TAXONOMY, CATALOG, None, {}, "mobile")  # a category, not a level


def test_envelope_members_take_their_categorised_ancestor() -> None:
    doc = {"holdings": [{"code": "600519", "name": "贵州茅台"}], "meta": {"page": 1}}
    rows = by_path(explain_sample(TAXONOMY, CATALOG, CATALOG.route("customer_detail"), doc, "L2"))
    assert rows["holdings[0].code"].category == "holdings"
    assert rows["holdings[0].name"].category == "holdings"  # not "name": the unit decides
    assert rows["holdings[0].code"].action == "mask:strict"
    assert rows["meta.page"].category == UNCLASSIFIED


def test_the_actions_are_what_the_enforcer_did_not_what_the_tables_predict() -> None:
    """A decision that names only `name` and levels L2, L4, L5: the enforcer removes the
    fields whose level the decision leaves out (L1 customer numbers and grades: fail
    closed) and the total that would count the hidden grade-A record; explain says so."""
    decision = Decision.from_json(
        {
            "allow": True,
            "fields": {"name": {"action": "mask", "style": "standard"}},
            "levels": {"L2": "allow", "L4": "redact", "L5": "drop"},
            "records": [{"when": {"grade": ["A"]}, "record": "drop", "reason": "grade A"}],
        }
    )
    route = CATALOG.route("customer_list")
    rows = by_path(explain_sample(TAXONOMY, CATALOG, route, sample(), decision))
    assert (rows["results[1].name"].action, rows["results[1].name"].sent) == (
        "mask:standard",
        "李*",
    )
    assert (rows["results[1].notes"].action, rows["results[1].notes"].sent) == ("allow", "无")
    for gone in ("results[1].id", "results[1].grade", "count"):
        assert (rows[gone].action, rows[gone].sent) == ("drop", "(removed)"), gone


def test_a_record_s_own_name_in_its_notes_is_shown_as_the_enforcer_masks_it() -> None:
    doc = {"results": [{"id": "C9", "name": "欧阳敏", "grade": "C", "notes": "与欧阳敏通话"}]}
    decision = Decision.from_json(
        {
            "allow": True,
            "fields": {"name": {"action": "mask", "style": "standard"}},
            "levels": dict.fromkeys(("L0", "L1", "L2", "L3", "L4"), "allow") | {"L5": "drop"},
        }
    )
    rows = by_path(explain_sample(TAXONOMY, CATALOG, CATALOG.route("customer_list"), doc, decision))
    notes = rows["results[0].notes"]
    assert notes.action == "mask" and "欧阳敏" not in notes.sent, notes
